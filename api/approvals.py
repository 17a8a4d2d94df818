"""Answers to pending tool-call approvals on the messages endpoint, and the 409 for a new message while
calls wait for a human (Letta's human-in-the-loop flow)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NO_RETRY
from api.runs import InputPlan
from mnemo.runtime.approvals import pending_approval


class ApprovalReturn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["approval"] = "approval"
    tool_call_id: str = Field(min_length=1)
    approve: bool
    reason: str | None = None


class ClientToolReturn(BaseModel):
    """A client-side tool's result, run by the client itself."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["tool"] = "tool"
    tool_call_id: str = Field(min_length=1)
    tool_return: str | list[dict[str, Any]]
    status: Literal["success", "error"] = "success"
    stdout: list[str] | str | None = None
    stderr: list[str] | str | None = None

    def stored(self) -> dict[str, Any]:
        value = self.tool_return
        if isinstance(value, list):  # content parts: the text is what the model reads
            value = "".join(str(p.get("text", "")) for p in value if p.get("type") == "text")
        out = self.model_dump(exclude_none=True)
        return out | {"tool_return": value}


def _answer_type(item: Any) -> Any:
    if isinstance(item, dict) and "type" not in item:
        return {**item, "type": "tool" if "tool_return" in item else "approval"}
    return item


Answer = Annotated[ApprovalReturn | ClientToolReturn, Field(discriminator="type")]


class ApprovalCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["approval"] = "approval"
    approvals: list[Answer] | None = None
    # Letta's deprecated single-approval form: one decision for the request.
    approve: bool | None = None
    approval_request_id: str | None = None
    reason: str | None = None
    otid: str | None = None

    _typed = field_validator("approvals", mode="before")(
        lambda v: [_answer_type(i) for i in v] if isinstance(v, list) else v
    )


class ToolReturnCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["tool_return"] = "tool_return"
    tool_returns: list[ClientToolReturn] = Field(min_length=1)
    otid: str | None = None


def infer_type(item: Any) -> Any:
    """Letta infers a missing `type`: an approval when it carries approval fields, else a message."""
    if isinstance(item, dict) and not item.get("type"):
        is_approval = any(k in item for k in ("approvals", "approve", "approval_request_id"))
        return {**item, "type": "approval" if is_approval else "message"}
    return item


def _decisions(answer: ApprovalCreate | ToolReturnCreate, pending_ids: list[str]) -> list[dict[str, Any]]:
    if isinstance(answer, ToolReturnCreate):
        return [r.stored() for r in answer.tool_returns]
    if answer.approvals:
        return [a.stored() if isinstance(a, ClientToolReturn) else a.model_dump() for a in answer.approvals]
    if answer.approve is None:
        raise HTTPException(
            422, "An approval needs `approvals` (one answer per pending tool call) or `approve`."
        )
    # The legacy form answers the request as a whole: every pending call gets the same decision.
    return [
        {"type": "approval", "tool_call_id": cid, "approve": answer.approve, "reason": answer.reason}
        for cid in pending_ids
    ]


async def plan_input(
    s: AsyncSession, agent_id: str, items: list[Any], plain: list[dict[str, Any]]
) -> InputPlan:
    """What to store for this request: its messages, or an approval answer checked against what is
    pending. Raises 409 for a message while calls wait for approval, 409/422 for a bad answer."""
    answers = [i for i in items if isinstance(i, ApprovalCreate | ToolReturnCreate)]
    pending = await pending_approval(s, agent_id)
    if not answers:
        if pending is not None:
            raise HTTPException(
                409,
                {
                    "code": "PENDING_APPROVAL",
                    "message": (
                        f"Agent {agent_id} is waiting for approval of tool calls {pending[1]}: answer them with "
                        '{"type": "approval", "approvals": [...]} before sending a new message, '
                        "or cancel to deny them."
                    ),
                    "pending_request_id": pending[0].id,
                },
                headers=NO_RETRY,
            )
        return InputPlan(messages=plain)
    if len(items) != 1:
        raise HTTPException(422, "An approval answer must be the only item in `messages`.")
    if pending is None:
        raise HTTPException(
            409, f"No tool call of agent {agent_id} is waiting for approval.", headers=NO_RETRY
        )
    request, waiting = pending
    decisions = _decisions(answers[0], waiting)
    given = [d["tool_call_id"] for d in decisions]
    unknown = [cid for cid in given if cid not in waiting]
    if unknown:
        raise HTTPException(
            422, f"Tool call ids {unknown} are not waiting for approval; the pending ones are {waiting}."
        )
    missing = [cid for cid in waiting if cid not in given]
    if missing or len(set(given)) != len(given):
        raise HTTPException(
            422, f"Answer each pending tool call exactly once: pending {waiting}, answered {given}."
        )
    message: dict[str, Any] = {"role": "approval", "content": "", "approvals": decisions}
    if answers[0].otid:
        message["otid"] = answers[0].otid
    return InputPlan(messages=[message], request_config={"approval_request_id": request.id}, approval=True)
