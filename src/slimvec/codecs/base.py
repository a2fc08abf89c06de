"""The codec interface, the spec registry, and saving/loading fitted codecs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np

from slimvec.errors import ConfigError

# Scratch memory one scoring block may use; keeps a 1M-row scan bounded whatever the codec.
BLOCK_BYTES = 64 << 20


class CodecState(TypedDict):
    """A fitted codec: registry name, JSON-serialisable params, and named arrays."""

    codec: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray]


@runtime_checkable
class Codec(Protocol):
    """Turns float32 vectors into compact row-aligned codes and scores queries against them."""

    name: str

    def fit(self, sample: np.ndarray) -> None:
        """Learn parameters from a (n, d) sample of float32 unit vectors."""
        ...

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes: a 2-D array row-aligned with `x`."""
        ...

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 reconstruction in this codec's input space."""
        ...

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(m, n) inner-product estimates, equal to `queries @ decode(codes).T` up to float error."""
        ...

    def bytes_per_vector(self, dim_in: int) -> int:
        """Exact code bytes per stored vector of input dimension `dim_in`."""
        ...

    def state(self) -> CodecState:
        """Everything needed to rebuild the fitted codec."""
        ...

    @classmethod
    def from_state(cls, state: CodecState) -> Codec:
        """The fitted codec described by `state`."""
        ...


@runtime_checkable
class Transform(Protocol):
    """A fitted map of vectors to a (usually smaller) float space, placed before a quantizer in a chain."""

    name: str

    def fit(self, sample: np.ndarray) -> None:
        """Learn parameters from a (n, d) sample."""
        ...

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Documents into the output space."""
        ...

    def backward(self, y: np.ndarray) -> np.ndarray:
        """Output space back to the input space (linear)."""
        ...

    def query(self, q: np.ndarray) -> np.ndarray:
        """Queries into the output space so that `query(q) @ y == q @ backward(y)`."""
        ...

    def out_dim(self, dim_in: int) -> int:
        """Output dimension for input dimension `dim_in`."""
        ...

    def state(self) -> CodecState:
        """Everything needed to rebuild the fitted transform."""
        ...

    @classmethod
    def from_state(cls, state: CodecState) -> Transform:
        """The fitted transform described by `state`."""
        ...


def spec_int(text: str | None, what: str, low: int = 1, high: int | None = None) -> int:
    """A whole number written in a codec spec, in [low, high]. ValueError otherwise.

    Only ASCII digits are taken: `int` also reads "+48", "4_8" and other scripts' digits ("٣"), so a typo such as
    "pq:4_8" (meant: 4x8) became 48 sub-quantizers, and a number outside the stage's range (a negative rotation
    seed) passed the spec check only to fail every later fit, leaving search uncompressed without a word."""
    word = (text or "").strip()
    if not word.isascii() or not word.isdigit():
        raise ValueError(f"{what} must be a whole number written in digits 0-9, got {text or ''!r}")
    n = int(word)
    if n < low or (high is not None and n > high):
        raise ValueError(f"{what} must be {f'{low}..{high}' if high is not None else f'>= {low}'}, got {n}")
    return n


def _class(name: str) -> type | None:
    """The codec or transform class registered as `name` (slimvec.registry), or None."""
    from slimvec import registry

    for kind in ("codec", "transform"):
        if registry.has(kind, name):
            return registry.load(kind, name)
    return None


