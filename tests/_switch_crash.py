"""A crash injected into `store.switch` after N file moves, for the compaction and migration switch tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slimvec.store import switch as store_switch


@contextmanager
def crash_after_moves(monkeypatch, moves: int) -> Iterator[None]:
    """Within the block, the switch's (moves + 1)-th file move raises KeyboardInterrupt, as a kill would stop it."""
    real, calls = store_switch._replace, [0]

    def crashing(src: Path, dst: Path) -> None:
        calls[0] += 1
        if calls[0] > moves:
            raise KeyboardInterrupt("simulated crash")
        real(src, dst)

    monkeypatch.setattr(store_switch, "_replace", crashing)
    try:
        yield
    finally:
        monkeypatch.setattr(store_switch, "_replace", real)
