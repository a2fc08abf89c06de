"""Static distillation (issue 14 item 4): distill the bundled MiniLM with model2vec, then nDCG@10 on BEIR SciFact
and NFCorpus (test split, full corpora) of the static model alone and fused with BM25 (profile `hybrid`,
softmax fusion), beside BM25 alone and MiniLM; and document encoding speed of static vs MiniLM on the same
documents in the same run, as a ratio (wall time and process CPU time: the machine is shared).

    .venv/bin/python benchmarks/distill.py                    # distill (~2 min on 2 cores) + evaluate + speed
    .venv/bin/python benchmarks/distill.py --measure-minilm   # also re-measure MiniLM dense and hybrid (slow)
    .venv/bin/python benchmarks/distill.py --model-dir /tmp/slimvec-bench-distill/minilm-static-256
                                                  # reuse a distilled model and the collections built with it

Fusion weights (`fusion_weights`, BM25 at 1.0): "static + BM25 as created" is what `hybrid` gives a static model
now (the model's own weight, `encoders.static.STATIC_FUSION_WEIGHT`, recorded at creation); "equal weights" is
what it gave before session 20; "fitted on this set" takes the best weight of `WEIGHTS` on SciFact train /
NFCorpus dev alone. The script also prints the weight grid on both fit splits and which weight is best on the
two together (how the default was chosen), and a paired bootstrap interval and randomization test of the
default against BM25 alone per query.

Without --measure-minilm the MiniLM rows are the figures recorded in BENCHMARKS.md ("Quality and RAM per
profile", "Hybrid ..."), marked "recorded"; static, static + BM25 and BM25 are measured in this run. The
static model's collections use a fresh embedding cache under --work (the cache is keyed by model name, which
for a directory is its path, so a re-distilled model must not meet old vectors).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, paired_bootstrap, print_table, randomization_p, read_jsonl  # noqa: E402

DATASETS = ("scifact", "nfcorpus")
FIT_SPLIT = {"scifact": "train", "nfcorpus": "dev"}
WEIGHTS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
# MiniLM figures recorded in BENCHMARKS.md (exact-f32, hybrid softmax, bm25), test split, full corpora.
RECORDED = {
    "scifact": {"minilm": 0.6451, "minilm+bm25": 0.7306, "bm25": 0.6863},
    "nfcorpus": {"minilm": 0.3159, "minilm+bm25": 0.3597, "bm25": 0.3210},
}

# The model of this script's BENCHMARKS.md tables; the default for new collections is now bge-small-en-v1.5.
MINILM = "all-MiniLM-L6-v2"


def _profile(name: str, model: str | None, **fields: Any):
    from slimvec.profiles import load_profile, profile_from_dict

    base = load_profile(name)
    if model is None and not fields:
        return base
    return profile_from_dict({**base.model_dump(), **({"model": model} if model else {}), **fields}, source="benchmark")


def _ndcg(dataset: str, profile_name: str, model: str | None, work: Path, cache: Path,
          runs: dict[str, Any] | None = None, **fields: Any) -> float:
    """nDCG@10 on the test split through `slimvec eval`'s runner; its run is kept in `runs[profile_name]`."""
    from slimvec.evaluation.metrics import read_trec_run
    from slimvec.evaluation.runner import run_eval

    result = run_eval(DATA / dataset, _profile(profile_name, model, **fields), split="test", out=work / "eval",
                      cache_dir=cache)
    if runs is not None:
        runs[profile_name] = read_trec_run(result["run_file"])
    return float(result["metrics"]["ndcg@10"])


def _weighted_run(col, ds, split: str, weight: float) -> tuple[float, dict[str, dict[str, float]]]:
    """(nDCG@10, run) of static + BM25 softmax fusion with the static ranking weighted `weight`, BM25 1.0."""
    from slimvec.evaluation.metrics import evaluate

    qrels, queries = ds.qrels(split), ds.queries(split)
    hits = col.search_many(list(queries.values()), k=100, fusion_weights=[weight, 1.0])
    run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(queries, hits)}
    return float(evaluate(qrels, run, metrics=("ndcg@10",))["ndcg@10"]), run


def _against_bm25(dataset: str, fused: dict[str, Any], bm25: dict[str, Any]) -> tuple[float, float, float, float]:
    """Per-query nDCG@10 of a fused test run minus BM25's: (mean, 95% paired-bootstrap interval, p of the
    randomization test), so "matches BM25" is a claim with an interval, not two means."""
    import numpy as np

    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.metrics import evaluate_per_query

    qrels = load_dataset(DATA / dataset).qrels("test")
    per = [evaluate_per_query(qrels, run, ["ndcg@10"])["ndcg@10"] for run in (bm25, fused)]
    before, after = (np.asarray([p.get(q, 0.0) for q in qrels]) for p in per)
    mean, lo, hi = paired_bootstrap(before, after)
    return mean, lo, hi, randomization_p(before, after)