def _build(part: str) -> Any:
    from slimvec import registry

    name, _, arg = part.strip().partition(":")
    cls = _class(name) if name != "chain" else None
    if cls is None:
        known = ", ".join(n for n in registry.names("codec") + registry.names("transform") if n != "chain")
        raise ConfigError(f"unknown codec {name!r} in spec; known: {known}")
    try:
        return cls.from_spec(arg or None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad codec spec {part.strip()!r}: {exc}") from None


def make_codec(spec: str) -> Codec:
    """A fresh codec from a spec such as "float8", "pq:48x8", "rbinary:2" or "pca:192 > float8"."""
    parts = spec.split(">")
    if not spec.strip() or any(not p.strip() for p in parts):
        raise ConfigError(f"bad codec spec {spec!r}: empty stage")
    stages = [_build(p) for p in parts]
    if len(stages) == 1 and not isinstance(stages[0], Transform):
        return stages[0]
    return _class("chain")(stages)


def check_dim(codec: Any, dim_in: int) -> None:
    """ValueError when `codec` (a codec or transform) cannot code `dim_in`-dimensional vectors: a truncation or
    projection to more dimensions than there are, PQ sub-quantizers that do not divide them. Stages without a
    constraint declare no `check_dim`."""
    check = getattr(codec, "check_dim", None)
    if check is not None:
        check(dim_in)


def codec_for_dim(spec: str, dim: int, what: str = "codec") -> Codec:
    """`make_codec(spec)`, checked against `dim`-d vectors: ConfigError naming the spec when it cannot code them.
    A collection checks its codec so when it is made, since the first fit would fail only at an add, where
    search stays exact until enough rows arrive to fit (the same ValueError as too few rows). `what` names the
    setting in the message (a multi-vector profile's token codec is checked against the token dimension)."""
    codec = make_codec(spec)
    try:
        check_dim(codec, dim)
    except ValueError as e:
        raise ConfigError(f"{what} {spec!r} cannot code this model's {dim}-d vectors: {e}") from None
    return codec


def codec_from_state(state: CodecState) -> Codec:
    """Rebuild a fitted codec (or transform) from its state. Raises ConfigError for an unknown codec name."""
    cls = _class(state["codec"])
    if cls is None:
        raise ConfigError(f"unknown codec {state['codec']!r} in saved state")
    return cls.from_state(state)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(codec: Codec, directory: Path) -> None:
    """Write one `.npy` per array, then `params.json` last as the commit, under `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    st = codec.state()
    for key, arr in st["arrays"].items():
        _atomic_write(directory / f"{key}.npy", lambda f, a=arr: np.save(f, np.ascontiguousarray(a)))
    meta = {"codec": st["codec"], "params": st["params"], "arrays": sorted(st["arrays"])}
    _atomic_write(directory / "params.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))


def load(directory: Path) -> Codec:
    """The fitted codec saved under `directory` by `save`."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "params.json").read_text())
        arrays = {key: np.load(directory / f"{key}.npy") for key in meta["arrays"]}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{directory}: cannot read saved codec ({exc})") from None
    return codec_from_state({"codec": meta["codec"], "params": meta["params"], "arrays": arrays})


def state_nbytes(state: CodecState) -> int:
    """Bytes of the arrays a fitted codec keeps (its parameters)."""
    return sum(int(a.nbytes) for a in state["arrays"].values())


def as_f32(x: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 2-D view or copy of `x`."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x.reshape(1, -1) if x.ndim == 1 else x


def row_blocks(n: int, bytes_per_row: int) -> Iterator[slice]:
    """Consecutive row slices whose scratch memory stays within BLOCK_BYTES."""
    step = max(1, BLOCK_BYTES // max(1, bytes_per_row))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def score_by_decode(codec: Codec, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Blocked `queries @ decode(codes).T`, the reference scoring every codec must match."""
    q = as_f32(queries)
    out = np.empty((len(q), len(codes)), np.float32)
    d_out = codec.decode(codes[:1]).shape[1] if len(codes) else 0
    for sl in row_blocks(len(codes), 4 * (d_out + len(q))):
        out[:, sl] = q @ codec.decode(codes[sl]).T
    return out


@contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """Run the enclosed faiss calls with `n` OpenMP threads (None: unchanged). OpenMP keeps this setting per
    calling thread, so faiss work in other threads is unaffected."""
    if n is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def check_fitted(ok: bool, name: str) -> None:
    """Raise a clear error when a codec that needs `fit` is used before it."""
    if not ok:
        raise RuntimeError(f"codec {name!r} must be fitted (fit(sample)) before use")
