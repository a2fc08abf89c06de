"""Multi-vector (late-interaction) encoders: one L2-normalised vector per token, scored with MaxSim.

Two families share one shape (`kind = "multivector"`):

- `TokenVectorEncoder`: the contextual token vectors of a plain sentence-transformers model (the bundled
  all-MiniLM-L6-v2 is registered as `minilm-tokens`), taken from the same forward pass as its mean-pooled
  dense vector, so a collection can keep both for the cost of one encode. No training: MaxSim over these
  vectors works zero-shot (ColBERT, Khattab & Zaharia 2020, scores with the same operator).
- `LateInteractionEncoder`: a local late-interaction model directory (sentence-transformers
  `MultiVectorEncoder` or PyLate / Stanford ColBERT layout), run by sentence-transformers itself so its
  query/document markers, query length, [MASK] expansion, skiplist and projection are the model's own.

Both also satisfy the plain `Encoder` protocol: `encode_documents` / `encode_queries` return one dense
vector per text (the model's pooled vector, or the renormalised mean of the token vectors for a
late-interaction model), which a first-stage single-vector index can use.
"""

from __future__ import annotations

import os
import string
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.encoders.base import quiet_model_loading
from slimvec.encoders.threads import query_threads
from slimvec.errors import ConfigError
from slimvec.progress import progress_bar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MINILM_TOKENS = "minilm-tokens"
# Texts per forward pass; sorted by length first so a batch pads little.
_BATCH = 32


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class _LocalModel:
    """What both token encoders read off their loaded sentence-transformers model (`self.model`)."""

    model: Any

    @cached_property
    def dim(self) -> int:
        """Token vector dimension."""
        return int(self.model.get_embedding_dimension())

    @cached_property
    def max_tokens(self) -> int:
        """Longest input the model sees, without [CLS]/[SEP]."""
        return int(self.model.max_seq_length) - 2


