"""Exact MaxSim (ColBERT late interaction, Khattab & Zaharia, SIGIR 2020), batched through BLAS.

Documents are given as one concatenated token matrix `tokens` (N_tokens, dim) with `offsets` (n_docs + 1,
int64): document i owns rows offsets[i]:offsets[i+1]. This is the layout of the token file, so scoring a
corpus or a candidate list needs no per-document Python loop: one matrix product (tokens x query tokens),
then `np.maximum.reduceat` over document segments, then a sum over query tokens.

score(q, d) = sum over query tokens t of max over document tokens u of <t, u>.
A document with no tokens scores 0 (nothing matches), never NaN.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

# Scratch bytes per block: bounds the (block tokens x all query tokens) float32 similarity matrix, so
# scoring hundreds of queries in one pass over a corpus stays within a few hundred MB.
_BLOCK_BYTES = 64 << 20


def _check(tokens: np.ndarray, offsets: np.ndarray, dim: int | None) -> np.ndarray:
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0:
        raise ValueError("offsets must be a 1-D array of n_docs + 1 token positions")
    if tokens.ndim != 2 or (dim is not None and tokens.shape[1] != dim):
        raise ValueError(f"token matrix has shape {tokens.shape}, expected (N, {dim})")
    if offsets[0] != 0 or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets must rise from 0 to the token count {len(tokens)}")
    return offsets


def maxsim_scores(queries: np.ndarray | list[np.ndarray], tokens: np.ndarray, offsets: np.ndarray,
                  decode: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """MaxSim of each query against each document.

    queries: one (q, dim) array or a list of (q_j, dim) arrays (float32 or float16; query token vectors).
    tokens: (N, dim) document token vectors, any float dtype (float16 memmaps are read block by block).
    offsets: (n_docs + 1,) int64 document boundaries into `tokens`.
    decode: when `tokens` holds codes (one row per token), maps a block of code rows to float32 vectors
    (a token codec's `decode`); scoring then equals MaxSim over the decoded tokens.
    Returns float32 scores, shape (n_docs,) for one query array, (n_queries, n_docs) for a list.
    Raises ValueError when shapes or offsets disagree.
    """
    single = isinstance(queries, np.ndarray)
    qlist = [queries] if single else list(queries)
    if not qlist:
        return np.zeros((0, len(offsets) - 1), np.float32)
    dim = int(qlist[0].shape[1])
    offsets = _check(tokens, offsets, None if decode else dim)
    n_docs = len(offsets) - 1
    out = np.zeros((len(qlist), n_docs), np.float32)
    # Queries and documents with no tokens score 0 everywhere: leave them out of the products.
    qs = [j for j, q in enumerate(qlist) if len(q)]
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    if len(nonempty) == 0 or not qs:
        return out[0] if single else out
    qcat = np.ascontiguousarray(np.concatenate([qlist[j] for j in qs], axis=0), dtype=np.float32)
    qbounds = np.cumsum([0] + [len(qlist[j]) for j in qs])[:-1]
    qrows = np.asarray(qs)[:, None]
    block_tokens = max(_BLOCK_BYTES // (4 * (len(qcat) + tokens.shape[1])), 1)
    # Blocks of whole documents, so each reduceat segment lies inside one block.
    d = 0
    while d < len(nonempty):
        first = offsets[nonempty[d]]
        e = int(np.searchsorted(offsets[nonempty + 1], first + block_tokens, side="right"))
        e = max(e, d + 1)
        docs = nonempty[d:e]
        lo, hi = int(offsets[docs[0]]), int(offsets[docs[-1] + 1])
        block = decode(np.asarray(tokens[lo:hi])) if decode else np.asarray(tokens[lo:hi], dtype=np.float32)
        sims = block @ qcat.T  # (block tokens, all query tokens)
        best = np.maximum.reduceat(sims, offsets[docs] - lo, axis=0)  # (docs, all query tokens)
        out[qrows, docs[None, :]] = np.add.reduceat(best, qbounds, axis=1).T
        d = e
    return out[0] if single else out


def maxsim_topk(query: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, k: int,
                allowed: np.ndarray | None = None,
                decode: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents of one query by exact MaxSim: (scores (k,) float32, doc indices (k,) int64), best first.

    allowed: optional boolean mask (n_docs,); disallowed documents never appear. Fewer than k results are
    padded with score -inf and index -1. Ties are broken by lower index.
    """
    scores = maxsim_scores(query, tokens, offsets, decode)
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf).astype(np.float32)
    return _top(scores, k, None if allowed is None else int(np.count_nonzero(allowed)))


