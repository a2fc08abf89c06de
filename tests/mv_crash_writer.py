"""Helper for the token-file crash test: add documents to a multi-vector collection in a loop until killed.

usage: python mv_crash_writer.py COLLECTION PREFIX BATCH
Goes through the real write path (`Collection.add`: token rows appended and fsynced under the writer lock,
then the SQLite commit); a printed id is a committed one. The plumbing encoder's token vectors are a
deterministic function of the text, so the test can check every stored token.
"""

from __future__ import annotations

import sys

from fakes import FakeEncoder

from slimvec import Collection, Document

DIM = 16


def text_of(n: int) -> str:
    return f"document {n} " + " ".join(f"w{(n * 7 + j) % 97}" for j in range(1 + n % 23))


def main() -> None:
    path, prefix, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    col = Collection.open(path, encoder=FakeEncoder(dim=DIM))
    print("ready", flush=True)
    i = len(col)
    while True:
        docs = [Document(f"{prefix}-{n}", text_of(n), metadata={"n": n}) for n in range(i, i + batch)]
        col.add(docs)
        sys.stdout.write("".join(d.id + "\n" for d in docs))
        sys.stdout.flush()
        i += batch


if __name__ == "__main__":
    main()
