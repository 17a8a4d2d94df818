"""Mnemo's custom Temporal search attributes: registered by `mnemo up` and by the tests,
set by the workflows, so runs can be listed by agent in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

AGENT_ID = SearchAttributeKey.for_keyword("AgentId")
# "RunId" is reserved by Temporal itself.
RUN_ID = SearchAttributeKey.for_keyword("MnemoRunId")
RUN_STATUS = SearchAttributeKey.for_keyword("RunStatus")

ALL = [AGENT_ID, RUN_ID, RUN_STATUS]


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
