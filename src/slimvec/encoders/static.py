"""Static (token-embedding) encoders: no transformer at query time, thousands of sentences per second.

WordLlama ships its weights in its PyPI package (l2_supercat, 256-d, trained Matryoshka at 64/128/256), so
it is loaded from site-packages with downloads disabled. Its leading coordinates carry the most information,
which is what the `truncate:N` codec (Matryoshka truncation) relies on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDLLAMA = "wordllama-l2-supercat"


class WordLlamaEncoder:
    """WordLlama l2_supercat: average-pooled token embeddings, 256-d, L2-normalised."""

    kind = "dense"
    dim = 256
    max_tokens = 512  # WordLlama pools any length; chunking still bounds what one vector averages over

    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        self.name = WORDLLAMA
        self._model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens."""
        return [tuple(o) for o in self._model.tokenizer.encode(text, add_special_tokens=False).offsets]

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Normalised vectors, (n, 256) float32."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.ascontiguousarray(self._model.embed(list(texts), norm=True), dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Same as documents: WordLlama is symmetric."""
        return self.encode_documents(texts)
