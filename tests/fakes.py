"""A deterministic stand-in encoder for plumbing tests only (never for quality claims)."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from slimvec.encoders.static import STATIC_FUSION_WEIGHT

_WORD = re.compile(r"\S+")


class FakeEncoder:
    """Hashed bag of words: similar word sets give similar vectors; tokens are whitespace words."""

    kind = "dense"

    def __init__(self, dim: int = 32, name: str = "fake-bow", max_tokens: int = 64) -> None:
        self.dim, self.name, self.max_tokens = dim, name, max_tokens
        self.calls = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls += 1
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.encode_documents(texts)

    # Token vectors (multi-vector profiles): one hashed unit vector per whitespace word, the dense vector of the
    # same call beside them, as `minilm-tokens` gives both from one pass.
    def _tokens(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower()) or [""]
        return np.stack([self._vec(w) if self._vec(w).any() else np.eye(self.dim, dtype=np.float32)[0] for w in words])

    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False,
                                     prune: str | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.encode_documents(texts), [self._tokens(t) for t in texts]

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        return [self._tokens(t) for t in texts]

    def encode_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.encode_queries(texts), self.encode_query_tokens(texts)


class StaticLikeEncoder(FakeEncoder):
    """A model that declares the weight of its dense ranking in fused modes, as Model2VecEncoder does."""

    fusion_weight = STATIC_FUSION_WEIGHT


@contextmanager
def registered_encoders(*encoders: Any) -> Iterator[None]:
    """Register each encoder under its `name` (so collections and migrations open it by name; each load gets a
    copy), and remove them again on exit."""
    from slimvec import registry
    from slimvec.encoders.registry import register_encoder

    for encoder in encoders:
        register_encoder(encoder.name, lambda e=encoder: copy.copy(e))
    try:
        yield
    finally:
        for encoder in encoders:
            registry.unregister("encoder", encoder.name)
