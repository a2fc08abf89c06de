"""Compact codes for token vectors.

Any single-vector codec of `slimvec.codecs` codes token vectors too (`int8`, `binary`, `rbinary:2`: one row
of codes per token); this module adds the code multi-vector systems use and the single-vector side lacks:

`residual:K:B` (ColBERTv2, Santhanam et al., NAACL 2022; PLAID, CIKM 2022): each token is its nearest of K
k-means centroids (faiss spherical k-means, fitted once on a sample) plus its residual quantized to B bits
(1 or 2) per dimension, with bucket cut-offs and bucket values fitted per dimension on the sample's
residuals (ColBERTv2 fits one set for all dimensions; per dimension costs 2^B floats per dimension and fits
anisotropic residuals better). Decoding adds the bucket values to the centroid and renormalises, as
ColBERTv2's decompression does. Code layout per token: centroid id (uint16 little endian, so K <= 65536),
then B bit planes of ceil(dim / 8) bytes.

`token_codec(spec)` builds either kind; scoring MaxSim over codes goes through `maxsim_scores(..., decode=
codec.decode)`, block by block.
"""

from __future__ import annotations

import numpy as np

from slimvec.codecs.base import Codec, CodecState, as_f32, check_fitted, make_codec, score_by_decode, spec_int

_SLICE = 2048  # tokens decoded per step by the nibble table


def _pair_joints() -> np.ndarray:
    """(65536,) uint16: for plane-0 byte p0 and plane-1 byte p1 at index p0 | p1 << 8, the joint codes of the
    byte's two 4-dimension groups (high nibbles, then low nibbles), laid out so that its little-endian bytes
    are [first group, second group]."""
    v = np.arange(65536, dtype=np.uint16)
    p0, p1 = v & 0xFF, v >> 8
    first = (p0 >> 4) | ((p1 >> 4) << 4)
    second = (p0 & 15) | ((p1 & 15) << 4)
    return np.ascontiguousarray((first | (second << 8)).astype("<u2"))


_PAIR_JOINTS = _pair_joints()


