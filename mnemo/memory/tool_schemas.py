"""JSON schemas (OpenAI function format) of Letta's built-in memory and conversation tools.

Argument names, types and required lists are Letta 0.16.8's. `request_heartbeat` is not in them: the
loop adds it for heartbeat agent types with `with_request_heartbeat`. Defaults the model may omit are
in `TOOL_ARG_DEFAULTS` for the executors.
"""

from __future__ import annotations

import copy
from typing import Any

RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE = 5

REQUEST_HEARTBEAT_PARAM = "request_heartbeat"
REQUEST_HEARTBEAT_DESCRIPTION = (
    "Request an immediate heartbeat after function execution. You MUST set this value to `True` if you want to "
    "send a follow-up message or run a follow-up tool call (chain multiple tools together). If set to `False` "
    "(the default), then the chain of execution will end immediately after this function call."
)

_STR = "string"
_LABEL = {"type": _STR, "description": "Section of the memory to be edited, identified by its label."}


def _schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


_SCHEMAS: dict[str, dict[str, Any]] = {
    "send_message": _schema(
        "send_message",
        "Sends a message to the human user.",
        {
            "message": {
                "type": _STR,
                "description": "Message contents. All unicode (including emojis) are supported.",
            }
        },
        ["message"],
    ),
    "conversation_search": _schema(
        "conversation_search",
        "Search prior conversation history using hybrid search (text + semantic similarity).\n\n"
        "Examples:\n"
        '    conversation_search(query="project updates")\n'
        '    conversation_search(query="error handling", roles=["assistant"])\n'
        '    conversation_search(query="meetings", start_date="2024-01-15", end_date="2024-01-20")\n'
        '    conversation_search(start_date="2024-01-15T09:00", end_date="2024-01-15T17:30")',
        {
            "query": {
                "type": _STR,
                "description": "String to search for using both text matching and semantic similarity. If not "
                "provided, returns messages based on other filters (time range, roles).",
            },
            "roles": {
                "type": "array",
                "items": {"type": _STR, "enum": ["assistant", "user", "tool"]},
                "description": "Optional list of message roles to filter by.",
            },
            "limit": {
                "type": "integer",
                "description": "Maximum number of results to return. Uses system default if not specified.",
            },
            "start_date": {
                "type": _STR,
                "description": "Filter results to messages created on or after this date (INCLUSIVE). ISO 8601 "
                'format: "YYYY-MM-DD" (from 00:00 that day) or "YYYY-MM-DDTHH:MM".',
            },
            "end_date": {
                "type": _STR,
                "description": "Filter results to messages created on or before this date (INCLUSIVE). ISO 8601 "
                'format: "YYYY-MM-DD" (includes that entire day) or "YYYY-MM-DDTHH:MM".',
            },
        },
        [],
    ),
    "archival_memory_insert": _schema(
        "archival_memory_insert",
        "Add information to long-term archival memory for later retrieval.\n\n"
        "Use it for facts, knowledge or context worth remembering across all future conversations. Archival "
        "memory is permanent and searchable by semantic similarity. Store self-contained facts or summaries, "
        "not conversational fragments, and add descriptive tags to make them easier to find.",
        {
            "content": {
                "type": _STR,
                "description": "The information to store. Should be clear and self-contained.",
            },
            "tags": {
                "type": "array",
                "items": {"type": _STR},
                "description": 'Optional list of category tags (e.g., ["meetings", "project-updates"]).',
            },
        },
        ["content"],
    ),
    "archival_memory_search": _schema(
        "archival_memory_search",
        "Search archival memory using semantic similarity to find relevant information.\n\n"
        "Query by concept or meaning, not exact phrases; use tags to narrow results when you know the "
        "category. Results are ranked by relevance.",
        {
            "query": {
                "type": _STR,
                "description": "What you're looking for, described naturally "
                '(e.g., "meetings about API redesign").',
            },
            "tags": {
                "type": "array",
                "items": {"type": _STR},
                "description": "Filter to memories with these tags. Use tag_match_mode to control matching.",
            },
            "tag_match_mode": {
                "type": _STR,
                "enum": ["any", "all"],
                "description": '"any" = match memories with ANY of the tags, "all" = match only memories with '
                'ALL tags. Defaults to "any".',
            },
            "top_k": {
                "type": "integer",
                "description": f"Maximum number of results to return (default: {RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE}).",
            },
            "start_datetime": {
                "type": _STR,
                "description": 'Only return memories created after this time (ISO 8601: "2024-01-15" or '
                '"2024-01-15T14:30").',
            },
            "end_datetime": {
                "type": _STR,
                "description": "Only return memories created before this time (ISO 8601 format).",
            },
        },
        ["query"],
    ),
    "core_memory_append": _schema(
        "core_memory_append",
        "Append to the contents of core memory.\n\nReturns:\n    str: The updated value of the memory block.",
        {
            "label": _LABEL,
            "content": {
                "type": _STR,
                "description": "Content to write to the memory. All unicode (including emojis) are supported.",
            },
        },
        ["label", "content"],
    ),
    "core_memory_replace": _schema(
        "core_memory_replace",
        "Replace the contents of core memory. To delete memories, use an empty string for new_content.\n\n"
        "Returns:\n    str: The updated value of the memory block.",
        {
            "label": _LABEL,
            "old_content": {"type": _STR, "description": "String to replace. Must be an exact match."},
            "new_content": {
                "type": _STR,
                "description": "Content to write to the memory. All unicode (including emojis) are supported.",
            },
        },
        ["label", "old_content", "new_content"],
    ),
    "memory_replace": _schema(
        "memory_replace",
        "The memory_replace command allows you to replace a specific string in a memory block with a new "
        "string. This is used for making precise edits.\n\n"
        "Do NOT attempt to replace long strings, e.g. do not attempt to replace the entire contents of a memory "
        "block with a new string.\n\n"
        "Examples:\n"
        '    memory_replace(label="human", old_string="Their name is Alice", new_string="Their name is Bob")\n'
        '    memory_replace(label="todos", old_string="- [ ] Step 5", new_string="- [x] Step 5")\n'
        '    memory_replace(label="human", old_string="Their name is Alice", new_string="")  # delete text\n'
        "    # Bad: do NOT copy the view-only line numbers or the line number warning into the arguments\n"
        '    memory_replace(label="human", old_string="1→ Their name is Alice", new_string="1→ Their name is Bob")\n\n'
        "Returns:\n    str: The updated value of the memory block.",
        {
            "label": _LABEL,
            "old_string": {
                "type": _STR,
                "description": "The text to replace (must match exactly, including whitespace and indentation).",
            },
            "new_string": {
                "type": _STR,
                "description": "The new text to insert in place of the old text. Do not include line number "
                "prefixes.",
            },
        },
        ["label", "old_string", "new_string"],
    ),
    "memory_insert": _schema(
        "memory_insert",
        "The memory_insert command allows you to insert text at a specific location in a memory block.\n\n"
        "Examples:\n"
        '    memory_insert(label="customer", new_string="The customer\'s ticket number is 12345")  # at the end\n'
        '    memory_insert(label="customer", new_string="The customer\'s ticket number is 12345", insert_line=0)\n\n'
        "Returns:\n    str: The updated value of the memory block.",
        {
            "label": _LABEL,
            "new_string": {
                "type": _STR,
                "description": "The text to insert. Do not include line number prefixes.",
            },
            "insert_line": {
                "type": "integer",
                "description": "The line number after which to insert the text (0 for beginning of file). "
                "Defaults to -1 (end of the file).",
            },
        },
        ["label", "new_string"],
    ),
    "memory_rethink": _schema(
        "memory_rethink",
        "The memory_rethink command allows you to completely rewrite the contents of a memory block. Use this "
        "tool to make large sweeping changes (e.g. when you want to condense or reorganize the memory blocks), "
        "do NOT use this tool to make small precise edits (e.g. add or remove a line, replace a specific "
        "string, etc). A block that does not exist yet is created.",
        {
            "label": {
                "type": _STR,
                "description": "The memory block to be rewritten, identified by its label.",
            },
            "new_memory": {
                "type": _STR,
                "description": "The new memory contents with information integrated from existing memory blocks "
                "and the conversation context. Do not include line number prefixes.",
            },
        },
        ["label", "new_memory"],
    ),
    "memory_finish_edits": _schema(
        "memory_finish_edits",
        "Call the memory_finish_edits command when you are finished making edits (integrating all new "
        "information) into the memory blocks. This function is called when the agent is done rethinking the "
        "memory.",
        {},
        [],
    ),
    "memory": _schema(
        "memory",
        "Memory management tool with various sub-commands for memory block operations. Blocks are addressed "
        "by path: /memories/<label>.\n\n"
        "Examples:\n"
        '    memory(command="str_replace", path="/memories/user_preferences", old_string="theme: dark", '
        'new_string="theme: light")\n'
        '    memory(command="insert", path="/memories/notes", insert_line=5, insert_text="New note here")\n'
        '    memory(command="delete", path="/memories/old_notes")\n'
        '    memory(command="rename", old_path="/memories/temp", new_path="/memories/permanent")\n'
        '    memory(command="rename", path="/memories/temp", description="The user\'s temporary notes.")\n'
        '    memory(command="create", path="/memories/coding_preferences", description="The user\'s coding '
        'preferences.", file_text="The user adds type hints to all of their Python code.")',
        {
            "command": {
                "type": _STR,
                "description": "The sub-command to execute. Supported commands:\n"
                '- "create": Create a new memory block\n'
                '- "str_replace": Replace text in a memory block\n'
                '- "insert": Insert text at a specific line in a memory block\n'
                '- "delete": Delete a memory block\n'
                '- "rename": Rename a memory block',
            },
            "path": {
                "type": _STR,
                "description": "Path to the memory block (for str_replace, insert, delete)",
            },
            "file_text": {"type": _STR, "description": "The value to set in the memory block (for create)"},
            "description": {
                "type": _STR,
                "description": "The description to set in the memory block (for create, rename)",
            },
            "old_string": {"type": _STR, "description": "Old text to replace (for str_replace)"},
            "new_string": {"type": _STR, "description": "New text to replace with (for str_replace)"},
            "insert_line": {"type": "integer", "description": "Line number to insert at (for insert)"},
            "insert_text": {"type": _STR, "description": "Text to insert (for insert)"},
            "old_path": {"type": _STR, "description": "Old path for rename operation"},
            "new_path": {"type": _STR, "description": "New path for rename operation"},
        },
        ["command"],
    ),
}

