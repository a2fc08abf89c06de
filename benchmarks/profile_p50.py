"""Single-query p50 of slimvec profiles over the peers benchmark's SciFact vectors, for before/after comparisons.

    PYTHONPATH=src python benchmarks/profile_p50.py binary-ivf-rescore binary-rescore --work /tmp/peers-cache
    PYTHONPATH=/path/to/old/tree/src python benchmarks/profile_p50.py ...   # the same on another tree

Reads the vectors `benchmarks/peers.py` caches under --work (run it once first), builds one collection per
profile under --work/p50 (reused), and times `Collection.search_many([q], vectors=..., k=10, mode="dense",
rerank="none", with_payload=False)` for every test query, --rounds times after one untimed pass: wall and
thread-CPU p50 in ms. Run two trees alternately (see BENCHMARKS.md) so load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profiles", nargs="+")
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"), help="benchmarks/peers.py's --work")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ef", default="", help="HNSW profiles: comma-separated efSearch values to time (and score "
                    "nDCG@10 / R@10 against exact), besides the collection's own")
    a = ap.parse_args()
    from peers import build_slimvec

    from slimvec import Collection
    from slimvec.evaluation.metrics import evaluate

    data = a.work / a.dataset
    queries = np.load(data / "queries.npy").astype(np.float32)
    import slimvec

    print(f"tree: {Path(slimvec.__file__).resolve().parents[1]}")
    qids, qrels = json.loads((data / "qids.json").read_text()), json.loads((data / "qrels.json").read_text())
    docs = np.load(data / "docs.npy")
    exact = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :10]
    ids = json.loads((data / "ids.json").read_text())
    print("| profile | efSearch | nDCG@10 | R@10 vs exact | p50 ms | CPU p50 ms |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for profile in a.profiles:
        d = a.work / "p50" / a.dataset / profile
        if not d.exists():
            build_slimvec(profile, d, np.load(data / "docs.npy"), json.loads((data / "ids.json").read_text()),
                          json.loads((data / "texts.json").read_text()))
        with Collection.open(d) as col:
            def search(v: np.ndarray) -> list:
                return col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none",
                                       with_payload=False)[0]

            search(queries[0])  # loads the retrievers
            index = getattr(col._retrievers["dense"], "index", None)
            own = getattr(index, "ef_search", None)
            for ef in [own] + [int(x) for x in a.ef.split(",") if x and own is not None]:
                if ef is not None:
                    index.ef_search = ef
                found = [[h.id for h in search(v)] for v in queries]  # untimed pass: warm-up, and the answers scored
                run = {qid: {i: 10.0 - r for r, i in enumerate(f)} for qid, f in zip(qids, found)}
                ndcg = evaluate(qrels, run, ("ndcg@10",))["ndcg@10"]
                recall = np.mean([len({ids[j] for j in e} & set(f)) / 10 for e, f in zip(exact, found)])
                wall, cpu = [], []
                for _ in range(a.rounds):
                    for v in queries:
                        c, t = time.thread_time(), time.perf_counter()
                        search(v)
                        wall.append(time.perf_counter() - t)
                        cpu.append(time.thread_time() - c)
                print(f"| {profile} | {ef if ef is not None else '-'} | {ndcg:.4f} | {recall:.3f} | "
                      f"{statistics.median(wall) * 1e3:.3f} | {statistics.median(cpu) * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