class TokenVectorEncoder(_LocalModel):
    """Contextual token vectors of a local sentence-transformers model, plus its own pooled vector.

    Token vectors are the transformer's last hidden states with [CLS], [SEP] and padding dropped,
    L2-normalised, float32, shape (n_tokens_i, dim); documents are cut at the model's `max_seq_length`
    (256 word pieces for all-MiniLM-L6-v2, special tokens included). The dense vector of each text is the
    model's own pooling + normalisation of the same forward pass, identical to `DenseEncoder`'s.
    """

    kind = "multivector"

    def __init__(self, path: str | Path, name: str | None = None, batch_size: int = _BATCH,
                 query_max_tokens: int | None = None, prune: str = "", query_backend: Any = None) -> None:
        self.path = Path(path)
        # encoders/onnx_export.py:QueryBackend, passed in (onnx.py imports this module, so no import back): the
        # queries then run on the model's verified ONNX export without torch. None: torch only.
        self.query_backend = query_backend
        if not (self.path / "modules.json").exists():
            raise ConfigError(f"{self.path}: not a sentence-transformers model directory (no modules.json)")
        self.name = name or f"{self.path}#tokens"
        self.batch_size = batch_size
        self.query_max_tokens = query_max_tokens
        if prune not in ("", "punctuation", "stopwords"):
            raise ConfigError(f"prune must be '', 'punctuation' or 'stopwords' (punctuation too), got {prune!r}")
        self.prune = prune  # document tokens dropped at index time (queries keep every token, as ColBERT)
        self._skip_cache: dict[str, np.ndarray] = {}

    def _skip_ids(self, prune: str) -> np.ndarray:
        if prune not in self._skip_cache:
            self._skip_cache[prune] = skiplist_ids(self.model.tokenizer, punctuation=True,
                                                   stopwords=prune == "stopwords")
        return self._skip_cache[prune]

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        quiet_model_loading()
        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    @cached_property
    def _onnx(self) -> Any:
        """The query encoder on the verified ONNX export (OnnxTransformerEncoder), or None: queries use torch."""
        if self.query_backend is None or (self.query_max_tokens or 0) > self.max_tokens:
            return None  # torch widens the model's window for such queries; the export's window is fixed
        return self.query_backend.onnx_encoder(self.path, self.name, kind="multivector",
                                               query_max_tokens=self.query_max_tokens, batch_size=self.batch_size)

    @property
    def query_runtime(self) -> str:
        """"onnxruntime" when queries run on the verified ONNX export (no torch), else "torch"."""
        return "onnxruntime" if self._onnx is not None else "torch"

    def _query_onnx(self) -> Any:
        """`_onnx` for a query call; when None, the backend's one-line fallback notice is written."""
        onnx = self._onnx
        if onnx is None and self.query_backend is not None:
            self.query_backend.fallback_notice(self.path)
        return onnx

    @cached_property
    def dim(self) -> int:
        """Token vector dimension (read from the ONNX export when torch is not loaded)."""
        if "model" not in self.__dict__ and self._onnx is not None:
            return int(self._onnx.dim)
        return int(self.model.get_embedding_dimension())

    @cached_property
    def max_tokens(self) -> int:
        """Longest input the model sees, without [CLS]/[SEP] (sentence_bert_config.json, read without torch)."""
        cfg = self.path / "sentence_bert_config.json"
        if "model" not in self.__dict__ and cfg.exists():
            import json

            return int(json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length", 256)) - 2
        return int(self.model.max_seq_length) - 2

    @cached_property
    def _special_ids(self) -> np.ndarray:
        # Only the markers the tokenizer adds around every text ([CLS], [SEP]) and padding: an [UNK] inside
        # the text is a real token and stays.
        tok = self.model.tokenizer
        ids = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}
        return np.asarray(sorted(i for i in ids if i is not None), dtype=np.int64)

    @cached_property
    def _fast_tokenizer(self):
        tok = self.model.tokenizer.backend_tokenizer
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tok.to_str())
        tok.no_truncation()
        tok.no_padding()
        return tok

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens (no special tokens)."""
        return [tuple(o) for o in self._fast_tokenizer.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]

    def _forward(self, texts: list[str], max_length: int | None, progress: bool = False,
                 document: bool = False, prune: str | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        prune = self.prune if prune is None else prune
        if prune not in ("", "punctuation", "stopwords"):
            raise ConfigError(f"prune must be '', 'punctuation' or 'stopwords' (punctuation too), got {prune!r}")
        skip = self._skip_ids(prune) if document and prune else None

        dense = np.empty((len(texts), self.dim), dtype=np.float32)
        tokens: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(texts)
        if not texts:
            return dense, []
        if document and self.query_backend is not None:  # torch is loaded anyway: make the ONNX export once
            self.query_backend.ensure_export(self.path, self.model)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        model = self.model
        saved = model.max_seq_length
        if max_length is not None:
            model.max_seq_length = max_length
        try:
            with progress_bar("encoding", len(texts), enabled=progress and len(texts) > 1024) as advance, \
                    torch.inference_mode(), query_threads(len(texts)):
                for s in range(0, len(texts), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    features = model.preprocess([texts[i] for i in idx])
                    out = model(features)
                    dense[idx] = out["sentence_embedding"].float().numpy()
                    hidden = out["token_embeddings"].float().numpy()
                    ids = features["input_ids"].numpy()
                    keep = features["attention_mask"].numpy().astype(bool) & ~np.isin(ids, self._special_ids)
                    if skip is not None:
                        keep &= ~np.isin(ids, skip)
                    for j, i in enumerate(idx):
                        tokens[i] = l2_normalise(hidden[j][keep[j]])
                    advance(len(idx))
        finally:
            model.max_seq_length = saved
        # The pooled vector is normalised by the model's Normalize module when it has one; make sure.
        return l2_normalise(dense), tokens

    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False,
                                     prune: str | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass: (dense (n, dim) float32 unit rows, [token vectors (n_i, dim) float32 unit rows]).

        prune: document tokens to drop ("", "punctuation", "stopwords"); None: the encoder's own setting."""
        return self._forward(list(texts), None, progress, document=True, prune=prune)

    def encode_document_tokens(self, texts: list[str], progress: bool = False) -> list[np.ndarray]:
        """Token vectors per document: list of (n_i, dim) float32, unit rows (minus pruned pieces, if set)."""
        return self._forward(list(texts), None, progress, document=True)[1]

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Token vectors per query: list of (n_i, dim) float32, unit rows (cut at `query_max_tokens` + 2)."""
        return self.encode_queries_with_tokens(texts)[1]

    def encode_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass: (dense query vectors (n, dim), query token vectors [(n_i, dim)]).

        On the verified ONNX export when there is one (no torch; [CLS]/[SEP] dropped, every other piece kept,
        cut at `query_max_tokens` + 2 positions, as below), else on torch."""
        onnx = self._query_onnx()
        if onnx is not None:
            dense, tokens = onnx.encode_queries_with_tokens(list(texts))
            return dense, _drop_literal_markers(onnx, list(texts), tokens)
        limit = None if self.query_max_tokens is None else self.query_max_tokens + 2
        return self._forward(list(texts), limit)

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """The model's pooled dense vectors, (n, dim) float32, unit length."""
        return self._forward(list(texts), None, progress)[0]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """The model's pooled dense query vectors, (n, dim) float32, unit length (ONNX when exported)."""
        onnx = self._query_onnx()
        if onnx is not None:  # the document side: cut at the model's window, not at query_max_tokens (as below)
            return onnx.encode_documents(list(texts))
        return self._forward(list(texts), None)[0]


