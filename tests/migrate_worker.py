"""Run `slimvec.migrate.runner.migrate` with plumbing encoders that log each call (for the kill tests).

Usage: python migrate_worker.py DIR LOG [BATCH]. Each encode call of the new model appends one line
"E <sha1 of each text, comma-separated>" to LOG, each commit of the re-embedding "C <documents done>";
lines are written unbuffered, so a SIGKILL loses none that were written.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeEncoder  # noqa: E402

from slimvec.migrate.runner import migrate  # noqa: E402

NEW = "fake-bow-64"


class LoggingEncoder(FakeEncoder):
    def __init__(self, log) -> None:
        super().__init__(dim=64, name=NEW)
        self.log = log

    def encode_documents(self, texts: list[str], progress: bool = False):
        out = super().encode_documents(texts)
        self.log.write(("E " + ",".join(text_hash(t) for t in texts) + "\n").encode())
        return out


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


if __name__ == "__main__":
    path, log_path = Path(sys.argv[1]), sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with open(log_path, "ab", buffering=0) as log:
        enc = LoggingEncoder(log)
        migrate(path, NEW, sample=200, batch=batch, encoder=enc,
                on_batch=lambda done, total: log.write(f"C {done}\n".encode()))
