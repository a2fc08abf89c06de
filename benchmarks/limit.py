"""LIMIT-style combinatorial test (issue 12 item 7): where one vector per document fails, and what BM25,
hybrid and multi-vector MaxSim do on the same set.

    PYTHONPATH=src .venv/bin/python benchmarks/limit.py                 # defaults: 1,000 docs, core 46
    PYTHONPATH=src .venv/bin/python benchmarks/limit.py --quick         # a tiny run (seconds)
    PYTHONPATH=src .venv/bin/python benchmarks/limit.py --generate-only --out DIR   # only write the set

Part 1 generates the set (benchmarks/_limit_data.py: documents listing many attributes, one-attribute queries
whose relevant sets are every pair of a dense core, two-attribute conjunction queries, distractors), writes it
in BEIR format under --out, and evaluates it through slimvec's own evaluation runner
(`slimvec.evaluation.runner.run_eval`, i.e. `Collection.create` with a built-in profile, `add`, `search_many`)
for dense MiniLM exact-f32, binary-rescore, BM25 and hybrid (dense + BM25, the profile's fusion); multi-vector is exhaustive
MaxSim over `minilm-tokens` token vectors (see `maxsim_run`). Metrics by ranx through
`slimvec.evaluation.metrics`: nDCG@10, Recall@2, Recall@10, Recall@100, per query kind.

Part 2 is the LIMIT paper's free-embedding experiment: one free vector per document and per query, optimised
(torch, Adam) directly on the test qrels of a core of n documents with all C(n, 2) pairs as queries; for each
dimension d, the largest n at which 100% Recall@2 is still reached. Beside it, the same patterns scored with
MaxSim over one 2-d token per attribute (distinct angles on the circle), which represents any membership
pattern exactly, as BM25 does.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table
from _limit_data import LimitConfig, LimitSet, generate, write_beir

METRICS = ("ndcg@10", "recall@2", "recall@10", "recall@100")
PROFILES = ("exact-f32", "binary-rescore", "bm25", "hybrid")
DEPTH = 100


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- part 1: the pipeline on the generated set --------------------------------------------------------------

def profile_runs(dataset: Path, work: Path, profiles: tuple[str, ...] = PROFILES) -> dict[str, dict]:
    """TREC runs (top 100 per query) of each built-in profile, through `slimvec.evaluation.runner.run_eval`."""
    from slimvec.evaluation.metrics import read_trec_run
    from slimvec.evaluation.runner import run_eval
    from slimvec.profiles import load_profile

    runs = {}
    for name in profiles:
        t0 = time.perf_counter()
        res = run_eval(dataset, load_profile(name), out=work / "eval", cache_dir=work / "cache")
        runs[name] = read_trec_run(res["run_file"])
        _log(f"{name}: {time.perf_counter() - t0:.0f} s")
    return runs


def maxsim_run(data: LimitSet, k: int = DEPTH) -> dict[str, dict[str, float]]:
    """Exhaustive MaxSim over every document's `minilm-tokens` token vectors: the top k per query.

    Kept apart on purpose: until a `multivector` profile exists on main this uses the core modules
    (`encoders.multivector.TokenVectorEncoder` through the registry, `multivector.maxsim.maxsim_scores`);
    once it does, `profile_runs(..., ("multivector",))` replaces this function.
    """
    from slimvec.encoders.registry import load_encoder
    from slimvec.multivector.maxsim import maxsim_scores

    enc = load_encoder("minilm-tokens")
    doc_tokens = enc.encode_document_tokens([data.doc_text(i) for i in range(len(data.doc_ids))])  # type: ignore[attr-defined]
    qids = list(data.queries)
    q_tokens = enc.encode_query_tokens([data.query_text(q) for q in qids])  # type: ignore[attr-defined]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in doc_tokens])]).astype(np.int64)
    scores = maxsim_scores(q_tokens, np.concatenate(doc_tokens), offsets)
    return _top_runs(qids, data.doc_ids, scores, k)


def _top_runs(qids: list[str], doc_ids: list[str], scores: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {q: {doc_ids[d]: float(scores[i, d]) for d in top[i]} for i, q in enumerate(qids)}


def quality(data: LimitSet, run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """METRICS per query kind ("pair", "and", "all") of one run."""
    from slimvec.evaluation.metrics import evaluate

    out = {}
    for kind in ("pair", "and", "all"):
        qrels = {q: r for q, r in data.qrels.items() if kind == "all" or data.kinds[q] == kind}
        if qrels:
            out[kind] = evaluate(qrels, run, list(METRICS))
    return out


def max_wordpieces(data: LimitSet) -> int:
    """The longest document in the bundled MiniLM's word pieces (special tokens included)."""
    from slimvec.encoders.registry import load_encoder

    enc = load_encoder("minilm-tokens")
    return max(len(enc.token_spans(data.doc_text(i))) for i in range(len(data.doc_ids))) + 2  # type: ignore[attr-defined]


