"""The token file: every chunk row's token vectors (or token codes), row-aligned with the vector file.

Layout of a token directory (normally `<collection>/tokens/`):

    meta.json     dim, storage ("float16", "float32" or "codes"), code width, pooling; written once, atomically
    tokens.bin    all token rows back to back: float16/float32 (dim values) or uint8 codes (code width bytes)
    offsets.bin   int64 per chunk row: the END token position of that row (row i owns end[i-1]:end[i])
    counts.bin    uint16 per token: tokens merged into it by pooling (1 without pooling)
    batches.bin   int64 triples (start_row, end_row, crc32 of that batch's token bytes), one per append
    codec/        the fitted token codec (its codebook), when storage is "codes"

Crash model (the store's, see store.py): the row count committed in SQLite is the truth. A writer holding
the collection's writer lock calls `append` (cut back to the committed rows, append, fsync) BEFORE the
SQLite transaction that commits those rows; a crash in between leaves extra rows here that `open(...,
committed_rows)` and the next `append` cut off. Rows are never rewritten, so committed rows are never lost.
Deletes stay in SQLite: dead rows keep their tokens and are masked out by the caller's `allowed` mask.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.atomic import fsync_dir, write_json_atomic
from slimvec.errors import CollectionError

FORMAT = "slimvec-tokens"
_COPY_ROWS = 16384  # chunk rows gathered per step by copy_rows
STORAGES = ("float16", "float32", "codes")


class TokenStore:
    """Append-only, row-aligned token vectors on disk, read through memmaps."""

    def __init__(self, path: Path, meta: dict[str, Any], codec: Any = None) -> None:
        self.path = Path(path)
        self.meta = meta
        self.dim = int(meta["dim"])
        self.storage = meta["storage"]
        self.codec = codec
        self.width = int(meta["code_bytes"]) if self.storage == "codes" else self.dim
        self.dtype = np.dtype(np.uint8 if self.storage == "codes" else self.storage)

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], dim: int, storage: str = "float16", codec: Any = None,
               pool_factor: float = 1.0, pool_method: str = "ward") -> TokenStore:
        """A new, empty token directory. `codec` (a fitted token codec) is required for storage "codes";
        pool_factor and pool_method are recorded, not applied (the writer pools)."""
        path = Path(path)
        if storage not in STORAGES:
            raise CollectionError(f"token storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if (storage == "codes") != (codec is not None):
            raise CollectionError("token storage 'codes' needs a fitted codec, and only it takes one")
        if (path / "meta.json").exists():
            raise CollectionError(f"{path}: a token store already exists here")
        path.mkdir(parents=True, exist_ok=True)
        for name in ("tokens.bin", "offsets.bin", "counts.bin", "batches.bin"):
            (path / name).touch()
        meta: dict[str, Any] = {"format": FORMAT, "dim": int(dim), "storage": storage, "pool_factor": pool_factor,
                                "pool_method": pool_method if pool_factor > 1 else None,
                                "code_bytes": int(codec.bytes_per_vector(dim)) if codec is not None else 0,
                                "codec": codec.state()["codec"] if codec is not None else None}
        if codec is not None:
            from slimvec.codecs.base import save

            save(codec, path / "codec")
        write_json_atomic(path / "meta.json", meta)  # last: a directory without meta.json holds no store
        return cls(path, meta, codec)

    @classmethod
    def open(cls, path: str | os.PathLike[str], committed_rows: int | None = None) -> TokenStore:
        """Open a token directory; with `committed_rows`, cut rows a crashed writer left past the commit."""
        path = Path(path)
        mpath = path / "meta.json"
        try:
            meta = json.loads(mpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CollectionError(f"{path}: no token store here (missing meta.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CollectionError(f"{mpath}: not valid JSON ({e})") from None
        if meta.get("format") != FORMAT or meta.get("storage") not in STORAGES:
            raise CollectionError(f"{mpath}: not a slimvec token store")
        codec = None
        if meta["storage"] == "codes":
            import slimvec.multivector.codes  # noqa: F401 - registers the residual codec before loading
            from slimvec.codecs.base import load

            codec = load(path / "codec")
        store = cls(path, meta, codec)
        if committed_rows is not None:
            if store.rows < committed_rows:
                raise CollectionError(f"{path}: token file holds {store.rows} rows, {committed_rows} committed")
            store.truncate(committed_rows)
        return store

    # ---- state -----------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows whose offsets are on disk (committed or not: the caller knows which are committed)."""
        return self._size("offsets.bin") // 8

    def _size(self, name: str) -> int:
        """Bytes of file `name`; CollectionError when it is missing, as Store.vectors says of the vector file: a
        token file removed by hand or left out of a copy failed searches with a bare FileNotFoundError traceback."""
        try:
            return (self.path / name).stat().st_size
        except FileNotFoundError:
            raise CollectionError(f"{self.path / name}: missing; run `slimvec check` (the collection is damaged)"
                                  ) from None

    def offsets(self, rows: int | None = None) -> np.ndarray:
        """(rows + 1,) int64 token boundaries of the first `rows` rows (all by default)."""
        n = self.rows if rows is None else rows
        ends = np.fromfile(self.path / "offsets.bin", dtype=np.int64, count=n) if n else np.zeros(0, np.int64)
        return np.concatenate([[0], ends]).astype(np.int64)

    def tokens(self, rows: int | None = None) -> np.ndarray:
        """Token rows of the first `rows` chunk rows as a read-only memmap, (N, dim) or (N, code_bytes)."""
        return self.token_rows(int(self.offsets(rows)[-1]))

    def token_rows(self, n_tokens: int) -> np.ndarray:
        """The first `n_tokens` stored token rows as a read-only memmap (pages load on demand)."""
        n_tok = int(n_tokens)
        if n_tok == 0:
            return np.zeros((0, self.width), self.dtype)
        if (size := self._size("tokens.bin")) < n_tok * self.bytes_per_token():  # numpy: "mmap length is greater"
            raise CollectionError(f"{self.path / 'tokens.bin'}: {size} bytes hold fewer than the {n_tok} committed "
                                  "tokens; run `slimvec check` (the file is damaged)")
        return np.memmap(self.path / "tokens.bin", dtype=self.dtype, mode="r", shape=(n_tok, self.width))

    def counts(self, rows: int | None = None) -> np.ndarray:
        """uint16 pooled-cluster size of each token of the first `rows` rows."""
        n_tok = int(self.offsets(rows)[-1])
        self._size("counts.bin")
        return np.fromfile(self.path / "counts.bin", dtype=np.uint16, count=n_tok)

    @property
    def decode(self) -> Any:
        """Block decoder for `maxsim_scores(..., decode=)`: the codec's decode for codes, None for floats."""
        return self.codec.decode if self.codec is not None else None

    def bytes_per_token(self) -> int:
        """Bytes one stored token takes in tokens.bin (plus 2 in counts.bin)."""
        return self.width * self.dtype.itemsize

    def disk_bytes(self) -> int:
        """Bytes of every file of the token directory."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # ---- writing ---------------------------------------------------------------------------
    def truncate(self, rows: int) -> None:
        """Cut every file back to the first `rows` rows (drops an uncommitted tail)."""
        if rows > self.rows:
            raise CollectionError(f"{self.path}: cannot truncate {self.rows} token rows to {rows}")
        n_tok = int(self.offsets(rows)[-1])
        sizes = {"offsets.bin": rows * 8, "tokens.bin": n_tok * self.bytes_per_token(), "counts.bin": n_tok * 2}
        batches = np.fromfile(self.path / "batches.bin", dtype=np.int64).reshape(-1, 3)
        sizes["batches.bin"] = int(np.count_nonzero(batches[:, 1] <= rows)) * 24
        for name, size in sizes.items():
            with open(self.path / name, "r+b") as f:
                if os.fstat(f.fileno()).st_size > size:
                    f.truncate(size)
                    os.fsync(f.fileno())

    def append(self, start_row: int, docs: list[np.ndarray], counts: list[np.ndarray] | None = None) -> None:
        """Write the token arrays of rows start_row.. (one array per chunk row) and fsync them.

        docs: float arrays (n_i, dim), stored as float16/float32 or encoded with the store's codec.
        counts: optional pooled-cluster sizes per token (default 1). The caller holds the writer lock and
        commits the rows (in SQLite) only after this returns; rows past `start_row` are cut first.
        """
        if start_row > self.rows:
            raise CollectionError(f"{self.path}: token rows end at {self.rows}, cannot append at row {start_row}")
        self.truncate(start_row)
        for i, d in enumerate(docs):
            if d.ndim != 2 or d.shape[1] != self.dim:
                raise CollectionError(f"token array {i} has shape {d.shape}, expected (n, {self.dim})")
        lens = np.asarray([len(d) for d in docs], np.int64)
        flat = np.concatenate(docs) if len(docs) and lens.sum() else np.zeros((0, self.dim), np.float32)
        data = self.codec.encode(flat) if self.codec is not None else flat.astype(self.dtype)
        data = np.ascontiguousarray(data, dtype=self.dtype)
        cnt = (np.concatenate(counts) if counts is not None and len(counts) else np.ones(len(flat))).astype(np.uint16)
        if len(cnt) != len(flat):
            raise CollectionError(f"{len(cnt)} token counts for {len(flat)} tokens")
        ends = self.offsets(start_row)[-1] + np.cumsum(lens)
        payload = data.tobytes()
        for name, blob in (("tokens.bin", payload), ("counts.bin", cnt.tobytes()),
                           ("offsets.bin", ends.astype(np.int64).tobytes())):
            with open(self.path / name, "ab") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
        record = np.asarray([start_row, start_row + len(docs), zlib.crc32(payload)], np.int64)
        with open(self.path / "batches.bin", "ab") as f:
            f.write(record.tobytes())
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.path)

    def copy_rows(self, dest: str | os.PathLike[str], rows: np.ndarray, committed_rows: int) -> TokenStore:
        """A new token directory at `dest` holding the tokens of `rows` (of the first `committed_rows`), in that
        order, byte for byte: the same meta and codec (codes are copied, not re-encoded), offsets renumbered,
        one crc32 batch per block of rows. A nested store (the float16 copy kept for rescoring) is copied too.
        Used by compaction; rows: (n,) int64 ascending. meta.json is written last."""
        dest, rows = Path(dest), np.asarray(rows, np.int64)
        dest.mkdir(parents=True, exist_ok=True)
        if (self.path / "codec").is_dir():
            shutil.copytree(self.path / "codec", dest / "codec")
        off, cnt = self.offsets(committed_rows), self.counts(committed_rows)
        tok = self.token_rows(int(off[-1]))
        end, files = 0, {name: open(dest / name, "wb") for name in ("tokens.bin", "offsets.bin", "counts.bin",
                                                                    "batches.bin")}
        try:
            for s in range(0, len(rows), _COPY_ROWS):
                part = rows[s : s + _COPY_ROWS]
                lens = off[part + 1] - off[part]
                firsts = np.concatenate([[0], np.cumsum(lens)[:-1]])
                idx = np.repeat(off[part] - firsts, lens) + np.arange(int(lens.sum()))
                payload = np.ascontiguousarray(tok[idx]).tobytes()
                ends = end + np.cumsum(lens)
                end = int(ends[-1]) if len(ends) else end
                files["tokens.bin"].write(payload)
                files["counts.bin"].write(np.ascontiguousarray(cnt[idx]).tobytes())
                files["offsets.bin"].write(ends.astype(np.int64).tobytes())
                files["batches.bin"].write(np.asarray([s, s + len(part), zlib.crc32(payload)], np.int64).tobytes())
            for f in files.values():
                f.flush()
                os.fsync(f.fileno())
        finally:
            for f in files.values():
                f.close()
        for nested in self.path.iterdir():
            if nested.is_dir() and (nested / "meta.json").is_file():
                TokenStore.open(nested).copy_rows(dest / nested.name, rows, committed_rows)
        write_json_atomic(dest / "meta.json", self.meta)
        return TokenStore(dest, self.meta, self.codec)

    # ---- reading candidates ----------------------------------------------------------------
    def gather(self, rows: np.ndarray, committed_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(token rows, offsets) of the given chunk rows, in that order; only those rows are read from disk."""
        from slimvec.multivector.maxsim import gather

        return gather(self.tokens(committed_rows), self.offsets(committed_rows), np.asarray(rows, np.int64))

    # ---- integrity -------------------------------------------------------------------------
    def check(self, committed_rows: int) -> list[str]:
        """Problems with the first `committed_rows` rows (empty list = healthy): sizes, offsets, crc32 per batch."""
        problems: list[str] = []
        if self.rows < committed_rows:
            return [f"token offsets hold {self.rows} rows, {committed_rows} committed"]
        off = self.offsets(committed_rows)
        if np.any(np.diff(off) < 0):
            problems.append("token offsets are not increasing")
            return problems
        size = (self.path / "tokens.bin").stat().st_size
        if size < off[-1] * self.bytes_per_token():
            return problems + [f"token file holds {size // self.bytes_per_token()} tokens, offsets need {off[-1]}"]
        batches = np.fromfile(self.path / "batches.bin", dtype=np.int64).reshape(-1, 3)
        covered = 0
        with open(self.path / "tokens.bin", "rb") as f:
            for start, end, crc in batches:
                if end > committed_rows:
                    continue
                if start != covered:
                    problems.append(f"token batches skip or overlap at row {covered} (next batch starts {start})")
                covered = int(end)
                lo, hi = int(off[start]) * self.bytes_per_token(), int(off[end]) * self.bytes_per_token()
                f.seek(lo)
                if zlib.crc32(f.read(hi - lo)) != int(crc):
                    problems.append(f"token rows {start}..{end - 1} fail their checksum")
        if covered != committed_rows:
            problems.append(f"token batches cover {covered} rows, {committed_rows} committed")
        return problems
