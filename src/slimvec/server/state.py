"""The collections a server holds open, and the one write thread per collection.

Reads (search, info, get) are plain `def` endpoints: FastAPI runs them in its thread pool.
Writes run on one dedicated thread per collection, so a long add (encoding happens before the
collection lock is taken) queues behind other writes of that collection but never occupies the
pool that answers searches. Collection.lock and the store's writer file lock still serialise the
commit itself, across processes too.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, Callable

from fastapi import HTTPException

from slimvec.errors import SlimvecError

log = logging.getLogger("slimvec.server")


class Served:
    """Open collections by name (name -> Collection) and their write threads."""

    def __init__(self, collections: dict[str, Any], max_batch: int) -> None:
        self.collections = dict(collections)
        self.max_batch = max_batch
        self._writers = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"slimvec-write-{name}")
                         for name in self.collections}

    def get(self, name: str) -> Any:
        """The collection named `name`; HTTPException 404 when there is none (a FastAPI dependency)."""
        col = self.collections.get(name)
        if col is None:
            raise HTTPException(404, f"no collection named {name!r}")
        return col

    async def write(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the write thread of collection `name` and await its result."""
        return await asyncio.wrap_future(self._writers[name].submit(fn))

    def check_batch(self, n: int, what: str = "documents") -> None:
        """413 for more than max_batch items in one request, 422 for none."""
        if n > self.max_batch:
            raise HTTPException(413, f"batch of {n} {what} exceeds the limit of {self.max_batch} per request")
        if n == 0:
            raise HTTPException(422, f"no {what} given")

    def warm_up(self) -> None:
        """Load every model before the first request: a lazy load under concurrent searches would stall
        them all (and could load the model once per waiting thread)."""
        for col in self.collections.values():
            col.encoder  # noqa: B018 - the property loads the model
            _load_profile_reranker(col)

    def close(self) -> None:
        """Finish queued writes and stop the write threads (the collections stay open: the caller owns them)."""
        for ex in self._writers.values():
            ex.shutdown(wait=True)


def default_mode(col: Any) -> str:
    """The mode a search without one runs: the collection profile's."""
    from slimvec.search.plan import default_mode as resolve

    manifest = getattr(col, "manifest", None) or {}
    return resolve(manifest.get("profile") or {}, manifest.get("retrievers") or ["dense"])


def profile_rerank(col: Any) -> str | None:
    """The reranker spec of the collection's profile, or None."""
    manifest = getattr(col, "manifest", None) or {}
    return (manifest.get("profile") or {}).get("rerank")


def read_lock(col: Any) -> Any:
    """The collection's lock where it has one (a document read then sees no half-applied upsert)."""
    lock = getattr(col, "_lock", None)
    return lock if lock is not None else nullcontext()


def _load_profile_reranker(col: Any) -> None:
    """Load the profile's reranker model at start-up; a broken one is logged (its searches answer 400)."""
    from slimvec.search.rerank import load_reranker

    spec = profile_rerank(col)
    if not spec:
        return
    try:
        reranker = load_reranker(spec)
        if reranker is not None:
            reranker.load()
    except SlimvecError as e:
        log.warning("%s: reranker %r of the collection's profile cannot be used: %s", getattr(col, "path", "?"),
                    spec, e)
