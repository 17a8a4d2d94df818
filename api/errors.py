"""Exception handlers: errors as Letta-shaped JSON (`{"detail": ...}`) with a message a person can act on.

Routes raise `HTTPException` for the cases they expect (unknown ids, bad values, conflicts). These
handlers are the net under them, so that bad input never ends as a 500:

- request validation (422): FastAPI's list of errors under `detail`, plus `message`, one line that
  names each offending field;
- `LookupError` (404): what `mnemo` raises for an id that does not exist;
- database integrity errors: unique violations (a race the route's own check lost) → 409, a
  reference to a row that no longer exists → 404, a check/not-null violation → 422;
- database data errors (a value Postgres cannot store: out of range, bad syntax) → 422.
- an unreachable database → 503 (retry later); a run whose wait outlasted the outage grace → 503 naming
  the run, without retry (sending again would start the message a second time).

    install_error_handlers(app)   # in create_app, once
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from api.db_outage import DatabaseUnavailable

# Unique constraints whose violation has a better explanation than the constraint's name.
CONFLICT_MESSAGES: dict[str, str] = {
    "uq_tools_name": (
        "A tool with this name already exists: upsert it with PUT /v1/tools/, or give the function another name."
    ),
    "uq_agents_blocks_agent_label": (
        "The agent already has a memory block with this label: detach that block first, or relabel one of them."
    ),
    "uq_blocks_id_label": "A block with this id and label already exists.",
}


# Stainless clients (letta-client) retry 409s and 5xx by default; a state conflict or a missing feature
# will answer the same way again, so these tell them not to.
NO_RETRY = {"x-should-retry": "false"}


def conflict(message: str) -> HTTPException:
    return HTTPException(409, message, headers=NO_RETRY)


def not_supported(message: str) -> HTTPException:
    return HTTPException(501, message, headers=NO_RETRY)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One line naming each offending field, e.g. `body.label: Field required; query.limit: ...`."""
    parts = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid value')}" for e in errors]
    return "Invalid request: " + "; ".join(parts)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    return JSONResponse(
        status_code=422,
        content={"detail": jsonable_encoder(errors), "message": describe_validation_errors(errors)},
    )


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, KeyError | IndexError):
        raise exc  # a bug, not an unknown id: let it be a 500
    message = str(exc) or "Not found"
    return JSONResponse(status_code=404, content={"detail": message[:1].upper() + message[1:]})


def _diag(exc: Exception) -> tuple[str | None, str | None, str]:
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(orig, "sqlstate", None)
    constraint = getattr(diag, "constraint_name", None)
    primary = getattr(diag, "message_primary", None) or str(orig or exc).splitlines()[0]
    return sqlstate, constraint, primary


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    sqlstate, constraint, primary = _diag(exc)
    if sqlstate == "23505":  # unique_violation
        message = CONFLICT_MESSAGES.get(constraint or "", f"Conflicts with an existing object ({primary}).")
        return JSONResponse(status_code=409, content={"detail": message}, headers=NO_RETRY)
    if sqlstate == "23503":  # foreign_key_violation
        if "is not present" in primary or "not present in table" in str(getattr(exc, "orig", "")):
            return JSONResponse(
                status_code=404,
                content={
                    "detail": f"A referenced object does not exist (it may have just been deleted): {primary}"
                },
            )
        return JSONResponse(
            status_code=409, content={"detail": f"Other objects still refer to this one: {primary}"}
        )
    return JSONResponse(status_code=422, content={"detail": f"Invalid value: {primary}"})


async def _data_error(_: Request, exc: Exception) -> JSONResponse:
    primary = _diag(exc)[2]
    return JSONResponse(status_code=422, content={"detail": f"Invalid value: {primary}"})


async def _database_unreachable(_: Request, exc: Exception) -> JSONResponse:
    # The request's transaction was rolled back with its connection: it changed nothing, so it may be
    # sent again (a request that had already started a run waits the outage out, api/db_outage.py).
    primary = _diag(exc)[2]
    return JSONResponse(
        status_code=503,
        content={"detail": f"The database is unreachable right now ({primary}); try again in a few seconds."},
        headers={"Retry-After": "2"},
    )


async def _run_outlived_outage_grace(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)}, headers=NO_RETRY)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`. Safe to call more than once."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(LookupError, _not_found)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _database_unreachable)
    app.add_exception_handler(InterfaceError, _database_unreachable)
    app.add_exception_handler(DatabaseUnavailable, _run_outlived_outage_grace)
