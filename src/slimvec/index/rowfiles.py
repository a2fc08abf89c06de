"""Derived per-row arrays saved append-only, so a commit costs the rows it adds, not the collection.

A directory holds one raw file per array (`NAME.bin`, row-major, a fixed width per row) and `index.json`, the
commit point: the format, the fit (a random id drawn whenever codes or lists are trained anew), the rows saved,
and each array's dtype and row shape, plus whatever the index adds. Bytes past `rows` (a save killed after
appending, before `index.json` was replaced) are ignored on load and cut by the next save.

An array may also hold its own number of entries ("length" in its spec, e.g. the tokens of variable-length
rows): `rows_from(start)` then returns the entries that belong to rows start.., and the save appends them
after the array's saved length. Without "length" an array holds one entry per row.

A save appends when the directory holds the same fit with no more rows than the caller has (another writer's
rows under the same fit are the same bytes: codes are a pure function of the fitted codec and the row);
anything else (a new fit, a folder in an older format, a file shorter than its rows) is a full rewrite into a
fresh folder swapped in whole (`atomic.replaced_dir`). Readers see `rows` from `index.json` and never read past
it, so an append under a reader is harmless.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.atomic import replaced_dir, write_json_atomic

FORMAT = 2
META = "index.json"


def new_fit() -> str:
    """A fresh fit id (for codes or lists trained anew)."""
    return uuid.uuid4().hex


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The committed `index.json` of `directory` in this format, or None (absent, older format, unreadable)."""
    try:
        meta = json.loads((Path(directory) / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def save(directory: Path, fit: str, rows: int, rows_from: Callable[[int], dict[str, np.ndarray]],
         meta: dict[str, Any], write_fit: Callable[[Path], None], ragged: tuple[str, ...] = ()) -> None:
    """Save `rows` rows of each array under `directory`, appending when the folder allows it (see module doc).

    rows_from(start) returns {name: array of rows start..rows-1} (for an array named in `ragged`: its entries
    that belong to those rows); write_fit(folder) writes what a full rewrite adds besides the rows (the codec,
    centroids). Raises OSError on a failed write; the previous commit stays.
    """
    directory = Path(directory)
    saved = read_meta(directory)
    start = saved["rows"] if saved and saved.get("fit") == fit and saved["rows"] <= rows else None
    if start is not None and _complete(directory, saved):
        arrays = rows_from(start)
        specs = dict(saved["arrays"])
        for name, arr in arrays.items():
            width, have = _width(saved, name), _length(saved, name)
            with open(directory / f"{name}.bin", "r+b") as f:
                f.truncate(have * width)  # bytes of a killed save past the committed entries
                f.seek(have * width)
                f.write(np.ascontiguousarray(arr).tobytes())
                f.flush()
                os.fsync(f.fileno())
            if "length" in specs[name]:
                specs[name] = {**specs[name], "length": have + len(arr)}
        write_json_atomic(directory / META, {**saved, **meta, "rows": rows, "arrays": specs})
        return
    arrays = rows_from(0)
    with replaced_dir(directory) as tmp:
        write_fit(tmp)
        for name, arr in arrays.items():
            with open(tmp / f"{name}.bin", "wb") as f:
                f.write(np.ascontiguousarray(arr).tobytes())
        shapes = {name: {"dtype": arr.dtype.str, "row": list(arr.shape[1:]),
                         **({"length": len(arr)} if name in ragged else {})} for name, arr in arrays.items()}
        write_json_atomic(tmp / META, {**meta, "format": FORMAT, "fit": fit, "rows": rows, "arrays": shapes})


def load(directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(index.json, {name: array of its committed rows}) saved by `save`. Raises ValueError when the folder
    is in another format or a file holds fewer rows than committed."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        raise ValueError(f"{directory}: no {META} in row-file format {FORMAT}")
    if not _complete(directory, meta):
        raise ValueError(f"{directory}: a row file is shorter than its {meta['rows']} committed rows")
    arrays = {}
    for name, spec in meta["arrays"].items():
        length = _length(meta, name)
        count = length * int(np.prod(spec["row"], dtype=np.int64))
        flat = np.fromfile(directory / f"{name}.bin", dtype=np.dtype(spec["dtype"]), count=count)
        arrays[name] = flat.reshape([length, *spec["row"]])
    return meta, arrays


def read_entries(directory: Path, meta: dict[str, Any], name: str, first: int, count: int) -> np.ndarray:
    """Entries first..first+count-1 of array `name` of the committed folder `meta` describes (`read_meta`), read
    from its file alone (not the whole array). Raises ValueError past its committed entries or a short file."""
    spec = meta["arrays"][name]
    if first < 0 or count < 0 or first + count > _length(meta, name):
        raise ValueError(f"{directory}: entries {first}..{first + count - 1} of {name} are not committed")
    flat = np.fromfile(Path(directory) / f"{name}.bin", dtype=np.dtype(spec["dtype"]),
                       count=count * int(np.prod(spec["row"], dtype=np.int64)), offset=first * _width(meta, name))
    if flat.size != count * int(np.prod(spec["row"], dtype=np.int64)):
        raise ValueError(f"{directory}: {name}.bin is shorter than its committed entries")
    return flat.reshape([count, *spec["row"]])


def _width(meta: dict[str, Any], name: str) -> int:
    spec = meta["arrays"][name]
    return np.dtype(spec["dtype"]).itemsize * int(np.prod(spec["row"], dtype=np.int64))


def _length(meta: dict[str, Any], name: str) -> int:
    """Entries committed in array `name`: its own "length", else one per row."""
    return int(meta["arrays"][name].get("length", meta["rows"]))


def _complete(directory: Path, meta: dict[str, Any]) -> bool:
    try:
        return all((directory / f"{n}.bin").stat().st_size >= _length(meta, n) * _width(meta, n)
                   for n in meta["arrays"])
    except (OSError, KeyError, TypeError, AttributeError):
        return False
