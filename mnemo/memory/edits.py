"""Letta's block-editing tools as pure functions over the agent's current blocks.

Each tool takes the blocks (in the agent's order) and Letta's arguments, and returns a `MemoryEdit`:
what to write (new value, created / detached / relabelled block) and `tool_return`, the value Letta's
function returns to the model. Failures raise `MemoryToolError` whose `str()` is exactly the text Letta
puts in the tool result. Persisting the edit and rebuilding the system prompt is the caller's job.

One deliberate difference: block character limits are enforced (Letta stopped in 0.16.7), with Letta's
old error text, so memory cannot grow into the context window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mnemo.memory.render import CORE_MEMORY_LINE_NUMBER_WARNING, BlockView
from mnemo.schemas.agents import DEFAULT_BLOCK_LIMIT

READ_ONLY_BLOCK_EDIT_ERROR = "Error This block is read-only and cannot be edited."

# A displayed line-number prefix ("12→ ") at the start of any line of an argument.
LINE_NUMBER_PREFIX_REGEX = re.compile(r"^[ \t]*\d+→[ \t]*", re.MULTILINE)

Blocks = Mapping[str, BlockView] | Sequence[BlockView]


class MemoryToolError(Exception):
    """A memory tool refused or failed; `str(err)` is what the model sees, `message` the plain text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BlockNotFoundError(MemoryToolError, KeyError):
    """Letta raises a KeyError for an unknown label, so the model sees the message in quotes."""


class EditKind(StrEnum):
    UPDATE = "update"  # new value for an existing block
    CREATE = "create"  # a new block, attached to the agent
    DETACH = "detach"  # the block leaves the agent (the block row is kept)
    RELABEL = "relabel"
    DESCRIBE = "describe"  # new description
    NONE = "none"  # nothing to write


