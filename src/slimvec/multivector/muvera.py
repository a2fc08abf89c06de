"""MUVERA fixed-dimensional encodings (Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional
Encodings", NeurIPS 2024): one vector per document and per query whose inner product approximates MaxSim,
so any single-vector index (exact, HNSW, a codec) can pick multi-vector candidates.

Per repetition r (of `reps`): `ksim` random hyperplanes (SimHash) split the token space into B = 2^ksim
partitions; each token is projected to `dproj` dimensions by a random +-1/sqrt(dproj) matrix (identity when
dproj equals the token dimension, as the paper allows). A query block holds, per partition, the SUM of its
projected tokens there; a document block holds their MEAN, and with `fill_empty` a partition no document
token fell into takes the document token whose SimHash bits are nearest (Hamming) to that partition's.
Blocks are concatenated: reps * B * dproj dimensions. An optional final projection (`final_dim`) applies a
count sketch (each coordinate added, with a random sign, to one of `final_dim` outputs) to both sides.

<q_fde, d_fde> = sum_r sum_t <P q_t, mean of P d_u over d's tokens in q_t's partition>, which approaches
sum_t max_u <q_t, d_u> as partitions separate tokens; the candidates an FDE index returns are reranked with
exact MaxSim. Partitions are numbered by their plain bit pattern (the paper's Gray code is a relabelling of
the same partitions and changes no inner product).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class MuveraConfig:
    """FDE parameters; the random matrices follow from `seed`, so the config is all that needs saving."""

    dim: int  # token vector dimension
    reps: int = 20
    ksim: int = 5
    dproj: int = 16
    final_dim: int = 0  # 0: no final projection
    fill_empty: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.reps < 1 or not 0 <= self.ksim <= 16 or self.dproj < 1 or self.final_dim < 0:
            raise ValueError(f"invalid MUVERA parameters {self}: need dim, reps, dproj >= 1 and 0 <= ksim <= 16")

    @property
    def partitions(self) -> int:
        return 1 << self.ksim

    @property
    def fde_dim(self) -> int:
        """Output dimension: final_dim if set, else reps * 2^ksim * dproj."""
        return self.final_dim or self.reps * self.partitions * self.dproj

    @cached_property
    def _matrices(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        rng = np.random.default_rng(self.seed)
        out = []
        for _ in range(self.reps):
            planes = rng.standard_normal((self.dim, self.ksim)).astype(np.float32)
            proj = None if self.dproj == self.dim else (
                rng.choice(np.array([-1.0, 1.0], np.float32), size=(self.dim, self.dproj)) / np.sqrt(self.dproj)
            ).astype(np.float32)
            out.append((planes, proj))
        return out

    @cached_property
    def _sketch(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed + 1_000_003)
        full = self.reps * self.partitions * self.dproj
        return rng.integers(0, self.final_dim, full), rng.choice(np.array([-1.0, 1.0], np.float32), full)


def _partition_ids(x: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """SimHash bit pattern of each row as an integer in [0, 2^ksim)."""
    if planes.shape[1] == 0:
        return np.zeros(len(x), np.int64)
    bits = (x @ planes > 0).astype(np.int64)
    return bits @ (1 << np.arange(planes.shape[1], dtype=np.int64))


def _popcount(v: np.ndarray) -> np.ndarray:
    return np.unpackbits(v.astype(">u2").view(np.uint8).reshape(*v.shape, 2), axis=-1).sum(axis=-1)


def _final(cfg: MuveraConfig, fde: np.ndarray) -> np.ndarray:
    if not cfg.final_dim:
        return fde
    idx, sign = cfg._sketch
    out = np.zeros((len(fde), cfg.final_dim), np.float32)
    for row in range(len(fde)):  # np.add.at on a (n, full) index would allocate n x full int64
        out[row] = np.bincount(idx, weights=fde[row] * sign, minlength=cfg.final_dim)
    return out


def _encode(cfg: MuveraConfig, tokens: np.ndarray, offsets: np.ndarray, document: bool) -> np.ndarray:
    from scipy.sparse import csr_matrix  # here: importing scipy costs every CLI start ~0.2 s

    tokens = np.asarray(tokens, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[1] != cfg.dim:
        raise ValueError(f"token matrix has shape {tokens.shape}, expected (N, {cfg.dim})")
    n = len(offsets) - 1
    lens = np.diff(offsets)
    owner = np.repeat(np.arange(n), lens)
    B, P = cfg.partitions, cfg.dproj
    blocks = np.zeros((n, cfg.reps, B, P), np.float32)
    for r, (planes, proj) in enumerate(cfg._matrices):
        pid = _partition_ids(tokens, planes)
        y = tokens if proj is None else tokens @ proj
        slot = owner * B + pid
        # Per-(document, partition) sums as one sparse product (np.add.at is ~10x slower on a corpus).
        members = csr_matrix((np.ones(len(slot), np.float32), (slot, np.arange(len(slot)))),
                             shape=(n * B, len(slot)))
        sums = np.asarray(members @ y, dtype=np.float32)
        if document:
            counts = np.bincount(slot, minlength=n * B).astype(np.float32)
            sums /= np.maximum(counts, 1)[:, None]
            if cfg.fill_empty:
                empty = (counts.reshape(n, B) == 0) & (lens > 0)[:, None]
                for d in np.flatnonzero(empty.any(axis=1)):
                    lo, hi = offsets[d], offsets[d + 1]
                    parts = np.flatnonzero(empty[d])
                    ham = _popcount(pid[lo:hi, None] ^ parts[None, :])  # (doc tokens, empty partitions)
                    sums[d * B + parts] = y[lo + np.argmin(ham, axis=0)]
        blocks[:, r] = sums.reshape(n, B, P)
    return _final(cfg, blocks.reshape(n, -1))


def muvera_documents(cfg: MuveraConfig, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Document FDEs, (n_docs, cfg.fde_dim) float32, from concatenated tokens (N, dim) and offsets (n_docs + 1)."""
    return _encode(cfg, tokens, offsets, document=True)


