"""Migration between models (`slimvec migrate`): nDCG@10 of search through the migration, side by side with the
old model's own and a fresh build with the new model, at 0/25/50/75/100% re-embedded; adapter fit time and
pairs; ms added per query.

    PYTHONPATH=src python benchmarks/migrate.py --data ../shared/data/scifact \
        --pair wordllama:all-MiniLM-L6-v2 --pair all-MiniLM-L6-v2:bge-small-en-v1.5 [--docs N] [--sample 2000]

Encodings go through the embedding cache (encoders/cache.py), so each model encodes a corpus once across
runs. --docs N keeps every judged document of the test queries and fills up to N in corpus order (a subset;
the table says so). "start" is the state right after `runner.start`: the fitting sample's documents are
already stored natively (column "native at start"); the 25/50/75% points (documents in the target, sample
included) are real states of the migration: the re-embedding is stopped after the batch that crosses each
fraction and searched there (a point the start already passed is the start state). "adapter only" scores
every document through the adapter at start (the sample masked back in): the adapter's own quality.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table, read_jsonl  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.encoders.cache import CachedEncoder  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.evaluation.metrics import evaluate  # noqa: E402
from slimvec.migrate import runner  # noqa: E402

BATCH = 64


class _Stop(Exception):
    pass


def _docs(data: Path, qrels: dict, limit: int | None) -> list[Document]:
    corpus = read_jsonl(data / "corpus.jsonl")
    if limit:
        needed = {d for rel in qrels.values() for d in rel}
        corpus = [d for d in corpus if d["_id"] in needed] + [d for d in corpus if d["_id"] not in needed]
        corpus = corpus[:limit]
    # Insertion order decides which documents a fraction re-embeds first: shuffled (seeded), so the judged ones
    # (first in a --docs subset) are spread over the re-embedding instead of all landing in its first quarter.
    order = random.Random(0).sample(range(len(corpus)), len(corpus))
    return [Document(corpus[i]["_id"], corpus[i]["text"], corpus[i].get("title", "")) for i in order]


def _ndcg(col, queries: dict[str, str], qrels: dict) -> float:
    ids = list(queries)
    hits = col.search_many([queries[q] for q in ids], k=10)
    run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(ids, hits)}
    return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]


def _ranked(hits: list) -> list[list[tuple[str, float]]]:
    """(id, score) per hit, equal scores ordered by id: documents with the same text (NFCorpus has duplicates)
    tie, and the migrated collection stores the sample's documents first, so its ties may come in another order."""
    return [sorted(((h.id, h.score) for h in hs), key=lambda t: (-t[1], t[0])) for hs in hits]