class MemoryEdit(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: EditKind
    label: str | None = None  # the block acted on (its old label for RELABEL)
    value: str | None = None  # UPDATE and CREATE
    new_label: str | None = None  # RELABEL
    description: str | None = None  # CREATE and DESCRIBE
    limit: int | None = None  # CREATE
    tool_return: str | None = None  # what the tool function returns (None is Letta's None)


# ------------------------------------------------------------------------------------------ helpers


def _as_list(blocks: Blocks) -> list[BlockView]:
    return list(blocks.values()) if isinstance(blocks, Mapping) else list(blocks)


def find_block(blocks: Blocks, label: str) -> BlockView | None:
    for block in _as_list(blocks):
        if block.label == label:
            return block
    return None


def get_block(blocks: Blocks, label: str) -> BlockView:
    """The block with `label`, or Letta's KeyError listing the labels the agent has."""
    items = _as_list(blocks)
    for block in items:
        if block.label == label:
            return block
    available = ", ".join(b.label for b in items)
    raise BlockNotFoundError(f"Block field {label} does not exist (available sections = {available})")


def get_editable_block(blocks: Blocks, label: str) -> BlockView:
    block = get_block(blocks, label)
    if block.read_only:
        raise MemoryToolError(READ_ONLY_BLOCK_EDIT_ERROR)
    return block


def check_limit(limit: int, new_value: str) -> None:
    if len(new_value) > limit:
        raise MemoryToolError(f"Edit failed: Exceeds {limit} character limit (requested {len(new_value)})")


def reject_line_number_prefix(arg_name: str, text: str) -> None:
    if LINE_NUMBER_PREFIX_REGEX.search(text):
        raise MemoryToolError(
            f"{arg_name} contains a line number prefix, which is not allowed. Do not include line numbers when "
            "calling memory tools (line numbers are for display purposes only)."
        )


def reject_line_number_warning(arg_name: str, text: str) -> None:
    if CORE_MEMORY_LINE_NUMBER_WARNING in text:
        raise MemoryToolError(
            f"{arg_name} contains a line number warning, which is not allowed. Do not include line number "
            "information when calling memory tools (line numbers are for display purposes only)."
        )


def _update(block: BlockView, new_value: str, tool_return: str | None) -> MemoryEdit:
    check_limit(block.limit, new_value)
    return MemoryEdit(kind=EditKind.UPDATE, label=block.label, value=new_value, tool_return=tool_return)


# -------------------------------------------------------------------------------- shared operations


def replace_unique(block: BlockView, old_name: str, old: str, new_name: str, new: str) -> MemoryEdit:
    """`memory_replace` / `memory(str_replace)`: `old` must occur exactly once (after tab expansion)."""
    reject_line_number_prefix(old_name, old)
    reject_line_number_warning(old_name, old)
    reject_line_number_prefix(new_name, new)
    old = old.expandtabs()
    new = new.expandtabs()
    current = block.value.expandtabs()
    occurrences = current.count(old)
    if occurrences == 0:
        raise MemoryToolError(
            f"No replacement was performed, {old_name} `{old}` did not appear verbatim in memory block with "
            f"label `{block.label}`."
        )
    if occurrences > 1:
        lines = [idx + 1 for idx, line in enumerate(current.split("\n")) if old in line]
        raise MemoryToolError(
            f"No replacement was performed. Multiple occurrences of {old_name} `{old}` in lines {lines}. "
            "Please ensure it is unique."
        )
    new_value = current.replace(old, new)
    return _update(block, new_value, new_value)


def insert_lines(block: BlockView, text_name: str, text: str, insert_line: int) -> MemoryEdit:
    """`memory_insert` / `memory(insert)`: add `text` after line `insert_line` (0 = top, -1 = end)."""
    reject_line_number_prefix(text_name, text)
    reject_line_number_warning(text_name, text)
    current_lines = block.value.expandtabs().split("\n")
    n_lines = len(current_lines)
    if insert_line == -1:
        insert_line = n_lines
    elif insert_line < 0 or insert_line > n_lines:
        raise MemoryToolError(
            f"Invalid `insert_line` parameter: {insert_line}. It should be within the range of lines of the "
            f"memory block: {[0, n_lines]}, or -1 to append to the end of the memory block."
        )
    new_lines = current_lines[:insert_line] + text.expandtabs().split("\n") + current_lines[insert_line:]
    new_value = "\n".join(new_lines)
    return _update(block, new_value, new_value)


# ------------------------------------------------------------------------------------------- tools


def core_memory_append(blocks: Blocks, label: str, content: str) -> MemoryEdit:
    block = get_editable_block(blocks, label)
    new_value = block.value + "\n" + str(content)
    return _update(block, new_value, new_value)


def core_memory_replace(blocks: Blocks, label: str, old_content: str, new_content: str) -> MemoryEdit:
    block = get_editable_block(blocks, label)
    # An empty old_content "matches" everywhere in Letta and splices new_content between every character.
    if not old_content or old_content not in block.value:
        raise MemoryToolError(f"Old content '{old_content}' not found in memory block '{label}'")
    new_value = block.value.replace(str(old_content), str(new_content))
    return _update(block, new_value, new_value)


def memory_replace(blocks: Blocks, label: str, old_string: str, new_string: str) -> MemoryEdit:
    block = get_editable_block(blocks, label)
    return replace_unique(block, "old_string", str(old_string), "new_string", str(new_string))


def memory_insert(blocks: Blocks, label: str, new_string: str, insert_line: int = -1) -> MemoryEdit:
    block = get_editable_block(blocks, label)
    return insert_lines(block, "new_string", str(new_string), insert_line)


def memory_rethink(
    blocks: Blocks, label: str, new_memory: str, *, default_limit: int = DEFAULT_BLOCK_LIMIT
) -> MemoryEdit:
    """Replace the whole value; a missing block is created (with `default_limit`)."""
    new_memory = str(new_memory)
    block = find_block(blocks, label)
    if block is not None and block.read_only:
        raise MemoryToolError(READ_ONLY_BLOCK_EDIT_ERROR)
    reject_line_number_prefix("new_memory", new_memory)
    reject_line_number_warning("new_memory", new_memory)
    if block is None:
        check_limit(default_limit, new_memory)
        return MemoryEdit(
            kind=EditKind.CREATE, label=label, value=new_memory, limit=default_limit, tool_return=new_memory
        )
    return _update(block, new_memory, new_memory)


def memory_finish_edits(blocks: Blocks) -> MemoryEdit:
    """Sleep-time agents call this to say they are done; it changes nothing."""
    return MemoryEdit(kind=EditKind.NONE, tool_return=None)