# ---- part 2: free embeddings (LIMIT section 4) ---------------------------------------------------------------

def pair_qrels(n: int) -> np.ndarray:
    """(C(n, 2), 2) int64: query q's relevant documents are row q, every pair of n documents once."""
    return np.asarray(list(combinations(range(n), 2)), dtype=np.int64).reshape(-1, 2)


def recall2_all(queries: np.ndarray, docs: np.ndarray, rel: np.ndarray) -> bool:
    """True when every query's two relevant documents both score above every other document (strictly)."""
    s = queries @ docs.T
    pos = np.take_along_axis(s, rel, axis=1).min(axis=1)
    mask = np.ones_like(s, dtype=bool)
    np.put_along_axis(mask, rel, False, axis=1)
    neg = np.where(mask, s, -np.inf).max(axis=1)
    return bool(np.all(pos > neg))


def free_embedding_fits(n: int, d: int, steps: int = 3000, restarts: int = 3, seed: int = 0) -> bool:
    """Whether free d-dimensional vectors reach 100% Recall@2 on all C(n, 2) pair queries of n documents.

    As the LIMIT paper's free-embedding experiment (Weller et al. 2025, section 4): document and query vectors
    are free parameters, L2-normalised, optimised with Adam on the test qrels themselves (softmax cross-entropy
    over all n documents for each relevant one, temperature 0.05); success is checked exactly (both relevant
    scores above every other one, in float64 from the float32 parameters) every 50 steps. `restarts` random initialisations.
    """
    import torch

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on shared cores
    rel = pair_qrels(n)
    if n <= 2:
        return True
    rel_t = torch.from_numpy(rel)
    for r in range(restarts):
        g = torch.Generator().manual_seed(seed * 1000 + r)
        docs = torch.randn(n, d, generator=g, dtype=torch.float32).requires_grad_()
        qs = torch.randn(len(rel), d, generator=g, dtype=torch.float32).requires_grad_()
        opt = torch.optim.Adam([docs, qs], lr=0.05)
        for step in range(steps):
            dn = torch.nn.functional.normalize(docs, dim=1)
            qn = torch.nn.functional.normalize(qs, dim=1)
            logits = qn @ dn.T / 0.05
            logp = torch.log_softmax(logits, dim=1)
            loss = -logp.gather(1, rel_t).mean()
            if step % 50 == 0 and recall2_all(qn.detach().double().numpy(), dn.detach().double().numpy(), rel):
                return True
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            dn = torch.nn.functional.normalize(docs, dim=1).double().numpy()
            qn = torch.nn.functional.normalize(qs, dim=1).double().numpy()
        if recall2_all(qn, dn, rel):
            return True
    return False


def largest_core(d: int, n_max: int = 64, **kw: int) -> int:
    """The largest n (from 2 upwards, stopping at the first failure) whose pairs free d-dim vectors fit."""
    n = 2
    while n < n_max and free_embedding_fits(n + 1, d, **kw):
        n += 1
    return n


