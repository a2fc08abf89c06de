"""Run `slimvec.migrate.runner.migrate` with plumbing encoders that log each call (for the kill tests).

Usage: python migrate_worker.py DIR LOG [BATCH [SAMPLE]]. Each encode call of the new model appends one line to
LOG: "F <sha1 of each text, comma-separated>" while starting (the fitting sample, stored in the target), "E <...>"
for a batch of the re-embedding (the record exists); lines are written unbuffered, so a SIGKILL loses none that
were written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeEncoder  # noqa: E402

from slimvec.migrate.runner import migrate  # noqa: E402

NEW = "fake-bow-64"


class LoggingEncoder(FakeEncoder):
    def __init__(self, log, path: Path) -> None:
        super().__init__(dim=64, name=NEW)
        self.log, self.path = log, path

    def encode_documents(self, texts: list[str], progress: bool = False):
        from slimvec.migrate.state import has_migration

        out = super().encode_documents(texts)
        tag = "E" if has_migration(self.path) else "F"  # the record is written once the sample is stored
        self.log.write((tag + " " + ",".join(text_hash(t) for t in texts) + "\n").encode())
        return out


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_and_kill(cmd: list[str], env: dict[str, str], log: Path, new_lines: int, extra_s: float) -> bool:
    """Start the worker, SIGKILL it `extra_s` seconds after it has logged `new_lines` more lines (a random point
    inside fitting or re-embedding, not during interpreter start-up). True when it was killed, False when it
    finished first (raises RuntimeError if it failed)."""
    import signal
    import subprocess
    import time

    before = _lines(log)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and _lines(log) < before + new_lines:
        time.sleep(0.005)
    time.sleep(extra_s)
    if proc.poll() is not None:
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def fresh_build_owners(docs: list, path: Path) -> dict[str, str]:
    """Build a fresh new-model collection at `path`, one document per call, and return sha1 of each chunk text
    it encoded -> its document id (what a complete re-embedding must encode)."""
    from slimvec import Collection

    owners: dict[str, str] = {}
    current = [""]

    class Recorder(FakeEncoder):
        def encode_documents(self, texts: list[str], progress: bool = False):
            owners.update({text_hash(t): current[0] for t in texts})
            return super().encode_documents(texts)

    with Collection.create(path, encoder=Recorder(dim=64, name=NEW)) as col:
        for d in docs:
            current[0] = d.id
            col.add([d])
    return owners


def reembedding_calls(log: Path) -> tuple[Counter, int, list[list[str]], set[str]]:
    """(times each chunk hash was encoded by the re-embedding, calls that repeated a chunk already encoded, the
    calls' chunk hashes, the chunk hashes encoded while starting): the "E" and "F" lines of LOG. A chunk is
    encoded again by the re-embedding only when its batch was in flight at a kill; a start killed before its
    record draws the same sample again, so "F" lines may repeat."""
    lines = log.read_text().splitlines()
    calls = [line[2:].split(",") for line in lines if line.startswith("E ")]
    sample = {h for line in lines if line.startswith("F ") for h in line[2:].split(",")}
    seen: Counter[str] = Counter()
    repeated = 0
    for hashes in calls:
        repeated += any(seen[h] for h in hashes)
        seen.update(hashes)
    return seen, repeated, calls, sample


def _lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    path, log_path = Path(sys.argv[1]), sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    sample = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    with open(log_path, "ab", buffering=0) as log:
        from slimvec.migrate.state import has_migration

        if not has_migration(path) and json.loads((path / "manifest.json").read_text())["model"] == NEW:
            sys.exit(0)  # finished by an earlier run that was killed on its way out
        migrate(path, NEW, sample=sample, batch=batch, encoder=LoggingEncoder(log, path))