def _top(scores: np.ndarray, k: int, n_ok: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best k of `scores` ((k,) float32, (k,) int64 indices), best first, ties by lower index; n_ok: how many
    scores are not -inf (disallowed), so fewer than k results are padded with -inf / -1."""
    n_ok = len(scores) if n_ok is None else n_ok
    k_eff = min(k, n_ok)
    out_s = np.full(k, -np.inf, np.float32)
    out_i = np.full(k, -1, np.int64)
    if k_eff == 0:
        return out_s, out_i
    part = np.argpartition(-scores, k_eff - 1)[:k_eff] if k_eff < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))][:k_eff]
    out_s[:k_eff], out_i[:k_eff] = scores[order], order
    return out_s, out_i


def gather(tokens: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
           dtype: np.dtype | type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The token rows of `docs` (document indices) as a new (tokens, offsets) pair, in the order given.

    dtype: None keeps the stored dtype (token codes); a float dtype (np.float32) converts while copying: each
    document's contiguous rows are cast straight into the output, in parallel over the machine's cores
    (numpy releases the GIL while casting), so a float16 token file costs one pass instead of a copy then a
    cast; float16 -> float32 is the hot path of a MaxSim rerank and is exact.
    """
    docs = np.asarray(docs, dtype=np.int64)
    lens = offsets[docs + 1] - offsets[docs]
    new_offsets = np.zeros(len(docs) + 1, np.int64)
    np.cumsum(lens, out=new_offsets[1:])
    out_dtype = np.dtype(tokens.dtype if dtype is None else dtype)
    if len(docs) == 0:
        return np.zeros((0, tokens.shape[1]), out_dtype), new_offsets
    if dtype is None:
        idx = np.repeat(offsets[docs] - new_offsets[:-1], lens) + np.arange(new_offsets[-1])
        return np.asarray(tokens[idx]), new_offsets
    out = np.empty((int(new_offsets[-1]), tokens.shape[1]), out_dtype)
    starts = offsets[docs]

    def copy(part: range) -> None:
        for j in part:
            out[new_offsets[j] : new_offsets[j + 1]] = tokens[starts[j] : starts[j] + lens[j]]

    parts = _split(new_offsets, _workers())
    if len(parts) == 1:
        copy(parts[0])
    else:
        list(_pool().map(copy, parts))
    return out, new_offsets


def _split(bounds: np.ndarray, n: int) -> list[range]:
    """Consecutive document ranges of about equal token counts, at most n of them."""
    cuts = np.searchsorted(bounds, np.linspace(0, bounds[-1], n + 1)[1:-1], side="left")
    edges = [0, *sorted({int(c) for c in cuts if 0 < c < len(bounds) - 1}), len(bounds) - 1]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _workers() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # no sched_getaffinity outside Linux
        return max(1, min(os.cpu_count() or 1, 8))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="slimvec-maxsim")


def maxsim_rows(query: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
                decode_into: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """MaxSim of one query against the documents `docs` of a float16 or float32 token matrix, read in place.

    query: (q, dim) query token vectors (cast to float32). tokens: (N, dim) float16/float32 rows (a memmap of
    the token file is read only where `docs` point). offsets: (n_docs + 1,) int64. docs: (m,) int64 document
    indices. Returns (m,) float32 scores equal to `maxsim_scores(query, *gather(tokens, offsets, docs,
    np.float32))` up to SGEMM summation order, without building that float32 copy: each worker thread copies
    its share of the rows into a reused block and scores it with one ONNX Runtime Cast + MatMul call
    (`multivector.kernel`). Raises ValueError for another token dtype or a query of the wrong width.

    decode_into: for a file of token codes (uint8 rows), the codec's `decode_into`: each worker decodes its
    share straight into its reused float32 block before the product, and the scores equal
    `maxsim_scores(query, *gather(tokens, offsets, docs), decode=codec.decode)` up to summation order.
    """
    from slimvec.multivector import kernel

    docs = np.asarray(docs, dtype=np.int64)
    out = np.zeros(len(docs), np.float32)
    query = np.asarray(query)
    if decode_into is None and (query.ndim != 2 or query.shape[1] != tokens.shape[1]):
        raise ValueError(f"query tokens have shape {query.shape}, expected (q, {tokens.shape[1]})")
    if decode_into is not None:
        if query.ndim != 2:
            raise ValueError(f"query tokens have shape {query.shape}, expected (q, dim)")
    elif tokens.dtype not in (np.float16, np.float32):
        raise ValueError(f"maxsim_rows reads float16 or float32 tokens, got {tokens.dtype}")
    lens = offsets[docs + 1] - offsets[docs]
    keep = np.flatnonzero(lens > 0)  # documents (or queries) without tokens score 0, as in maxsim_scores
    if len(keep) == 0 or len(query) == 0:
        return out
    q_t = np.ascontiguousarray(query.T, dtype=np.float32)
    starts, lens = offsets[docs[keep]], lens[keep]
    bounds = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(lens, out=bounds[1:])
    parts = _split(bounds, _workers())

    def score(part: range) -> np.ndarray:
        return kernel.maxsim_part(q_t, tokens, starts[part.start : part.stop], lens[part.start : part.stop],
                                  decode_into)

    scored = [score(parts[0])] if len(parts) == 1 else list(_pool().map(score, parts))
    out[keep] = np.concatenate(scored)
    return out


def rerank(query: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, candidates: np.ndarray,
           k: int, decode: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rescore candidate documents with exact MaxSim: top-k (scores float32, doc indices int64), best first.

    candidates: document indices from a first stage (-1 entries are ignored).
    """
    cand = np.asarray(candidates, dtype=np.int64)
    cand = cand[cand >= 0]
    if decode is None and tokens.dtype in (np.float16, np.float32):
        scores = maxsim_rows(query, tokens, offsets, cand)
        s, i = _top(scores, k)
        return s, np.where(i >= 0, cand[np.maximum(i, 0)], -1)
    sub_tokens, sub_offsets = gather(tokens, offsets, cand, None if decode else np.float32)
    s, i = maxsim_topk(query, sub_tokens, sub_offsets, k, decode=decode)
    return s, np.where(i >= 0, cand[np.maximum(i, 0)], -1)
