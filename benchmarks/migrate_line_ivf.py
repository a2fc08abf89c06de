"""Explored in session 14, not adopted: can the per-query score line (migrate/line.py) keep its 5,000 references
and cost less, by finding each query's top reference scores through a faiss IVF over the references (per space)
instead of scoring all of them? Or by matching both spaces on the same chunks (the top `depth` picked in one
space only)? Measured as migrate_line_select.py measures a line: one migration started as benchmarks/migrate.py
starts it (full corpus, 5,000-pair sample), then nDCG@10 of adapter-served search at the start over the old
model's own, on training queries only; beside it the line's median time per lone query (faiss one thread).

    SLIMVEC_CACHE=/tmp/migrate-cache PYTHONPATH=src python benchmarks/migrate_line_ivf.py \\
        --data ../shared/data/scifact:train --pair all-MiniLM-L6-v2:bge-small-en-v1.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from migrate import _docs  # noqa: E402
from migrate_line_select import _ndcg  # noqa: E402

from slimvec import Collection  # noqa: E402
from slimvec.encoders.cache import CachedEncoder  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.migrate import runner  # noqa: E402
from slimvec.migrate.line import ScoreLine, pick_references, reference_depth  # noqa: E402


def _ivf(x: np.ndarray, lists: int, probe: int):
    import faiss

    ix = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    ix.cp.seed, ix.cp.min_points_per_centroid, ix.cp.spherical = 7, 1, True
    ix.train(x)
    ix.add(x)
    ix.nprobe = probe
    return ix


def _moments(sn: np.ndarray, so: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ScoreLine's moment matching of the two heads (new rows first), over the valid entries only."""
    q = len(sn)
    h = np.concatenate([sn, so]).astype(np.float64)
    ok = np.ones_like(h, bool) if valid is None else valid
    h = np.where(ok, h, 0.0)
    n = np.maximum(ok.sum(1), 1)
    mean = h.sum(1) / n
    spread = np.sqrt(np.maximum((h * h).sum(1) / n - mean * mean, 0.0))
    a = spread[q:] / np.maximum(spread[:q], 1e-6)
    return a, mean[q:] - a * mean[:q]


class IvfLine(ScoreLine):
    """Each space's top `depth` reference scores found through an IVF (lists, probe) over that space's references."""

    def __init__(self, x, y, depth, lists: int, probe: int) -> None:
        super().__init__(x, y, depth)
        self.ix, self.iy = _ivf(np.ascontiguousarray(self.x), lists, probe), _ivf(np.ascontiguousarray(self.y), lists, probe)

    def lines(self, qn, qo):
        sn, ln = self.ix.search(np.ascontiguousarray(qn, np.float32), self.depth)
        so, lo = self.iy.search(np.ascontiguousarray(qo, np.float32), self.depth)
        return _moments(sn, so, np.concatenate([ln, lo]) >= 0)


class SameChunks(ScoreLine):
    """Both spaces scored on the same chunks: the top `depth` references by one space's score ("new" or "old")."""

    def __init__(self, x, y, depth, by: str) -> None:
        super().__init__(x, y, depth)
        self.by = by

    def lines(self, qn, qo):
        s = qn @ self.xt if self.by == "new" else qo @ self.yt
        top = np.argpartition(s, s.shape[1] - self.depth, axis=1)[:, -self.depth:]
        return _moments(np.einsum("qd,qkd->qk", qn, self.x[top]), np.einsum("qd,qkd->qk", qo, self.y[top]))


def _ms(line: ScoreLine, qn: np.ndarray, qo: np.ndarray) -> float:
    for i in range(20):
        line.lines(qn[i : i + 1], qo[i : i + 1])
    times = []
    for i in range(min(300, len(qn))):
        t0 = time.perf_counter()
        line.lines(qn[i : i + 1], qo[i : i + 1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def candidates(x: np.ndarray, y: np.ndarray) -> list[tuple[str, ScoreLine]]:
    d = reference_depth(len(x))
    out: list[tuple[str, ScoreLine]] = [("all references, top 2.5% (the default)", ScoreLine(x, y, d))]
    out += [(f"IVF {lists} lists, probe {probe}", IvfLine(x, y, d, lists, probe))
            for lists in (32, 64) for probe in (2, 4, 8, 16)]
    out += [("same chunks, picked by the new space", SameChunks(x, y, d, "new")),
            ("same chunks, picked by the old part's space", SameChunks(x, y, d, "old"))]
    keep = pick_references(x, 256)
    out.append(("256 k-means medoids, top 10% (`--references 256`)", ScoreLine(x[keep], y[keep], reference_depth(len(keep), 0.1))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="DIR:SPLIT (a training split)")
    ap.add_argument("--pair", required=True, help="OLD:NEW")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    data, split = args.data.rsplit(":", 1)
    if split == "test":
        raise SystemExit("explored on training queries only: give a train or dev split")
    old_name, new_name = args.pair.split(":", 1)
    print(f"machine: {machine()}")
    ds = load_dataset(Path(data))
    qrels, queries = ds.qrels(split), ds.queries(split)
    ids = list(queries)
    texts = [queries[q] for q in ids]
    old_enc, new_enc = CachedEncoder(load_encoder(old_name)), CachedEncoder(load_encoder(new_name))
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "col"
        with Collection.create(path, model=old_enc.name, encoder=old_enc) as col:
            col.add(_docs(Path(data), ds.qrels("test"), None))
            old = _ndcg(col, texts, ids, qrels)
        runner.start(path, new_enc.name, encoder=new_enc)
        qn = np.asarray(new_enc.encode_queries(texts), np.float32)
        rows = []
        with Collection.open(path, encoder=new_enc) as col:
            qo = col.adapter.apply(qn)
            for name, line in candidates(col.line.x, col.line.y):
                col.line, col.merge = line, "per-query"
                got = _ndcg(col, texts, ids, qrels, qn)
                rows.append([name, f"{got:.4f}", f"{got / old:.3f}", f"{_ms(line, qn, qo):.3f}"])
                print(rows[-1], flush=True)
    print(f"{Path(data).name} {split}, {old_name} -> {new_name}: old model's own nDCG@10 {old:.4f}")
    print_table(["line", "nDCG@10 at start", "of the old model's", "line ms per lone query (median)"], rows)


if __name__ == "__main__":
    main()
