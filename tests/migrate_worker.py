"""Run `slimvec.migrate.runner.migrate` with plumbing encoders that log each call (for the kill tests).

Usage: python migrate_worker.py DIR LOG [BATCH]. Each encode call of the new model appends one line to LOG:
"F <sha1 of each text, comma-separated>" for the fitting sample, "E <...>" for a batch of the re-embedding;
lines are written unbuffered, so a SIGKILL loses none that were written.
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
    def __init__(self, log, fitting: bool) -> None:
        super().__init__(dim=64, name=NEW)
        self.log, self.fitting = log, fitting

    def encode_documents(self, texts: list[str], progress: bool = False):
        out = super().encode_documents(texts)
        tag, self.fitting = ("F" if self.fitting else "E"), False  # a run that starts fitting encodes the sample first
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


def reembedding_calls(log: Path) -> tuple[Counter, int, list[list[str]]]:
    """(times each chunk hash was encoded by the re-embedding, calls that repeated a chunk already encoded, the
    calls' chunk hashes): the "E" lines of LOG. A chunk is encoded again only when its batch was in flight at a
    kill."""
    calls = [line[2:].split(",") for line in log.read_text().splitlines() if line.startswith("E ")]
    seen: Counter[str] = Counter()
    repeated = 0
    for hashes in calls:
        repeated += any(seen[h] for h in hashes)
        seen.update(hashes)
    return seen, repeated, calls


def _lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    path, log_path = Path(sys.argv[1]), sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with open(log_path, "ab", buffering=0) as log:
        from slimvec.migrate.state import has_migration

        if not has_migration(path) and json.loads((path / "manifest.json").read_text())["model"] == NEW:
            sys.exit(0)  # finished by an earlier run that was killed on its way out
        enc = LoggingEncoder(log, fitting=not has_migration(path))
        migrate(path, NEW, sample=200, batch=batch, encoder=enc)
