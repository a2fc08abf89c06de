"""Re-running an index over the same documents (issue 16, "live with it for years"): what an upsert of a
corpus costs when nothing, 1% or all of it changed, beside the first build, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/reindex.py --docs 1000
    PYTHONPATH=src .venv/bin/python benchmarks/reindex.py --docs 300 --distributed --workers 2 --shards 2

SciFact's first `--docs` documents (../shared/data/scifact), the collection's default model, `Collection.upsert`
of the whole list each time (what `slimvec index DIR` does on a rerun). Columns: wall and CPU seconds of the
call, rows the collection holds, rows left dead (reclaimed only by a compaction) and documents encoded (rows
written / chunks per document). An upsert that skips unchanged documents should cost a small fraction of the
first build and leave no dead rows; before that change every rerun cost a full build and killed every row.

`--distributed`: the same steps through distributed ingest (`slimvec.distributed.ingest.index`, what `slimvec
index --ray` runs) from a JSONL file of the step's documents, `--workers` encoder actors on a local Ray instance
started once before the first step (so no step pays Ray's start; each pays its actor pool's start and model
loads), into a new collection of `--shards` shards (0: a plain collection). CPU s is the driver's only (the
actors' is not counted); "encoded" is the number of documents the encoder actors returned vectors for, from the
driver's summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path

from _common import DATA, machine, read_jsonl

from slimvec import Collection, Document

SUMMARY = re.compile(r"documents written: (\d+) encoded by the encoder actors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--model", default=None, help="model name (default: the default model of new collections)")
    ap.add_argument("--distributed", action="store_true", help="distributed ingest on a local Ray instance")
    ap.add_argument("--workers", type=int, default=2, help="with --distributed: encoder actors")
    ap.add_argument("--shards", type=int, default=2, help="with --distributed: shards (0: a plain collection)")
    a = ap.parse_args()
    records = read_jsonl(DATA / "scifact" / "corpus.jsonl", a.docs)
    docs = [Document(r["_id"], r["text"], r.get("title", "")) for r in records]
    changed = [Document(d.id, d.text + " (revised)", d.title) if i % 100 == 0 else d for i, d in enumerate(docs)]
    rewritten = [Document(d.id, d.text + " (second edition)", d.title) for d in docs]
    steps = [("first build (upsert into an empty collection)", docs), ("rerun, nothing changed", docs),
             ("rerun, 1% changed", changed), ("rerun, every document changed", rewritten)]
    print(machine())
    if a.distributed:
        distributed(steps, a)
        return
    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "c", **({"model": a.model} if a.model else {}))
        print(f"| step ({len(docs)} SciFact documents, model {col.manifest['model']}) | wall s | CPU s | "
              "rows | dead rows | vs first build (wall) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        first = None
        for label, batch in steps:
            t, c = time.perf_counter(), time.process_time()
            col.upsert(batch)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            first = first or wall
            print(f"| {label} | {wall:.2f} | {cpu:.2f} | {col.store.committed_rows:,} | {col.store.dead_rows:,} | "
                  f"{wall / first:.3f}x |", flush=True)
        col.close()


class _Lines(logging.Handler):
    """Keeps the messages logged on "slimvec.ingest" (the driver's summary line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def distributed(steps: list[tuple[str, list[Document]]], a: argparse.Namespace) -> None:
    """The steps through `slimvec.distributed.ingest.index`, one JSONL file per step."""
    import ray

    from slimvec.distributed.actors import connect
    from slimvec.distributed.ingest import index

    lines = _Lines()
    log = logging.getLogger("slimvec.ingest")
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    connect(None, num_cpus=a.workers + 1)  # once: every step joins it
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c"
            where = f"{a.shards} shards" if a.shards else "plain collection"
            print(f"| step ({len(steps[0][1])} SciFact documents, distributed: {a.workers} actors, {where}) | "
                  "wall s | driver CPU s | encoded | rows | dead rows | vs first build (wall) |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            first = None
            for i, (label, batch) in enumerate(steps):
                source = Path(tmp) / f"step{i}.jsonl"
                source.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n"
                                          for d in batch), encoding="utf-8")
                create = {"shards": a.shards or None, **({"model": a.model} if a.model and i == 0 else {})}
                lines.lines.clear()
                t, c = time.perf_counter(), time.process_time()
                index([source], path, workers=a.workers, **create)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                first = first or wall
                encoded = next((m.group(1) for m in map(SUMMARY.search, lines.lines) if m), "?")
                with Collection.open(path) as col:
                    info = col.info()
                print(f"| {label} | {wall:.2f} | {cpu:.2f} | {encoded} | {info['rows']:,} | {info['dead_rows']:,} | "
                      f"{wall / first:.3f}x |", flush=True)
    finally:
        log.removeHandler(lines)
        ray.shutdown()


if __name__ == "__main__":
    main()
