"""Choose an IVF index's nprobe, or an HNSW graph's efSearch, from the collection's own rows.

Recall at a fixed nprobe depends on the data (1M synthetic MiniLM rows, 4,096 lists: nprobe 32 gives R@10 0.969;
100k rows, 1,024 lists: the same nprobe gives 0.927), so a fixed profile value is either slow or inexact. Here
the smallest nprobe whose search (the same staged search a query runs: probed lists, then float32 rescoring when
the profile rescores) reaches the target mean Recall@10 against exact search is chosen, the "tune on a sample"
step of faiss's autotuning (`faiss.ParameterSpace`), on probe queries made from the collection's own rows
because user queries are not known at build time.

The probes are midpoints of two random stored rows, renormalised. A stored row itself is a poor probe: it sits
in its own list with its nearest neighbours, while a query sits between documents (MiniLM, 100k rows of
benchmarks/scale.py: a real query's cosine to its top document is 0.57 at the median, a row's to its nearest
other row 0.76). Measured there against 300 real held-out queries (R@10 at nprobe 8/16/32/64): real
0.821/0.889/0.934/0.971, midpoints 0.776/0.864/0.927/0.973, stored rows 0.897/0.930/0.958/0.975. Midpoints track
real queries and err on the side of probing more; stored rows would stop too early.

Both stay data-dependent: on the 1M-row scale set (benchmarks/scale.py's synthetic rows, 110 per real document)
midpoints reached R@10 0.961 at nprobe 8 where real queries got 0.925, so the calibrated profile fell to 0.938.
When the user has sample queries, `Collection.tune` (`slimvec tune`) keeps their vectors
(`store.probes`) and every later calibration runs on them instead of the midpoints (`queries=` below);
the choice records which probes it ran on.

HNSW's efSearch (candidates the graph walk keeps) is the same kind of knob: faiss's default 16 loses recall,
a fixed 128 spends twice the time the data needs. `calibrate_ef` picks the smallest of `EF_STEPS` reaching the
target on the same probes. On the MiniLM SciFact/NFCorpus vectors (benchmarks/peers.py's, M=32, efConstruction
128), probe Recall@10 at ef 48/64/128 was 0.982/0.990/0.995 and 0.990/0.993/0.998; real test queries 0.988/0.996/
0.999 and 0.961/0.975/0.992; nDCG@10 at ef 64 equalled exact search's on SciFact (0.6451) and was 0.3153 against
0.3164 on NFCorpus. So hnsw-f32 aims at probe recall 0.99 (BENCHMARKS.md, "HNSW efSearch from the rows").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from slimvec.codecs.base import as_f32
from slimvec.index.base import ROWS_PER_RESULT
from slimvec.index.flat import ExactIndex

K = 10
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)  # efSearch values calibrate_ef tries
# Recall@10 a calibration may leave below the best any nprobe gave, when that is below the target: about two
# standard errors of the probes' mean recall (2,560 neighbours), so the lists cost no more than the probes can see.
CEILING_SLACK = 0.01
SAMPLE = 256  # probe queries: Recall@10 to about +-0.01 (binomial over 2,560 neighbours)
SEED = 0
ROW_PROBES = "rows"  # _Choice.probes of a calibration on midpoints of stored rows (no user queries)


@dataclass(frozen=True)
class _Choice:
    """What a calibration reached: Recall@10 on `queries` probe queries, the target, the rows it ran over, and
    which probes: "rows" (midpoints of stored rows) or the digest of the user's queries (`store.probes`)."""

    recall: float
    target_recall: float
    queries: int
    rows: int  # rows in the index when calibrated
    probes: str = ROW_PROBES
    depth: int = K  # rows each probe query searched for, cut to its top K (absent in calibrations before it: K)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NprobeChoice(_Choice):
    """The calibrated IVF nprobe and what it reached (see _Choice)."""

    nprobe: int = 0