def _same_answers(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> bool:
    """Equal top 10s: the same scores, bit for bit, and the same ids, except among documents tied with the 10th
    score (NFCorpus holds duplicate texts; which of several tied duplicates makes the cut is the tie rule's row
    order, and the migrated collection stores the sample's documents first)."""
    for g, w in zip(got, want):
        if [s for _, s in g] != [s for _, s in w]:
            return False
        cut = w[-1][1] if w else None
        if [i for i, s in g if s != cut] != [i for i, s in w if s != cut]:
            return False
    return len(got) == len(want)


def _adapter_only(col, queries: dict[str, str], qrels: dict) -> float:
    """nDCG@10 with every document scored through the adapter (no native part, nothing masked)."""
    import numpy as np

    native, rows = col.target.search_many, col._migrated_rows
    col.target.search_many = lambda qs, *a, **k: [[] for _ in qs]
    col._migrated_rows = lambda: np.zeros(0, np.int64)
    col._kept_mask = None  # the old part's mask is kept between searches: made again without the masking
    try:
        return _ndcg(col, queries, qrels)
    finally:
        col.target.search_many, col._migrated_rows, col._kept_mask = native, rows, None


def one_pair(data: Path, old_name: str, new_name: str, docs: list[Document], queries: dict, qrels: dict,
             sample: int, work: Path, adapter: str = "auto") -> dict:
    old_enc, new_enc = CachedEncoder(load_encoder(old_name)), CachedEncoder(load_encoder(new_name))
    path, fresh = work / "col", work / "fresh"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with Collection.create(path, model=old_enc.name, encoder=old_enc) as col:
        col.add(docs)
        old_ndcg = _ndcg(col, queries, qrels)
    with Collection.create(fresh, model=new_enc.name, encoder=new_enc) as col:
        for s in range(0, len(docs), BATCH):
            col.add(docs[s : s + BATCH])
        new_ndcg = _ndcg(col, queries, qrels)
        want = _ranked(col.search_many(list(queries.values()), k=10))
    t0 = time.perf_counter()
    record = runner.start(path, new_enc.name, adapter=adapter, sample=sample, encoder=new_enc)
    start_s = time.perf_counter() - t0
    points = {}
    with Collection.open(path, encoder=new_enc) as col:
        col._encoder = old_enc  # the old model's queries ("old-model") through the cache
        adapter_only = _adapter_only(col, queries, qrels)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        goal = int(round(frac * len(docs)))
        if goal <= record["native_at_start"]:
            goal = 0  # the start already passed this point

        def stop(done: int, total: int, goal: int = goal) -> None:
            if done >= goal:
                raise _Stop

        if goal:
            try:
                runner.reembed(path, BATCH, encoder=new_enc, on_batch=stop, switch_when_done=False)
            except _Stop:
                pass
        with Collection.open(path, encoder=new_enc) as col:
            col._encoder = old_enc
            merged = {}
            for side, merge in (("adapter", "per-query"), ("adapter", "line"), ("adapter", "plain"),
                                ("old-model", "per-query")):  # plain: raw cosines of both spaces in one ranking
                col.queries, col.merge = side, merge
                merged[side, merge] = _ndcg(col, queries, qrels)
            points[frac] = (merged["adapter", "per-query"], merged["adapter", "plain"],
                            col.info()["migration"]["fraction"], merged["adapter", "line"],
                            merged["old-model", "per-query"])
    runner.reembed(path, BATCH, encoder=new_enc)  # switch
    with Collection.open(path, encoder=new_enc) as col:
        final = _ndcg(col, queries, qrels)
        got = _ranked(col.search_many(list(queries.values()), k=10))
        problems = col.check()
    chosen = next(a for a in record["agreement"]
                  if a["adapter"] == record["adapter"] and a.get("ridge") == record.get("ridge"))
    return {"pair": f"{old_name} -> {new_name}", "old": old_ndcg, "points": points, "final": final, "fresh": new_ndcg,
            "equal": _same_answers(got, want) and not problems, "identical": got == want,
            "adapter": record["adapter"] + (f" (ridge {record['ridge']:g})" if "ridge" in record else ""),
            "pairs": record["pairs"], "r10_new": chosen.get("recall_new_at_10"),
            "fit_s": record["fit_s"], "ms": chosen["ms_per_query"], "cos": chosen["cosine"],
            "r10": chosen["recall_at_10"], "start_s": start_s, "native": record["native_at_start"] / len(docs),
            "adapter_only": adapter_only}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--pair", action="append", required=True, help="OLD:NEW model names")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--sample", type=int, default=runner.MAX_SAMPLE)
    ap.add_argument("--adapter", default="auto", help="auto or one adapter name")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    rows = []
    for data in args.data:
        ds = load_dataset(data)
        qrels, queries = ds.qrels("test"), ds.queries("test")
        docs = _docs(data, qrels, args.docs)
        for pair in args.pair:
            old_name, new_name = pair.split(":", 1)
            with tempfile.TemporaryDirectory() as tmp:
                r = one_pair(data, old_name, new_name, docs, queries, qrels, args.sample, Path(tmp) / "w",
                             args.adapter)
            p = r["points"]
            worst_plain = min(v[1] for v in p.values()) / r["old"]
            worst_line = min(v[3] for v in p.values()) / r["old"]
            for side, i in (("adapter", 0), ("old-model", 4)):
                worst = min(v[i] for v in p.values()) / r["old"]
                only = r["adapter_only"] if side == "adapter" else r["old"]
                rows.append([f"{data.name} ({len(docs)} docs)", r["pair"], side, f"{r['old']:.4f}",
                             f"{r['native']:.1%}", f"{only:.4f}", *[f"{v:.4f}" for v in (
                             *[p[f][i] for f in sorted(p)], r["final"], r["fresh"])],
                             f"{only / r['old']:.3f}", f"{p[0.0][i] / r['old']:.3f}", f"{worst:.3f}",
                             f"{worst_line:.3f}" if side == "adapter" else "",
                             f"{worst_plain:.3f}" if side == "adapter" else "", ("yes" if r["identical"] else "yes, ties at the cut aside") if r["equal"] else "NO",
                             r["adapter"], r["pairs"], r["fit_s"], f"{r['ms']:.3f}"])
            print(r, flush=True)
    print_table(["set", "old -> new", "old part scored by", "old own", "native at start", "old part alone", "start", "25%", "50%", "75%",
                 "100% (before switch)", "switched", "fresh new build", "old part alone / old", "start / old",
                 "worst / old", "worst / old, one-line merge", "worst / old, plain-cosine merge", "= fresh", "adapter", "pairs", "fit s (all)",
                 "ms/query"], rows)


if __name__ == "__main__":
    main()
