"""Tallies of the inputs the bad-input property tests tried, per kind, for RELIABILITY.md's table.

Each test calls `tally(kind, inputs, errors)`; at exit the totals go to test-artifacts/bad-input-counts.json
(run the bad-input tests in one pytest process), so the table's counts come from the tests.
"""

from __future__ import annotations

import atexit
import json
from collections import Counter
from pathlib import Path

_OUT = Path(__file__).resolve().parents[1] / "test-artifacts" / "bad-input-counts.json"
_inputs: Counter[str] = Counter()
_errors: Counter[str] = Counter()


def tally(kind: str, inputs: int = 1, errors: int = 0) -> None:
    """Count `inputs` generated inputs of `kind`, of which `errors` were refused with a located error."""
    _inputs[kind] += inputs
    _errors[kind] += errors


@atexit.register
def _write() -> None:
    if not _inputs:
        return
    _OUT.parent.mkdir(parents=True, exist_ok=True)
    kinds = sorted(_inputs)
    data = {k: {"inputs": _inputs[k], "errors": _errors[k]} for k in kinds}
    _OUT.write_text(json.dumps(data, indent=1))
