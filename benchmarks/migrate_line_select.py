"""Choosing the per-query score line's settings (migrate/line.py) on training queries only: SciFact train and
NFCorpus dev, never test. For each set and pair, one migration is started as benchmarks/migrate.py starts it
(same documents, order, sample and seed) but keeping every sample pair; then, at the start of the migration
(the adapter serves the documents outside the sample: every run of session 7 had its worst point there),
nDCG@10 of adapter-served search over the old model's own is measured for every candidate line: references
picked at random (three seeds) or as k-means medoids, 64-512 of them (and all, the session 7 line), matching the
top 2.5-20% of the query's reference scores.

    P="--pair wordllama:all-MiniLM-L6-v2 --pair /tmp/slimvec-bench-distill/minilm-static-256:all-MiniLM-L6-v2 --pair all-MiniLM-L6-v2:bge-small-en-v1.5"
    SLIMVEC_CACHE=/tmp/migrate-cache PYTHONPATH=src python benchmarks/migrate_line_select.py \\
        --data ../shared/data/scifact:train $P --data ../shared/data/nfcorpus:dev --pair all-MiniLM-L6-v2:bge-small-en-v1.5

(`--pair` options apply to the `--data` before them.) The rule, fixed before the run: among the candidates
with at most MAX_COST_REFERENCES references (the line must leave the whole per-query addition under 0.1 ms,
benchmarks/migrate_line_cost.py), take the highest worst ratio over every (set, pair) row, a random pick counted
by its mean over the three seeds; ties (within 0.001) go to fewer references, then the shallower depth.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from migrate import _docs  # noqa: E402

from slimvec import Collection  # noqa: E402
from slimvec.encoders.cache import CachedEncoder  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.evaluation.metrics import evaluate  # noqa: E402
from slimvec.migrate import runner  # noqa: E402
from slimvec.migrate.line import Pick, ScoreLine, pick_references, reference_depth  # noqa: E402

COUNTS = (64, 128, 256, 512)
SHARES = (0.025, 0.05, 0.1, 0.2)
SEEDS = (0, 1, 2)
MAX_COST_REFERENCES = 256


def _ndcg(col, texts: list[str], ids: list[str], qrels: dict, vectors: np.ndarray | None = None) -> float:
    hits = col.search_many(texts, k=10, vectors=vectors)
    return evaluate(qrels, {q: {h.id: float(h.score) for h in hs} for q, hs in zip(ids, hits)}, ["ndcg@10"])["ndcg@10"]


def one_pair(data: Path, split: str, old_name: str, new_name: str, sample: int, work: Path) -> dict:
    """{(pick, count, share, seed): start nDCG@10 / old own} for one set and pair."""
    ds = load_dataset(data)
    qrels, queries = ds.qrels(split), ds.queries(split)
    ids = list(queries)
    texts = [queries[q] for q in ids]
    docs = _docs(data, ds.qrels("test"), None)  # the order migrate.py uses (full corpus: --docs not given)
    old_enc, new_enc = CachedEncoder(load_encoder(old_name)), CachedEncoder(load_encoder(new_name))
    path = work / "col"
    with Collection.create(path, model=old_enc.name, encoder=old_enc) as col:
        col.add(docs)
        old = _ndcg(col, texts, ids, qrels)
    record = runner.start(path, new_enc.name, sample=sample, encoder=new_enc, references=runner.MAX_SAMPLE)
    qn = np.asarray(new_enc.encode_queries(texts), np.float32)
    out: dict = {"old": old, "native": record["native_at_start"] / len(docs), "ratios": {}}
    with Collection.open(path, encoder=new_enc) as col:
        x, y = col.line.x, col.line.y
        for pick in (Pick.RANDOM, Pick.KMEANS):
            for count in (*COUNTS, len(x)):
                for seed in SEEDS if pick is Pick.RANDOM and count < len(x) else SEEDS[:1]:
                    keep = pick_references(x, count, pick, seed)
                    for share in SHARES:
                        col.line = ScoreLine(x[keep], y[keep], reference_depth(len(keep), share))
                        col.merge = "per-query"
                        out["ratios"][pick.value, count, share, seed] = _ndcg(col, texts, ids, qrels, qn) / old
            if len(x) <= max(COUNTS):
                break  # every count keeps the whole sample: k-means would pick it all again
    out["all"] = len(x)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="DIR:SPLIT (a training split)")
    ap.add_argument("--pair", action="append", required=True, help="OLD:NEW, for the --data before it")
    ap.add_argument("--sample", type=int, default=runner.MAX_SAMPLE)
    sets: list[tuple[str, list[str]]] = []
    for arg, value in zip(sys.argv[1::2], sys.argv[2::2]):
        if arg == "--data":
            sets.append((value, []))
        elif arg == "--pair":
            sets[-1][1].append(value)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results = []
    for spec, pairs in sets:
        data, split = spec.rsplit(":", 1)
        if split == "test":
            raise SystemExit("the line is chosen on training queries only: give a train or dev split")
        for pair in pairs:
            old_name, new_name = pair.split(":", 1)
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
                r = one_pair(Path(data), split, old_name, new_name, args.sample, Path(tmp))
            label = f"{Path(data).name} {split}: {Path(old_name).name} -> {new_name}"
            print(f"{label}: old {r['old']:.4f}, native at start {r['native']:.1%}, {time.perf_counter() - t0:.0f} s",
                  flush=True)
            results.append((label, r))
    keys = sorted({(p, c if c < r["all"] else "all", s) for _, r in results for p, c, s, _ in r["ratios"]},
                  key=lambda k: (k[0], k[1] if k[1] != "all" else 10**9, k[2]))

    def ratio(r: dict, pick: str, count, share: float) -> tuple[float, float]:
        c = r["all"] if count == "all" or count >= r["all"] else count
        got = [v for (p, n, s, _), v in r["ratios"].items() if p == pick and n == c and s == share]
        if not got:  # k-means skipped where the sample is smaller than every count: the same as all pairs
            got = [v for (p, n, s, _), v in r["ratios"].items() if p == Pick.RANDOM.value and n == c and s == share]
        return float(np.mean(got)), float(np.min(got))

    rows, best = [], None
    for pick, count, share in keys:
        means = [ratio(r, pick, count, share) for _, r in results]
        worst = min(m for m, _ in means)
        rows.append([pick, count, f"{share:.1%}", *[f"{m:.3f}" + (f" ({lo:.3f})" if lo < m - 5e-4 else "")
                                                   for m, lo in means], f"{worst:.3f}", f"{np.mean([m for m, _ in means]):.3f}"])
        if count != "all" and count <= MAX_COST_REFERENCES:
            key = (round(worst, 3), -count, -share)
            if best is None or key > best[0]:
                best = (key, pick, count, share)
    print_table(["pick", "references", "depth (share)", *[f"{label} (native {r['native']:.0%})" for label, r in results],
                 "worst", "mean"], rows)
    assert best is not None
    print(f"chosen (worst over rows, at most {MAX_COST_REFERENCES} references): pick {best[1]}, {best[2]} references, "
          f"top {best[3]:.1%}: worst {best[0][0]:.3f}")


if __name__ == "__main__":
    main()
