"""Run `slimvec.distributed.ingest.index` on a running Ray cluster and SIGKILL this driver process right after
its KILL_AFTER-th shard commit (for the interrupted-ingest test).

Usage: python ingest_kill_worker.py ADDRESS DIR KILL_AFTER WORKERS MODEL SOURCE... The kill comes from inside the commit hook,
so where it lands is deterministic: KILL_AFTER batches are committed, the rest (buffered or being encoded) is
lost with the process, as in a crash.
"""

from __future__ import annotations

import os
import signal
import sys

from slimvec.collection import Collection
from slimvec.distributed.ingest import index

address, path, kill_after, workers, model, *sources = sys.argv[1:]
commits = 0
add_encoded = Collection.add_encoded


def committing_then_killed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    global commits
    n = add_encoded(self, *args, **kwargs)
    commits += 1
    if commits == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
    return n


Collection.add_encoded = committing_then_killed  # type: ignore[method-assign]
index(sources, path, shards=2, workers=int(workers), address=address, batch_size=8, commit_docs=8, model=model)
