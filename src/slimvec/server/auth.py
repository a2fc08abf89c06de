"""The API key check: writes need `Authorization: Bearer <key>` when the server was given a key."""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import HTTPException, Request


def writer_check(api_key: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency raising 401 (with `WWW-Authenticate: Bearer`) unless the request carries `api_key`.

    With `api_key=None` every request passes (the server then listens on loopback only, see runner.serve).
    The comparison takes constant time (hmac.compare_digest), so timing does not reveal the key.
    """
    key = api_key.encode("utf-8") if api_key else None

    def require_writer(request: Request) -> None:
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("utf-8", "replace"), key)):
            raise HTTPException(401, "writes need 'Authorization: Bearer <api key>'",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_writer
