"""The write side of a multi-vector collection: token vectors for new chunk rows, pooled, coded and appended to
the token file before the commit point.

A collection whose profile sets `tokens` keeps, for every chunk row, the token vectors of the same forward pass
that gave its dense vector (`encode_documents_with_tokens`). The write path calls `encode_chunks` (dense vectors,
tokens, pooled counts) and then, holding the collection's writer lock and before the SQLite transaction that
commits the rows, `append_tokens`: the token file is cut back to the committed rows, extended and fsynced, so a
crash at any instant leaves extra rows past the commit that the next writer cuts (see `tokenstore.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.errors import CollectionError, ConfigError
from slimvec.multivector.muvera import MuveraConfig, muvera_documents
from slimvec.multivector.pooling import pool_tokens
from slimvec.multivector.tokenstore import TokenStore

FLOAT_STORAGES = ("float16", "float32")
RESCORE_DIR = "float16"  # inside the token directory: float16 tokens beside codes, for rescoring


@dataclass(frozen=True)
class TokenConfig:
    """What a profile asks of the token file: storage ("float16", "float32" or a token codec spec), Ward pool
    factor and method (pooling.POOL_METHODS), pruned document tokens, and MUVERA FDEs as the dense vectors
    (None: the model's pooled vector)."""

    storage: str = "float16"
    pool: float = 1.0
    prune: str = ""
    muvera: MuveraConfig | None = None
    rescore: int = 0  # coded storage: float16 tokens kept too (in RESCORE_DIR), this many rows rescored with them
    # Collections made before the field existed pooled with "ward": their manifests lack it, so that is the default.
    pool_method: str = "ward"

    @classmethod
    def of(cls, profile: Mapping[str, Any], token_dim: int) -> TokenConfig | None:
        """The token settings of a profile (as stored in a manifest); None when it keeps no token vectors."""
        if not profile.get("tokens"):
            return None
        muvera = profile.get("muvera")
        return cls(str(profile["tokens"]), float(profile.get("token_pool", 1.0)), str(profile.get("token_prune", "")),
                   MuveraConfig(dim=token_dim, **muvera) if muvera else None, int(profile.get("token_rescore", 0)),
                   str(profile.get("token_pool_method", "ward")))


def check_encoder(encoder: Any) -> None:
    """Raise ConfigError unless `encoder` gives token vectors in the same pass as its dense vectors."""
    if not hasattr(encoder, "encode_documents_with_tokens"):
        raise ConfigError(f"model {getattr(encoder, 'name', encoder)!r} gives no token vectors: a multi-vector profile "
                          "needs a multi-vector model (e.g. minilm-tokens or a local late-interaction directory)")


def encode_chunks(encoder: Any, texts: list[str], config: TokenConfig, progress: bool = False
                  ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One forward pass over chunk texts: (dense (n, d) float32, tokens [(m_i, dim) float32 unit rows], counts
    [(m_i,) int]); d is the model's dimension, or the FDE dimension with MUVERA. Tokens are pruned by the model
    (`config.prune`) and Ward-pooled by `config.pool`; counts say how many tokens each pooled row merges."""
    check_encoder(encoder)
    encoder = getattr(encoder, "base", encoder) if config.muvera is not None else encoder  # FDEs of pooled tokens, below
    kwargs = {"prune": config.prune} if config.prune else {}
    dense, tokens = encoder.encode_documents_with_tokens(texts, progress=progress, **kwargs)
    if config.pool > 1:
        tokens, counts = pool_tokens(tokens, config.pool, config.pool_method)
    else:
        counts = [np.ones(len(t), np.int32) for t in tokens]
    if config.muvera is not None:
        dense = muvera_documents(config.muvera, *_flat(tokens, config.muvera.dim))
    return np.asarray(dense, np.float32), tokens, counts


def append_tokens(path: Path, start_row: int, tokens: list[np.ndarray], counts: list[np.ndarray],
                  config: TokenConfig, dim: int) -> TokenStore:
    """Append the token arrays of rows start_row.. to the token file at `path` and fsync them; the caller holds
    the writer lock and commits the rows afterwards. The first append creates the file; a token codec is fitted
    there, once, on that call's tokens (up to 100,000 sampled: give the first call a representative batch).

    Raises CollectionError when the token file is missing although rows are committed.
    """
    store = _append(path, start_row, tokens, counts, config, dim)
    if config.rescore:  # the float16 copy for rescoring: same rows, same crash model
        _append(path / RESCORE_DIR, start_row, tokens, counts,
                TokenConfig("float16", config.pool, pool_method=config.pool_method), dim)
    return store


def _append(path: Path, start_row: int, tokens: list[np.ndarray], counts: list[np.ndarray], config: TokenConfig,
            dim: int) -> TokenStore:
    if (path / "meta.json").exists():
        store = TokenStore.open(path)
    elif start_row:
        raise CollectionError(f"{path}: token file missing, {start_row} rows committed (run `slimvec check`)")
    else:
        if path.exists():  # a crash before meta.json was written: nothing in it was ever committed
            import shutil

            shutil.rmtree(path)
        if config.storage in FLOAT_STORAGES:
            store = TokenStore.create(path, dim, config.storage, pool_factor=config.pool, pool_method=config.pool_method)
        else:
            from slimvec.multivector.codes import fit_token_codec

            flat, _ = _flat(tokens, dim)
            if not len(flat):
                raise CollectionError("the first commit of a coded token file has no tokens to fit its codec on")
            store = TokenStore.create(path, dim, "codes", fit_token_codec(config.storage, flat), pool_factor=config.pool,
                                     pool_method=config.pool_method)
    store.append(start_row, tokens, counts)
    return store


def _flat(tokens: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in tokens])]).astype(np.int64)
    flat = np.concatenate(tokens).astype(np.float32) if offsets[-1] else np.zeros((0, dim), np.float32)
    return flat, offsets
