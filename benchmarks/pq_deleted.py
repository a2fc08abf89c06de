"""pq-rescore after deletes: a lone query's p50 as documents are deleted, beside faiss's IndexPQ in the same run.

    PYTHONPATH=src python benchmarks/pq_deleted.py --rows 100000 --queries 300 --deletes 0,10,100,1000,2000

The vectors are benchmarks/peers.py's scale set (`--rows` synthetic MiniLM rows, real held-out queries; cached
under --work). One `pq-rescore` collection is built as peers.py builds it; then, for each count in --deletes
(cumulative), that many documents are deleted (spread evenly over the rows, 2% at most, under the 30% that
triggers compaction) and every query is timed alone through `search_many` (dense, k=10, ids only). The peer
is a faiss IndexPQ (48 x 8 bits, inner product, trained on the same rows) searched for k*oversample rows per lone
query, without rescoring: the candidate scan slimvec's own search starts with. Deleted rows leave slimvec's PQ
candidate scan with a mask that faiss's IndexPQ cannot take (no ID selector): up to a quarter of the rows left
out are over-fetched from faiss and dropped (index/compressed.py `_PQ_OVERFETCH_SHARE`), more go to a numpy scan.
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
from peers import _ids, _scale, build_slimvec  # noqa: E402


def _p50(fn, queries: np.ndarray) -> float:  # noqa: ANN001 - a callable of one query vector
    for v in queries[:20]:
        fn(v)
    times = []
    for v in queries:
        t0 = time.perf_counter()
        fn(v)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--deletes", default="0,10,100,1000,2000", help="cumulative counts of deleted documents")
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    args = ap.parse_args()
    import faiss

    from slimvec.collection import Collection

    faiss.omp_set_num_threads(1)
    print(f"machine: {machine()}")
    data = _scale(args.rows, args.work, args.queries)
    docs = np.load(data / "docs.npy", mmap_mode="r")
    queries = np.load(data / "queries.npy")
    ids = _ids(data)
    peer = faiss.IndexPQ(docs.shape[1], 48, 8, faiss.METRIC_INNER_PRODUCT)
    peer.train(np.ascontiguousarray(docs[:: max(1, len(docs) // 20_000)], np.float32))
    peer.add(np.ascontiguousarray(docs, np.float32))
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        d = Path(tmp) / "pq"
        build_slimvec("pq-rescore", d, np.asarray(docs, np.float32), ids, [f"synthetic row {i}" for i in range(len(ids))])
        with Collection.open(d) as col:
            oversample = int(col.manifest["profile"].get("oversample") or 10)
            deleted = 0
            for want in (int(x) for x in args.deletes.split(",")):
                victims = [ids[i] for i in np.linspace(0, len(ids) - 1, want, dtype=np.int64)[deleted:]] if want else []
                if victims:
                    col.delete(victims)
                deleted = want

                def ours(v: np.ndarray) -> None:
                    col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none", with_payload=False)

                def theirs(v: np.ndarray) -> None:
                    peer.search(v[None], 10 * oversample)

                mine, faiss_ms = _p50(ours, queries), _p50(theirs, queries)
                rows.append([f"{deleted:,}", f"{mine:.2f}", f"{faiss_ms:.2f}", f"{mine / faiss_ms:.2f}x"])
                print(rows[-1], flush=True)
    print(f"{args.rows:,} rows, {len(queries)} lone queries, k=10")
    print_table(["documents deleted", "slimvec pq-rescore p50 ms", "faiss IndexPQ scan p50 ms", "ratio"], rows)


if __name__ == "__main__":
    main()
