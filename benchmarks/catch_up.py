"""What a served collection's next search pays after another process bulk-loads rows into it (`--profile`,
default `hnsw-f32`).

    PYTHONPATH=src .venv/bin/python benchmarks/catch_up.py --rows 50000 --add 50000          # this tree
    PYTHONPATH=/path/to/older/src .venv/bin/python benchmarks/catch_up.py ...                # an older tree

A "server" handle opens an N-row collection and searches once. A "loader" process (a child process with its own
handle) adds `--add` rows in one call and closes, saving its graph. The server's next search catches up with
those commits under its state lock: it either inserts every new row into its own graph, or reads the graph the
loader saved. The peer, in the same run: a fresh `Collection.open` plus one search, what a server restarted after
the load pays, on a copy of the directory taken after the load (a server's search saves what it built and the
files lacked, such as BM25 postings; a peer opening the directory after it would load that instead of building
it). Rows: the synthetic vectors of benchmarks/scale.py when cached under
/tmp/peers-cache (benchmarks/peers.py), else random unit vectors around 4,000 centres (commit_cost.rows).
Only public API and `Collection.add_encoded` are used, so an older checkout runs the same script.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, read_jsonl
from commit_cost import VectorsOnly, rows

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.profiles import BUILTIN


def vectors(n: int) -> np.ndarray:
    for cached in sorted(Path("/tmp/peers-cache").glob("scale-*/docs.npy")):
        x = np.load(cached, mmap_mode="r")
        if len(x) >= n:
            return np.asarray(x[:n], np.float32)
    return rows(n, 384)


QUERY = "vitamin D deficiency and bone density"  # words BM25 finds in SciFact's abstracts


@functools.cache
def _abstracts() -> list[str]:
    return [d["text"] for d in read_jsonl(DATA / "scifact" / "corpus.jsonl")]


def texts(start: int, n: int) -> list[str]:
    """Row texts: SciFact's abstracts in turn (BM25 needs real words; the vectors do not come from them)."""
    corpus = _abstracts()
    return [corpus[i % len(corpus)] for i in range(start, start + n)]


def add(col: Collection, vecs: np.ndarray, start: int) -> None:
    ids, words = [f"d{i}" for i in range(start, start + len(vecs))], texts(start, len(vecs))
    col.add_encoded([Document(i, t) for i, t in zip(ids, words)],
                    [Chunk(i, 0, 0, len(t), t) for i, t in zip(ids, words)], vecs)


def load(path: str, vecs: np.ndarray, start: int) -> None:
    with Collection.open(Path(path), VectorsOnly(vecs.shape[1])) as col:
        add(col, vecs, start)


def measure(x: np.ndarray, n_rows: int, n_add: int, profile: str) -> dict[str, float | bool]:
    """The server's next search after another process adds rows `x[n_rows:n_rows + n_add]` to a collection of
    `x[:n_rows]`, and the peer's fresh open + search. The peer opens a copy of the directory taken right after
    the load, before the server's search: that search saves what it builds and the files lack (before session 19,
    BM25's score matrix), and a peer opening the same directory afterwards would load it instead of building it
    as a server restarted after the load does."""
    q = x[:: max(1, len(x) // 50)][:50] * -1  # 50 queries, none of them a stored row
    work = Path(tempfile.mkdtemp(prefix="slimvec-catch-up-"))
    try:
        path, peer = work / "c", work / "peer"
        t = time.perf_counter()
        col = Collection.create(path, profile=BUILTIN[profile], encoder=VectorsOnly(x.shape[1]))
        add(col, x[:n_rows], 0)
        build = time.perf_counter() - t
        col.search_many([QUERY], vectors=q[:1], k=10, with_payload=False)
        t = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=load,
                                                        args=(str(path), np.asarray(x[n_rows:n_rows + n_add]), n_rows))
        child.start()
        child.join()
        loaded = time.perf_counter() - t
        # SQLite rebuilds the -shm index from the -wal file at the open
        shutil.copytree(path, peer, ignore=shutil.ignore_patterns("*-shm"))
        t = time.perf_counter()
        first = col.search_many([QUERY], vectors=q[:1], k=10, with_payload=False)[0]
        catch_up = time.perf_counter() - t
        t = time.perf_counter()
        with Collection.open(peer) as fresh:
            again = fresh.search_many([QUERY], vectors=q[:1], k=10, with_payload=False)[0]
            reopen = time.perf_counter() - t
            same = [h.id for h in again] == [h.id for h in first]
        col.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"build": build, "loaded": loaded, "catch_up": catch_up, "reopen": reopen, "same": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--add", type=int, default=20_000)
    ap.add_argument("--profile", default="hnsw-f32")
    a = ap.parse_args()
    m = measure(vectors(a.rows + a.add), a.rows, a.add, a.profile)
    build, loaded, catch_up, reopen, same = m["build"], m["loaded"], m["catch_up"], m["reopen"], m["same"]
    print(f"{a.profile}: rows {a.rows:,} + {a.add:,} added by another process (its add: {loaded:.1f} s; first build "
          f"{build:.1f} s)\n")
    print("| step | seconds | ratio to a fresh open + search |\n| --- | ---: | ---: |")
    print(f"| server's first search after the load (catch-up) | {catch_up:.2f} | {catch_up / reopen:.2f}x |")
    print(f"| fresh open + search (peer) | {reopen:.2f} | 1.00x |")
    print(f"\nsame top 10 from both: {same}")


if __name__ == "__main__":
    main()