def _drop_literal_markers(onnx: Any, texts: list[str], tokens: list[np.ndarray]) -> list[np.ndarray]:
    """Drop the rows of "[CLS]"/"[SEP]"/"[PAD]" typed inside a text, as `TokenVectorEncoder._forward` drops every
    marker id (the ONNX encoder drops only the markers its template added)."""
    if not any("[" in t for t in texts):
        return tokens
    markers = onnx.tokenize("[CLS] [SEP] [PAD]")[0]
    out = []
    for text, rows in zip(texts, tokens):
        ids = onnx.tokenize(text)[0][: len(rows)]  # the rows are the first pieces, in order, after the cut
        out.append(rows[~np.isin(np.asarray(ids, np.int64), markers)] if ids else rows)
    return out


class LateInteractionEncoder(_LocalModel):
    """A local late-interaction model directory, encoded by sentence-transformers' `MultiVectorEncoder`.

    Reads native `MultiVectorEncoder` saves as well as PyLate and Stanford-NLP ColBERT layouts (that library
    converts them on load): query/document markers, query length with [MASK] expansion, the document
    skiplist and the projection head all come from the model directory. Token vectors are L2-normalised
    float32 (n_i, dim). Nothing is downloaded: the directory must hold every file.
    """

    kind = "multivector"

    def __init__(self, path: str | Path, name: str | None = None, batch_size: int = _BATCH) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").exists() and not (self.path / "modules.json").exists():
            raise ConfigError(f"{self.path}: not a model directory (no modules.json or config.json)")
        self.name = name or str(self.path)
        self.batch_size = batch_size

    @cached_property
    def model(self):
        from sentence_transformers import MultiVectorEncoder

        quiet_model_loading()
        return MultiVectorEncoder(str(self.path), device="cpu", local_files_only=True)


    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens (no special tokens)."""
        enc = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]  # type: ignore[misc]

    def _tokens(self, texts: list[str], query: bool, progress: bool = False) -> list[np.ndarray]:
        if not texts:
            return []
        encode = self.model.encode_query if query else self.model.encode_document
        out = encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                     show_progress_bar=progress and len(texts) > 1024)
        return [l2_normalise(t) for t in out]

    def encode_document_tokens(self, texts: list[str], progress: bool = False) -> list[np.ndarray]:
        """Token vectors per document: list of (n_i, dim) float32, unit rows (the model's document side)."""
        return self._tokens(texts, False, progress)

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Token vectors per query: list of (n_i, dim) float32 (marker, expansion tokens included)."""
        return self._tokens(texts, True)

    def encode_documents_with_tokens(self, texts: list[str],
                                     progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """(dense (n, dim) = renormalised token mean, token vectors) from one encode."""
        toks = self.encode_document_tokens(texts, progress)
        return _mean_vectors(toks, self.dim), toks

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Renormalised mean of each document's token vectors, (n, dim) float32 (a first-stage vector)."""
        return _mean_vectors(self.encode_document_tokens(texts, progress), self.dim)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Renormalised mean of each query's token vectors, (n, dim) float32."""
        return _mean_vectors(self.encode_query_tokens(texts), self.dim)


def _mean_vectors(tokens: list[np.ndarray], dim: int) -> np.ndarray:
    if not tokens:
        return np.zeros((0, dim), np.float32)
    return l2_normalise(np.stack([t.mean(axis=0) if len(t) else np.zeros(dim, np.float32) for t in tokens]))


def is_late_interaction_dir(path: Path) -> bool:
    """True when `path` looks like a saved MultiVectorEncoder / PyLate / Stanford ColBERT model."""
    import json

    for cfg in ("config_sentence_transformers.json", "config.json"):
        f = path / cfg
        if f.exists():
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if data.get("model_type") in ("MultiVectorEncoder", "ColBERT") or "HF_ColBERT" in (
                    data.get("architectures") or []):
                return True
    return False


# A short English stopword list (function words only); the model's own tokenizer decides the word pieces.
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "if", "in", "into", "is", "it", "its", "of", "on", "or", "so", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "were", "which", "will", "with"]
)
PUNCTUATION = frozenset(string.punctuation)


def skiplist_ids(tokenizer, punctuation: bool = True, stopwords: bool = False) -> np.ndarray:
    """Vocabulary ids of single-piece punctuation and/or stopword tokens of a Hugging Face tokenizer (int64)."""
    words: set[str] = set()
    if punctuation:
        words |= PUNCTUATION
    if stopwords:
        words |= STOPWORDS
    vocab = tokenizer.get_vocab()
    return np.asarray(sorted(vocab[w] for w in words if w in vocab), dtype=np.int64)
