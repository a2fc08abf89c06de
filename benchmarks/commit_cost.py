"""What a small commit costs in a large compressed collection (issue 16 item 2): 10-document commits into an
N-row `binary-ivf-rescore` collection, timed end to end, with the bytes the process wrote per commit.

    PYTHONPATH=src .venv/bin/python benchmarks/commit_cost.py --n 1000000          # this tree
    PYTHONPATH=/path/to/older/src .venv/bin/python benchmarks/commit_cost.py ...   # the same on an older tree

Rows: the synthetic MiniLM-like vectors of benchmarks/scale.py when cached (benchmarks/out/synthetic-N-*.f32),
else random unit vectors around 4,000 centres. Documents are added with `Collection.add_encoded` (vectors given,
so the model's encoding time, the same before and after, is left out), in bulk calls of 100k, then
`--commits` commits of `--docs` documents each (`--upsert`: each commit replaces `--docs` stored documents
instead, a delete and an add in one commit). Texts are "row <n>", or SciFact's abstracts in turn with
`--scifact-text` (for a profile with BM25, whose cost depends on the text). Written bytes come from /proc/self/io (`write_bytes`, what
reached the block layer's accounting) and include SQLite and the float32 vector file, which every commit writes.
Only public API is used, so the same script measures an older checkout for a before/after table.

`--peer lancedb`: LanceDB (the peer whose tracker the issue quotes) holding the same ids, texts and vectors with
an IVF-PQ index, as `benchmarks/peers.py` builds it, in the same run: the same commits as `table.add` (or, with
`--upsert`, `merge_insert` on the id), timed and counted the same way. LanceDB appends a fragment per commit and
leaves the new rows out of its vector index (searched by a flat scan) until `optimize()`; slimvec's commit puts
them into its codes and inverted lists.

    PYTHONPATH=src python benchmarks/commit_cost.py --n 100000 --commits 10 --upsert --peer lancedb
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

import slimvec
from slimvec import Collection, Document
from slimvec.documents import Chunk

OUT = Path(__file__).resolve().parent / "out"


class VectorsOnly:
    """Just what `Collection.create` reads from an encoder: these documents arrive with their vectors."""

    kind, name, max_tokens = "dense", "given-vectors", 256

    def __init__(self, dim: int) -> None:
        self.dim = dim


def rows(n: int, dim: int) -> np.ndarray:
    cached = sorted(OUT.glob(f"synthetic-{n}-*.f32"))
    if cached:
        return np.memmap(cached[0], np.float32, "r").reshape(-1, dim)[:n]
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4000, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        x = centres[rng.integers(0, 4000, min(n, s + 100_000) - s)]
        x += 0.7 * rng.standard_normal(x.shape).astype(np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


TEXTS: list[str] = []  # SciFact's abstracts with --scifact-text, else empty: "row <n>"


def text(i: int) -> str:
    return TEXTS[i % len(TEXTS)] if TEXTS else f"row {i}"


def add(col: Collection, start: int, vectors: np.ndarray, ids: list[int] | None = None) -> None:
    """Documents d<start>... (or d<i> for i in `ids`, replacing those stored) with the given vectors."""
    shift = start if ids is not None else 0  # a replaced document gets another text than the one it had
    ids = ids if ids is not None else list(range(start, start + len(vectors)))
    docs = [Document(f"d{i}", text(i + shift)) for i in ids]
    chunks = [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs]
    col.add_encoded(docs, chunks, np.ascontiguousarray(vectors), replace=shift > 0)


def lancedb_commits(path: Path, data: np.ndarray, extra: np.ndarray, commits: int, docs: int, upsert: bool
                    ) -> tuple[float, list[float], list[int]]:
    """(build s, commit seconds, bytes written per commit) of LanceDB over the same rows and commits."""
    import lancedb
    import pyarrow as pa

    def table_of(vectors: np.ndarray, ids: list[int], shift: int = 0):  # noqa: ANN202 - a pyarrow Table
        vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()),
                                                vectors.shape[1])
        return pa.table({"id": [f"d{i}" for i in ids], "text": [text(i + shift) for i in ids], "vector": vec})

    shutil.rmtree(path, ignore_errors=True)
    n, t0 = len(data), time.perf_counter()
    db = lancedb.connect(str(path))
    table = db.create_table("docs", data=table_of(data[:100_000], list(range(min(n, 100_000)))))
    for s in range(100_000, n, 100_000):
        table.add(table_of(data[s : s + 100_000], list(range(s, min(n, s + 100_000)))))
    table.create_index(metric="dot", vector_column_name="vector", index_type="IVF_PQ",
                       num_partitions=max(1, round(n ** 0.5)), num_sub_vectors=48, num_bits=8)
    build = time.perf_counter() - t0
    times, bytes_, start = [], [], n
    for c in range(commits):
        vectors = extra[c * docs : (c + 1) * docs]
        w0, t1 = written(), time.perf_counter()
        if upsert:
            batch = table_of(vectors, list(range(c * 97, c * 97 + docs)), shift=start)
            table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)
        else:
            table.add(table_of(vectors, list(range(start, start + docs))))
        times.append(time.perf_counter() - t1)
        bytes_.append(written() - w0)
        start += docs
    return build, times, bytes_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="rows in the collection before the timed commits")
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--docs", type=int, default=10, help="documents per timed commit")
    ap.add_argument("--profile", default="binary-ivf-rescore")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/slimvec-commit-cost"))
    ap.add_argument("--label", default="", help="a name for this tree in the output (e.g. before / after)")
    ap.add_argument("--upsert", action="store_true", help="each commit replaces stored documents")
    ap.add_argument("--scifact-text", action="store_true", help="SciFact's abstracts as the documents' texts")
    ap.add_argument("--peer", choices=("lancedb", "none"), default="none")
    args = ap.parse_args()
    if args.scifact_text:
        from _common import DATA, read_jsonl

        TEXTS.extend(f"{d['title']} {d['text']}" for d in read_jsonl(DATA / "scifact" / "corpus.jsonl"))
    dim = 384
    data = rows(args.n, dim)
    extra = np.random.default_rng(1).standard_normal((args.commits * args.docs, dim)).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    shutil.rmtree(args.dir, ignore_errors=True)
    t0 = time.perf_counter()
    with Collection.create(args.dir, profile=args.profile, encoder=VectorsOnly(dim)) as col:
        for s in range(0, args.n, 100_000):
            add(col, s, data[s : s + 100_000])
        build = time.perf_counter() - t0
        dense = col.info()["indexes"]["dense"]
        times, bytes_, start = [], [], args.n
        for c in range(args.commits):
            w0, t1 = written(), time.perf_counter()
            replaced = list(range(c * 97, c * 97 + args.docs)) if args.upsert else None
            add(col, start, extra[c * args.docs : (c + 1) * args.docs], replaced)
            times.append(time.perf_counter() - t1)
            bytes_.append(written() - w0)
            start += args.docs
        hits = col.search_vectors(extra[:1], k=1)[0]
    p50, worst = statistics.median(times) * 1e3, max(times) * 1e3
    print(f"slimvec at {os.path.dirname(slimvec.__file__)} {args.label}")
    print(f"{args.n:,} rows, profile {args.profile}, index {dense.get('kind')} nlist {dense.get('nlist')} "
          f"nprobe {dense.get('nprobe')}; build {build:.0f} s; load average {os.getloadavg()[0]:.1f}")
    print()
    print("| tree | commit of | p50 ms | max ms | MB written per commit (median) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    what = f"{args.docs} docs{' replaced' if args.upsert else ''}"
    print(f"| {args.label or '-'} | {what} | {p50:.1f} | {worst:.1f} | {statistics.median(bytes_) / 1e6:.2f} |")
    first = "d0" if args.upsert else f"d{args.n}"
    assert hits and hits[0].id == first, "the first committed document is found by its own vector"
    if args.peer == "lancedb":
        built, times_p, bytes_p = lancedb_commits(args.dir.with_name(args.dir.name + "-lancedb"), data, extra,
                                                  args.commits, args.docs, args.upsert)
        p50_p = statistics.median(times_p) * 1e3
        print(f"| LanceDB IVF-PQ (peer; build {built:.0f} s) | {what} | {p50_p:.1f} | {max(times_p) * 1e3:.1f} | "
              f"{statistics.median(bytes_p) / 1e6:.2f} |")
        print(f"\nslimvec / LanceDB commit p50: {p50 / p50_p:.2f}x")


if __name__ == "__main__":
    main()
