"""Short query batches run torch on one intra-op thread; the setting is restored, and large batches keep it."""

from __future__ import annotations

import pytest

from slimvec.encoders.threads import SMALL_BATCH, query_threads


def test_one_thread_for_a_few_queries_and_restored() -> None:
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with query_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with query_threads(SMALL_BATCH + 1):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), query_threads(3):
            raise RuntimeError("an encoder failing mid-call")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
