"""Letta stream events and messages as terminal output.

Text and tool calls arrive as token deltas (pieces of one message sharing its `id`; a tool call's head
carries its name and id, then argument fragments follow) or as whole messages. Both print inline as
they come, so a reply or a call appears while it is being written; the line is closed when any other
event arrives. Tool returns, stop reasons and everything else get a line each.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from rich.console import Console

from mnemo.cli_http_models import StreamEvent

MAX_RETURN_CHARS = 1000  # a tool return beyond this is cut in the human view (`--json` keeps it whole)
TEXT_STYLES = {"assistant_message": None, "reasoning_message": "dim italic"}


def make_console(*, stderr: bool = False) -> Console:
    # Markup, emoji codes and highlighting are off: agent text such as "[x]" or ":smile:" prints as is.
    console = Console(soft_wrap=True, stderr=stderr, markup=False, emoji=False, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output has no width: a wide one keeps table rows whole for grep and scripts.
        console.width = 4096
    return console


def one_line(text: str) -> str:
    """A tool's JSON return (Letta's tools pretty-print theirs) on one line; other text as it is."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


def clip(text: str, limit: int = MAX_RETURN_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass
class EventPrinter:
    """Prints one stream's events; remembers where the stream is, for resuming and the exit code."""

    out: Console
    err: Console
    show_usage: bool = True
    run_id: str | None = None
    last_seq: int = 0
    stop_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    # (message_type, id) of the message being printed inline; a tool call's id is its tool_call_id.
    _open: tuple[str, str | None] | None = None
    _tool_names: dict[str, str] = field(default_factory=dict)

    def track(self, event: StreamEvent) -> None:
        """Notes where the stream is and how the run ends, without printing."""
        self.run_id = event.run_id or self.run_id
        if event.seq_id is not None:
            self.last_seq = max(self.last_seq, event.seq_id)
        if event.message_type == "stop_reason":
            self.stop_reason = event.stop_reason
        elif event.message_type == "error_message":
            self.errors.append(event.message or "the run failed")

    def handle(self, event: StreamEvent) -> None:
        """Tracks and prints one event."""
        if event.message_type == "ping":
            return
        self.track(event)
        kind = event.message_type
        if kind in TEXT_STYLES:
            self._text(event)
        elif kind == "tool_call_message":
            self._tool_call(event)
        else:
            self.finish()
            self._line(event)

    def finish(self) -> None:
        """Closes the line being printed inline: call it when the stream ends."""
        if self._open is None:
            return
        if self._open[0] == "tool_call_message":
            self.out.print(")", end="", style="cyan")
        self.out.print()
        self._open = None

    def _text(self, event: StreamEvent) -> None:
        key = (event.message_type, event.id)
        piece = (event.reasoning or "") if event.message_type == "reasoning_message" else event.text
        if self._open != key:
            self.finish()
            self._open = key
            if event.message_type == "reasoning_message":
                self.out.print("thinking: ", end="", style="dim")
        self.out.print(piece, end="", style=TEXT_STYLES[event.message_type])

    def _tool_call(self, event: StreamEvent) -> None:
        call = event.tool_call
        if call is None:
            return
        if call.tool_call_id is not None or self._open is None or self._open[0] != "tool_call_message":
            # A whole call, or the head of a streamed one: a new line.
            self.finish()
            self._open = ("tool_call_message", call.tool_call_id)
            if call.tool_call_id and call.name:
                self._tool_names[call.tool_call_id] = call.name
            self.out.print(f"→ {call.name or '?'}(", end="", style="cyan")
        self.out.print(call.arguments or "", end="", style="cyan")

    def _line(self, event: StreamEvent) -> None:
        kind = event.message_type
        if kind == "tool_return_message":
            name = self._tool_names.get(event.tool_call_id or "") or event.name or "tool"
            verb = "returned" if event.status in (None, "success") else f"failed ({event.status})"
            self.out.print(f"← {name} {verb}: {clip(one_line(event.tool_return or ''))}", style="green")
        elif kind == "user_message":
            self.out.print(f"> {event.text}", style="bold")
        elif kind == "system_message":
            self.out.print(f"system: {clip(event.text, 200)}", style="dim")
        elif kind == "stop_reason":
            self.out.print(f"stop reason: {event.stop_reason}", style="dim")
        elif kind == "usage_statistics":
            if self.show_usage:
                self.out.print(
                    f"usage: {event.step_count or 0} steps, {event.total_tokens or 0} tokens "
                    f"({event.prompt_tokens or 0} prompt, {event.completion_tokens or 0} completion)",
                    style="dim",
                )
        elif kind == "error_message":
            self.err.print(f"error: {event.message or 'the run failed'}", style="red")
        elif kind == "event_message":
            self.out.print(f"event {event.event_type}: {json.dumps(event.event_data)}", style="dim")
        else:
            self.out.print(f"{kind}: {event.model_dump_json(exclude_none=True)}", style="dim")

    def resume_hint(self) -> str:
        if self.run_id is None:
            return ""
        return f"; follow it with `mnemo runs tail {self.run_id} --after {self.last_seq}`"
