"""Ingest speed of a BM25-only collection (profile `bm25`) against bm25s indexing the same texts, in one run.

A `bm25` collection keeps no dense vectors; until session 12 its add still ran the dense model over every chunk
and dropped the vectors. This prints docs/s for each, and the ratio slimvec / bm25s.

    python benchmarks/bm25_ingest.py [--dataset scifact] [--limit 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, Timer, machine, peak_rss_mb, print_table, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--limit", type=int, default=500)
    args = ap.parse_args()
    import bm25s

    from slimvec import Collection, Document

    rows = read_jsonl(DATA / args.dataset / "corpus.jsonl", args.limit)
    docs = [Document(r["_id"], r["text"], r.get("title", "")) for r in rows]
    texts = [f"{d.title} {d.text}" for d in docs]
    with Timer() as peer:
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        with Timer() as ours, Collection.create(Path(tmp) / "c", profile="bm25") as col:
            col.add(docs)
    n = len(docs)
    print(f"# {machine()}; {args.dataset}, first {n} documents; peak RSS {peak_rss_mb():.0f} MiB")
    print_table(["engine", "documents", "seconds", "docs/s", "vs bm25s"],
                [["bm25s (tokenize + index)", n, peer.seconds, n / peer.seconds, 1.0],
                 ["slimvec `bm25` profile (Collection.create + add: SQLite store, BM25 index saved)", n,
                  ours.seconds, n / ours.seconds, peer.seconds / ours.seconds]])


if __name__ == "__main__":
    main()