BUILTIN_TOOL_NAMES = frozenset(_SCHEMAS)

# What an omitted optional argument means, per tool (Letta's executor defaults).
TOOL_ARG_DEFAULTS: dict[str, dict[str, Any]] = {
    "conversation_search": {"limit": RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE},
    "archival_memory_search": {"tag_match_mode": "any", "top_k": RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE},
    "memory_insert": {"insert_line": -1},
    "memory": {"insert_line": -1},
}


def tool_schema(name: str) -> dict[str, Any]:
    """A fresh copy of the schema of built-in tool `name` (callers may mutate it)."""
    try:
        return copy.deepcopy(_SCHEMAS[name])
    except KeyError:
        raise KeyError(f"No built-in tool schema named {name!r}") from None


def with_request_heartbeat(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` with the required boolean `request_heartbeat` the V2 (heartbeat) loop needs."""
    out = copy.deepcopy(schema)
    params = out.setdefault("parameters", {"type": "object", "properties": {}, "required": []})
    params.setdefault("properties", {})[REQUEST_HEARTBEAT_PARAM] = {
        "type": "boolean",
        "description": REQUEST_HEARTBEAT_DESCRIPTION,
    }
    required = params.setdefault("required", [])
    if REQUEST_HEARTBEAT_PARAM not in required:
        required.append(REQUEST_HEARTBEAT_PARAM)
    return out