def _fitted(dataset: str, model: str, work: Path) -> tuple[dict[float, float], float, float]:
    """({weight: nDCG@10 on the fit split}, the best weight there, nDCG@10 on test at that weight) for static +
    BM25 softmax fusion."""
    from slimvec import Collection
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.runner import collection_dir

    ds = load_dataset(DATA / dataset)
    path = collection_dir(work / "eval", ds, _profile("hybrid", model))  # built by run_eval above
    with Collection.open(path) as col:
        fit = {w: _weighted_run(col, ds, FIT_SPLIT[dataset], w)[0] for w in WEIGHTS}
        best = max(WEIGHTS, key=lambda w: (fit[w], w))
        return fit, best, _weighted_run(col, ds, "test", best)[0]


def _corpus_words(min_count: int = 2) -> list[str]:
    """Words of the DATASETS corpora (title + text, split as MiniLM's tokenizer pre-splits them) that its wordpiece
    vocabulary lacks, seen at least min_count times and holding a Latin letter, most frequent first."""
    from collections import Counter

    from tokenizers import Tokenizer

    from slimvec.encoders.distill import bundled_minilm_path

    tok = Tokenizer.from_file(str(bundled_minilm_path() / "tokenizer.json"))
    vocab, counts = set(tok.get_vocab()), Counter()
    for ds in DATASETS:
        for rec in read_jsonl(DATA / ds / "corpus.jsonl"):
            text = tok.normalizer.normalize_str(f"{rec.get('title', '')} {rec.get('text', '')}")
            counts.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text))
    return [w for w, c in counts.most_common() if c >= min_count and w not in vocab and re.search("[a-z]", w)]


def _distill_with_corpus_words(out: Path, pca_dims: int) -> None:
    """model2vec's distill of the bundled MiniLM with `vocabulary=` the corpora's missing words."""
    import os

    from model2vec.distill import distill as m2v_distill

    from slimvec.encoders.distill import bundled_minilm_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    words = _corpus_words()
    static = m2v_distill(model_name=str(bundled_minilm_path()), vocabulary=words, pca_dims=pca_dims)
    static.save_pretrained(out)
    print(f"distilled with {len(words):,} corpus words -> {out}: {static.embedding.shape[0]:,} x "
          f"{static.embedding.shape[1]}", flush=True)


