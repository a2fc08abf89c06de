"""Cross-encoder reranking on full BEIR SciFact and NFCorpus (test split): does it pay on a 2-core machine?

    nice -n 10 env PYTHONPATH=src .venv/bin/python benchmarks/rerank_cross_encoder.py --work /tmp/models-ce

First stages `dense`, `hybrid` (dense + BM25) and `multivector` (MaxSim over all-MiniLM-L6-v2 token vectors)
of the `hybrid-multivector` collections built for the fusion benchmark (profile hybrid-multivector over
minilm-tokens, chunk mode whole: one chunk per document), each alone and with its top 20 / top 50 reranked by
the default `cross-encoder` reranker (ms-marco-MiniLM-L-12-v2, int8 ONNX, `slimvec.encoders.onnx`). Every run
goes through `Collection.search_many` one query at a time, the reranker passed as an object that keeps pair
scores on disk (SQLite, keyed by query text and chunk row): top 20 is a subset of top 50 and stages share
pairs, so each pair is scored once and an interrupted run resumes where it stopped.

Reported: nDCG@10 before / after, the gain with a paired-bootstrap 95% confidence interval over queries
(10,000 resamples, seed 0), the ms per query the reranker costs (pairs scored per query x the measured ms per
pair while filling the cache), and, on the first --timing-queries queries, the measured end-to-end search
latency without the cache (first stage alone vs first stage + uncached cross-encoder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, paired_bootstrap, print_table

SOURCES = Path("/tmp/fusion-hmv")
MODES = ("dense", "hybrid", "multivector")
DEPTHS = (20, 50)
K = 10
RESAMPLES = 10_000


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PairCache:
    """A Reranker wrapping the cross-encoder, with every (query, chunk row) score kept in SQLite."""

    needs_text = True
    needs_vectors = False

    def __init__(self, path: Path, model: str | None = None) -> None:
        from slimvec.search.rerank import cross_encoder

        self.inner = cross_encoder(model)
        self.name = f"cached-{self.inner.name}"
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS pairs (query TEXT, row INTEGER, score REAL, "
                        "PRIMARY KEY (query, row))")
        self.db.execute("CREATE TABLE IF NOT EXISTS cost (pairs INTEGER, seconds REAL)")
        self.pairs = 0
        self.seconds = 0.0

    def load(self) -> None:
        self.inner.load()

    def score(self, query, candidates) -> np.ndarray:
        from slimvec.search.rerank import Candidates

        key = hashlib.sha1(query.text.encode()).hexdigest()
        rows = [int(r) for r in candidates.rows]
        known = dict(self.db.execute(f"SELECT row, score FROM pairs WHERE query = ? AND row IN "
                                     f"({','.join('?' * len(rows))})", [key, *rows]))
        missing = [i for i, r in enumerate(rows) if r not in known]
        if missing:
            sub = Candidates(np.arange(len(missing)), np.ones(len(missing), np.int64),
                             candidates.rows[missing], [candidates.texts[i] for i in missing])
            t = time.perf_counter()
            fresh = self.inner.score(query, sub)
            spent = time.perf_counter() - t
            self.db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?)",
                                [(key, rows[i], float(s)) for i, s in zip(missing, fresh)])
            self.db.execute("INSERT INTO cost VALUES (?, ?)", (len(missing), spent))
            self.db.commit()
            known.update({rows[i]: float(s) for i, s in zip(missing, fresh)})
        return np.asarray([known[r] for r in rows], np.float32)

    def cost(self) -> tuple[int, float]:
        """(pairs scored, seconds) over every run that filled this cache."""
        n, s = self.db.execute("SELECT COALESCE(SUM(pairs), 0), COALESCE(SUM(seconds), 0) FROM cost").fetchone()
        return int(n), float(s)


def _rerank(reranker: object, depth: int) -> dict[str, object]:
    """Search options for the first stage alone (depth 0) or reranked at `depth`: a rerank depth is given only
    where something reranks, since a search refuses one that would change nothing."""
    return {"rerank": "none"} if depth == 0 else {"rerank": reranker, "rerank_depth": max(depth, K)}


def run_dataset(name: str, work: Path, timing_queries: int, max_queries: int | None = None,
                deadline: float = float("inf")) -> None:
    """Every query's first stages, then reranked top 20 for all queries, then top 50, in a seeded random
    query order: when `deadline` (time.time()) stops the run early, the queries done are a random sample."""
    from slimvec.collection import Collection
    from slimvec.evaluation.datasets import load_dataset

    src = SOURCES / f"{name}-hybrid-multivector"
    dst = work / f"{name}-hybrid-multivector"
    if not (dst / "done").exists():  # a private copy: the source collections belong to another benchmark
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
    ds = load_dataset(DATA / name)
    queries, qrels = ds.queries("test"), ds.qrels("test")
    if max_queries:  # smoke runs only: the figures in BENCHMARKS.md use every test query
        queries = dict(list(queries.items())[:max_queries])
        qrels = {q: qrels[q] for q in queries}
    order = list(queries)
    np.random.default_rng(0).shuffle(order)
    col = Collection.open(dst)
    cache = PairCache(work / f"{name}-pairs.sqlite")
    cache.load()
    runs: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    for depth in (0, *DEPTHS):  # top 20 for every query before any top 50: 20 is the cheaper, likelier choice
        for n, qid in enumerate(order):
            if depth and time.time() > deadline:
                _log(f"{name}: deadline reached at top {depth}, {n}/{len(order)} queries")
                break
            for mode in MODES:
                hits = col.search_many([queries[qid]], k=K, mode=mode, **_rerank(cache, depth))[0]
                runs.setdefault(f"{mode}@{depth}", {})[qid] = {h.id: float(h.score) for h in hits}
            if depth and n % 10 == 0:
                done, secs = cache.cost()
                _log(f"{name} top {depth}: {n + 1}/{len(order)} queries, {done} pairs scored in {secs:.0f} s, "
                     f"{time.perf_counter() - t0:.0f} s this run")
    pairs, secs = cache.cost()
    timing = time_uncached(col, [queries[q] for q in order[:timing_queries]]) if timing_queries else []
    (work / f"{name}-runs.json").write_text(json.dumps({"runs": runs, "timing": timing, "pairs": pairs,
                                                        "seconds": secs, "queries": len(order)}))
    col.close()


def table_rows(name: str, work: Path) -> tuple[list[list[object]], list[list[object]]]:
    """(quality rows, timing rows) of one dataset's saved runs; each depth on the queries it covered."""
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.metrics import evaluate_per_query

    res = json.loads((work / f"{name}-runs.json").read_text())
    qrels = load_dataset(DATA / name).qrels("test")
    ms_per_pair = 1000 * res["seconds"] / max(1, res["pairs"])
    rows: list[list[object]] = []
    for mode in MODES:
        for depth in DEPTHS:
            after_run = res["runs"].get(f"{mode}@{depth}", {})
            qids = sorted(after_run)
            if not qids:
                rows.append([name, mode, depth, f"0/{res['queries']}", "", "", "", "", ""])
                continue
            sub = {q: qrels[q] for q in qids}
            before = evaluate_per_query(sub, {q: res["runs"][f"{mode}@0"][q] for q in qids}, ["ndcg@10"])["ndcg@10"]
            after = evaluate_per_query(sub, after_run, ["ndcg@10"])["ndcg@10"]
            b, a = np.asarray([before[q] for q in qids]), np.asarray([after[q] for q in qids])
            gain, lo, hi = paired_bootstrap(b, a, RESAMPLES)
            rows.append([name, mode, depth, f"{len(qids)}/{res['queries']}", f"{b.mean():.4f}", f"{a.mean():.4f}",
                         f"{gain:+.4f}", f"[{lo:+.4f}, {hi:+.4f}]", f"{depth * ms_per_pair:,.0f}"])
    timing = [[name, f"{ms_per_pair:.0f}", *t] for t in res["timing"]]
    return rows, timing