class ResidualCentroidCodec:
    """Nearest k-means centroid + B-bit per-dimension residual buckets (ColBERTv2 / PLAID token codes)."""

    name = "residual"

    def __init__(self, centroids: int = 1024, bits: int = 2, seed: int = 0, niter: int = 10) -> None:
        if not 1 <= centroids <= 65536:
            raise ValueError(f"residual codes need 1..65536 centroids, got {centroids}")
        if bits not in (1, 2, 3, 4):
            raise ValueError(f"residual codes take 1 to 4 bits per dimension, got {bits}")
        self.k, self.bits, self.seed, self.niter = centroids, bits, seed, niter
        self.centroids: np.ndarray | None = None
        self.cutoffs: np.ndarray | None = None  # (dim, 2^B - 1) ascending
        self.values: np.ndarray | None = None  # (dim, 2^B) reconstruction value of each bucket

    @classmethod
    def from_spec(cls, arg: str | None) -> ResidualCentroidCodec:
        """`residual`, `residual:K` or `residual:K:B`."""
        words = arg.split(":") if arg else []
        if len(words) > 2:
            raise ValueError("residual takes at most centroids and bits, e.g. residual:1024:2")
        return cls(*(spec_int(w, what) for w, what in zip(words, ("residual centroids", "residual bits"))))

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid (inner product) of each row of `x`: (n,) int64."""
        check_fitted(self.centroids is not None, self.name)
        return self._assign(as_f32(x))

    def with_bits(self, bits: int, sample: np.ndarray) -> ResidualCentroidCodec:
        """A codec sharing these centroids with `bits` residual bits, its buckets fitted on `sample`."""
        other = ResidualCentroidCodec(self.k, bits, self.seed, self.niter)
        other.centroids = self.centroids
        other._fit_buckets(as_f32(sample))
        return other

    def _assign(self, x: np.ndarray) -> np.ndarray:
        import faiss

        index = faiss.IndexFlatIP(self.centroids.shape[1])
        index.add(self.centroids)
        return index.search(x, 1)[1][:, 0].astype(np.int64)

    def fit(self, sample: np.ndarray) -> None:
        """Centroids by spherical k-means on `sample` (n, dim) unit rows, then per-dimension residual buckets."""
        import faiss

        x = as_f32(sample)
        k = min(self.k, len(x))
        km = faiss.Kmeans(x.shape[1], k, niter=self.niter, spherical=True, seed=self.seed,
                          max_points_per_centroid=256, verbose=False)
        km.train(x)
        self.centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        self._fit_buckets(x)

    def _fit_buckets(self, x: np.ndarray) -> None:
        res = x - self.centroids[self._assign(x)]
        levels = 1 << self.bits
        # Equal-mass buckets per dimension; each bucket decodes to its median residual.
        qs = np.linspace(0, 100, 2 * levels + 1)
        pct = np.percentile(res, qs, axis=0).T.astype(np.float32)  # (dim, 2 * levels + 1)
        self.cutoffs = np.ascontiguousarray(pct[:, 2:-1:2])
        self.values = np.ascontiguousarray(pct[:, 1::2])

    def encode(self, x: np.ndarray, assignment: np.ndarray | None = None) -> np.ndarray:
        """(n, 2 + B * ceil(dim / 8)) uint8 codes; `assignment` reuses `assign(x)` computed earlier."""
        check_fitted(self.centroids is not None, self.name)
        x = as_f32(x)
        ids = self._assign(x) if assignment is None else np.asarray(assignment, np.int64)
        res = x - self.centroids[ids]
        buckets = np.empty(res.shape, np.uint8)
        for j in range(res.shape[1]):
            buckets[:, j] = np.searchsorted(self.cutoffs[j], res[:, j])
        planes = [np.packbits((buckets >> b) & 1, axis=1) for b in range(self.bits)]
        head = ids.astype("<u2").view(np.uint8).reshape(len(x), 2)
        return np.concatenate([head, *planes], axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Unit-length reconstructions (n, dim) float32: centroid + bucket values, renormalised."""
        check_fitted(self.centroids is not None, self.name)
        codes = np.asarray(codes, np.uint8)
        dim = self.centroids.shape[1]
        w = -(-dim // 8)
        lut = self._nibble_table()
        if lut is not None:
            return self._decode_nibbles(codes, lut, w)
        ids = np.ascontiguousarray(codes[:, :2]).view("<u2")[:, 0].astype(np.int64)
        levels = 1 << self.bits
        # Flat index into the (dim, levels) value table: dimension * levels + bucket.
        idx = np.broadcast_to(np.arange(dim, dtype=np.int32) * levels, (len(codes), dim)).copy()
        for b in range(self.bits):
            plane = np.unpackbits(codes[:, 2 + b * w : 2 + (b + 1) * w], axis=1, count=dim)
            idx += plane.astype(np.int32) << b
        y = self.centroids[ids]
        y += np.take(self.values.ravel(), idx)
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _nibble_table(self) -> np.ndarray | None:
        """(dim / 4 * 16^B, 4) float32 residual values of every 4-dimension group for every joint code of its B
        4-bit nibbles (one per bit plane), or None when the table would not pay (dim % 8 != 0 or B > 3).

        Why: a query reranks ~300 candidates x ~80 pooled tokens; unpacking bits one dimension at a time and
        indexing a (dim, 2^B) table cost ~10x the MaxSim products. With the table, each token's residual is
        dim / 4 row lookups of 4 floats (PLAID's decompression does the same with a per-byte lookup)."""
        lut = getattr(self, "_lut", None)
        if lut is not None and lut[0] is self.values:
            return lut[1]
        dim = self.centroids.shape[1]
        table = None
        if dim % 8 == 0 and self.bits <= 3:
            joint = np.arange(16 ** self.bits)
            bucket = np.zeros((len(joint), 4), np.int64)  # bucket of each of the group's 4 dimensions
            for b in range(self.bits):
                nibble = (joint >> (4 * b)) & 15
                for t in range(4):  # np.packbits is big-endian: the nibble's high bit is the group's first dim
                    bucket[:, t] |= ((nibble >> (3 - t)) & 1) << b
            vals = self.values.reshape(dim // 4, 4, 1 << self.bits)
            table = np.ascontiguousarray(vals[:, np.arange(4)[None, :], bucket].reshape(-1, 4), np.float32)
        self._lut = (self.values, table)
        return table

    def _decode_nibbles(self, codes: np.ndarray, table: np.ndarray, w: int,
                        out: np.ndarray | None = None) -> np.ndarray:
        n, dim = len(codes), self.centroids.shape[1]
        y = np.empty((n, dim), np.float32) if out is None else out[:n]
        # Slices of _SLICE tokens: the temporaries stay in cache and are reused by malloc instead of being
        # page-faulted in fresh for every block (measured ~1.5x faster than one pass over 24k tokens).
        for s in range(0, n, _SLICE):
            self._decode_slice(codes[s : s + _SLICE], table, w, y[s : s + _SLICE])
        return y

    def _decode_slice(self, codes: np.ndarray, table: np.ndarray, w: int, y: np.ndarray) -> None:
        n, dim, groups = len(codes), self.centroids.shape[1], 2 * w
        ids = np.ascontiguousarray(codes[:, :2]).view("<u2")[:, 0]
        # Joint code of each 4-dimension group: nibble of plane b at bits 4b..4b+3 (uint8 while B <= 2).
        if self.bits == 2:  # both groups of a byte position from one lookup of its two plane bytes
            pair = codes[:, 2 : 2 + w].astype(np.uint16)
            pair |= codes[:, 2 + w : 2 + 2 * w].astype(np.uint16) << 8
            joint = _PAIR_JOINTS[pair].view(np.uint8)
        else:
            joint = np.zeros((n, groups), np.uint8 if self.bits <= 2 else np.uint16)
            for b in range(self.bits):
                plane = codes[:, 2 + b * w : 2 + (b + 1) * w].astype(joint.dtype)
                joint[:, 0::2] |= (plane >> 4) << (4 * b)
                joint[:, 1::2] |= (plane & 15) << (4 * b)
        rows = joint.astype(np.intp)
        rows += self._group_base(groups)
        # Rows taken as one 16-byte (complex128) / one dim-float item each: numpy's take then copies whole rows
        # instead of looping per float (3-4x faster than fancy indexing here; take's out= is slower still).
        res = np.take(table.view(np.complex128)[:, 0], rows.ravel()).view(np.float32).reshape(n, dim)
        cen = np.take(self._centroid_items(), ids).view(np.float32).reshape(n, dim)
        np.add(res, cen, out=y)
        y /= np.maximum(np.sqrt(np.einsum("ij,ij->i", y, y)), 1e-12)[:, None]

    def _group_base(self, groups: int) -> np.ndarray:
        """First table row of each 4-dimension group: (groups,) intp."""
        return np.arange(groups, dtype=np.intp) * (16 ** self.bits)

    def _centroid_items(self) -> np.ndarray:
        """The centroids as (k,) opaque items of dim float32 each (see _decode_nibbles)."""
        items = getattr(self, "_items", None)
        if items is None or items[0] is not self.centroids:
            c = np.ascontiguousarray(self.centroids, np.float32)
            items = (self.centroids, c.view(np.dtype((np.void, 4 * c.shape[1])))[:, 0])
            self._items = items
        return items[1]

    def decode_into(self, codes: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`decode(codes)` written into out[:len(codes)] ((>= n, dim) float32, C-contiguous): the MaxSim
        kernel's reused buffer, so no fresh array is page-faulted in per query. Returns that view. Raises
        ValueError when `out` has fewer rows than codes or not `dim` columns (e.g. a query of another width)."""
        check_fitted(self.centroids is not None, self.name)
        codes = np.asarray(codes, np.uint8)
        dim = self.centroids.shape[1]
        if out.ndim != 2 or out.shape[1] != dim or len(out) < len(codes) or out.dtype != np.float32:
            raise ValueError(f"decode_into needs a float32 buffer of >= {len(codes)} rows x {dim} columns "
                             f"(the codes' dimension), got {out.dtype} {out.shape}")
        lut = self._nibble_table()
        if lut is None:
            out[: len(codes)] = self.decode(codes)
            return out[: len(codes)]
        return self._decode_nibbles(codes, lut, -(-self.centroids.shape[1] // 8), out)

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(m, n) inner products of queries with the decoded tokens."""
        return score_by_decode(self, queries, codes)

    def bytes_per_vector(self, dim_in: int) -> int:
        """2 + B * ceil(dim / 8)."""
        return 2 + self.bits * -(-dim_in // 8)

    def state(self) -> CodecState:
        check_fitted(self.centroids is not None, self.name)
        return {"codec": self.name, "params": {"centroids": self.k, "bits": self.bits, "seed": self.seed,
                                               "niter": self.niter},
                "arrays": {"centroids": self.centroids, "cutoffs": self.cutoffs, "values": self.values}}

    @classmethod
    def from_state(cls, state: CodecState) -> ResidualCentroidCodec:
        p, a = state["params"], state["arrays"]
        self = cls(p["centroids"], p["bits"], p["seed"], p["niter"])
        self.centroids = np.asarray(a["centroids"], np.float32)
        self.cutoffs = np.asarray(a["cutoffs"], np.float32)
        self.values = np.asarray(a["values"], np.float32)
        return self


def token_codec(spec: str) -> Codec:
    """A fresh token codec: `residual[:K[:B]]` or any `slimvec.codecs` spec (`int8`, `binary`, `rbinary:2`)."""
    return make_codec(spec)


def fit_token_codec(spec: str, tokens: np.ndarray, sample: int = 100_000, seed: int = 0) -> Codec:
    """`token_codec(spec)` fitted once on up to `sample` token rows drawn from `tokens` (N, dim)."""
    codec = token_codec(spec)
    rng = np.random.default_rng(seed)
    n = len(tokens)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if n > sample else np.arange(n)
    codec.fit(np.asarray(tokens[rows], dtype=np.float32))
    return codec
