"""Compact one collection in a child process, for the SIGKILL tests (tests/test_compaction.py) and
benchmarks/compact_kills.py: prints "open" once the collection is open, then the report as JSON."""

from __future__ import annotations

import json
import sys

from slimvec import Collection

if __name__ == "__main__":
    with Collection.open(sys.argv[1]) as col:  # compaction copies rows and codes: the model is never loaded
        print("open", flush=True)
        print(json.dumps(col.compact()), flush=True)
