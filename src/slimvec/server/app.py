"""`create_app`: the JSON API (routes.py) and the search page (pages.py) over a fixed set of open collections.

Requests are checked in layers: the body size (limits.py) before anything is read, the API key (auth.py)
for writes, the request models (models.py); every failure is a JSON error (errors.py).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from slimvec.server.auth import writer_check
from slimvec.server.errors import add_error_handlers
from slimvec.server.limits import BodyLimit
from slimvec.server.pages import add_pages
from slimvec.server.routes import api_router
from slimvec.server.state import Served

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 1000


def create_app(
    collections: dict[str, Any],
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """A FastAPI app serving `collections` (name -> open Collection; the caller closes them).

    Writes need `Authorization: Bearer <api_key>` when a key is given; reads are open.
    Request bodies over `max_body_bytes` get 413, as do batches of more than `max_batch` documents.
    """
    served = Served(collections, max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await asyncio.to_thread(served.warm_up)
        yield
        served.close()

    app = FastAPI(title="slimvec", version="0.1.0", description="Search and maintain slimvec collections.",
                  lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.collections = served.collections
    app.state.api_key_set = api_key is not None and api_key != ""
    add_error_handlers(app)
    app.include_router(api_router(served, writer_check(api_key)))
    add_pages(app, served)
    return app
