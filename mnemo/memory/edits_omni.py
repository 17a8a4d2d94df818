"""Letta's `memory` omni-tool (Anthropic memory-tool style): create, str_replace, insert, delete, rename.

Blocks are addressed by path, `/memories/<label>`. As in Letta, `create` and `str_replace` keep any
remaining `/` in the label while `insert`, `delete` and `rename` turn it into `_`.

Differences from Letta, on purpose: `delete` and `rename` refuse read-only blocks (Letta lets the agent
detach or relabel a block it may not edit); a missing block on `delete` is an error result (Letta
returns the same text as a success); `insert` without `insert_line` appends (Letta crashes on None);
`create` refuses a label the agent already has.
"""

from __future__ import annotations

from mnemo.memory.edits import (
    READ_ONLY_BLOCK_EDIT_ERROR,
    BlockNotFoundError,
    Blocks,
    EditKind,
    MemoryEdit,
    MemoryToolError,
    check_limit,
    find_block,
    get_block,
    get_editable_block,
    insert_lines,
    replace_unique,
)
from mnemo.schemas.agents import DEFAULT_BLOCK_LIMIT

MEMORY_COMMANDS = ("create", "str_replace", "insert", "delete", "rename")


def label_from_path(path: str, *, flatten: bool) -> str:
    label = path.removeprefix("/memories/").removeprefix("/")
    return label.replace("/", "_") if flatten else label


def _required(value: str | None, name: str, command: str) -> str:
    if value is None:
        raise MemoryToolError(f"Error: {name} is required for {command} command")
    return str(value)


def _create(
    blocks: Blocks, path: str, description: str, file_text: str | None, default_limit: int
) -> MemoryEdit:
    label = label_from_path(path, flatten=False)
    if not label:
        raise MemoryToolError(f"Error: '{path}' does not name a memory block")
    if find_block(blocks, label) is not None:
        raise MemoryToolError(f"Error: Memory block '{label}' already exists")
    value = file_text or ""
    check_limit(default_limit, value)
    return MemoryEdit(
        kind=EditKind.CREATE,
        label=label,
        value=value,
        description=description,
        limit=default_limit,
        tool_return=(
            f"Successfully created memory block '{label}'. "
            "Your system prompt has been recompiled with the new memory block and is now active in your context."
        ),
    )


def _delete(blocks: Blocks, path: str) -> MemoryEdit:
    label = label_from_path(path, flatten=True)
    try:
        block = get_block(blocks, label)
    except BlockNotFoundError as err:
        raise MemoryToolError(f"Error performing delete: {err}") from err
    if block.read_only:
        raise MemoryToolError(READ_ONLY_BLOCK_EDIT_ERROR)
    return MemoryEdit(
        kind=EditKind.DETACH,
        label=label,
        tool_return=(
            f"Successfully deleted memory block '{label}'. "
            "Your system prompt has been recompiled without this memory block and is now active in your context."
        ),
    )


def _describe(blocks: Blocks, path: str, description: str) -> MemoryEdit:
    label = label_from_path(path, flatten=True)
    try:
        block = get_block(blocks, label)
    except BlockNotFoundError as err:
        raise MemoryToolError(f"Error performing update_description: {err}") from err
    if block.read_only:
        raise MemoryToolError(READ_ONLY_BLOCK_EDIT_ERROR)
    return MemoryEdit(
        kind=EditKind.DESCRIBE,
        label=label,
        description=description,
        tool_return=(
            f"Successfully updated description of memory block '{label}'. "
            "Your system prompt has been recompiled with the updated description and is now active in your context."
        ),
    )


def _relabel(blocks: Blocks, old_path: str, new_path: str) -> MemoryEdit:
    old_label = label_from_path(old_path, flatten=True)
    new_label = label_from_path(new_path, flatten=True)
    try:
        block = get_block(blocks, old_label)
    except BlockNotFoundError as err:
        raise MemoryToolError(f"Error performing rename: {err}") from err
    if block.read_only:
        raise MemoryToolError(READ_ONLY_BLOCK_EDIT_ERROR)
    if not new_label:
        raise MemoryToolError(f"Error performing rename: '{new_path}' does not name a memory block")
    if new_label != old_label and find_block(blocks, new_label) is not None:
        raise MemoryToolError(f"Error performing rename: Memory block '{new_label}' already exists")
    return MemoryEdit(
        kind=EditKind.RELABEL,
        label=old_label,
        new_label=new_label,
        tool_return=(
            f"Successfully renamed memory block '{old_label}' to '{new_label}'. "
            "Your system prompt has been recompiled with the renamed memory block and is now active in your context."
        ),
    )


def memory(
    blocks: Blocks,
    command: str,
    path: str | None = None,
    file_text: str | None = None,
    description: str | None = None,
    old_string: str | None = None,
    new_string: str | None = None,
    insert_line: int | None = None,
    insert_text: str | None = None,
    old_path: str | None = None,
    new_path: str | None = None,
    *,
    default_limit: int = DEFAULT_BLOCK_LIMIT,
) -> MemoryEdit:
    if command == "create":
        path = _required(path, "path", command)
        description = _required(description, "description", command)
        return _create(blocks, path, description, file_text, default_limit)

    if command == "str_replace":
        path = _required(path, "path", command)
        old_string = _required(old_string, "old_string", command)
        new_string = _required(new_string, "new_string", command)
        block = get_editable_block(blocks, label_from_path(path, flatten=False))
        return replace_unique(block, "old_string", old_string, "new_string", new_string)

    if command == "insert":
        path = _required(path, "path", command)
        insert_text = _required(insert_text, "insert_text", command)
        block = get_editable_block(blocks, label_from_path(path, flatten=True))
        return insert_lines(block, "insert_text", insert_text, -1 if insert_line is None else insert_line)

    if command == "delete":
        return _delete(blocks, _required(path, "path", command))

    if command == "rename":
        if path and description:
            return _describe(blocks, path, description)
        if old_path and new_path:
            return _relabel(blocks, old_path, new_path)
        raise MemoryToolError(
            "Error: path and description are required for update_description command, or old_path and new_path "
            "are required for rename command"
        )

    raise MemoryToolError(
        f"Error: Unknown command '{command}'. Supported commands: {', '.join(MEMORY_COMMANDS)}"
    )