def caratheodory_margin(n: int, d: int = 4) -> float:
    """Smallest margin over all pairs of n unit documents on Carathéodory's curve in R^d (d even, >= 4).

    Documents: (cos t, sin t, cos 2t, sin 2t, ...)/sqrt(d/2) at t = 2 pi i / n, the vertices of a cyclic
    polytope, which is 2-neighbourly for d >= 4 (Gale): every pair is an edge, so some query vector ranks
    exactly that pair first. For each pair a linear programme (scipy `linprog`, HiGHS) finds the query q in
    [-1, 1]^d maximising min over relevant i, other k of <q, x_i> - <q, x_k>; the smallest such margin is
    returned (> 0: every pair is some query's exact top 2, whatever n is).
    """
    from scipy.optimize import linprog

    t = 2 * np.pi * np.arange(n) / n
    x = np.concatenate([np.stack([np.cos(h * t), np.sin(h * t)], axis=1) for h in range(1, d // 2 + 1)], axis=1)
    x /= np.sqrt(d // 2)
    worst = np.inf
    for pair in pair_qrels(n):
        others = np.setdiff1d(np.arange(n), pair)
        diff = (x[pair][:, None, :] - x[others][None, :, :]).reshape(-1, d)
        a_ub = np.concatenate([-diff, np.ones((len(diff), 1))], axis=1)  # t - <q, x_i - x_k> <= 0
        res = linprog(np.r_[np.zeros(d), -1.0], A_ub=a_ub, b_ub=np.zeros(len(diff)),
                      bounds=[(-1, 1)] * d + [(None, None)], method="highs")
        worst = min(worst, -res.fun)
    return float(worst)


def circle_tokens(n_attrs: int) -> np.ndarray:
    """(n_attrs, 2) float32 unit vectors at distinct angles: one 2-d token per attribute."""
    a = np.arange(n_attrs) * (2 * np.pi / n_attrs)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def maxsim_pairs_fit(n: int) -> bool:
    """Whether MaxSim over one 2-d token per attribute reaches 100% Recall@2 on all pairs of n documents.

    Document i holds the tokens of the n - 1 pair attributes it lists; query (i, j) is the one token of
    attribute (i, j). A document scores 1 when it lists the attribute and the cosine of its nearest other
    token (< 1) otherwise, so any membership pattern is represented whatever n is.
    """
    from slimvec.multivector.maxsim import maxsim_scores

    rel = pair_qrels(n)
    tokens = circle_tokens(len(rel))
    owned = [np.flatnonzero((rel == i).any(axis=1)) for i in range(n)]
    offsets = np.concatenate([[0], np.cumsum([len(o) for o in owned])]).astype(np.int64)
    scores = maxsim_scores([tokens[q : q + 1] for q in range(len(rel))], tokens[np.concatenate(owned)], offsets)
    pos = np.take_along_axis(scores, rel, axis=1).min(axis=1)
    mask = np.ones_like(scores, dtype=bool)
    np.put_along_axis(mask, rel, False, axis=1)
    return bool(np.all(pos > np.where(mask, scores, -np.inf).max(axis=1)))


# ---- the command ---------------------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{x:.3f}"


LABELS = {"exact-f32": "dense MiniLM (exact-f32)", "binary-rescore": "dense binary-rescore", "bm25": "BM25",
          "hybrid": "hybrid (dense + BM25, profile fusion)", "maxsim": "multi-vector MaxSim (minilm-tokens)"}


def set_dir(out: Path, cfg: LimitConfig) -> Path:
    """The set's folder under `out`, named by its parameters: the runner keys its collections by this name, so
    a reused --out never evaluates collections built from another set."""
    return out / f"limit-{cfg.docs}d-{cfg.attrs_per_doc}a-{cfg.core}c-{cfg.conjunctions}j-s{cfg.seed}"


def report_pipeline(data: LimitSet, out: Path, profiles: tuple[str, ...] = PROFILES, maxsim: bool = True) -> None:
    """Part 1: every method on the generated set, one table (per query kind)."""
    cfg = data.config
    t_all = time.perf_counter()
    runs = profile_runs(set_dir(out, cfg), out, profiles)
    if maxsim:
        t0 = time.perf_counter()
        runs["maxsim"] = maxsim_run(data)
        _log(f"maxsim: {time.perf_counter() - t0:.0f} s")
    scores = {name: quality(data, run) for name, run in runs.items()}
    bm25 = scores["bm25"]["all"]["recall@2"] if "bm25" in scores else None
    rows = []
    for kind, what in (("pair", "one attribute (pairs)"), ("and", "two attributes (and)"), ("all", "all")):
        for name in runs:
            if kind not in scores[name]:
                continue
            m = scores[name][kind]
            ratio = m["recall@2"] / bm25 if kind == "all" and bm25 else None
            rows.append([LABELS.get(name, name), what, *(_fmt(m[x]) for x in METRICS), "" if ratio is None else _fmt(ratio)])
    n_pair = sum(k == "pair" for k in data.kinds.values())
    print(f"\nLIMIT-style set: {cfg.docs} documents x {cfg.attrs_per_doc} attributes, core {cfg.core} "
          f"({n_pair} pair queries), {cfg.conjunctions} two-attribute queries, seed {cfg.seed}; longest document "
          f"{max_wordpieces(data)} MiniLM word pieces (limit 256); pipeline {time.perf_counter() - t_all:.0f} s\n")
    print_table(["method", "queries", "nDCG@10", "Recall@2", "Recall@10", "Recall@100", "R@2 / BM25 (all)"], rows)


def report_free(dims: list[int], steps: int, core: int) -> None:
    """Part 2: the largest core free single vectors of each dimension fit, beside MaxSim and a d = 4 construction."""
    t0 = time.perf_counter()
    free_rows = []
    for d in dims:
        n = largest_core(d, steps=steps)
        fits = maxsim_pairs_fit(n + 1) and maxsim_pairs_fit(core)
        free_rows.append([d, n, math.comb(n, 2), f"fails at {n + 1} ({math.comb(n + 1, 2)} pairs)",
                          "yes" if fits else "NO"])
        _log(f"free embeddings d={d}: largest core {n}")
    print(f"\nFree single vectors optimised on the test qrels (Adam, {steps} steps x 3 restarts per size; "
          f"{time.perf_counter() - t0:.0f} s). Last column: MaxSim over one 2-d token per attribute reaches 100% "
          f"Recall@2 at the failing size and at core {core}\n")
    print_table(["d", "largest core n at 100% Recall@2", "pair queries C(n,2)", "single vector",
                 "MaxSim (2-d tokens) 100%"], free_rows)
    if 4 in dims:
        n4 = next(r[1] for r in free_rows if r[0] == 4)
        sizes = sorted({n4 + 1, core})
        margins = [caratheodory_margin(n) for n in sizes]
        print("\nd = 4 is not a hard limit for these patterns: unit documents on Carathéodory's curve (a 2-neighbourly "
              "cyclic polytope) with LP-optimal query vectors rank every pair exactly first; smallest margin "
              + ", ".join(f"{m:.1e} at n = {n} ({math.comb(n, 2)} pairs)" for n, m in zip(sizes, margins))
              + ". What fails first is the margin, which shrinks fast with n.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=None, help="documents in all (default 1000; quick 120)")
    ap.add_argument("--attrs", type=int, default=None, help="attributes per document (default 50; quick 16)")
    ap.add_argument("--core", type=int, default=None, help="core documents (default 46, as LIMIT; quick 12)")
    ap.add_argument("--conjunctions", type=int, default=None, help="two-attribute queries (default 200; quick 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for the set and collections (default: a temp dir)")
    ap.add_argument("--dims", default=None, help="free-embedding dimensions (default 2,3,4,6; quick 2,3; '' for none)")
    ap.add_argument("--steps", type=int, default=3000, help="Adam steps per free-embedding attempt")
    ap.add_argument("--quick", action="store_true", help="a tiny run: small set, two dimensions")
    ap.add_argument("--generate-only", action="store_true", help="write the set and stop")
    ap.add_argument("--free-only", action="store_true", help="only the free-embedding part (no set, no models)")
    ap.add_argument("--profiles", default=",".join(PROFILES),
                    help="built-in profiles run through the evaluation runner (a 'multivector' profile, once it "
                         "exists, goes here)")
    ap.add_argument("--no-maxsim", action="store_true", help="skip the exhaustive MaxSim row (core modules)")
    args = ap.parse_args(argv)
    q = args.quick
    cfg = LimitConfig(docs=args.docs or (120 if q else 1000), attrs_per_doc=args.attrs or (16 if q else 50),
                      core=args.core or (12 if q else 46),
                      conjunctions=args.conjunctions if args.conjunctions is not None else (30 if q else 200),
                      seed=args.seed)
    dims = [int(x) for x in (args.dims if args.dims is not None else ("2,3" if q else "2,3,4,6")).split(",") if x]
    try:
        cfg.check()
    except ValueError as e:
        raise SystemExit(f"limit.py: {e}") from None
    if args.generate_only and args.out is None:
        raise SystemExit("limit.py: --generate-only needs --out (the default temp dir is removed at exit)")
    with tempfile.TemporaryDirectory(prefix="slimvec-limit-") as tmp:
        out = args.out or Path(tmp)
        if not args.free_only:
            data = generate(cfg)
            _log(f"set written to {write_beir(data, set_dir(out, cfg))}")
            if args.generate_only:
                return
            report_pipeline(data, out, tuple(p for p in args.profiles.split(",") if p), not args.no_maxsim)
        if dims:
            report_free(dims, args.steps, cfg.core)
    print(f"\nmachine: {machine()}")
    print("command: PYTHONPATH=src python benchmarks/limit.py " + " ".join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
