"""Helper for the token-file crash test: commit documents with token rows in a loop until killed.

usage: python mv_crash_writer.py COLLECTION PREFIX BATCH
Each batch: tokens appended and fsynced, then the store's SQLite commit; a printed id is a committed one.
Token arrays are a deterministic function of the document number, so the test can check every byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from slimvec.documents import Chunk, Document
from slimvec.multivector.tokenstore import TokenStore
from slimvec.store import Store

DIM = 8


def tokens_of(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.standard_normal((1 + n % 37, DIM)).astype(np.float32)


def main() -> None:
    path, prefix, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = Store.open(path)
    tokens = TokenStore.open(path / "tokens", store.committed_rows)
    print("ready", flush=True)
    i = int(store.counts()["documents"])
    while True:
        nums = list(range(i, i + batch))
        docs = [Document(f"{prefix}-{n}", f"doc {n}", metadata={"n": n}) for n in nums]
        chunks = [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs]
        with store.writer():
            start = store.committed_rows
            tokens.append(start, [tokens_of(n) for n in nums])
            store.commit(docs, chunks, np.zeros((batch, DIM), np.float32), replace=False)
        sys.stdout.write("".join(d.id + "\n" for d in docs))
        sys.stdout.flush()
        i += batch


if __name__ == "__main__":
    main()
