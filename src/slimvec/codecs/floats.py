"""Float codecs: float32, float16 and float8 (e4m3fn via ml_dtypes) with a global or per-vector scale."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from slimvec.codecs.base import CodecState, as_f32, check_fitted, score_by_decode

F8 = ml_dtypes.float8_e4m3fn
F8_MAX = float(ml_dtypes.finfo(F8).max)  # 448; e4m3fn has no inf, so larger values must be clipped, not cast
# Every uint8 code's float value: decoding by table lookup is much faster than an ml_dtypes cast.
_F8_TABLE = np.arange(256, dtype=np.uint8).view(F8).astype(np.float32)


class _PlainFloat:
    """Vectors stored as a narrower IEEE float type; nothing to fit."""

    name = ""
    dtype: type = np.float32

    @classmethod
    def from_spec(cls, arg: str | None) -> _PlainFloat:
        if arg:
            raise ValueError(f"{cls.name} takes no argument")
        return cls()

    def fit(self, sample: np.ndarray) -> None:
        """Nothing to learn."""

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Cast to the storage type."""
        return as_f32(x).astype(self.dtype)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Cast back to float32."""
        return np.asarray(codes).astype(np.float32)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Inner products with the decoded rows."""
        return score_by_decode(self, queries, codes)

    def bytes_per_vector(self, dim_in: int) -> int:
        """Item size times dimension."""
        return dim_in * np.dtype(self.dtype).itemsize

    def state(self) -> CodecState:
        return {"codec": self.name, "params": {}, "arrays": {}}

    @classmethod
    def from_state(cls, state: CodecState) -> _PlainFloat:
        return cls()


class Float32Codec(_PlainFloat):
    """Full precision: the reference point."""

    name = "float32"
    dtype = np.float32


class Float16Codec(_PlainFloat):
    """IEEE half precision: 2 bytes per dimension."""

    name = "float16"
    dtype = np.float16

    def faiss_index(self, dim: int):  # noqa: ANN201 - faiss.IndexScalarQuantizer
        """An empty faiss fp16 scalar-quantizer index (inner product) that stores these exact codes."""
        import faiss

        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
        return index


class Float8Codec:
    """e4m3fn, 1 byte per dimension, values scaled into the format's range.

    scale="global" (default): one factor fitted so the sample's largest |value| lands at the top of the
    e4m3 range; no per-vector bytes. scale="vector": each row scaled by its own max, factor stored as
    float16 in 2 extra bytes. On unit-norm MiniLM vectors both give the same error (e4m3's precision is
    relative, 3 mantissa bits, across 2^-6..448, so the scale only has to avoid overflow and subnormals),
    and global is 2 bytes cheaper: tests/test_codecs_floats.py measures both.
    """

    def __init__(self, scale: str = "global") -> None:
        if scale not in ("global", "vector"):
            raise ValueError("float8 scale must be 'global' or 'vector'")
        self.mode = scale
        self.name = "float8" if scale == "global" else "float8:vector"
        self.scale: float | None = None if scale == "global" else 1.0

    @classmethod
    def from_spec(cls, arg: str | None) -> Float8Codec:
        return cls(arg or "global")

    def fit(self, sample: np.ndarray) -> None:
        """Global mode: the scale mapping the sample's max |value| to the e4m3 maximum."""
        if self.mode == "global":
            peak = float(np.abs(as_f32(sample)).max()) if sample.size else 1.0
            self.scale = F8_MAX / (peak if peak > 0 else 1.0)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """uint8 e4m3 bit patterns, plus the float16 per-row scale bytes in vector mode."""
        check_fitted(self.scale is not None, self.name)
        x = as_f32(x)
        if self.mode == "global":
            return np.clip(x * self.scale, -F8_MAX, F8_MAX).astype(F8).view(np.uint8)
        peak = np.abs(x).max(axis=1, keepdims=True)
        inv = (np.where(peak > 0, peak, 1.0) / F8_MAX).astype(np.float16)
        body = np.clip(x / inv.astype(np.float32), -F8_MAX, F8_MAX).astype(F8).view(np.uint8)
        return np.concatenate([body, inv.view(np.uint8)], axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Table lookup of the e4m3 values, divided by the scale."""
        check_fitted(self.scale is not None, self.name)
        codes = np.asarray(codes, np.uint8)
        if self.mode == "global":
            return _F8_TABLE[codes] * np.float32(1.0 / self.scale)
        inv = np.ascontiguousarray(codes[:, -2:]).view(np.float16).astype(np.float32)
        return _F8_TABLE[codes[:, :-2]] * inv

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Inner products with the decoded rows."""
        return score_by_decode(self, queries, codes)

    def bytes_per_vector(self, dim_in: int) -> int:
        """One byte per dimension (+2 for the per-vector scale)."""
        return dim_in + (2 if self.mode == "vector" else 0)

    def state(self) -> CodecState:
        return {"codec": "float8", "params": {"mode": self.mode, "scale": self.scale}, "arrays": {}}

    @classmethod
    def from_state(cls, state: CodecState) -> Float8Codec:
        self = cls(state["params"]["mode"])
        self.scale = state["params"]["scale"]
        return self
