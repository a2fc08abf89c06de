"""The encoder interface every model family implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors; documents and queries may be encoded differently."""

    name: str  # recorded in the collection manifest; a collection refuses a different one
    kind: str  # "dense", "sparse" or "multivector"
    dim: int
    max_tokens: int  # longest input the model sees, without special tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens for `text` (no special tokens)."""
        ...

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Vectors for documents/chunks, float32, L2-normalised, shape (n, dim)."""
        ...

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for queries, float32, L2-normalised, shape (n, dim)."""
        ...


def quiet_model_loading() -> None:
    """Turn off transformers' "Loading weights" progress bar before a sentence-transformers model loads: it is
    noise on every CLI call, where library messages appear only with --verbose."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
