"""A benchmark-only encoder that REPLAYS the vectors an already-built collection stores, so the other
profiles of benchmarks/multivector_profiles.py go through the real Collection write path (chunking, pooling,
token codes, MUVERA, codecs, commit) without encoding the corpus again on shared cores.

Documents: each chunk text the write path asks for is looked up in the source collection (key = the text the
write path encodes, `chunking.chunk_text(title, chunk text)`) and answered with that row's stored float32
dense vector and, for a source keeping tokens, its token vectors from the token file (float16 on disk, so the
replayed tokens are float16-rounded, returned as float32). A text the source does not hold raises KeyError:
nothing is silently re-encoded. Queries go to the real model (timed searches include real query encoding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimvec.chunking import chunk_text
from slimvec.encoders.registry import load_encoder
from slimvec.multivector.retriever import TOKENS_DIR
from slimvec.multivector.tokenstore import TokenStore
from slimvec.store import Store


class ReplayEncoder:
    """Stored vectors of the collection at `source` for document texts; the real model for everything else."""

    def __init__(self, source: str | Path) -> None:
        store = Store.open(Path(source))
        try:
            m = store.manifest
            rows = store.committed_rows
            chunks = store.chunks_for_rows(list(range(rows)))
            self.row_of = {chunk_text(c.title, c.text): r for r, c in chunks.items()}
            self.dense = np.asarray(store.vectors(), np.float32)
        finally:
            store.close()
        self.real = load_encoder(m["model"])
        self.name, self.kind = m["model"], getattr(self.real, "kind", "dense")
        self.tokens = self.offsets = None
        if (Path(source) / TOKENS_DIR / "meta.json").exists():
            ts = TokenStore.open(Path(source) / TOKENS_DIR, rows)
            if ts.storage != "float16" or ts.meta.get("pool_factor", 1.0) != 1.0:
                raise ValueError(f"{source}: replay needs unpooled float16 tokens, found {ts.meta}")
            self.offsets = ts.offsets(rows)
            self.tokens = ts.tokens(rows)
        self.misses = 0

    def __getattr__(self, attr: str) -> Any:  # dim, max_tokens, token_spans, query encoding: the real model's
        if attr == "real":
            raise AttributeError(attr)
        return getattr(self.real, attr)

    def _rows(self, texts: list[str]) -> np.ndarray:
        try:
            return np.asarray([self.row_of[t] for t in texts], np.int64)
        except KeyError as e:
            raise KeyError(f"chunk text not in the replay source (first 80 chars): {str(e)[:80]!r}") from None

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Stored dense vectors, (n, dim) float32."""
        return self.dense[self._rows(list(texts))]

    def encode_documents_with_tokens(self, texts: list[str], progress: bool = False, prune: str | None = None
                                     ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Stored dense vectors and stored (float16-rounded) token vectors, as float32."""
        if self.tokens is None:
            raise AttributeError("the replay source keeps no token vectors")
        if prune:
            raise ValueError("replayed tokens are unpruned; prune is not supported")
        rows = self._rows(list(texts))
        toks = [np.asarray(self.tokens[self.offsets[r] : self.offsets[r + 1]], np.float32) for r in rows]
        return self.dense[rows], toks

    def encode_document_tokens(self, texts: list[str], progress: bool = False) -> list[np.ndarray]:
        return self.encode_documents_with_tokens(texts, progress)[1]


class CacheReplayEncoder(ReplayEncoder):
    """Stored vectors of benchmarks/_mv_cache.py's token cache of a BEIR corpus (the same `minilm-tokens`
    forward pass: dense float32 + float16 token vectors of "title text", cut by the model at 256 word
    pieces), answered for the chunk texts the write path asks for. In chunk mode "truncate" a chunk is a
    prefix of its document's "title text" (cut at the same 256-piece limit), so a chunk text is matched to the
    document whose full text it equals or starts; the vectors are those of the full text as the model cut it.
    `model`: the registered name the collection records ("minilm-tokens", or the dense "all-MiniLM-L6-v2")."""

    PREFIX = 64

    def __init__(self, dataset: str, docs: list[Any], model: str) -> None:
        from _mv_cache import load

        c = load(dataset)
        ids = {d: i for i, d in enumerate(c["doc_ids"])}
        self.dense = np.asarray(c["dense"], np.float32)
        self.tokens, self.offsets = c["tokens"], c["offsets"]
        self.full: dict[str, int] = {}
        self.by_prefix: dict[str, list[tuple[str, int]]] = {}
        for d in docs:
            text = chunk_text(d.title, d.text)
            self.full.setdefault(text, ids[d.id])
            self.by_prefix.setdefault(text[: self.PREFIX], []).append((text, ids[d.id]))
        self.real = load_encoder(model)
        self.name, self.kind = model, getattr(self.real, "kind", "dense")
        if self.kind != "multivector":
            self.tokens = None
        self.misses = 0

    def _rows(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            i = self.full.get(t)
            if i is None:
                i = next((j for full, j in self.by_prefix.get(t[: self.PREFIX], []) if full.startswith(t)), None)
            if i is None:
                raise KeyError(f"chunk text matches no cached document (first 80 chars): {t[:80]!r}")
            out.append(i)
        return np.asarray(out, np.int64)
