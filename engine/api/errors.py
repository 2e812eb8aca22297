"""One JSON error shape for every failure: {"status": ..., "message": ..., "errors"?: [...]}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.store import StoreError

log = logging.getLogger("engine.api")


class ErrorBody(BaseModel):
    status: int
    message: str
    errors: list[dict[str, Any]] | None = None


def error_response(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = ErrorBody(status=status, message=message, errors=errors)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The raw errors can hold the offending input (bytes, exceptions): keep only what is printable.
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    first = errors[0] if errors else {"loc": [], "message": "invalid request"}
    where = ".".join(first["loc"][1:] if len(first["loc"]) > 1 else first["loc"])
    return error_response(422, f"invalid request: {where}: {first['message']}", errors)


async def _store_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("graph store error: %s", exc)
    return error_response(503, f"graph store error: {exc}")


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _internal_error)