@dataclass(frozen=True)
class EfChoice(_Choice):
    """The calibrated HNSW efSearch and what it reached (see _Choice)."""

    ef_search: int = 0


def needs_calibration(done: dict[str, Any] | None, target_recall: float, rows: int, queries: Any) -> bool:
    """Whether an index calibrated as `done` (a `_Choice.to_dict()`, or None) must be calibrated again: never
    calibrated, for another target, on other probes than the user's `queries` now (a `store.probes.ProbeQueries`,
    or None for midpoints of rows), or the rows have doubled since."""
    probes = ROW_PROBES if queries is None else queries.digest
    return (done is None or done["target_recall"] != target_recall or done.get("probes", ROW_PROBES) != probes
            or rows >= 2 * done["rows"])


def settle(done: dict[str, Any] | None, target_recall: float, rows: int, queries: Any,
           saved: Callable[[], tuple[int, dict[str, Any]] | None],
           calibrate: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]] | None:
    """The (knob, calibration) an index calibrated as `done` should use now: None when `done` still holds
    (`needs_calibration`); else the one `saved()` reads from the index files, when another handle saved one
    that holds (the handle that ran `Collection.tune`, or calibrated after a commit: a handle seeing the new
    generation takes it instead of spending the same calibration again, 30 s at 1M rows); else `calibrate()`."""
    if not needs_calibration(done, target_recall, rows, queries):
        return None
    found = saved()
    if found is not None and not needs_calibration(found[1], target_recall, rows, queries):
        return found
    return calibrate()


def _recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean Recall@k of result rows `found` against `truth`, both (queries, k) int arrays."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (k * len(truth))


def probe_queries(vectors: np.ndarray, rows: int, sample: int = SAMPLE) -> np.ndarray:
    """(min(sample, rows), dim) float32 unit probe queries: midpoints of two distinct random stored rows among
    the first `rows` of `vectors` (seeded, so a calibration can be repeated)."""
    rng = np.random.default_rng(SEED)
    n = min(sample, rows)
    a = rng.integers(0, rows, n)
    b = (a + rng.integers(1, max(rows, 2), n)) % rows  # another row (the same one only when rows == 1)
    q = as_f32(np.asarray(vectors[np.sort(a)])) + as_f32(np.asarray(vectors[b[np.argsort(a)]]))
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    return (q / np.where(norms > 0, norms, 1)).astype(np.float32)


def _probes(vectors: np.ndarray, rows: int, sample: int, queries: Any) -> tuple[np.ndarray, str]:
    """The probe queries of a calibration and their name: the user's (`store.probes.ProbeQueries`) or midpoints."""
    if queries is not None:
        return as_f32(queries.vectors), queries.digest
    return probe_queries(vectors, rows, sample), ROW_PROBES