def time_uncached(col, texts: list[str]) -> list[list[object]]:
    """p50 search ms of the dense first stage alone and with an uncached cross-encoder at each depth."""
    from slimvec.search.rerank import cross_encoder

    ce = cross_encoder(None)
    ce.load()
    out = []
    for depth in (0, *DEPTHS):
        secs = []
        for text in texts:
            t = time.perf_counter()
            col.search_many([text], k=K, mode="dense", **_rerank(ce, depth))
            secs.append(time.perf_counter() - t)
        out.append([depth, round(float(np.percentile(np.asarray(secs) * 1000, 50)), 1),
                    round(float(np.mean(secs) * 1000), 1)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/models-ce"))
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--timing-queries", type=int, default=5)
    ap.add_argument("--max-queries", type=int, default=None, help="smoke runs only")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop reranking new queries after this many minutes (the rest reported as not covered)")
    ap.add_argument("--report-only", action="store_true", help="print the tables of saved runs")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * args.minutes if args.minutes else float("inf")
    if not args.report_only:
        for name in args.datasets:
            run_dataset(name, args.work, args.timing_queries, args.max_queries, deadline)
    print(f"Machine: {machine()}\n")
    rows, timings = [], []
    for name in args.datasets:
        if (args.work / f"{name}-runs.json").exists():
            r, t = table_rows(name, args.work)
            rows, timings = rows + r, timings + t
    print_table(["dataset", "first stage", "reranked top", "queries", "nDCG@10 before", "after", "gain",
                 "95% CI (paired bootstrap)", "rerank ms/query (est.)"], rows)
    print()
    print_table(["dataset", "ms per pair (cache fill)", "reranked top (0 = none)", "search p50 ms", "mean ms"],
                timings)


if __name__ == "__main__":
    main()
