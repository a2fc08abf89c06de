"""Which query adapter serves a migration best, and does `choose`'s criterion find it: every candidate of
`slimvec migrate --adapter auto` (and the former candidates) fitted on one migration's sample, side by side.

    SLIMVEC_CACHE=/tmp/migrate-cache PYTHONPATH=src python benchmarks/migrate_adapters.py \
        --data ../shared/data/scifact --pair wordllama:all-MiniLM-L6-v2 --sample 2000 [--split train]

Per candidate: held-out agreement on the sample as `adapters.choose` scores it (recall@10 of the old model's
neighbours, recall_new@10 of the new model's, cosine; fitted on 80%, scored on 20%), and nDCG@10 over the old
model's own for "alone" (every document scored through the adapter) and "start" (the state right after
`runner.start`: the sample's documents native, merged by the per-query line), on the test queries and on a
second split (SciFact train, NFCorpus dev) on which a choice may be made without touching the test qrels.
"inverse" is least squares the other way (old vectors -> new ones; the query is mapped by the transpose): the
best linear predictor of the new model's scores, tried and not kept (it tops recall_new@10 but not nDCG@10).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from migrate import _adapter_only, _docs, _ndcg  # noqa: E402

from slimvec import Collection  # noqa: E402
from slimvec.encoders.cache import CachedEncoder  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.migrate import adapters as A  # noqa: E402
from slimvec.migrate import runner  # noqa: E402


class _Inverse(A.Adapter):
    name = "inverse"

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        w, _ = A._ridge(y, x, 1e-2)  # (d_old, d_new): old vectors -> new ones
        return {"W": w.T.astype(np.float32)}

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x @ self.params["W"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pair", action="append", required=True, help="OLD:NEW model names")
    ap.add_argument("--sample", type=int, default=runner.MAX_SAMPLE)
    ap.add_argument("--split", default="train", help="the second query split (SciFact train, NFCorpus dev)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    ds = load_dataset(args.data)
    splits = {"test": (ds.queries("test"), ds.qrels("test")), args.split: (ds.queries(args.split), ds.qrels(args.split))}
    docs = _docs(args.data, splits["test"][1], None)
    rows = []
    for pair in args.pair:
        old_name, new_name = pair.split(":", 1)
        old_enc, new_enc = CachedEncoder(load_encoder(old_name)), CachedEncoder(load_encoder(new_name))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "col"
            with Collection.create(path, model=old_enc.name, encoder=old_enc) as col:
                col.add(docs)
                own = {s: _ndcg(col, q, r) for s, (q, r) in splits.items()}
            caught: dict[str, np.ndarray] = {}
            choose = A.choose

            def catch(x, y, names, seed=0, **kw):  # the sample's pairs, exactly as start fits on them
                caught["x"], caught["y"] = x, y
                return choose(x, y, names, seed, **kw)

            runner._adapters.choose = catch
            try:
                record = runner.start(path, new_enc.name, adapter="procrustes", sample=args.sample, encoder=new_enc)
            finally:
                runner._adapters.choose = choose
            x, y = caught["x"], caught["y"]
            n = len(x)
            order = np.random.default_rng(0).permutation(n)
            held, train = np.sort(order[: n // 5]), order[n // 5 :]
            cands = [A.Affine(), A.Procrustes(), *[A.ProcrustesRidge(ridge=r) for r in A.ProcrustesRidge.GRID], _Inverse()]
            _, auto_scores = A.choose(x, y, list(A.AUTO))
            auto = max(auto_scores, key=lambda s: (round(s.recall_new_at_10, 3), s.cosine))
            with Collection.open(path, encoder=new_enc) as col:
                for cand in cands:
                    fitted = (A.ProcrustesRidge(ridge=cand.ridge) if isinstance(cand, A.ProcrustesRidge)
                              else type(cand)()).fit(x[train], y[train])
                    held_out = A.agreement(fitted, x, y, held, 0.0)
                    col.adapter = cand.fit(x, y)
                    col.queries, col.merge = "adapter", "per-query"
                    vals = []
                    for s, (q, r) in splits.items():
                        vals += [_adapter_only(col, q, r) / own[s], _ndcg(col, q, r) / own[s]]
                    label = cand.name + (f" {cand.ridge:g}" if isinstance(cand, A.ProcrustesRidge) else "")
                    picked = (cand.name == auto.name and getattr(cand, "ridge", None) == auto.extra.get("ridge"))
                    rows.append([f"{args.data.name} ({len(docs)} docs)", pair, record["pairs"],
                                 f"{record['native_at_start'] / len(docs):.1%}", label + (" (auto)" if picked else ""),
                                 f"{held_out.recall_at_10:.3f}", f"{held_out.recall_new_at_10:.3f}",
                                 f"{held_out.cosine:.3f}", *[f"{v:.3f}" for v in vals]])
                    print(rows[-1], flush=True)
    print_table(["set", "old:new", "pairs", "native at start", "adapter", "held-out recall@10 (old)",
                 "held-out recall_new@10", "held-out cosine", "test alone / old", "test start / old",
                 f"{args.split} alone / old", f"{args.split} start / old"], rows)


if __name__ == "__main__":
    main()
