"""The 100-kill version of tests/test_migrate_collection.py: `slimvec migrate` (plumbing encoders, real SciFact
text) SIGKILLed at random points of fitting and re-embedding (a random number of logged encode calls after start),
rerun until done; then checks that no document is lost, every chunk was encoded, only batches in flight at a
kill were encoded again, search answered after every kill, `check` passes and search equals a fresh build.

    PYTHONPATH=src python benchmarks/migrate_kills.py [--kills 100] [--docs 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fakes import FakeEncoder  # noqa: E402
from migrate_worker import NEW, fresh_build_owners, reembedding_calls, run_and_kill  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.encoders.registry import register_encoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--docs", type=int, default=600)
    args = ap.parse_args()
    register_encoder("fake-bow", lambda: FakeEncoder(dim=32, name="fake-bow"))  # any stage opens by name
    register_encoder(NEW, lambda: FakeEncoder(dim=64, name=NEW))
    with open(ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        docs = [Document(d["_id"], d["text"], d["title"]) for d in map(json.loads, list(f)[: args.docs])]
    tmp = Path(tempfile.mkdtemp())
    path, log = tmp / "col", tmp / "calls.log"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(docs)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"}
    # one document per batch (600 batches), so that 100 kills land before the end
    cmd = [sys.executable, str(ROOT / "tests" / "migrate_worker.py"), str(path), str(log), "1"]
    rng, kills, answered = random.Random(1), 0, 0
    while kills < args.kills:
        if not run_and_kill(cmd, env, log, rng.randint(1, 6), rng.uniform(0, 0.05)):
            break
        kills += 1
        with Collection.open(path) as col:  # before the record, during re-embedding or after the switch
            answered += len(col.search("cells", k=5)) == 5
    if json.loads((path / "manifest.json").read_text())["model"] != NEW or (path / "migration").exists():
        subprocess.run(cmd, env=env, check=True)  # the run that finishes
    owners = fresh_build_owners(docs, tmp / "fresh")
    seen, repeated_calls, _, sample = reembedding_calls(log)  # again only if its batch was in flight at a kill
    with Collection.open(path, encoder=FakeEncoder(dim=64, name=NEW)) as col, \
            Collection.open(tmp / "fresh", encoder=FakeEncoder(dim=64, name=NEW)) as fresh:
        lost = sum(col.get(d.id) is None for d in docs)
        equal = all([(h.id, h.score) for h in col.search(q, k=10)] == [(h.id, h.score) for h in fresh.search(q, k=10)]
                    for q in ("cells", "protein expression", "cancer risk", "gene"))
        print(f"kills {kills}, searches answered after a kill {answered}/{kills}, documents lost {lost}, "
              f"chunks never encoded {len(set(owners) - set(seen) - sample)}, sample chunks (stored at start) encoded "
              f"again {len(sample & set(seen))}, encode calls repeated {repeated_calls} "
              f"(batches in flight at a kill), chunks encoded twice {sum(n > 1 for n in seen.values())}, "
              f"check {col.check() or 'ok'}, equal to a fresh build {equal}")


if __name__ == "__main__":
    main()
