"""An `Encoder` over a framework's embedding functions (a LangChain `Embeddings`, a LlamaIndex `BaseEmbedding`).

The framework model embeds whole texts and truncates them itself, so a collection built on one keeps one
chunk per document (chunk mode "whole"); its manifest records the name given here, and reopening the
collection needs the same name and dimension (`Collection._check_encoder`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from slimvec.errors import ConfigError

_WORD = re.compile(r"\S+")
# Chunk mode "whole" never cuts by tokens; the number only has to exceed any chunk_tokens a profile sets.
FRAMEWORK_MAX_TOKENS = 8192


class FunctionEncoder:
    """slimvec `Encoder` calling `embed_documents(texts)` and `embed_query(text)` of another library.

    Vectors come back float32 of shape (n, dim), L2-normalised (a zero vector stays zero), so scores are
    cosine similarities whatever the framework model returns. `dim` is probed with one `embed_query` call
    when not given. Raises ConfigError when the model returns vectors of another dimension.
    """

    kind = "dense"
    max_tokens = FRAMEWORK_MAX_TOKENS

    def __init__(self, name: str, embed_documents: Callable[[list[str]], Sequence[Sequence[float]]],
                 embed_query: Callable[[str], Sequence[float]], dim: int | None = None) -> None:
        self.name = name
        self._embed_documents = embed_documents
        self._embed_query = embed_query
        self.dim = int(dim) if dim is not None else len(embed_query("slimvec: probing the embedding dimension"))
        if self.dim < 1:
            raise ConfigError(f"embedding model {name!r} returned an empty vector")

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Whitespace-separated words: the framework model's own tokenizer is not reachable."""
        return [m.span() for m in _WORD.finditer(text)]

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, from the framework's document embedding."""
        return self._checked(self._embed_documents(list(texts)) if texts else [], len(texts))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, from the framework's query embedding (one call per query)."""
        return self._checked([self._embed_query(t) for t in texts], len(texts))

    def _checked(self, vectors: Sequence[Sequence[float]], n: int) -> np.ndarray:
        try:
            out = np.asarray(vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, self.dim), np.float32)
        except ValueError as e:  # ragged lists
            raise ConfigError(f"embedding model {self.name!r} returned vectors numpy cannot stack ({e})") from None
        if out.shape != (n, self.dim):
            raise ConfigError(f"embedding model {self.name!r} returned vectors of shape {out.shape}, "
                              f"expected ({n}, {self.dim})")
        return normalised(out)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (rows of zeros, and rows holding a NaN or infinity, are left as they
    are, so the collection's checks refuse them by name; they were turned into zeros)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=v.copy(), where=(norms > 0) & np.isfinite(norms))
