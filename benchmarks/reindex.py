"""Re-running an index over the same documents (issue 16, "live with it for years"): what an upsert of a
corpus costs when nothing, 1% or all of it changed, beside the first build, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/reindex.py --docs 1000

SciFact's first `--docs` documents (../shared/data/scifact), the collection's default model, `Collection.upsert`
of the whole list each time (what `slimvec index DIR` does on a rerun). Columns: wall and CPU seconds of the
call, rows the collection holds, rows left dead (reclaimed only by a compaction) and documents encoded (rows
written / chunks per document). An upsert that skips unchanged documents should cost a small fraction of the
first build and leave no dead rows; before that change every rerun cost a full build and killed every row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import DATA, read_jsonl

from slimvec import Collection, Document


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--model", default=None, help="model name (default: the default model of new collections)")
    a = ap.parse_args()
    records = read_jsonl(DATA / "scifact" / "corpus.jsonl", a.docs)
    docs = [Document(r["_id"], r["text"], r.get("title", "")) for r in records]
    changed = [Document(d.id, d.text + " (revised)", d.title) if i % 100 == 0 else d for i, d in enumerate(docs)]
    rewritten = [Document(d.id, d.text + " (second edition)", d.title) for d in docs]
    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "c", **({"model": a.model} if a.model else {}))
        print(f"| step ({len(docs)} SciFact documents, model {col.manifest['model']}) | wall s | CPU s | "
              "rows | dead rows | vs first build (wall) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        first = None
        for label, batch in (("first build (upsert into an empty collection)", docs),
                             ("rerun, nothing changed", docs), ("rerun, 1% changed", changed),
                             ("rerun, every document changed", rewritten)):
            t, c = time.perf_counter(), time.process_time()
            col.upsert(batch)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            first = first or wall
            print(f"| {label} | {wall:.2f} | {cpu:.2f} | {col.store.committed_rows:,} | {col.store.dead_rows:,} | "
                  f"{wall / first:.3f}x |", flush=True)
        col.close()


if __name__ == "__main__":
    main()
