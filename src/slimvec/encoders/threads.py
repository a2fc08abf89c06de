"""Torch's intra-op threads for short query batches.

A search encodes one query of a few dozen word pieces: too little work to split across cores, while torch's
OpenMP workers keep spinning after the forward pass and compete with the BLAS threads and the token-gathering
threads of the search that follows. Paired runs on the quiet 2-core development box (SciFact, `multivector`
profile, p50 of a whole search with query encoding): 69-75 ms with torch's default 2 threads, 56-62 ms with
this switch (BENCHMARKS.md "Multi-vector latency"). Batches above SMALL_BATCH (ingest) keep every thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SMALL_BATCH = 8  # queries per call up to which one thread is used


@contextmanager
def query_threads(n_texts: int) -> Iterator[None]:
    """Run the body with one torch intra-op thread when `n_texts` <= SMALL_BATCH; restore the setting after."""
    import torch

    before = torch.get_num_threads()
    if n_texts > SMALL_BATCH or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
