"""An on-disk embedding cache around any Encoder, so re-running an evaluation re-encodes nothing.

One SQLite file per model under the cache folder. Each vector row is keyed by the SHA-256 of the text the
model sees and carries its own digest, so a damaged row is detected and re-encoded instead of returned.
All rows from one encode call are written in one transaction: a crash mid-write leaves the previous
state (SQLite rolls the journal back on the next open), never a half-written row.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError

_FORMAT = "1"
_BATCH = 900  # keys per SELECT: below SQLite's bound-variable limit on every build
# Error codes meaning the file itself is damaged (as opposed to locked or read-only).
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def default_cache_dir() -> Path:
    """`$SLIMVEC_CACHE` if set, else `~/.cache/slimvec/embeddings`."""
    env = os.environ.get("SLIMVEC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slimvec" / "embeddings"


def cache_file(cache_dir: str | os.PathLike[str], encoder_name: str) -> Path:
    """The SQLite file holding `encoder_name`'s vectors: readable slug plus a hash of the full name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name).strip("._")[-60:] or "model"
    digest = hashlib.sha256(encoder_name.encode("utf-8")).hexdigest()[:16]
    return Path(cache_dir) / f"{slug}-{digest}.sqlite"


def text_key(text: str) -> bytes:
    """SHA-256 of the text's UTF-8 bytes (lone surrogates kept, so every str has a key)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _is_corruption(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES


def _row_digest(ns: str, key: bytes, dtype: str, shape: str, data: bytes) -> bytes:
    # Covers the key too, so a row whose bytes ended up under another key also fails the check.
    h = hashlib.blake2b(digest_size=16)
    for part in (ns.encode("utf-8"), key, dtype.encode("ascii"), shape.encode("ascii"), data):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.digest()


class _VectorStore:
    """SQLite table of (namespace, text key) -> one array; thread-safe, self-healing on file corruption."""

    def __init__(self, path: Path, encoder_name: str) -> None:
        self.path = path
        self.encoder_name = encoder_name
        self.damaged_rows = 0
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(lambda conn: None)  # open now, so a foreign or damaged file is dealt with up front

    def _connect(self) -> sqlite3.Connection:
        # timeout: another process may be writing the same model's cache (parallel evaluations).
        return sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)

    def _setup(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (ns TEXT NOT NULL, key BLOB NOT NULL, "
                "dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL, digest BLOB NOT NULL, "
                "PRIMARY KEY (ns, key)) WITHOUT ROWID"
            )
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('encoder', ?)", (self.encoder_name,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (_FORMAT,))
        stored = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if stored.get("encoder") != self.encoder_name or stored.get("format") != _FORMAT:
            raise ConfigError(
                f"{self.path}: embedding cache belongs to encoder {stored.get('encoder')!r} "
                f"(format {stored.get('format')}), not {self.encoder_name!r}; "
                "remove the file or use another cache folder"
            )

    def _run(self, op: Any) -> Any:
        """Run `op(conn)`; if the file turns out to be damaged, set it aside, start afresh and retry once."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        conn = self._connect()
                        try:
                            self._setup(conn)
                        except BaseException:
                            conn.close()
                            raise
                        self._conn = conn
                    return op(self._conn)
                except sqlite3.DatabaseError as exc:
                    if not _is_corruption(exc) or attempt == 2:
                        raise
                    self._quarantine(exc)
        raise AssertionError("unreachable")

    def _quarantine(self, exc: sqlite3.Error) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-journal", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            try:
                os.replace(src, Path(str(aside) + suffix))
            except FileNotFoundError:
                pass  # absent, or another process set it aside first
        warnings.warn(f"{self.path}: embedding cache damaged ({exc}); moved to {aside.name}, starting empty",
                      RuntimeWarning, stacklevel=4)

    def get_many(self, ns: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Intact rows for `keys`; damaged rows are counted and left out, as if never cached."""
        def op(conn: sqlite3.Connection) -> dict[bytes, np.ndarray]:
            found: dict[bytes, np.ndarray] = {}
            for start in range(0, len(keys), _BATCH):
                chunk = list(keys[start : start + _BATCH])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, dtype, shape, data, digest FROM vectors WHERE ns = ? AND key IN ({marks})",
                    [ns, *chunk],
                ).fetchall()
                for key, dtype, shape, data, digest in rows:
                    arr = _decode(ns, key, dtype, shape, data, digest)
                    if arr is None:
                        self.damaged_rows += 1
                    else:
                        found[bytes(key)] = arr
            return found

        return self._run(op)

    def put_many(self, ns: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store all `items` in one transaction (all or nothing)."""
        rows = [_encode_row(ns, key, arr) for key, arr in items]

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?)", rows)

        self._run(op)

    def count(self) -> int:
        """Number of stored rows, all namespaces."""
        return self._run(lambda conn: conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _encode_row(ns: str, key: bytes, arr: np.ndarray) -> tuple[str, bytes, str, str, bytes, bytes]:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.hasobject:
        raise TypeError(f"cannot cache arrays of dtype {arr.dtype}")
    dtype, shape, data = arr.dtype.str, ",".join(map(str, arr.shape)), arr.tobytes()
    return ns, key, dtype, shape, data, _row_digest(ns, key, dtype, shape, data)


def _decode(ns: str, key: bytes, dtype: str, shape: str, data: bytes, digest: bytes) -> np.ndarray | None:
    """The stored array, or None when anything about the row is inconsistent."""
    try:
        if _row_digest(ns, bytes(key), dtype, shape, bytes(data)) != bytes(digest):
            return None
        dt = np.dtype(dtype)
        dims = tuple(int(s) for s in shape.split(",")) if shape else ()
        if len(data) != math.prod(dims) * dt.itemsize:
            return None
        return np.frombuffer(data, dtype=dt).reshape(dims).copy()
    except (TypeError, ValueError):
        return None


def _rows(out: Any, n: int, who: str) -> list[np.ndarray]:
    """Split an encoder's output for n texts into n per-text arrays."""
    if isinstance(out, np.ndarray):
        rows = [out[i] for i in range(out.shape[0])] if out.ndim else []
    elif isinstance(out, (list, tuple)):
        rows = [np.asarray(r) for r in out]
    else:
        raise TypeError(f"{who}: cannot cache encoder output of type {type(out).__name__}")
    if len(rows) != n:
        raise ValueError(f"{who}: encoder returned {len(rows)} vectors for {n} texts")
    return rows


def _assemble(rows: list[np.ndarray]) -> Any:
    # Same-shaped rows (every dense/sparse-as-dense encoder) come back as the (n, ...) array the encoder
    # returns; ragged rows (per-token multivectors) come back as a list.
    if rows and all(r.shape == rows[0].shape and r.dtype == rows[0].dtype for r in rows):
        return np.stack(rows)
    return rows


class CachedEncoder:
    """An Encoder that serves repeated texts from disk and encodes only the misses, in one batched call."""

    def __init__(self, encoder: Encoder, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.encoder = encoder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        # Not `path`: that name reaches the wrapped encoder (DenseEncoder.path is its model folder).
        self.cache_path = cache_file(self.cache_dir, encoder.name)
        self._store = _VectorStore(self.cache_path, encoder.name)
        self.hits = 0  # texts answered from the cache (including repeats within one call)
        self.misses = 0  # distinct texts sent to the encoder
        self.encode_calls = 0  # calls made to the wrapped encoder

    # The Encoder protocol, forwarded; dim/max_tokens stay lazy so a fully cached run never loads the model.
    @property
    def name(self) -> str:
        """The wrapped encoder's name."""
        return self.encoder.name

    @property
    def kind(self) -> str:
        """The wrapped encoder's kind."""
        return self.encoder.kind

    @property
    def dim(self) -> int:
        """The wrapped encoder's vector size."""
        return self.encoder.dim

    @property
    def max_tokens(self) -> int:
        """The wrapped encoder's input limit."""
        return self.encoder.max_tokens

    @property
    def damaged(self) -> int:
        """Cached rows found damaged (and re-encoded) so far."""
        return self._store.damaged_rows

    def with_query_pooling(self, pooling: str) -> "CachedEncoder":
        """This cache around the wrapped encoder's `with_query_pooling(pooling)` (query vectors are cached
        apart per pooling, see `_namespace`)."""
        return CachedEncoder(self.encoder.with_query_pooling(pooling), self.cache_dir)  # type: ignore[attr-defined]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The wrapped encoder's token spans (not cached: cheap)."""
        return self.encoder.token_spans(text)

    def __getattr__(self, attr: str) -> Any:
        # Anything else (model, path, batch_size...) is the wrapped encoder's.
        if attr.startswith("_") or attr == "encoder":
            raise AttributeError(attr)
        return getattr(self.encoder, attr)

    def _namespace(self, side: str) -> str:
        # DenseEncoder prepends a prompt inside encode_*; the same model name with another prompt gives
        # other vectors, so the prompt is part of the key space.
        prompt = getattr(self.encoder, f"{side}_prompt", "")
        ns = f"{side}|{prompt}" if isinstance(prompt, str) and prompt else side
        # A [CLS] model whose queries are pooled otherwise (late-chunking collections) gives other query vectors.
        pooling = getattr(self.encoder, "query_pooling", None)
        if side == "query" and isinstance(pooling, str) and pooling != getattr(self.encoder, "pooling", pooling):
            ns += f"|pooling={pooling}"
        return ns

    def _cached(self, texts: Sequence[str], side: str, encode: Any) -> Any:
        texts = list(texts)
        if not texts:
            self.encode_calls += 1
            return encode([])
        ns = self._namespace(side)
        keys = [text_key(t) for t in texts]
        first_text = dict(zip(keys, texts))  # duplicates within a call are encoded once
        found = self._store.get_many(ns, list(first_text))
        missing = [k for k in first_text if k not in found]
        if missing:
            self.encode_calls += 1
            fresh = _rows(encode([first_text[k] for k in missing]), len(missing), self.name)
            self._store.put_many(ns, zip(missing, fresh))
            found.update(zip(missing, fresh))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return _assemble([found[k] for k in keys])

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Document vectors, from the cache where possible; misses encoded in one call, order kept."""
        return self._cached(
            texts, "document", lambda batch: self.encoder.encode_documents(batch, progress=progress)
        )

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors, cached apart from documents (models may encode the two differently)."""
        return self._cached(texts, "query", self.encoder.encode_queries)

    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False, prune: str | None = None
                                     ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Dense vectors and token vectors (multi-vector encoders) from the cache where possible; the misses
        go to the wrapped encoder in one call, which gives both from one forward pass. Token vectors are
        kept as float16 (what a collection's token file stores) and returned as float32.

        Raises AttributeError when the wrapped encoder gives no token vectors."""
        both = self.encoder.encode_documents_with_tokens  # type: ignore[attr-defined]
        texts = list(texts)
        kwargs = {} if prune is None else {"prune": prune}
        tok_ns = f"{self._namespace('document')}|tokens|{prune if prune is not None else getattr(self.encoder, 'prune', '')}"
        keys = [text_key(t) for t in texts]
        first_text = dict(zip(keys, texts))
        dense = self._store.get_many(self._namespace("document"), list(first_text))
        tokens = self._store.get_many(tok_ns, list(first_text))
        missing = [k for k in first_text if k not in dense or k not in tokens]
        if missing:
            self.encode_calls += 1
            d, t = both([first_text[k] for k in missing], progress=progress, **kwargs)
            fresh_d = _rows(d, len(missing), self.name)
            fresh_t = [np.asarray(x, np.float16) for x in t]
            self._store.put_many(self._namespace("document"), zip(missing, fresh_d))
            self._store.put_many(tok_ns, zip(missing, fresh_t))
            dense.update(zip(missing, fresh_d))
            tokens.update(zip(missing, fresh_t))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        dim = self.encoder.dim
        out_d = np.stack([dense[k] for k in keys]) if keys else np.zeros((0, dim), np.float32)
        return out_d, [np.asarray(tokens[k], np.float32).reshape(-1, dim) for k in keys]

    def cached_count(self) -> int:
        """Rows stored for this model (documents and queries)."""
        return self._store.count()

    def close(self) -> None:
        """Release the SQLite connection; the cache reopens itself if used again."""
        self._store.close()

    def __enter__(self) -> CachedEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
