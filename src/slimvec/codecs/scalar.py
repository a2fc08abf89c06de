"""Scalar quantization with per-dimension calibrated ranges: int8 (one code per byte), int4 (two per byte)."""

from __future__ import annotations

import numpy as np

from slimvec.codecs.base import CodecState, as_f32, check_fitted, row_blocks

# Clipping candidates (percent cut at each tail). Each dimension keeps the one with the lowest squared
# error on the sample: heavy tails want little clipping at 8 bits, while 4 bits gains from clipping more.
_CLIP_PERCENTS = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)


def fit_ranges(sample: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (low, step) minimising the sample's squared error over the clipping candidates."""
    x = as_f32(sample)
    best_err = np.full(x.shape[1], np.inf)
    best_lo = np.zeros(x.shape[1], np.float32)
    best_step = np.ones(x.shape[1], np.float32)
    for pct in _CLIP_PERCENTS:
        lo, hi = np.percentile(x, [pct, 100.0 - pct], axis=0).astype(np.float32)
        step = np.maximum(hi - lo, 1e-12).astype(np.float32) / levels
        rec = lo + np.clip(np.rint((x - lo) / step), 0, levels) * step
        err = ((rec - x) ** 2).sum(axis=0)
        better = err < best_err
        best_err[better], best_lo[better], best_step[better] = err[better], lo[better], step[better]
    return best_lo, best_step


class _ScalarCodec:
    """Uniform per-dimension quantizer with 2**bits levels; code c decodes to low + c * step."""

    bits = 8
    name = ""

    def __init__(self) -> None:
        self.low: np.ndarray | None = None
        self.step: np.ndarray | None = None

    @classmethod
    def from_spec(cls, arg: str | None) -> _ScalarCodec:
        if arg:
            raise ValueError(f"{cls.name} takes no argument")
        return cls()

    @property
    def levels(self) -> int:
        return (1 << self.bits) - 1

    def fit(self, sample: np.ndarray) -> None:
        """Per-dimension ranges from the sample's quantiles."""
        self.low, self.step = fit_ranges(sample, self.levels)

    def _codes(self, x: np.ndarray) -> np.ndarray:
        check_fitted(self.low is not None, self.name)
        return np.clip(np.rint((as_f32(x) - self.low) / self.step), 0, self.levels).astype(np.uint8)

    def _levels_of(self, codes: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        """(dimension slice, uint8 level matrix) pairs covering the dimensions."""
        return [(slice(0, len(self.low)), np.asarray(codes, np.uint8))]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """uint8 codes, one per dimension."""
        return self._codes(x)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """low + code * step per dimension."""
        check_fitted(self.low is not None, self.name)
        out = np.empty((len(codes), len(self.low)), np.float32)
        for dims, lv in self._levels_of(codes):
            out[:, dims] = self.low[dims] + lv * self.step[dims]
        return out

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(q * step) @ codes.T + q @ low: the decoded inner product without materialising the decode."""
        check_fitted(self.low is not None, self.name)
        q = as_f32(queries)
        out = np.empty((len(q), len(codes)), np.float32)
        out[:] = (q @ self.low)[:, None]
        qs = q * self.step
        for sl in row_blocks(len(codes), 4 * (len(self.low) + len(q))):
            for dims, lv in self._levels_of(codes[sl]):
                out[:, sl] += qs[:, dims] @ lv.astype(np.float32).T
        return out

    def bytes_per_vector(self, dim_in: int) -> int:
        """bits * dim / 8, rounded up to whole bytes."""
        return -(-dim_in * self.bits // 8)

    def state(self) -> CodecState:
        check_fitted(self.low is not None, self.name)
        return {"codec": self.name, "params": {}, "arrays": {"low": self.low, "step": self.step}}

    @classmethod
    def from_state(cls, state: CodecState) -> _ScalarCodec:
        self = cls()
        self.low = np.asarray(state["arrays"]["low"], np.float32)
        self.step = np.asarray(state["arrays"]["step"], np.float32)
        return self


class Int8Codec(_ScalarCodec):
    """256 levels per dimension, one byte each."""

    bits = 8
    name = "int8"

    def faiss_index(self, dim: int):  # noqa: ANN201 - faiss.IndexScalarQuantizer
        """An empty faiss 8-bit scalar-quantizer index (inner product) decoding these codes identically.

        faiss decodes code c as vmin + (c + 0.5) / 255 * vdiff; vmin = low - step / 2 and vdiff = 255 * step
        make that low + c * step."""
        import faiss

        check_fitted(self.low is not None, self.name)
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(
            np.concatenate([self.low - self.step / 2, self.levels * self.step]), index.sq.trained
        )
        index.is_trained = True
        return index


class Int4Codec(_ScalarCodec):
    """16 levels per dimension; byte j holds dimension j (low nibble) and dimension j + ceil(d/2) (high)."""

    bits = 4
    name = "int4"

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Two 4-bit codes per byte, first half of the dimensions in the low nibbles."""
        c = self._codes(x)
        half = -(-c.shape[1] // 2)
        hi = np.zeros((len(c), half), np.uint8)
        hi[:, : c.shape[1] - half] = c[:, half:]
        return c[:, :half] | (hi << 4)

    def _levels_of(self, codes: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        # Splitting by halves (not interleaving) lets scoring use two contiguous matmuls, no reshuffle.
        d = len(self.low)
        half = -(-d // 2)
        codes = np.asarray(codes, np.uint8)
        return [(slice(0, half), codes & 0x0F), (slice(half, d), (codes >> 4)[:, : d - half])]
