"""First BM25 query after each open of a collection: does a process rebuild the score matrix or load it?

    PYTHONPATH=src python benchmarks/bm25_reopen.py                       # this tree
    PYTHONPATH=/path/to/old/tree/src python benchmarks/bm25_reopen.py     # the same on another tree, for the ratio

Builds a `bm25` collection of SciFact's corpus (--docs, default all 5,183) in a temporary folder, closes it, then
--opens times opens it and times its first search alone (seconds). Rebuilding bm25s's score matrix is
O(collection); loading the one an earlier search saved is not (BENCHMARKS.md, "BM25 saved append-only").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--opens", type=int, default=4)
    a = ap.parse_args()
    import slimvec
    from slimvec import Collection, Document

    rows = read_jsonl(DATA / "scifact" / "corpus.jsonl", a.docs)
    docs = [Document(r["_id"], r["text"], r["title"]) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        with Collection.create(Path(tmp) / "c", profile="bm25") as col:
            col.add(docs)
        firsts = []
        for _ in range(a.opens):
            with Collection.open(Path(tmp) / "c") as col:
                t = time.perf_counter()
                col.search("cancer cells immune response", k=10)
                firsts.append(time.perf_counter() - t)
    print(f"tree: {Path(slimvec.__file__).resolve().parents[1]}; {len(docs)} documents")
    print("| open | first search s |\n| ---: | ---: |")
    for i, s in enumerate(firsts, 1):
        print(f"| {i} | {s:.3f} |")


if __name__ == "__main__":
    main()
