"""Rich progress bars for long work, silent when not asked for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield an `advance(n, total=None)` callable that drives a progress bar on stderr (or does nothing); a
    `total` given later (once the work knows it) replaces the one given here."""
    if not enabled:
        yield lambda n, total=None: None
        return
    # total 0 = unknown (a stream of documents): the bar pulses and counts.
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total or None)

        def advance(n: int, total: int | None = None) -> None:
            bar.update(task, advance=n, **({"total": total} if total else {}))

        yield advance
