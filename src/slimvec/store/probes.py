"""The user's probe queries: vectors of sample queries kept beside a collection to calibrate its index on.

An IVF nprobe or an HNSW efSearch is calibrated to a target Recall@10 on probe queries (`index.nprobe`). Without
the user's queries those are midpoints of stored rows, which track real queries only as far as the data allows
(BENCHMARKS.md, "Tuning on your own queries"). `Collection.tune` stores the vectors of a user's sample queries
here, as faiss's autotuning (`faiss.ParameterSpace`) takes a query set; every calibration after that runs on
them, until `Collection.reset_tuning`. They are user input, not derived data: compaction keeps the file, export
does not carry it. A file made with another model (before a migration switched it) or another dimension is not
used (`load` returns None), so stale vectors never tune an index of a different space.

File: DIR/probe_queries.npz with `vectors` ((n, dim) float32, unit rows), `model` (the collection's model name)
and `digest` (hex SHA-256 of the vectors' bytes, first 16 characters: what a calibration records it ran on).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimvec.atomic import fsync_dir, replaced_file
from slimvec.errors import CollectionError

FILE = "probe_queries.npz"
MAX_QUERIES = 1000  # Recall@10 of 1,000 queries is known to about +-0.005; more only slows each calibration
MIN_QUERIES = 10


@dataclass(frozen=True)
class ProbeQueries:
    """(n, dim) float32 probe query vectors, the model they were encoded with, and their digest."""

    vectors: np.ndarray
    model: str
    digest: str


def digest(vectors: np.ndarray) -> str:
    """First 16 hex characters of SHA-256 over the float32 bytes of `vectors` (C order)."""
    return hashlib.sha256(np.ascontiguousarray(vectors, np.float32).tobytes()).hexdigest()[:16]


def of(vectors: np.ndarray, model: str) -> ProbeQueries:
    """The probe queries `save` stores for these vectors (what `load` then reads back)."""
    vecs = np.ascontiguousarray(vectors, np.float32)
    return ProbeQueries(vecs, model, digest(vecs))


def save(path: Path, vectors: np.ndarray, model: str) -> ProbeQueries:
    """Write the probe queries of the collection at `path` atomically (a reader sees the old file or the new)."""
    probes = of(vectors, model)
    vecs = probes.vectors
    with replaced_file(path / FILE, path / f".{FILE}.tmp-{os.getpid()}") as tmp:
        try:
            with open(tmp, "wb") as f:
                np.savez(f, vectors=vecs, model=np.array(model), digest=np.array(probes.digest))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror, str(path / FILE)) from None  # a failed write names no file: this one
    fsync_dir(path)
    return probes


def load(path: Path, model: str, dim: int) -> ProbeQueries | None:
    """The probe queries stored for the collection at `path`, or None when there are none or they were encoded
    with another model or dimension. Raises CollectionError naming the file when it is damaged."""
    f = path / FILE
    fix = f"remove it with `slimvec tune {path} --reset`"
    if not os.access(path, os.W_OK):  # the advice above would fail here: say who can follow it
        fix += " where the collection is writable (this process cannot write to it)"
    try:
        fh = open(f, "rb")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CollectionError(f"{f}: cannot read the probe query file ({e.strerror})") from None
    # The file is opened here and closed here: np.load leaves its own handle open when a zip archive is cut short,
    # reads a file that is no zip archive as a pickle (and says so), and returns a bare array for an .npy file.
    with fh:
        try:
            if not zipfile.is_zipfile(fh):
                raise ValueError("not an .npz archive, or a truncated one")
            fh.seek(0)
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                vecs, made_with, dig = np.asarray(z["vectors"], np.float32), str(z["model"]), str(z["digest"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise CollectionError(f"{f}: probe query file is damaged ({e}); {fix}") from None
    if vecs.ndim != 2 or len(vecs) == 0 or dig != digest(vecs) or not np.isfinite(vecs).all():
        raise CollectionError(f"{f}: probe query file is damaged (its vectors do not match their digest, or are not "
                              f"finite); {fix}")
    if made_with != model or vecs.shape[1] != dim:
        return None
    return ProbeQueries(vecs, made_with, dig)


def remove(path: Path) -> bool:
    """Delete the stored probe queries; returns whether there were any."""
    try:
        os.unlink(path / FILE)
    except FileNotFoundError:
        return False
    fsync_dir(path)
    return True
