"""Dense single-vector encoders backed by sentence-transformers, loaded from local directories only."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from slimvec.errors import ConfigError
from slimvec.progress import progress_bar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Texts handed to sentence-transformers per call: big enough for its length sorting to pay off,
# small enough for the progress bar to move.
_SLICE = 1024


class DenseEncoder:
    """A sentence-transformers model from a local directory; vectors L2-normalised."""

    kind = "dense"

    def __init__(self, path: str | Path, name: str | None = None, batch_size: int = 32,
                 query_prompt: str = "", document_prompt: str = "") -> None:
        self.path = Path(path)
        if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
            raise ConfigError(f"{self.path}: not a sentence-transformers model directory (no modules.json)")
        self.name = name or str(self.path)
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt

    @cached_property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily so the CLI starts fast
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise on every CLI call
        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    @cached_property
    def _tokenizer(self):  # noqa: ANN202
        from tokenizers import Tokenizer

        tok_file = self.path / "tokenizer.json"
        tok = Tokenizer.from_file(str(tok_file)) if tok_file.exists() else self.model.tokenizer.backend_tokenizer
        tok.no_truncation()
        tok.no_padding()
        return tok

    @cached_property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.model.get_embedding_dimension())

    @cached_property
    def max_tokens(self) -> int:  # type: ignore[override]
        cfg = self.path / "sentence_bert_config.json"
        if cfg.exists():
            return int(json.loads(cfg.read_text()).get("max_seq_length", 256)) - 2
        return int(self.model.max_seq_length) - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens."""
        return [tuple(o) for o in self._tokenizer.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]

    def _encode(self, texts: list[str], prompt: str, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [prompt + t for t in texts] if prompt else list(texts)
        # Sort by length once over everything, so each batch pads little (as sentence-transformers does per call).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with progress_bar("encoding", len(texts), enabled=progress and len(texts) > _SLICE) as advance:
            for s in range(0, len(texts), _SLICE):
                idx = order[s : s + _SLICE]
                out[idx] = self.model.encode(
                    [texts[i] for i in idx], batch_size=self.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
                advance(len(idx))
        return out

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Document/chunk vectors, float32, unit length."""
        return self._encode(texts, self.document_prompt, progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors, float32, unit length."""
        return self._encode(texts, self.query_prompt, False)