def calibrate_nprobe(index: Any, vectors: np.ndarray, target_recall: float, oversample: int | None,
                     sample: int = SAMPLE, queries: Any = None) -> NprobeChoice:
    """The smallest nprobe of `index` (a trained `CodecIVFIndex` holding rows 0..index.rows-1) whose search
    reaches `target_recall` mean Recall@10 on `probe_queries` against exact search over the rows. The search
    runs at the depth a k=10 collection search asks for (10 x `ROWS_PER_RESULT` rows, so 40 x oversample
    candidates are rescored), cut to its top 10, because the recall there is what a user gets: measured at 10
    rows, a codec whose candidates bound recall reads too low and more lists are probed than needed (PQ codes
    at 1M rows never reached 0.95 at 10 rows; BENCHMARKS.md, "Session 20: nprobe measured at a query's depth").

    Where no nprobe reaches the target (the codes, not the lists, bound recall: pq:16x8 codes at 1M rows), the
    smallest nprobe within `CEILING_SLACK` of the best recall any tried nprobe gave: with a fixed number of
    candidates rescored, more lists can even lower recall (more near codes crowd out the true neighbours), so
    probing every list would cost the most for no gain (BENCHMARKS.md "Session 21: inverted lists over PQ codes").

    vectors: (>= index.rows, dim) float32 rows (a memmap is fine); the exact truth is computed from them.
    oversample: the staged search's candidates per result (rows rescored from `vectors`), or None for the
    index's own scores. Tries powers of two, then bisects between the last that missed and the first that
    reached the goal.
    queries: the user's probe queries (a `store.probes.ProbeQueries`), else `probe_queries` midpoints.
    `index.nprobe` is left unchanged. Raises ValueError on an empty index.
    """
    from slimvec.index.compressed import staged_search

    n = index.rows
    if n == 0:
        raise ValueError("calibrate_nprobe needs a trained index holding rows")
    queries, probes = _probes(vectors, n, sample, queries)
    k, depth = min(K, n), min(K * ROWS_PER_RESULT, n)
    _, truth = ExactIndex.over(vectors[:n]).search(queries, k)

    def recall(nprobe: int) -> float:
        index.nprobe = nprobe
        if oversample:
            _, found = staged_search(queries, depth, oversample, index, vectors)
        else:
            _, found = index.search(queries, depth)
        return _recall(found[:, :k], truth, k)

    saved, tried, goal = index.nprobe, {}, target_recall
    try:
        nprobe, lo = 1, 0
        while True:
            tried[nprobe] = recall(nprobe)
            if tried[nprobe] >= goal or nprobe >= index.nlist:
                break
            lo, nprobe = nprobe, min(2 * nprobe, index.nlist)
        if tried[nprobe] < goal:  # unreachable: aim just below the best any number of lists gave
            goal = max(tried.values()) - CEILING_SLACK
            nprobe = min(p for p, r in tried.items() if r >= goal)
            lo = max((p for p in tried if p < nprobe), default=0)
        hi = nprobe
        while tried[hi] >= goal and hi - lo > max(1, hi // 8):
            mid = (lo + hi) // 2
            tried[mid] = recall(mid)
            lo, hi = (lo, mid) if tried[mid] >= goal else (mid, hi)
    finally:
        index.nprobe = saved
    return NprobeChoice(round(tried[hi], 4), target_recall, len(queries), n, probes, depth, nprobe=int(hi))


def calibrate_ef(index: Any, vectors: np.ndarray, target_recall: float, sample: int = SAMPLE,
                 queries: Any = None) -> EfChoice:
    """The smallest efSearch of EF_STEPS with which `index` (an `HnswIndex` holding rows 0..index.rows-1)
    reaches `target_recall` mean Recall@10 on `probe_queries` against exact search over the rows, searched for
    10 rows; the largest step with its recall if none does. Unlike nprobe, not at a query's 40 rows: faiss's
    graph walk widens with the rows asked, so at 40 the midpoint probes reached 0.99 with efSearch 48 on
    NFCorpus, where real queries then lost nDCG@10 (0.3134 against 0.3161 at the 64 chosen at 10 rows;
    BENCHMARKS.md "Session 20: nprobe measured at a query's depth"): the probes read high there, and 10 rows
    keeps the margin that held on SciFact and NFCorpus. vectors: (>= index.rows, dim) float32 rows (a memmap is fine); queries:
    as for `calibrate_nprobe`. `index.ef_search` is left unchanged. Raises ValueError on an empty index."""
    n = index.rows
    if n == 0:
        raise ValueError("calibrate_ef needs an index holding rows")
    queries, probes = _probes(vectors, n, sample, queries)
    k = min(K, n)
    _, truth = ExactIndex.over(as_f32(np.asarray(vectors[:n]))).search(queries, k)
    saved = index.ef_search
    try:
        for ef in EF_STEPS:
            index.ef_search = ef
            reached = _recall(index.search(queries, k)[1], truth, k)
            if reached >= target_recall:
                break
    finally:
        index.ef_search = saved
    return EfChoice(round(reached, 4), target_recall, len(queries), n, probes, ef_search=ef)
