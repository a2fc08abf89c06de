"""Product quantization via faiss: M sub-vectors, each coded by one of 2**nbits centroids."""

from __future__ import annotations

import warnings

import numpy as np

from slimvec.codecs.base import BLOCK_BYTES, CodecState, as_f32, check_fitted, faiss_threads, spec_int

_PARALLEL_FIT_ROWS = 20000


class PQCodec:
    """faiss ProductQuantizer; scoring sums per-query inner-product tables (asymmetric distance)."""

    def __init__(self, m: int, nbits: int = 8) -> None:
        if m < 1 or not 1 <= nbits <= 16:
            raise ValueError("pq needs m >= 1 sub-quantizers and 1..16 bits each")
        self.m, self.nbits = m, nbits
        self.name = f"pq:{m}x{nbits}"
        self.centroids: np.ndarray | None = None  # (m, 2**nbits, d / m)
        self._pq = None

    @classmethod
    def from_spec(cls, arg: str | None) -> PQCodec:
        if not arg:
            raise ValueError("pq needs MxBITS, e.g. pq:48x8")
        m, x, nbits = arg.partition("x")
        return cls(spec_int(m, "pq sub-quantizers M"), spec_int(nbits, "pq bits", 1, 16) if x else 8)

    @property
    def dim(self) -> int:
        check_fitted(self.centroids is not None, self.name)
        return self.m * self.centroids.shape[2]

    def _faiss_pq(self):  # noqa: ANN202 - faiss.ProductQuantizer
        if self._pq is None:
            import faiss

            check_fitted(self.centroids is not None, self.name)
            self._pq = faiss.ProductQuantizer(self.dim, self.m, self.nbits)
            faiss.copy_array_to_vector(self.centroids.ravel(), self._pq.centroids)
        return self._pq

    def check_dim(self, dim_in: int) -> None:
        """ValueError when `dim_in` does not split into m sub-vectors of equal length."""
        if dim_in % self.m:
            raise ValueError(f"pq: dimension {dim_in} is not a multiple of m={self.m}")

    def fit(self, sample: np.ndarray) -> None:
        """k-means per sub-space (faiss)."""
        import faiss

        x = as_f32(sample)
        self.check_dim(x.shape[1])
        ksub = 1 << self.nbits
        if len(x) < ksub:
            raise ValueError(f"pq:{self.m}x{self.nbits} needs at least {ksub} training vectors, got {len(x)}")
        if len(x) < 39 * ksub:
            warnings.warn(
                f"pq: {len(x)} training vectors for {ksub} centroids; codes may be poor", stacklevel=2
            )
        pq = faiss.ProductQuantizer(x.shape[1], self.m, self.nbits)
        pq.cp.min_points_per_centroid = 1  # the shortfall is warned about once above, not once per sub-space
        # Small k-means runs are dominated by OpenMP start-up and spinning: on a busy 2-core machine a
        # 600-row fit took 15 s with 2 threads and 0.5 s with one.
        with faiss_threads(1 if len(x) < _PARALLEL_FIT_ROWS else None):
            pq.train(x)
        self.centroids = faiss.vector_to_array(pq.centroids).reshape(self.m, ksub, -1).astype(np.float32)
        self._pq = pq

    def encode(self, x: np.ndarray) -> np.ndarray:
        """faiss codes: (n, ceil(m * nbits / 8)) uint8."""
        return self._faiss_pq().compute_codes(as_f32(x))

    def indices(self, codes: np.ndarray) -> np.ndarray:
        """(n, m) centroid numbers from packed codes (faiss packs nbits-wide fields, low bits first)."""
        codes = np.asarray(codes, np.uint8)
        if self.nbits == 8:
            return codes.astype(np.intp)
        bits = np.unpackbits(codes, axis=1, bitorder="little")[:, : self.m * self.nbits]
        weights = 1 << np.arange(self.nbits)
        return (bits.reshape(len(codes), self.m, self.nbits).astype(np.intp) * weights).sum(axis=2)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Concatenated centroids."""
        check_fitted(self.centroids is not None, self.name)
        idx = self.indices(codes)
        return self.centroids[np.arange(self.m), idx].reshape(len(idx), -1)

    def tables(self, queries: np.ndarray) -> np.ndarray:
        """(m_queries, m, 2**nbits) inner products of each query sub-vector with each centroid."""
        check_fitted(self.centroids is not None, self.name)
        q = as_f32(queries).reshape(len(queries), self.m, -1)
        return np.einsum("qjd,jkd->qjk", q, self.centroids, optimize=True)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Sum over sub-spaces of table[query, j, code_j] (gathered in blocks of rows)."""
        tab = self.tables(queries)
        nq, ksub = len(tab), tab.shape[2]
        flat = tab.reshape(nq, -1)
        out = np.empty((nq, len(codes)), np.float32)
        offsets = np.arange(self.m) * ksub
        step = max(1, BLOCK_BYTES // (4 * self.m * max(1, nq)))
        for start in range(0, len(codes), step):
            idx = self.indices(codes[start : start + step]) + offsets
            out[:, start : start + len(idx)] = flat[:, idx].sum(axis=2)
        return out

    def faiss_index(self, dim: int):  # noqa: ANN201 - faiss.IndexPQ
        """An empty faiss IndexPQ (inner product) sharing this quantizer; add codes with add_sa_codes."""
        import faiss

        index = faiss.IndexPQ(self.dim, self.m, self.nbits, faiss.METRIC_INNER_PRODUCT)
        index.pq = self._faiss_pq()
        index.is_trained = True
        return index

    def bytes_per_vector(self, dim_in: int) -> int:
        """ceil(m * nbits / 8)."""
        return -(-self.m * self.nbits // 8)

    def state(self) -> CodecState:
        check_fitted(self.centroids is not None, self.name)
        return {
            "codec": "pq",
            "params": {"m": self.m, "nbits": self.nbits},
            "arrays": {"centroids": self.centroids},
        }

    @classmethod
    def from_state(cls, state: CodecState) -> PQCodec:
        self = cls(state["params"]["m"], state["params"]["nbits"])
        self.centroids = np.asarray(state["arrays"]["centroids"], np.float32)
        return self
