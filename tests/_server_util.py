"""Helpers for the server tests: small FakeEncoder collections and a known API key."""

from __future__ import annotations

import json
from pathlib import Path

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
