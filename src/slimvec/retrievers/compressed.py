"""Compressed dense retrieval: compact codes in RAM pick candidates, float32 rows read from disk rescore them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.index import rowfiles
from slimvec.index.flat import ExactIndex
from slimvec.retrievers.base import Query, no_direction
from slimvec.store import Store


class CompressedDenseRetriever:
    """Dense candidates from compact codes in RAM; optionally rescored with float32 rows read from disk.

    The codec is fitted on a sample of the rows present (up to `_FIT_ROWS`) and refitted, re-encoding every
    row from the float32 file, whenever the collection has doubled since the last fit, until the sample is
    full: a collection built in small batches is not stuck with a codec trained on its first batch.
    With `ivf` set (1-bit binary or PQ codes), the codes go into inverted lists once there are enough rows to train
    them, retrained whenever the collection has grown 4x, so the list count keeps up with ~4 sqrt(rows). Unless
    the profile fixes nprobe, it is calibrated on the collection's own rows (`index.nprobe`) to the profile's
    target Recall@10 whenever the lists are built and whenever the rows have doubled since.
    Rescoring reads only the candidate rows of the on-disk float32 file (a memmap), which is what makes the
    bi-granular design cheap in RAM.
    """

    name = "dense"

    def __init__(self, spec: str, rescore: bool, oversample: int, dim: int, index: Any = None,
                 fitted_rows: int = 0, ivf: tuple[int | None, int | None] | None = None,
                 target_recall: float = 0.95) -> None:
        self.spec, self.rescore, self.oversample, self.dim = spec, rescore, oversample, dim
        # (nlist or None for automatic, nprobe or None for calibrated), or None for an exact scan of the codes
        self.ivf = ivf
        self.target_recall = target_recall
        self.index = index  # CodecIndex or CodecIVFIndex once fitted
        self.fitted_rows = fitted_rows if index is not None else 0
        self._full: np.ndarray | None = None
        self._unpacked = 0  # rows added to inverted lists since they were last compacted
        self._live = 0  # committed rows of stored documents, at the last sync (0: not synced)

    @property
    def rows(self) -> int:
        return 0 if self.index is None else self.index.rows

    def ivf_lists(self, rows: int) -> int:
        """Inverted lists to build for `rows` rows (0: too few rows, or not an ivf profile: scan exactly)."""
        if self.ivf is None:
            return 0
        nlist, _ = self.ivf
        if nlist is None:  # automatic: ~4 sqrt(rows), a power of two, and only where a scan gets slow
            nlist = 1 << int(round(np.log2(4 * np.sqrt(max(rows, 1)))))
            return nlist if rows >= max(_IVF_MIN_ROWS, _IVF_TRAIN_PER_LIST * nlist) else 0
        return nlist if rows >= _IVF_TRAIN_PER_LIST * nlist else 0

    def _stale(self, rows: int) -> bool:
        from slimvec.index.compressed import CodecIVFIndex

        if self.index is None:
            return False
        if self.index.rows > rows or (self.fitted_rows < _FIT_ROWS and rows >= 2 * self.fitted_rows):
            return True
        lists = self.ivf_lists(rows)
        if not lists:
            return False
        return not isinstance(self.index, CodecIVFIndex) or (self.ivf[0] is None and rows >= 4 * self.fitted_rows)

    def sync(self, store: Store) -> None:
        from slimvec.index.compressed import CodecIVFIndex

        rows = store.committed_rows
        vectors = store.vectors(rows)
        self._full = vectors
        self._live = rows - (store.dead_rows or 0)
        if rows and (self.index is None or self._stale(rows)):
            self._take_saved(store.path / "index" / "codes", rows)
        if self._stale(rows):
            self.index = None
        if self.index is None and rows:
            self.index = self._build(vectors, rows)
        elif self.index is not None and self.index.rows < rows:
            start = self.index.rows
            self._add(vectors, start, rows)
            self._compact_if_grown(rows - start)
        if self.tunable and isinstance(self.index, CodecIVFIndex):
            from slimvec.index.nprobe import settle

            index, probes = self.index, store.probe_queries()
            self.use_calibration(settle(index.calibration, self.target_recall, rows, probes,
                                        lambda: index.saved_calibration(store.path / "index" / "codes"),
                                        lambda: self.calibrate(store, probes)))

    def _take_saved(self, codes: Path, rows: int) -> None:
        """Use the codes another handle saved under `codes` when this handle is about to fit its own (no codes
        yet, or a refit or retrain due) and the saved ones hold more of the first `rows` committed rows on a
        fit that is not itself due for a refit: a server whose collection another process grew 4x retrained its
        inverted lists under its state lock (binary-ivf-rescore, 100k + 300k rows: 73 s, benchmarks/catch_up.py)
        while the loader had saved the same work."""
        meta = rowfiles.read_meta(codes)  # the saved row count first: the codes are read only when worth reading
        if meta is not None and not self.rows < int(meta.get("rows", 0)) <= rows:
            return
        found = load_saved(codes)
        if found is None or found[0].rows <= self.rows or found[0].rows > rows:
            return
        before = self.index, self.fitted_rows
        self.index, self.fitted_rows = found
        if self._stale(rows):  # as old as ours: fit again here, as before
            self.index, self.fitted_rows = before
        else:
            self._unpacked = 0

    def calibrate(self, store: Store, probes: Any) -> tuple[int, dict[str, Any]] | None:
        """(nprobe, calibration) calibrated now on `probes` (a `store.probes.ProbeQueries`, or None for
        midpoints of rows: `index.nprobe.calibrate_nprobe`, through the staged search a query runs), run on a
        copy of the index's search settings so searches through this retriever go on meanwhile; None when
        there are no inverted lists to calibrate (yet). Apply it with `use_calibration`."""
        from slimvec.index.compressed import CodecIVFIndex
        from slimvec.index.nprobe import calibrate_nprobe

        if not self.tunable or not isinstance(self.index, CodecIVFIndex) or not self.index.rows:
            return None
        rows = self.index.rows
        choice = calibrate_nprobe(copy.copy(self.index), store.vectors(rows), self.target_recall,
                                  self.oversample if self.rescore else None, queries=probes)
        return choice.nprobe, choice.to_dict()

    def use_calibration(self, choice: tuple[int, dict[str, Any]] | None) -> None:
        """Search with a (nprobe, calibration) from `calibrate` or the saved index (None: keep the current)."""
        if choice is not None:
            self.index.nprobe, self.index.calibration = choice

    @property
    def tunable(self) -> bool:
        """Inverted lists (now, or once there are rows enough) whose nprobe the profile leaves to calibration."""
        return self.ivf is not None and self.ivf[1] is None

    @property
    def nprobe(self) -> int:
        """Lists probed per unfiltered query: the profile's nprobe, else the calibrated one (16 before any)."""
        if self.ivf is not None and self.ivf[1] is not None:
            return self.ivf[1]
        calibrated = getattr(self.index, "calibration", None)
        return int(calibrated["nprobe"]) if calibrated else _DEFAULT_NPROBE

    def _build(self, vectors: np.ndarray, rows: int) -> Any:
        """A fitted index holding every row, or None while there are too few rows to fit the codec."""
        from slimvec.codecs import make_codec
        from slimvec.index.compressed import CodecIndex, CodecIVFIndex

        codec = make_codec(self.spec)
        step = max(1, rows // _FIT_ROWS)
        try:
            sample = np.asarray(vectors[::step], dtype=np.float32)
            codec.fit(sample[np.isfinite(sample).all(axis=1)])  # never fit on a NaN row: it poisons every code
        except ValueError:
            return None  # too few rows to train this codec (e.g. PQ needs 256): search stays exact until there are
        lists = self.ivf_lists(rows)
        if lists:
            index: Any = CodecIVFIndex(codec, self.dim, lists, self.ivf[1] or _DEFAULT_NPROBE)
            step = max(1, rows // (_IVF_SAMPLE_PER_LIST * lists))
            index.train(np.asarray(vectors[::step], dtype=np.float32))
        else:
            index = CodecIndex(codec, self.dim)
        self.index, self.fitted_rows = index, rows
        self._add(vectors, 0, rows)
        self._compact_if_grown(rows)
        return index

    def _add(self, vectors: np.ndarray, start: int, stop: int) -> None:
        for s in range(start, stop, 65536):
            self.index.add(np.asarray(vectors[s : min(stop, s + 65536)]))

    def _compact_if_grown(self, added: int) -> None:
        # Inverted lists grow by doubling: after bulk adds, rebuilding them at exact size returns the slack.
        if hasattr(self.index, "compact"):
            self._unpacked += added
            if self._unpacked * 4 >= self.index.rows:
                self.index.compact()
                self._unpacked = 0

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from slimvec.index.compressed import CodecIVFIndex, staged_search

        q = query.vector[None, :]
        if not q.any():
            return no_direction()
        if self.index is None:
            assert self._full is not None
            scores, rows = ExactIndex.over(self._full).search(q, k, allowed)
            return scores[0], rows[0]
        mask: np.ndarray | None = allowed
        if isinstance(self.index, CodecIVFIndex):
            n = self.index.rows
            kept = int(np.count_nonzero(allowed[:n]))
            # Under a filter, probe proportionally more lists so about as many allowed rows are scanned. Dead
            # rows (deleted documents) are not a filter: they lie in every list alike, so the calibrated nprobe
            # holds for the live ones, and a compaction, which drops them, changes no answer.
            live = min(n, self._live) if self._live else n
            self.index.nprobe = min(self.index.nlist, -(-self.nprobe * live // max(kept, 1)))
            mask = None if kept == n else allowed
        if self.rescore:
            assert self._full is not None
            scores, rows = staged_search(q, k, self.oversample, self.index, self._full, mask)
        else:
            scores, rows = self.index.search(q, k, mask)
        return scores[0], rows[0]

    def check(self, store: Store, alive: np.ndarray) -> list[str]:
        """Problems of the RAM codes against the stored float32 vectors (empty when they agree).

        The fitted codec must have finite parameters, and every alive row's code must equal the codec's code of
        its stored vector (exact scan) -- what a search relies on. alive: (rows,) bool.
        """
        from slimvec.index.compressed import CodecIndex

        if self.index is None:
            return []
        problems = []
        state = self.index.codec.state()
        arrays = [np.asarray(v) for v in _arrays(state)]
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays):
            problems.append(f"codec {self.spec!r} has non-finite parameters (fitted on a NaN row?)")
        if isinstance(self.index, CodecIndex):
            vectors, codes, n = store.vectors(self.index.rows), self.index.codes, self.index.rows
            wrong = 0
            for s in range(0, n, 65536):
                block = np.asarray(vectors[s : s + 65536], dtype=np.float32)
                ok = np.isfinite(block).all(axis=1)
                fresh = self.index.codec.encode(np.where(ok[:, None], block, 0))
                differ = (fresh.reshape(len(block), -1) != np.asarray(codes[s : s + 65536]).reshape(len(block), -1))
                wrong += int(np.count_nonzero(differ.any(axis=1) & alive[s : s + len(block)]))
            if wrong:
                problems.append(f"{wrong} rows' codes disagree with their stored vectors")
        return problems

    def describe(self) -> dict[str, Any]:
        """What the codes are searched with: {"kind": "exact" (too few rows to fit the codec yet) | "codes" (a
        scan of every code) | "ivf" (inverted lists), "codec", "rows", "fitted_rows" (rows the codec was fitted
        on), "rescore", "oversample"}, plus "nlist" and "nprobe" (lists an unfiltered query probes, at most nlist)
        for "ivf", "nprobe_profile" when the profile fixes more lists than there are (faiss probes them all, no
        more: 64 on 16 lists is 16), and "calibration" ({"nprobe", "recall" (mean Recall@10 on the probe queries),
        "target_recall", "queries", "rows", "probes" ("rows", or the digest of the user's queries:
        `Collection.tune`)}) when nprobe was calibrated rather than fixed by the profile."""
        from slimvec.index.compressed import CodecIVFIndex

        kind = "exact" if self.index is None else "ivf" if isinstance(self.index, CodecIVFIndex) else "codes"
        out: dict[str, Any] = {"kind": kind, "codec": self.spec, "rows": int(self.rows),
                               "fitted_rows": int(self.fitted_rows), "rescore": self.rescore,
                               "oversample": self.oversample}
        if kind == "ivf":
            nlist, nprobe = int(self.index.nlist), int(self.nprobe)
            out["nlist"], out["nprobe"] = nlist, min(nprobe, nlist)  # what a search probes (`search` caps it so)
            if self.ivf[1] is not None and nprobe > nlist:  # the profile's, capped: shown, not silently changed
                out["nprobe_profile"] = nprobe
            if self.ivf[1] is None and self.index.calibration:
                out["calibration"] = dict(self.index.calibration)
        return out

    def ram_bytes(self) -> int:
        # The float32 file is read on demand for a few candidate rows; it is disk, not RAM-resident state.
        if self.index is None:  # untrained: exact search over the float32 rows
            return 0 if self._full is None else int(self._full.nbytes)
        return self.index.ram_bytes()

    def compacted(self, keep: np.ndarray) -> "CompressedDenseRetriever":
        """This retriever over rows `keep` only, renumbered 0..n-1 in order (keep: (n,) int64 ascending, the rows
        a compaction keeps): the same fitted codec and codes, so search results stay identical. Not synced:
        its float32 rows are the compacted store's, read at the next sync."""
        index = None if self.index is None else self.index.subset(keep)
        return CompressedDenseRetriever(self.spec, self.rescore, self.oversample, self.dim, index,
                                        self.fitted_rows, self.ivf, self.target_recall)

    def save(self, directory: Path) -> None:
        from slimvec.atomic import write_json_atomic
        from slimvec.index.compressed import CodecIVFIndex

        if self.index is not None:
            kind = "ivf" if isinstance(self.index, CodecIVFIndex) else "flat"
            self.index.save(directory / "codes")
            # Written last: names which of the saved structures is current. An append to the same fit leaves it
            # as it was, so it is not rewritten (a write is a temporary file, two fsyncs and a rename per commit).
            fit, path = {"fitted_rows": self.fitted_rows, "kind": kind}, directory / "codes" / "fit.json"
            if _read_fit(path) != fit:
                write_json_atomic(path, fit)


def load_saved(codes: Path) -> tuple[Any, int] | None:
    """(index, rows its codec was fitted on) saved under `codes` (a collection's index/codes folder), or None:
    none saved, or damaged (derived data: rebuilt from the vectors)."""
    from slimvec.index.compressed import CodecIndex, CodecIVFIndex

    if not (codes / "fit.json").exists():
        return None
    try:
        # Read without the writer lock: another handle's save may replace the folder whole (a new fit, swapped in
        # by `atomic.replaced_dir`) while this reads it, pairing one fit's codes or fit.json with another's codec.
        # Only appends (same fit) happen within one folder, so the folder must be the same one throughout.
        folder = _folder_id(codes)
        fit = json.loads((codes / "fit.json").read_text())
        loader = CodecIVFIndex if fit.get("kind") == "ivf" else CodecIndex
        index = loader.load(codes)
        if _folder_id(codes) != folder:
            return None  # replaced meanwhile: the caller fits its own, or reads it at its next sync
        return index, int(fit["fitted_rows"])
    except Exception:  # noqa: BLE001 - derived data: a damaged file is rebuilt from the vectors
        return None


def _read_fit(path: Path) -> dict[str, Any] | None:
    """The saved fit.json at `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _folder_id(folder: Path) -> tuple[int, int, Any]:
    """(device, inode, fit id) of a saved codes `folder`: a folder swapped in whole by a save has another inode
    and, unless the same fit was saved again, another fit (an inode freed by the swap may be reused)."""
    st = folder.stat()
    return st.st_dev, st.st_ino, (rowfiles.read_meta(folder) or {}).get("fit")


_FIT_ROWS = 50_000
_DEFAULT_NPROBE = 16  # an uncalibrated ivf index (saved before calibration existed)
_IVF_MIN_ROWS = 100_000  # below this, an exact Hamming scan of the codes takes about a millisecond
_IVF_TRAIN_PER_LIST = 39  # faiss's minimum k-means points per centroid
_IVF_SAMPLE_PER_LIST = 40  # k-means sample size per list


def _arrays(state: Any) -> list[Any]:
    """Every array-like leaf of a codec state (nested dicts and lists)."""
    if isinstance(state, dict):
        return [a for v in state.values() for a in _arrays(v)]
    if isinstance(state, (list, tuple)):
        return [a for v in state for a in _arrays(v)] if state and not isinstance(state[0], (int, float)) else [state]
    return [state] if isinstance(state, np.ndarray) else []