def _speed(encoder, texts: list[str], repeats: int) -> tuple[float, float]:
    """(docs/s wall, docs/s CPU) of encode_documents over `texts`, `repeats` times after one warm-up call."""
    encoder.encode_documents(texts[:16])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        encoder.encode_documents(texts)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = len(texts) * repeats
    return n / wall, n / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/slimvec-bench-distill"))
    ap.add_argument("--pca-dims", type=int, default=256)
    ap.add_argument("--speed-docs", type=int, default=1000, help="SciFact documents encoded by both models")
    ap.add_argument("--static-repeats", type=int, default=20, help="passes of the static model (it is too fast for one)")
    ap.add_argument("--measure-minilm", action="store_true", help="re-measure MiniLM dense and hybrid nDCG@10")
    ap.add_argument("--model-dir", type=Path, help="a model distilled before (its collections under --work are reused)")
    ap.add_argument("--corpus-vocabulary", action="store_true",
                    help="explored in session 14, not adopted: also give model2vec the corpora's words that MiniLM's "
                         "wordpiece vocabulary lacks (seen at least twice), as whole tokens (~37 min CPU)")
    args = ap.parse_args()

    from slimvec.encoders.distill import distill
    from slimvec.encoders.registry import load_encoder

    if args.model_dir is None:
        model_dir = args.work / f"minilm-static-{args.pca_dims}"
        # collections and cached vectors of an earlier model of the same path would be reused: start clean
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        cpu0 = time.process_time()
        if args.corpus_vocabulary:
            _distill_with_corpus_words(model_dir, args.pca_dims)
        else:
            result = distill(model_dir, None, args.pca_dims)
            print(f"distilled {result.source} -> {model_dir}: {result.vocabulary:,} x {result.dim} in "
                  f"{result.seconds:.1f} s wall", flush=True)
        print(f"distillation: {time.process_time() - cpu0:.1f} s CPU", flush=True)
    else:
        model_dir = args.model_dir.resolve()
        print(f"reusing {model_dir} (distillation not timed in this run)", flush=True)

    records = read_jsonl(DATA / "scifact" / "corpus.jsonl", args.speed_docs)
    texts = [f"{r.get('title', '')}\n{r.get('text', '')}".strip() for r in records]
    static = load_encoder(str(model_dir))
    minilm = load_encoder(MINILM)
    s_wall, s_cpu = _speed(static, texts, args.static_repeats)
    m_wall, m_cpu = _speed(minilm, texts, 1)
    print()
    print(f"Encoding speed, {len(texts):,} SciFact documents (title + text), same process, same run:")
    print_table(["model", "docs/s (wall)", "docs/s (CPU)", "ratio to MiniLM (wall)", "ratio to MiniLM (CPU)"], [
        ["all-MiniLM-L6-v2 (sentence-transformers, torch)", f"{m_wall:,.0f}", f"{m_cpu:,.0f}", "1.0x", "1.0x"],
        [f"static (model2vec, {static.dim}-d)", f"{s_wall:,.0f}", f"{s_cpu:,.0f}",
         f"{s_wall / m_wall:,.0f}x", f"{s_cpu / m_cpu:,.0f}x"],
    ])

    cache = args.work / "cache"
    rows, figures, grids = [], {}, {}
    for ds in DATASETS:
        runs: dict[str, Any] = {}
        got = {
            "static": _ndcg(ds, "exact-f32", str(model_dir), args.work, cache),
            "static+bm25 equal": _ndcg(ds, "hybrid", str(model_dir), args.work, cache, fusion_weights=(1.0, 1.0)),
            "static+bm25": _ndcg(ds, "hybrid", str(model_dir), args.work, cache, runs),
            "bm25": _ndcg(ds, "bm25", None, args.work, cache, runs),
        }
        grids[ds], weight, got["static+bm25 fitted"] = _fitted(ds, str(model_dir), args.work)
        got["weight"] = weight
        got["default - bm25"] = _against_bm25(ds, runs["hybrid"], runs["bm25"])
        print(f"{ds}: static weight {weight} best on {FIT_SPLIT[ds]} (nDCG@10 {grids[ds][weight]:.4f})", flush=True)
        if args.measure_minilm:
            got["minilm"] = _ndcg(ds, "exact-f32", None, args.work, cache)
            got["minilm+bm25"] = _ndcg(ds, "hybrid", None, args.work, cache)
        figures[ds] = got
        print(f"{ds}: {json.dumps(got)}", flush=True)
    src = "measured" if args.measure_minilm else "recorded"
    from slimvec.encoders.static import STATIC_FUSION_WEIGHT

    print("\nstatic + BM25 nDCG@10 on the fit splits by static weight (the default is the best mean of the two):")
    mean = {w: sum(grids[ds][w] for ds in DATASETS) / len(DATASETS) for w in WEIGHTS}
    print_table(["static weight"] + [f"{ds} {FIT_SPLIT[ds]}" for ds in DATASETS] + ["mean"],
                [[str(w)] + [f"{grids[ds][w]:.4f}" for ds in DATASETS] + [f"{mean[w]:.4f}"] for w in WEIGHTS])
    print(f"best mean: {max(WEIGHTS, key=lambda w: (mean[w], w))}; STATIC_FUSION_WEIGHT: {STATIC_FUSION_WEIGHT}")
    names = [("minilm", f"MiniLM dense ({src})"), ("minilm+bm25", f"MiniLM + BM25, softmax ({src})"),
             ("bm25", "BM25 (measured)"), ("static", "static alone (measured)"),
             ("static+bm25 equal", "static + BM25, softmax, equal weights (before session 20; measured)"),
             ("static+bm25", f"static + BM25, `hybrid` as created: static weight {STATIC_FUSION_WEIGHT} (measured)"),
             ("static+bm25 fitted", "static + BM25, static weight best on this set's train/dev (measured)")]
    for key, label in names:
        if key == "static+bm25 fitted":
            label += " [" + ", ".join(f"{ds} {figures[ds]['weight']}" for ds in DATASETS) + "]"
        row: list[object] = [label]
        for ds in DATASETS:
            value = figures[ds].get(key, RECORDED[ds].get(key))
            row.append(f"{value:.4f}")
        rows.append(row)
    for label, a, b in (("static / MiniLM", "static", "minilm"), ("static+BM25 equal / BM25", "static+bm25 equal", "bm25"),
                        ("static+BM25 as created / BM25", "static+bm25", "bm25"),
                        ("static+BM25 fitted / BM25", "static+bm25 fitted", "bm25")):
        rows.append([label] + [f"{figures[ds][a] / figures[ds].get(b, RECORDED[ds][b]):.1%}" for ds in DATASETS])
    rows.append(["static+BM25 as created - BM25, per query: mean [95% paired-bootstrap interval], randomization p"]
                + ["{:+.4f} [{:+.4f}, {:+.4f}], p {:.2f}".format(*figures[ds]["default - bm25"]) for ds in DATASETS])
    print()
    print("nDCG@10, BEIR test split, full corpora:")
    print_table(["retrieval", "SciFact", "NFCorpus"], rows)
    print()
    print(f"machine: {machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
