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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimvec.atomic import fsync_dir
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


def save(path: Path, vectors: np.ndarray, model: str) -> ProbeQueries:
    """Write the probe queries of the collection at `path` atomically (a reader sees the old file or the new)."""
    vecs = np.ascontiguousarray(vectors, np.float32)
    probes = ProbeQueries(vecs, model, digest(vecs))
    tmp = path / f".{FILE}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, vectors=vecs, model=np.array(model), digest=np.array(probes.digest))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / FILE)
    fsync_dir(path)
    return probes


def load(path: Path, model: str, dim: int) -> ProbeQueries | None:
    """The probe queries stored for the collection at `path`, or None when there are none or they were encoded
    with another model or dimension. Raises CollectionError naming the file when it is damaged."""
    f = path / FILE
    try:
        with np.load(f, allow_pickle=False) as z:
            vecs, made_with, dig = np.asarray(z["vectors"], np.float32), str(z["model"]), str(z["digest"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as e:
        raise CollectionError(f"{f}: probe query file is damaged ({e}); remove it with `slimvec tune DIR --reset`") from None
    if vecs.ndim != 2 or len(vecs) == 0 or dig != digest(vecs):
        raise CollectionError(f"{f}: probe query file is damaged (its vectors do not match their digest); remove it "
                              "with `slimvec tune DIR --reset`")
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
