"""The 100-kill version of tests/test_migrate_collection.py: `slimvec migrate` (plumbing encoders, real SciFact
text) SIGKILLed at random points of fitting, re-embedding and the switch, rerun until done; then checks that no
document is lost, every chunk was encoded in exactly one committed batch, `check` passes and search equals a
fresh build.

    PYTHONPATH=src python benchmarks/migrate_kills.py [--kills 100] [--docs 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fakes import FakeEncoder  # noqa: E402
from migrate_worker import NEW, text_hash  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.migrate.state import has_migration  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--docs", type=int, default=600)
    args = ap.parse_args()
    with open(ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        docs = [Document(d["_id"], d["text"], d["title"]) for d in map(json.loads, list(f)[: args.docs])]
    tmp = Path(tempfile.mkdtemp())
    path, log = tmp / "col", tmp / "calls.log"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(docs)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}"}
    cmd = [sys.executable, str(ROOT / "tests" / "migrate_worker.py"), str(path), str(log), "4"]
    rng, kills, answered, runs = random.Random(1), 0, 0, 0
    while kills < args.kills:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs += 1
        time.sleep(rng.uniform(0.2, 1.2))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        with Collection.open(path, encoder=FakeEncoder(dim=64, name=NEW)) as col:
            answered += len(col.search("cells", k=5)) == 5
    if has_migration(path):
        subprocess.run(cmd, env=env, check=True)
    owners: dict[str, str] = {}

    class Recorder(FakeEncoder):
        def encode_documents(self, texts, progress=False):
            owners.update({text_hash(t): current[0] for t in texts})
            return super().encode_documents(texts)

    current = [""]
    with Collection.create(tmp / "fresh", encoder=Recorder(dim=64, name=NEW)) as fresh:
        for d in docs:
            current[0] = d.id
            fresh.add([d])
    lines = log.read_text().splitlines()
    committed: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith("E ") and i + 1 < len(lines) and lines[i + 1].startswith("C "):
            committed.update(line[2:].split(","))
    twice = sum(1 for n in committed.values() if n > 1)
    with Collection.open(path, encoder=FakeEncoder(dim=64, name=NEW)) as col, \
            Collection.open(tmp / "fresh", encoder=FakeEncoder(dim=64, name=NEW)) as fresh:
        lost = sum(col.get(d.id) is None for d in docs)
        equal = all([(h.id, h.score) for h in col.search(q, k=10)] == [(h.id, h.score) for h in fresh.search(q, k=10)]
                    for q in ("cells", "protein expression", "cancer risk", "gene"))
        print(f"kills {kills}, runs {runs}, searches answered after a kill {answered}/{kills}, documents lost {lost}, "
              f"chunks committed twice {twice}, chunks never committed {len(set(owners) - set(committed))}, "
              f"check {col.check() or 'ok'}, equal to a fresh build {equal}")


if __name__ == "__main__":
    main()
