"""PyLate's own index and retrieval over the `minilm-tokens` vectors of benchmarks/_mv_cache.py (run by
benchmarks/multivector_pylate.py inside a separate virtualenv holding pylate; imports numpy and pylate only).

    /tmp/pylate-venv/bin/python benchmarks/_mv_pylate.py /tmp/slimvec-mv-cache/scifact plaid OUT.json [THREADS] [ITERS]

The cached document token vectors (float16 on disk, given to PyLate as float32) are added to a PyLate index
(`plaid`: pylate.indexes.PLAID, its port of ColBERTv2's PLAID: k-means centroids + 2-bit residuals; `voyager`:
pylate.indexes.Voyager, HNSW over every token, candidates reranked by exact MaxSim), then every cached test
query's token vectors are retrieved one query at a time with `pylate.retrieve.ColBERT` (k = 10), each timed
(wall and process CPU). ITERS: PLAID's k-means iterations (PyLate's default 4; on SciFact's 1.23M
tokens and 16,384 centroids one iteration took 382 s on the shared 2-core box, so runs here may use 1).
Writes {"index", "pylate", "torch", "build_s", "wall", "cpu", "run"} as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10


def allow_large_quantiles() -> None:
    """torch.quantile refuses inputs over 2**24 elements; PyLate 1.2.0's PLAID (ColBERT's indexer, written for
    128-d vectors) asks it for quantiles of 50,000 held-out 384-d residuals (19.2M values) and fails with
    "quantile() input tensor is too large". Over that size, the whole-tensor quantile (no `dim`) is computed
    by numpy with the same linear interpolation (torch's and numpy's default); other calls are unchanged."""
    import torch

    original = torch.Tensor.quantile

    def quantile(self: torch.Tensor, q: torch.Tensor | float, dim: int | None = None, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if dim is None and not args and not kwargs and self.numel() > 2**24:
            qs = q.cpu().double().numpy() if isinstance(q, torch.Tensor) else q
            out = np.quantile(self.detach().cpu().double().numpy().ravel(), qs)
            return torch.as_tensor(out, dtype=self.dtype, device=self.device)
        return original(self, q, dim, *args, **kwargs)

    torch.Tensor.quantile = quantile


def main(cache: Path, kind: str, out: Path) -> None:
    import pylate
    import torch
    from pylate import indexes, retrieve

    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else torch.get_num_threads())
    allow_large_quantiles()
    offsets = np.load(cache / "offsets.npy")
    doc_ids = json.loads((cache / "doc_ids.json").read_text())
    dim = int(np.load(cache / "dense.npy", mmap_mode="r").shape[1])
    tokens = np.memmap(cache / "tokens.f16", dtype=np.float16, mode="r", shape=(int(offsets[-1]), dim))
    docs = [np.asarray(tokens[offsets[i] : offsets[i + 1]], np.float32) for i in range(len(doc_ids))]
    qz = np.load(cache / "query_tokens.npz")
    qtok = [qz[f"arr_{i}"].astype(np.float32) for i in range(len(qz.files))]
    qids = json.loads((cache / "query_ids.json").read_text())
    folder = tempfile.mkdtemp(prefix=f"pylate-{kind}-")
    t0 = time.perf_counter()
    iters = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    if kind == "plaid":
        index = indexes.PLAID(index_folder=folder, index_name="idx", override=True, embedding_size=dim,
                              kmeans_niters=iters)
    else:
        index = indexes.Voyager(index_folder=folder, index_name="idx", override=True, embedding_size=dim)
    index.add_documents(documents_ids=doc_ids, documents_embeddings=docs)
    build = time.perf_counter() - t0
    retriever = retrieve.ColBERT(index=index)
    retriever.retrieve(queries_embeddings=[qtok[0]], k=K)  # warm-up (loads the searcher's tensors)
    run, wall, cpu = {}, [], []
    for q, t in zip(qids, qtok):
        w0, c0 = time.perf_counter(), time.process_time()
        res = retriever.retrieve(queries_embeddings=[t], k=K)[0]
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        run[q] = {r["id"]: float(r["score"]) for r in res}
    out.write_text(json.dumps({"index": kind, "kmeans_niters": iters if kind == "plaid" else None,
                               "pylate": pylate.__version__, "torch": torch.__version__, "build_s": build,
                               "wall": wall, "cpu": cpu, "run": run, "folder": folder}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
