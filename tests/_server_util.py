"""Helpers for the server tests: small FakeEncoder collections and a known API key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fakes import FakeEncoder

from slimvec import Collection, Document

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}

DOCS = [
    Document("d1", "Vitamin D supplementation and bone fractures in older adults.", "Vitamin D",
             {"year": 2019, "topic": "bones", "tags": ["vitamin", "bone"]}),
    Document("d2", "Tumours evade the immune system through checkpoint proteins.", "Immune evasion",
             {"year": 2021, "topic": "cancer", "tags": ["immune"]}),
    Document("d3", "Exercise improves bone density and muscle strength.", "Exercise",
             {"year": 2022, "topic": "bones"}),
    Document("d4", "Coffee consumption and the risk of heart disease.", "Coffee",
             {"year": 2015, "topic": "heart", "odd": True}),
]


def make_collection(path: Path, docs: list[Document] = DOCS) -> Collection:
    col = Collection.create(path, encoder=FakeEncoder())
    if docs:
        col.add(docs)
    return col


def snapshot(col: Collection) -> list[tuple]:
    """Every stored document and the chunk/row counts: to prove a rejected request changed nothing."""
    docs = [(d["id"], d["title"], d["text"], json.dumps(d["metadata"], sort_keys=True))
            for d in col.store.iter_documents()]
    return docs + [tuple(col.store.counts().items())]


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/setup-browser.sh with playwright-python
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@contextmanager
def search_page(collections: dict[str, Collection], **page_options: Any) -> Iterator[tuple[Any, list[str]]]:
    """(page, errors): the search page of a real server on loopback serving `collections`, loaded in headless
    Chromium and ready (`body[data-ready='1']`); `errors` collects the page's uncaught JavaScript errors."""
    from playwright import sync_api

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    with server_thread(create_app(collections, api_key=None)) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(**page_options)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
            yield page, errors
        finally:
            browser.close()
