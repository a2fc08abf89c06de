"""Record types that flow through every stage: Document, Chunk, Hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One source document: a stable id, optional title, body text and JSON metadata."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"document id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"document {self.id!r}: text must be a string")
        if not isinstance(self.metadata, dict):
            raise ValueError(f"document {self.id!r}: metadata must be an object")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text, with its character span [start, end) in `Document.text`."""

    doc_id: str
    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A search result at document level, scored by its best chunk."""

    id: str
    score: float
    title: str
    snippet: str
    metadata: dict[str, Any]
    chunk_start: int = 0
    chunk_end: int = 0
    relevance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, as printed by `slimvec search --json`."""
        out: dict[str, Any] = {
            "id": self.id,
            "score": self.score,
            "title": self.title,
            "snippet": self.snippet,
            "metadata": self.metadata,
            "span": [self.chunk_start, self.chunk_end],
        }
        if self.relevance is not None:
            out["relevance"] = self.relevance
        return out
