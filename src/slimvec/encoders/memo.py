"""An in-memory memo around an encoder: each distinct document text is encoded once, later calls get the
same vector back.

Why: a model's float32 output for a text changes in its last bits with the batch it is encoded in (padding
and kernel paths differ), so two builds of the same documents in different batches (one collection against
its shards, a rebuilt index) can store slightly different vectors. Comparing their search results needs the
same vectors: wrap the encoder once and give both builds the wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class MemoEncoder:
    """`encoder` with `encode_documents` memoised per text; every other attribute is the encoder's own."""

    def __init__(self, encoder: Any) -> None:
        self._enc = encoder
        self._seen: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._enc, name)

    def with_query_pooling(self, pooling: str) -> "MemoEncoder":
        """The wrapped encoder's `with_query_pooling(pooling)` (documents pool as before), sharing this memo."""
        out = MemoEncoder(self._enc.with_query_pooling(pooling))
        out._seen = self._seen
        return out

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32: each new text encoded (in one batch per call), a seen one replayed."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            self._seen.update(zip(missing, self._enc.encode_documents(missing)))
        return np.stack([self._seen[t] for t in texts])