def muvera_queries(cfg: MuveraConfig, queries: list[np.ndarray]) -> np.ndarray:
    """Query FDEs, (n_queries, cfg.fde_dim) float32, from a list of (q_i, dim) token arrays."""
    offsets = np.concatenate([[0], np.cumsum([len(q) for q in queries])]).astype(np.int64)
    tokens = np.concatenate(queries) if queries else np.zeros((0, cfg.dim), np.float32)
    return _encode(cfg, tokens, offsets, document=False)


class MuveraEncoder:
    """A multi-vector encoder whose dense vectors are MUVERA FDEs of its token vectors.

    The collection's vector file, codecs and indexes then hold FDEs (`cfg.fde_dim` dimensions), so any
    single-vector first stage picks multi-vector candidates; token vectors pass through unchanged.
    Query FDEs use the query side (sums per partition), document FDEs the document side (means, empty
    partitions filled).
    """

    kind = "multivector"

    def __init__(self, base: object, cfg: MuveraConfig) -> None:
        self.base, self.cfg = base, cfg
        self.name = base.name  # type: ignore[attr-defined]
        self.dim = cfg.fde_dim

    def __getattr__(self, attr: str) -> object:  # tokenizer, spans, max_tokens: the base model's
        return getattr(self.base, attr)

    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False,
                                     **kwargs: object) -> tuple[np.ndarray, list[np.ndarray]]:
        """(document FDEs (n, fde_dim) float32, token vectors [(n_i, dim)])."""
        _, toks = self.base.encode_documents_with_tokens(texts, progress=progress, **kwargs)  # type: ignore[attr-defined]
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in toks])]).astype(np.int64)
        flat = np.concatenate(toks) if offsets[-1] else np.zeros((0, self.cfg.dim), np.float32)
        return muvera_documents(self.cfg, flat, offsets), toks

    def encode_queries_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(query FDEs (n, fde_dim) float32, query token vectors [(n_i, dim)])."""
        toks = self.base.encode_query_tokens(texts)  # type: ignore[attr-defined]
        return muvera_queries(self.cfg, toks), toks

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Document FDEs, (n, fde_dim) float32."""
        return self.encode_documents_with_tokens(texts, progress)[0]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query FDEs, (n, fde_dim) float32."""
        return self.encode_queries_with_tokens(texts)[0]
