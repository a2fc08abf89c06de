"""How failures become responses: every error is a JSON `{"detail": ...}` with a 4xx status, never a 500
carrying a traceback, and the JSON always encodes (non-ASCII escaped, NaN and Infinity as null)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slimvec.errors import BusyError, NoRoomError, SlimvecError, StoredIdError, no_room

log = logging.getLogger("slimvec.server")


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: non-ASCII escaped (lone surrogates included), NaN/Infinity as null."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError):
            text = json.dumps(_json_safe(content), ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=str)
        return text.encode("ascii")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def add_error_handlers(app: FastAPI) -> None:
    """SlimvecError -> 400 (507 for a commit with no room, 503 for a lock held elsewhere, 409 for an add of an id
    already stored), HTTP errors as raised, validation -> 422 naming the field, deep nesting -> 400,
    anything else -> 500 "internal server error" (logged with its traceback, not sent)."""

    @app.exception_handler(SlimvecError)
    async def _slimvec_error(request: Request, exc: SlimvecError) -> JSONResponse:
        served = getattr(request.app.state, "collections", None) or {}
        # A commit the server's disk or another process stopped is not the client's fault (400 says "do not send
        # this again"): 507 as for a derived file with no room, 503 for a lock to retry after.
        # An add of an id already stored conflicts with the collection's state: 409, as REST APIs answer a create
        # of something that exists (the same body with ?upsert=true succeeds).
        status = (507 if isinstance(exc, NoRoomError) else 503 if isinstance(exc, BusyError) else
                  409 if isinstance(exc, StoredIdError) else 400)
        return SafeJSONResponse({"detail": without_server_paths(str(exc), served)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but echoed inputs may hold lone surrogates or NaN: render them safely.
        return SafeJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(OSError)
    async def _no_room(request: Request, exc: OSError) -> JSONResponse:
        # A full disk, a quota or a file size limit while a write saved a file (tune's probe queries, an index):
        # 507 naming the file, as the CLI's one line does. Any other OS error is a fault: logged, 500.
        if (msg := no_room(exc)) is None:
            return await _bug(request, exc)
        served = getattr(request.app.state, "collections", None) or {}
        return SafeJSONResponse({"detail": without_server_paths(msg, served)}, status_code=507)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "input is nested too deeply"}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)


def without_server_paths(text: str, collections: dict[str, Any]) -> str:
    """`text` with each served collection's directory written as the name clients know it by: an error message
    names the file at fault ("NAME/probe_queries.npz: ..."), not where the server keeps its data."""
    forms = []
    for name, col in collections.items():
        path = getattr(col, "path", None)
        if path is not None:
            forms += [(str(path), name), (str(Path(path).resolve()), name)]
    for form, name in sorted(set(forms), key=lambda f: -len(f[0])):  # the longest first: a path inside another
        text = text.replace(form, name)
    return text


def query_errors(e: Exception) -> RequestValidationError:
    """A pydantic ValidationError of query parameters as the 422 FastAPI gives, each loc starting "query"."""
    errors = getattr(e, "errors", None)
    if errors is None:
        return RequestValidationError([{"type": "value_error", "loc": ("query",), "msg": str(e), "input": None}])
    return RequestValidationError([{**err, "loc": ("query", *err["loc"])}
                                   for err in errors(include_url=False, include_context=False)])
