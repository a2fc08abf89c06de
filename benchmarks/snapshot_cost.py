"""What a search's read transaction costs: lone-query p50 of hnsw-f32 over 5,000 scale-set rows, ids only and
with payload, on this tree; run it on two trees alternately to compare them (the load then hits both alike).

    PYTHONPATH=src python benchmarks/snapshot_cost.py new
    PYTHONPATH=/path/to/old/tree/src python benchmarks/snapshot_cost.py old

A search that reads the database after catching up (hits' text and metadata, a filter, a reranker, sections)
ranks and reads inside one SQLite read transaction (`Store.snapshot`), caught up again inside it; an ids-only
search skips both (`Collection.search_many`). Vectors: the first 5,000 rows and 300 queries of benchmarks/peers.py's
100k scale set (cached under --work). Thread CPU time per `search_many` call, three passes after one untimed pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from peers import _scale  # noqa: E402

from slimvec.collection import Collection  # noqa: E402
from slimvec.documents import Chunk, Document  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label", help="a name for this tree in the output line")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    args = ap.parse_args()
    data = _scale(100_000, args.work, 1000)
    docs = np.load(data / "docs.npy", mmap_mode="r")[: args.rows].astype(np.float32)
    queries = np.load(data / "queries.npy")[:300].astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="slimvec-snap-") as tmp:
        path = Path(tmp) / "c"
        with Collection.create(path, profile="hnsw-f32", model=MODEL, chunk_mode="whole",
                               encoder=load_encoder(MODEL)) as col:
            ds = [Document(f"r{i}", f"row {i}") for i in range(len(docs))]
            col.add_encoded(ds, [Chunk(x.id, 0, 0, len(x.text), x.text) for x in ds], docs)
        out = []
        with Collection.open(path) as col:
            for payload in (False, True):
                def search(v: np.ndarray, payload: bool = payload) -> None:
                    col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none", with_payload=payload)

                for v in queries:
                    search(v)
                times = []
                for _ in range(3):
                    for v in queries:
                        t0 = time.thread_time()
                        search(v)
                        times.append(time.thread_time() - t0)
                out.append(f"{'with payload' if payload else 'ids only'}: CPU p50 {statistics.median(times) * 1e6:.0f} us")
    print(f"{args.label}: " + "; ".join(out), flush=True)


if __name__ == "__main__":
    main()
