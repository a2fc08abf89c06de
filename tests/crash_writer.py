"""Helper for crash tests: add documents in a loop, printing each id after its add returned.

usage: python crash_writer.py COLLECTION PREFIX [BATCH]
Runs until killed. A printed id is a promise that the add committed.
"""

from __future__ import annotations

import sys

from fakes import FakeEncoder

from slimvec import Collection, Document


def main() -> None:
    path, prefix = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    col = Collection.open(path, encoder=FakeEncoder())
    i = 0
    print("ready", flush=True)
    while True:
        docs = [Document(f"{prefix}-{i + j}", f"document {i + j} of {prefix} " + "word " * (j % 50 + 1),
                         metadata={"n": i + j}) for j in range(batch)]
        col.add(docs)
        sys.stdout.write("".join(d.id + "\n" for d in docs))
        sys.stdout.flush()
        i += batch


if __name__ == "__main__":
    main()
