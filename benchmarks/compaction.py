"""Compaction (issue 16 item 1): bytes and RAM reclaimed, time taken, answers unchanged; LanceDB beside it.

    PYTHONPATH=src .venv/bin/python benchmarks/compaction.py --n 100000 --dead 0.4
    PYTHONPATH=src .venv/bin/python benchmarks/compaction.py --kills 100      # SIGKILLs during compaction

Part 1. N rows (the synthetic MiniLM-like vectors of benchmarks/scale.py when cached under benchmarks/out,
else random unit vectors around 4,000 centres), one chunk per document, added with `Collection.add_encoded`;
then a random `--dead` share of the documents is deleted and `Collection.compact()` runs. For each profile:
disk and RAM (`info()`) before and after, compaction seconds, query p50 before and after (200 queries drawn
near stored rows, k=10), and how many of the 200 top-10 lists (ids and scores) are identical after. The peer,
in the same run: LanceDB 0.40 with the same vectors, the same deletes, then `table.optimize()` (compaction plus
cleanup of old versions), disk before and after and its seconds.

Part 2 (`--kills K`). A 300-document SciFact collection (`binary-ivf-rescore` with 4 lists, the hashed
bag-of-words test encoder: compaction never encodes), a third of its rows dead; K times: a fresh copy, the
compaction started in a child (tests/compact_worker.py), SIGKILLed at a uniform random instant between the
collection being open and 1.1x the measured compaction time; then the collection is opened (rolling an
interrupted switch forward), `check()` must pass, every document must be there and 4 queries must give the
answers from before. Prints how many kills landed, and the failures (expected 0).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine, percentiles_ms, print_table
from commit_cost import VectorsOnly, rows

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def build(path: Path, x: np.ndarray, profile: str) -> Collection:
    prof = load_profile(profile).model_copy(update={"compact_threshold": None})
    col = Collection.create(path, profile=prof, encoder=VectorsOnly(x.shape[1]))
    for s in range(0, len(x), 100_000):
        ids = [str(i) for i in range(s, min(len(x), s + 100_000))]
        docs = [Document(i, f"document {i}") for i in ids]
        chunks = [Chunk(i, 0, 0, len(d.text), d.text) for i, d in zip(ids, docs)]
        col.add_encoded(docs, chunks, x[s : s + len(ids)])
    return col


def answers(col: Collection, queries: np.ndarray) -> tuple[list, float]:
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = col.search_many(["q"], k=10, vectors=q[None, :])[0]
        times.append(time.perf_counter() - t0)
        out.append([(h.id, h.score) for h in hits])
    return out, percentiles_ms(times)[0]


def part_one(n: int, dead: float, profiles: list[str], work: Path) -> None:
    x = np.ascontiguousarray(rows(n, 384))
    rng = np.random.default_rng(0)
    gone = rng.choice(n, int(dead * n), replace=False)
    picks = rng.choice(np.setdiff1d(np.arange(n), gone), 200, replace=False)
    queries = x[picks] + 0.05 * rng.standard_normal((200, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    table = []
    for profile in profiles:
        path = work / profile
        shutil.rmtree(path, ignore_errors=True)
        col = build(path, x, profile)
        col.delete([str(i) for i in gone])
        info = col.info()
        before, p50_before = answers(col, queries)
        report = col.compact()
        after, p50_after = answers(col, queries)
        same = sum(a == b for a, b in zip(before, after))
        table.append([profile, f"{n:,}", f"{report['dead_rows']:,}", f"{info['disk_bytes'] / 2**20:,.1f}",
                      f"{report['disk_bytes_after'] / 2**20:,.1f}", f"{info['reclaimable_disk_bytes'] / 2**20:,.1f}",
                      f"{report['ram_bytes_before'] / 2**20:,.1f}", f"{report['ram_bytes_after'] / 2**20:,.1f}",
                      f"{report['seconds']:.2f}", f"{p50_before:.2f}", f"{p50_after:.2f}", f"{same}/200"])
        col.close()
        shutil.rmtree(path, ignore_errors=True)
    table.append(lance_row(x, gone, work / "lance"))
    print_table(["engine / profile", "rows", "dead rows", "disk MiB before", "disk MiB after",
                 "estimated reclaimable MiB", "RAM MiB before", "RAM MiB after", "compact s", "p50 ms before",
                 "p50 ms after", "same top 10"], table)


def lance_row(x: np.ndarray, gone: np.ndarray, path: Path) -> list[str]:
    from datetime import timedelta

    import lancedb
    import pyarrow as pa

    shutil.rmtree(path, ignore_errors=True)
    db = lancedb.connect(str(path))
    dead = np.zeros(len(x), bool)
    dead[gone] = True
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    table = db.create_table("t", pa.table({"id": np.arange(len(x)), "dead": dead, "vector": vectors}))
    table.delete("dead = true")
    before = dir_bytes(path)
    t0 = time.perf_counter()
    table.optimize(cleanup_older_than=timedelta(seconds=0))
    seconds = time.perf_counter() - t0
    after = dir_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    return ["LanceDB 0.40 optimize()", f"{len(x):,}", f"{len(gone):,}", f"{before / 2**20:,.1f}",
            f"{after / 2**20:,.1f}", "", "", "", f"{seconds:.2f}", "", "", ""]


# ---- Part 2: SIGKILLs ------------------------------------------------------------------------------------------

def part_two(kills: int, work: Path) -> None:
    sys.path.insert(0, str(TESTS))
    from fakes import FakeEncoder

    corpus = [json.loads(line) for line in open(ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl")][:300]
    docs = [Document(d["_id"], d["text"], d["title"], {"group": "abc"[i % 3]}) for i, d in enumerate(corpus)]
    queries = [json.loads(line)["text"] for line in open(ROOT.parent / "shared" / "data" / "scifact" / "queries.jsonl")][:4]
    base = work / "base"
    shutil.rmtree(work, ignore_errors=True)
    prof = load_profile("binary-ivf-rescore").model_copy(update={"compact_threshold": None, "nlist": 4})
    col = Collection.create(base, profile=prof, encoder=FakeEncoder(64))
    col.add(docs[:240])
    col.upsert([Document(d.id, d.text + " (revised)", d.title, d.metadata) for d in docs[:40]])
    col.delete([d.id for d in docs[100:200]])
    col.add(docs[240:])
    expected = [[(h.id, h.score) for h in col.search(q, k=10)] for q in queries]
    ids = sorted(d["id"] for d in col.store.iter_documents())
    col.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    shutil.copytree(base, work / "timed")
    proc = subprocess.run([sys.executable, str(TESTS / "compact_worker.py"), str(work / "timed")],
                          capture_output=True, text=True, env=env, check=True)
    duration = float(json.loads(proc.stdout.splitlines()[-1])["seconds"])
    rng, landed, failures, switched = random.Random(0), 0, [], 0
    for i in range(kills):
        path = work / f"kill-{i}"
        shutil.copytree(base, path)
        child = subprocess.Popen([sys.executable, str(TESTS / "compact_worker.py"), str(path)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        try:
            child.wait(timeout=rng.uniform(0, 1.1 * duration))
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            landed += 1
        with Collection.open(path, encoder=FakeEncoder(64)) as again:
            problems = again.check()
            got = sorted(d["id"] for d in again.store.iter_documents())
            answers_now = [[(h.id, h.score) for h in again.search(q, k=10)] for q in queries]
            switched += again.info()["dead_rows"] == 0
            if problems or got != ids or answers_now != expected:
                failures.append((i, problems[:2], len(got)))
        shutil.rmtree(path)
    print_table(["kills", "killed before exiting", "found compacted", "found as before", "compaction s (unkilled)",
                 "failures"], [[kills, landed, switched, kills - switched, f"{duration:.2f}", len(failures)]])
    for f in failures:
        print("FAILED", f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dead", type=float, default=0.4)
    ap.add_argument("--profiles", default="exact-f32,binary-ivf-rescore")
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/slimvec-compaction-bench"))
    args = ap.parse_args()
    print(machine())
    if args.kills:
        part_two(args.kills, args.work / "kills")
    else:
        part_one(args.n, args.dead, args.profiles.split(","), args.work)


if __name__ == "__main__":
    main()
