"""Static (token-embedding) encoders: no transformer at query time, thousands of sentences per second.

A model2vec directory (`slimvec distill`, or any model2vec model saved locally) loads by path; encoding needs
only numpy, tokenizers and safetensors, never torch. WordLlama ships its weights in its PyPI package (l2_supercat, 256-d, trained Matryoshka at 64/128/256), so
it is loaded from site-packages with downloads disabled. Its leading coordinates carry the most information,
which is what the `truncate:N` codec (Matryoshka truncation) relies on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from slimvec.errors import ConfigError

WORDLLAMA = "wordllama-l2-supercat"
MODEL2VEC_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Weight of a distilled static model's ranking against BM25's 1.0 in softmax fusion, for collections whose profile
# sets none. At equal weights its ranking (56-63% of MiniLM's nDCG@10) pulls BM25 down 3 points; 0.2 was chosen on
# SciFact train and NFCorpus dev together (best mean nDCG@10 of 0.1-1.0) and gives 99.8% / 100.9% of BM25 alone
# on their test splits, within the paired-bootstrap interval of equal (BENCHMARKS.md, "Static distillation").
STATIC_FUSION_WEIGHT = 0.2
# WordLlama's ranking is stronger (0.529 / 0.240 nDCG@10 alone on SciFact / NFCorpus against the distilled
# model's 0.406 / 0.175) and lifts BM25 already at equal weights; 0.5 was the best mean of the same grid on the
# same fit splits (test: 0.6984 / 0.3315 against equal weights' 0.6919 / 0.3283 and BM25's 0.6863 / 0.3210).
WORDLLAMA_FUSION_WEIGHT = 0.5


def is_model2vec_dir(path: Path) -> bool:
    """True when `path` holds a model2vec static model: config.json with model_type "model2vec" (its
    modules.json, written for sentence-transformers, must not send it down the transformer path)."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == "model2vec"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


class Model2VecEncoder:
    """A model2vec static model (Tulkens & van Dongen, model2vec, 2024) from a local directory.

    A text's vector is the mean of its tokens' stored vectors (first `max_tokens` tokens), L2-normalised in
    float32: the stored float16 table is widened once at load, so vectors equal model2vec's
    `StaticModel.from_pretrained(path, quantize_to="float32").encode(texts)`. Symmetric: queries and documents
    are encoded alike. Raises ConfigError when a file is missing or model2vec is not installed.
    """

    kind = "dense"
    needs_torch = False  # a Ray encoder actor (distributed.ingest) skips importing torch for it
    fusion_weight = STATIC_FUSION_WEIGHT  # its ranking's weight in a fused mode whose profile sets none

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        from slimvec.extras import require

        self.path = Path(path)
        missing = [f for f in MODEL2VEC_FILES if not (self.path / f).is_file()]
        if missing:
            raise ConfigError(f"{self.path}: not a model2vec model directory (missing {', '.join(missing)})")
        StaticModel = require("model2vec").StaticModel
        self.name = name or str(self.path)
        self._model = StaticModel.from_pretrained(self.path, quantize_to="float32", normalize=True)
        self.dim = int(self._model.dim)
        self.max_tokens = int(self._model.max_length or 512)
        # model2vec's tokenizer truncates at max_length; chunking needs the spans of the whole text.
        from tokenizers import Tokenizer

        self._span_tokenizer = Tokenizer.from_str(self._model.tokenizer.to_str())
        self._span_tokenizer.no_truncation()

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens (no special tokens)."""
        return [tuple(o) for o in self._span_tokenizer.encode(text, add_special_tokens=False).offsets]

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Normalised vectors, (n, dim) float32; a text without known tokens gets a zero vector."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # One process: joblib workers would each copy the table and fight the other cores' work.
        vecs = self._model.encode(list(texts), show_progress_bar=progress, use_multiprocessing=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Same as documents: a static model is symmetric."""
        return self.encode_documents(texts)


class WordLlamaEncoder:
    """WordLlama l2_supercat: average-pooled token embeddings, 256-d, L2-normalised."""

    kind = "dense"
    needs_torch = False  # a Ray encoder actor (distributed.ingest) skips importing torch for it
    dim = 256
    max_tokens = 512  # WordLlama pools any length; chunking still bounds what one vector averages over
    fusion_weight = WORDLLAMA_FUSION_WEIGHT  # its ranking's weight in a fused mode whose profile sets none

    def __init__(self) -> None:
        import logging

        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        import wordllama
        from wordllama import WordLlama

        # wordllama's import runs logging.basicConfig(level=INFO): undone, so the host application's root logger
        # does not start printing every library's INFO messages (faiss's loader, ...) on stderr
        root.setLevel(level)
        root.handlers[:] = handlers
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
