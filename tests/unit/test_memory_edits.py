"""Letta's block-editing tools: results, exact error texts, limits, guards, the omni-tool, the schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from mnemo.memory.edits import (
    READ_ONLY_BLOCK_EDIT_ERROR,
    BlockNotFoundError,
    EditKind,
    MemoryEdit,
    MemoryToolError,
    core_memory_append,
    core_memory_replace,
    memory_finish_edits,
    memory_insert,
    memory_rethink,
)
from mnemo.memory.edits import memory_replace as memory_replace_tool
from mnemo.memory.edits_dispatch import (
    _TOOLS,
    MEMORY_TOOL_NAMES,
    normalize_memory_tool_args,
    run_memory_tool,
)
from mnemo.memory.edits_omni import label_from_path, memory
from mnemo.memory.render import CORE_MEMORY_LINE_NUMBER_WARNING, BlockView, render_memory_blocks
from mnemo.memory.tool_schemas import (
    BUILTIN_TOOL_NAMES,
    REQUEST_HEARTBEAT_DESCRIPTION,
    TOOL_ARG_DEFAULTS,
    tool_schema,
    with_request_heartbeat,
)

HUMAN = BlockView(
    label="human", value="Name: Ada\nLikes: tea\nLikes: cats", limit=200, description="The user."
)
PERSONA = BlockView(label="persona", value="I am Sam.", limit=100, description="Me.")
POLICY = BlockView(label="policy", value="Be kind.", limit=100, read_only=True)
BLOCKS = [HUMAN, PERSONA, POLICY]
UNKNOWN = "'Block field nope does not exist (available sections = human, persona, policy)'"
PREFIX_ERR = (
    "{} contains a line number prefix, which is not allowed. Do not include line numbers when calling memory "
    "tools (line numbers are for display purposes only)."
)
WARNING_ERR = (
    "{} contains a line number warning, which is not allowed. Do not include line number information when "
    "calling memory tools (line numbers are for display purposes only)."
)


def _raises(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(MemoryToolError) as excinfo:
        fn(*args, **kwargs)
    return str(excinfo.value)


# ---------------------------------------------------------------------------------------- shared rules


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (core_memory_append, {"label": "policy", "content": "x"}),
        (core_memory_replace, {"label": "policy", "old_content": "kind", "new_content": "nice"}),
        (memory_replace_tool, {"label": "policy", "old_string": "kind", "new_string": "nice"}),
        (memory_insert, {"label": "policy", "new_string": "x"}),
        (memory_rethink, {"label": "policy", "new_memory": "x"}),
    ],
)
def test_read_only_blocks_refuse_edits(fn: Any, args: dict[str, Any]) -> None:
    assert _raises(fn, BLOCKS, **args) == "Error This block is read-only and cannot be edited."
    assert READ_ONLY_BLOCK_EDIT_ERROR == "Error This block is read-only and cannot be edited."


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (core_memory_append, {"label": "nope", "content": "x"}),
        (core_memory_replace, {"label": "nope", "old_content": "a", "new_content": "b"}),
        (memory_replace_tool, {"label": "nope", "old_string": "a", "new_string": "b"}),
        (memory_insert, {"label": "nope", "new_string": "x"}),
    ],
)
def test_unknown_label_gives_lettas_key_error(fn: Any, args: dict[str, Any]) -> None:
    with pytest.raises(BlockNotFoundError) as excinfo:
        fn(BLOCKS, **args)
    assert str(excinfo.value) == UNKNOWN
    assert excinfo.value.message == UNKNOWN.strip("'")
    assert isinstance(excinfo.value, KeyError)


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (core_memory_append, {"label": "persona", "content": "x" * 100}),
        (core_memory_replace, {"label": "persona", "old_content": "Sam", "new_content": "S" * 100}),
        (memory_replace_tool, {"label": "persona", "old_string": "Sam", "new_string": "S" * 100}),
        (memory_insert, {"label": "persona", "new_string": "x" * 100}),
        (memory_rethink, {"label": "persona", "new_memory": "x" * 101}),
    ],
)
def test_edits_past_the_limit_fail(fn: Any, args: dict[str, Any]) -> None:
    message = _raises(fn, BLOCKS, **args)
    assert message.startswith("Edit failed: Exceeds 100 character limit (requested ")
    requested = int(message.rsplit("requested ", 1)[1].rstrip(")"))
    assert requested > 100


def test_an_edit_exactly_at_the_limit_succeeds() -> None:
    edit = memory_rethink(BLOCKS, "persona", "x" * 100)
    assert edit.kind is EditKind.UPDATE and edit.value == "x" * 100


def test_mapping_of_blocks_is_accepted() -> None:
    edit = core_memory_append({b.label: b for b in BLOCKS}, "persona", "More.")
    assert edit.value == "I am Sam.\nMore."


# ------------------------------------------------------------------------------------- core_memory_*


def test_core_memory_append() -> None:
    edit = core_memory_append(BLOCKS, "persona", "I like tea.")
    assert edit == MemoryEdit(
        kind=EditKind.UPDATE,
        label="persona",
        value="I am Sam.\nI like tea.",
        tool_return="I am Sam.\nI like tea.",
    )


def test_core_memory_replace_replaces_every_occurrence() -> None:
    edit = core_memory_replace(BLOCKS, "human", "Likes", "Loves")
    assert edit.value == "Name: Ada\nLoves: tea\nLoves: cats" and edit.tool_return == edit.value
    assert core_memory_replace(BLOCKS, "human", "Likes: cats", "").value == "Name: Ada\nLikes: tea\n"


def test_core_memory_replace_missing_content() -> None:
    assert _raises(core_memory_replace, BLOCKS, "human", "Bob", "x") == (
        "Old content 'Bob' not found in memory block 'human'"
    )
    assert _raises(core_memory_replace, BLOCKS, "human", "", "x") == (
        "Old content '' not found in memory block 'human'"
    )


# ------------------------------------------------------------------------------------- memory_replace


def test_memory_replace_happy_path_returns_new_value() -> None:
    edit = memory_replace_tool(BLOCKS, "human", "Name: Ada", "Name: Bob")
    assert edit.kind is EditKind.UPDATE and edit.label == "human"
    assert edit.value == edit.tool_return == "Name: Bob\nLikes: tea\nLikes: cats"


def test_memory_replace_deletes_with_empty_new_string() -> None:
    assert memory_replace_tool(BLOCKS, "human", "\nLikes: cats", "").value == "Name: Ada\nLikes: tea"


def test_memory_replace_not_found() -> None:
    assert _raises(memory_replace_tool, BLOCKS, "human", "Name: Bob", "x") == (
        "No replacement was performed, old_string `Name: Bob` did not appear verbatim in memory block with "
        "label `human`."
    )


def test_memory_replace_multiple_occurrences_lists_lines() -> None:
    assert _raises(memory_replace_tool, BLOCKS, "human", "Likes", "x") == (
        "No replacement was performed. Multiple occurrences of old_string `Likes` in lines [2, 3]. "
        "Please ensure it is unique."
    )


def test_memory_replace_expands_tabs() -> None:
    block = BlockView(label="code", value="def f():\n\treturn 1", limit=100)
    edit = memory_replace_tool([block], "code", "\treturn 1", "\treturn 2")
    assert edit.value == "def f():\n        return 2"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("1→ Name: Ada", "Name: Bob", PREFIX_ERR.format("old_string")),
        ("Name: Ada\n  2→ Likes: tea", "x", PREFIX_ERR.format("old_string")),
        (f"{CORE_MEMORY_LINE_NUMBER_WARNING}\nName: Ada", "x", WARNING_ERR.format("old_string")),
        ("Name: Ada", "1→ Name: Bob", PREFIX_ERR.format("new_string")),
    ],
)
def test_memory_replace_line_number_guards(old: str, new: str, expected: str) -> None:
    assert _raises(memory_replace_tool, BLOCKS, "human", old, new) == expected


def test_text_that_merely_contains_an_arrow_is_fine() -> None:
    block = BlockView(label="notes", value="Route: A → B", limit=100)
    assert memory_replace_tool([block], "notes", "A → B", "A → C").value == "Route: A → C"


def test_what_the_model_sees_round_trips_through_an_edit() -> None:
    # Copying a line (without its "n→ " prefix) from the line-numbered view must be a valid old_string.
    shown = render_memory_blocks([HUMAN], line_numbers=True)
    line = next(ln for ln in shown.split("\n") if ln.startswith("1→ "))
    edit = memory_replace_tool(BLOCKS, "human", line.removeprefix("1→ "), "Name: Bob")
    assert edit.value == "Name: Bob\nLikes: tea\nLikes: cats"


# -------------------------------------------------------------------------------------- memory_insert


@pytest.mark.parametrize(
    ("insert_line", "expected"),
    [
        (0, "NEW\nName: Ada\nLikes: tea\nLikes: cats"),
        (1, "Name: Ada\nNEW\nLikes: tea\nLikes: cats"),
        (3, "Name: Ada\nLikes: tea\nLikes: cats\nNEW"),
        (-1, "Name: Ada\nLikes: tea\nLikes: cats\nNEW"),
    ],
)
def test_memory_insert_positions(insert_line: int, expected: str) -> None:
    edit = memory_insert(BLOCKS, "human", "NEW", insert_line)
    assert edit.value == edit.tool_return == expected


def test_memory_insert_defaults_to_the_end_and_splits_lines() -> None:
    assert memory_insert(BLOCKS, "persona", "a\n\tb").value == "I am Sam.\na\n        b"


@pytest.mark.parametrize("insert_line", [4, -2, 99])
def test_memory_insert_out_of_range(insert_line: int) -> None:
    assert _raises(memory_insert, BLOCKS, "human", "x", insert_line) == (
        f"Invalid `insert_line` parameter: {insert_line}. It should be within the range of lines of the memory "
        "block: [0, 3], or -1 to append to the end of the memory block."
    )


def test_memory_insert_guards() -> None:
    assert _raises(memory_insert, BLOCKS, "human", "3→ x") == PREFIX_ERR.format("new_string")
    assert _raises(memory_insert, BLOCKS, "human", CORE_MEMORY_LINE_NUMBER_WARNING) == WARNING_ERR.format(
        "new_string"
    )


# ---------------------------------------------------------------------------- rethink, finish_edits


def test_memory_rethink_replaces_the_value() -> None:
    edit = memory_rethink(BLOCKS, "human", "Name: Ada Lovelace")
    assert edit == MemoryEdit(
        kind=EditKind.UPDATE, label="human", value="Name: Ada Lovelace", tool_return="Name: Ada Lovelace"
    )


def test_memory_rethink_creates_a_missing_block() -> None:
    edit = memory_rethink(BLOCKS, "plans", "Trip in May", default_limit=50)
    assert edit == MemoryEdit(
        kind=EditKind.CREATE, label="plans", value="Trip in May", limit=50, tool_return="Trip in May"
    )
    assert _raises(memory_rethink, BLOCKS, "plans", "x" * 51, default_limit=50) == (
        "Edit failed: Exceeds 50 character limit (requested 51)"
    )


def test_memory_rethink_guards() -> None:
    assert _raises(memory_rethink, BLOCKS, "human", "1→ a\n2→ b") == PREFIX_ERR.format("new_memory")
    assert _raises(memory_rethink, BLOCKS, "human", CORE_MEMORY_LINE_NUMBER_WARNING) == WARNING_ERR.format(
        "new_memory"
    )


def test_memory_finish_edits_changes_nothing() -> None:
    assert memory_finish_edits(BLOCKS) == MemoryEdit(kind=EditKind.NONE, tool_return=None)


# ------------------------------------------------------------------------------------- memory omni-tool


@pytest.mark.parametrize(
    ("path", "flatten", "label"),
    [
        ("/memories/notes", False, "notes"),
        ("/notes", False, "notes"),
        ("notes", False, "notes"),
        ("/memories/a/b", False, "a/b"),
        ("/memories/a/b", True, "a_b"),
    ],
)
def test_label_from_path(path: str, flatten: bool, label: str) -> None:
    assert label_from_path(path, flatten=flatten) == label


def test_memory_create() -> None:
    edit = memory(
        BLOCKS, "create", path="/memories/coding", description="Coding prefs.", file_text="Type hints."
    )
    assert edit.kind is EditKind.CREATE and edit.label == "coding" and edit.value == "Type hints."
    assert edit.description == "Coding prefs." and edit.limit is not None
    assert edit.tool_return == (
        "Successfully created memory block 'coding'. Your system prompt has been recompiled with the new memory "
        "block and is now active in your context."
    )
    empty = memory(BLOCKS, "create", path="/memories/a/b", description="Nested.", default_limit=10)
    assert (empty.label, empty.value, empty.limit) == ("a/b", "", 10)


def test_memory_create_errors() -> None:
    assert _raises(memory, BLOCKS, "create", description="d") == "Error: path is required for create command"
    assert _raises(memory, BLOCKS, "create", path="/memories/x") == (
        "Error: description is required for create command"
    )
    assert _raises(memory, BLOCKS, "create", path="/memories/human", description="d") == (
        "Error: Memory block 'human' already exists"
    )
    assert _raises(memory, BLOCKS, "create", path="/memories/", description="d") == (
        "Error: '/memories/' does not name a memory block"
    )
    assert _raises(
        memory, BLOCKS, "create", path="/memories/x", description="d", file_text="abc", default_limit=2
    ) == ("Edit failed: Exceeds 2 character limit (requested 3)")


def test_memory_str_replace() -> None:
    edit = memory(BLOCKS, "str_replace", path="/memories/human", old_string="Ada", new_string="Bob")
    assert edit.value == edit.tool_return == "Name: Bob\nLikes: tea\nLikes: cats"
    assert _raises(memory, BLOCKS, "str_replace", old_string="a", new_string="b") == (
        "Error: path is required for str_replace command"
    )
    assert _raises(memory, BLOCKS, "str_replace", path="/memories/human", new_string="b") == (
        "Error: old_string is required for str_replace command"
    )
    assert _raises(memory, BLOCKS, "str_replace", path="/memories/human", old_string="a") == (
        "Error: new_string is required for str_replace command"
    )
    assert (
        _raises(memory, BLOCKS, "str_replace", path="/memories/nope", old_string="a", new_string="b")
        == UNKNOWN
    )
    assert _raises(
        memory, BLOCKS, "str_replace", path="/memories/policy", old_string="a", new_string="b"
    ) == (READ_ONLY_BLOCK_EDIT_ERROR)
    assert _raises(
        memory, BLOCKS, "str_replace", path="/memories/human", old_string="Likes", new_string="b"
    ) == (
        "No replacement was performed. Multiple occurrences of old_string `Likes` in lines [2, 3]. "
        "Please ensure it is unique."
    )
    assert _raises(
        memory, BLOCKS, "str_replace", path="/memories/human", old_string="1→ Ada", new_string="b"
    ) == (PREFIX_ERR.format("old_string"))


def test_memory_insert_command() -> None:
    assert memory(BLOCKS, "insert", path="/memories/human", insert_text="NEW").value == (
        "Name: Ada\nLikes: tea\nLikes: cats\nNEW"
    )
    assert memory(BLOCKS, "insert", path="/memories/human", insert_text="NEW", insert_line=0).value == (
        "NEW\nName: Ada\nLikes: tea\nLikes: cats"
    )
    nested = BlockView(label="a_b", value="x", limit=10)
    assert memory([nested], "insert", path="/memories/a/b", insert_text="y").value == "x\ny"
    assert _raises(memory, BLOCKS, "insert", insert_text="x") == "Error: path is required for insert command"
    assert _raises(memory, BLOCKS, "insert", path="/memories/human") == (
        "Error: insert_text is required for insert command"
    )
    assert _raises(
        memory, BLOCKS, "insert", path="/memories/human", insert_text="x", insert_line=9
    ).startswith("Invalid `insert_line` parameter: 9.")
    assert _raises(memory, BLOCKS, "insert", path="/memories/human", insert_text="2→ x") == (
        PREFIX_ERR.format("insert_text")
    )
    assert _raises(
        memory, BLOCKS, "insert", path="/memories/human", insert_text=CORE_MEMORY_LINE_NUMBER_WARNING
    ) == (WARNING_ERR.format("insert_text"))


def test_memory_delete_detaches() -> None:
    edit = memory(BLOCKS, "delete", path="/memories/persona")
    assert edit == MemoryEdit(
        kind=EditKind.DETACH,
        label="persona",
        tool_return="Successfully deleted memory block 'persona'. Your system prompt has been recompiled without "
        "this memory block and is now active in your context.",
    )
    assert _raises(memory, BLOCKS, "delete") == "Error: path is required for delete command"
    assert _raises(memory, BLOCKS, "delete", path="/memories/nope") == f"Error performing delete: {UNKNOWN}"
    assert _raises(memory, BLOCKS, "delete", path="/memories/policy") == READ_ONLY_BLOCK_EDIT_ERROR


def test_memory_rename_updates_the_description() -> None:
    edit = memory(BLOCKS, "rename", path="/memories/human", description="All about the user.")
    assert (
        edit.kind is EditKind.DESCRIBE and edit.label == "human" and edit.description == "All about the user."
    )
    assert edit.tool_return == (
        "Successfully updated description of memory block 'human'. Your system prompt has been recompiled with "
        "the updated description and is now active in your context."
    )
    assert _raises(memory, BLOCKS, "rename", path="/memories/nope", description="d") == (
        f"Error performing update_description: {UNKNOWN}"
    )


def test_memory_rename_relabels() -> None:
    edit = memory(BLOCKS, "rename", old_path="/memories/human", new_path="/memories/user/profile")
    assert edit.kind is EditKind.RELABEL and (edit.label, edit.new_label) == ("human", "user_profile")
    assert edit.tool_return == (
        "Successfully renamed memory block 'human' to 'user_profile'. Your system prompt has been recompiled "
        "with the renamed memory block and is now active in your context."
    )
    assert _raises(memory, BLOCKS, "rename", old_path="/memories/nope", new_path="/memories/x") == (
        f"Error performing rename: {UNKNOWN}"
    )
    assert _raises(memory, BLOCKS, "rename", old_path="/memories/human", new_path="/memories/persona") == (
        "Error performing rename: Memory block 'persona' already exists"
    )
    assert _raises(memory, BLOCKS, "rename", old_path="/memories/policy", new_path="/memories/x") == (
        READ_ONLY_BLOCK_EDIT_ERROR
    )
    assert _raises(memory, BLOCKS, "rename", old_path="/memories/human", new_path="/memories/") == (
        "Error performing rename: '/memories/' does not name a memory block"
    )


def test_memory_rename_needs_a_pair_of_arguments() -> None:
    expected = (
        "Error: path and description are required for update_description command, or old_path and new_path are "
        "required for rename command"
    )
    assert _raises(memory, BLOCKS, "rename", path="/memories/human") == expected
    assert _raises(memory, BLOCKS, "rename", old_path="/memories/human") == expected


def test_memory_unknown_command() -> None:
    assert _raises(memory, BLOCKS, "view", path="/memories") == (
        "Error: Unknown command 'view'. Supported commands: create, str_replace, insert, delete, rename"
    )


# ----------------------------------------------------------------------------------------- dispatcher


def test_run_memory_tool_dispatches_with_model_arguments() -> None:
    edit = run_memory_tool(
        "memory_insert",
        BLOCKS,
        {"label": "human", "new_string": "NEW", "insert_line": "0", "request_heartbeat": True},
    )
    assert edit.value == "NEW\nName: Ada\nLikes: tea\nLikes: cats"
    created = run_memory_tool("memory_rethink", BLOCKS, {"label": "x", "new_memory": "v"}, default_limit=9)
    assert created.kind is EditKind.CREATE and created.limit == 9
    assert run_memory_tool("memory_finish_edits", BLOCKS, {}).kind is EditKind.NONE


def test_run_memory_tool_accepts_pre_016_argument_names() -> None:
    edit = run_memory_tool("memory_replace", BLOCKS, {"label": "human", "old_str": "Ada", "new_str": "Bob"})
    assert edit.value == "Name: Bob\nLikes: tea\nLikes: cats"
    both = run_memory_tool(
        "memory_replace",
        BLOCKS,
        {"label": "human", "old_string": "Ada", "old_str": "zzz", "new_string": "Bob"},
    )
    assert both.value == edit.value
    omni = run_memory_tool(
        "memory",
        BLOCKS,
        {"command": "str_replace", "path": "/memories/human", "old_str": "Ada", "new_str": "Eve"},
    )
    assert omni.value == "Name: Eve\nLikes: tea\nLikes: cats"


def test_run_memory_tool_argument_errors() -> None:
    assert _raises(run_memory_tool, "memory_replace", BLOCKS, {"label": "human"}) == (
        "memory_replace() missing 2 required positional arguments: 'old_string' and 'new_string'"
    )
    assert _raises(run_memory_tool, "core_memory_replace", BLOCKS, {}) == (
        "core_memory_replace() missing 3 required positional arguments: 'label', 'old_content', and 'new_content'"
    )
    assert _raises(run_memory_tool, "memory_insert", BLOCKS, {"label": "human", "new_string": None}) == (
        "memory_insert() missing 1 required positional argument: 'new_string'"
    )
    assert _raises(
        run_memory_tool, "core_memory_append", BLOCKS, {"label": "human", "content": "x", "z": 1}
    ) == ("core_memory_append() got an unexpected keyword argument 'z'")
    assert _raises(
        run_memory_tool, "memory_insert", BLOCKS, {"label": "human", "new_string": "x", "insert_line": "a"}
    ) == ("Invalid `insert_line` parameter: 'a'. It must be an integer.")
    assert (
        _raises(run_memory_tool, "send_message", BLOCKS, {"message": "hi"})
        == "Unknown function: send_message"
    )


def test_run_memory_tool_null_optional_means_default() -> None:
    args = normalize_memory_tool_args(
        "memory", {"command": "insert", "path": "/memories/human", "insert_line": None}
    )
    assert args == {"command": "insert", "path": "/memories/human"}
    assert (
        _raises(run_memory_tool, "memory", BLOCKS, args)
        == "Error: insert_text is required for insert command"
    )


# -------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", sorted(BUILTIN_TOOL_NAMES))
def test_schemas_are_valid_openai_functions(name: str) -> None:
    schema = tool_schema(name)
    assert schema["name"] == name and schema["description"]
    params = schema["parameters"]
    jsonschema.Draft202012Validator.check_schema(params)
    assert params["type"] == "object"
    assert set(params["required"]) <= set(params["properties"])
    assert "request_heartbeat" not in params["properties"]


def test_schema_argument_names_are_lettas() -> None:
    expected = {
        "send_message": (["message"], ["message"]),
        "conversation_search": (["query", "roles", "limit", "start_date", "end_date"], []),
        "archival_memory_insert": (["content", "tags"], ["content"]),
        "archival_memory_search": (
            ["query", "tags", "tag_match_mode", "top_k", "start_datetime", "end_datetime"],
            ["query"],
        ),
        "core_memory_append": (["label", "content"], ["label", "content"]),
        "core_memory_replace": (
            ["label", "old_content", "new_content"],
            ["label", "old_content", "new_content"],
        ),
        "memory_replace": (["label", "old_string", "new_string"], ["label", "old_string", "new_string"]),
        "memory_insert": (["label", "new_string", "insert_line"], ["label", "new_string"]),
        "memory_rethink": (["label", "new_memory"], ["label", "new_memory"]),
        "memory_finish_edits": ([], []),
        "memory": (
            [
                "command",
                "path",
                "file_text",
                "description",
                "old_string",
                "new_string",
                "insert_line",
                "insert_text",
                "old_path",
                "new_path",
            ],
            ["command"],
        ),
    }
    assert set(expected) == BUILTIN_TOOL_NAMES
    for name, (props, required) in expected.items():
        params = tool_schema(name)["parameters"]
        assert list(params["properties"]) == props, name
        assert params["required"] == required, name
    search = tool_schema("archival_memory_search")["parameters"]["properties"]
    assert search["tag_match_mode"]["enum"] == ["any", "all"]
    assert tool_schema("memory_insert")["parameters"]["properties"]["insert_line"]["type"] == "integer"
    assert TOOL_ARG_DEFAULTS["memory_insert"] == {"insert_line": -1}
    assert TOOL_ARG_DEFAULTS["archival_memory_search"] == {"tag_match_mode": "any", "top_k": 5}


@pytest.mark.parametrize("name", sorted(MEMORY_TOOL_NAMES))
def test_executor_and_schema_agree_on_arguments(name: str) -> None:
    _, required, optional = _TOOLS[name]
    params = tool_schema(name)["parameters"]
    assert list(required) == params["required"]
    assert set(required) | set(optional) == set(params["properties"])


def test_with_request_heartbeat() -> None:
    schema = tool_schema("memory_insert")
    hb = with_request_heartbeat(schema)
    assert hb["parameters"]["properties"]["request_heartbeat"] == {
        "type": "boolean",
        "description": REQUEST_HEARTBEAT_DESCRIPTION,
    }
    assert hb["parameters"]["required"] == ["label", "new_string", "request_heartbeat"]
    assert "request_heartbeat" not in schema["parameters"]["properties"]
    assert with_request_heartbeat(hb) == hb
    no_args = with_request_heartbeat(tool_schema("memory_finish_edits"))
    assert no_args["parameters"]["required"] == ["request_heartbeat"]
    assert REQUEST_HEARTBEAT_DESCRIPTION.startswith(
        "Request an immediate heartbeat after function execution. You MUST set this value to `True`"
    )


def test_tool_schema_copies_and_unknown_names() -> None:
    first = tool_schema("send_message")
    first["parameters"]["required"].append("x")
    assert tool_schema("send_message")["parameters"]["required"] == ["message"]
    with pytest.raises(KeyError):
        tool_schema("web_search")
