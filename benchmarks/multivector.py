"""Multi-vector (late-interaction) retrieval on BEIR SciFact and NFCorpus (full corpora, test split).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector.py scifact nfcorpus

Token vectors come from `minilm-tokens` (the bundled all-MiniLM-L6-v2, [CLS]/[SEP] dropped, documents cut at
256 word pieces, text = title + " " + text), encoded once into /tmp/slimvec-mv-cache by
benchmarks/_mv_cache.py (float16 on disk, as the token file stores them); pooled tokens, codes and MUVERA
encodings are cached next to them. nDCG@10 by ranx through slimvec.evaluation.metrics (trec_eval
conventions), top 100 per query. Every configuration is reported beside exhaustive MaxSim in the same run.

Latency: search only, one query at a time (query vectors precomputed), p50 over the first 100 queries (10
for the exhaustive scans); query encoding (dense + tokens from one forward pass) is timed separately on 50
queries and added in the "p50 with encoding" column. Bytes per document: RAM = what search keeps resident
(first-stage vectors or codes, the 8-byte token offset per row, codebooks); disk = token data + offsets
+ pooled counts (+ the float32 vector file where the configuration reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_cache import CACHE, load

from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels
from slimvec.multivector.codes import fit_token_codec
from slimvec.multivector.maxsim import gather, maxsim_scores
from slimvec.multivector.muvera import MuveraConfig, muvera_documents, muvera_queries
from slimvec.multivector.pooling import pool_tokens

K = 100
DEPTH = 100


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """(nq, k) indices of the best scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _ndcg(qrels: dict, qids: list[str], doc_ids: list[str], idx: np.ndarray, scores: np.ndarray) -> float:
    run = {q: {doc_ids[int(d)]: float(s) for d, s in zip(idx[i], scores[i]) if d >= 0} for i, q in enumerate(qids)}
    return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]


class PairScores:
    """Exact float16-token MaxSim per (query, document), each pair computed once and shared by every
    configuration that reranks candidates with the float16 token file (the scores do not depend on the
    candidate list, only which pairs get scored does)."""

    def __init__(self, qtok: list[np.ndarray], tokens: np.ndarray, offsets: np.ndarray) -> None:
        self.qtok, self.tokens, self.offsets = qtok, tokens, offsets
        self.cache: list[dict[int, float]] = [{} for _ in qtok]
        self.full: np.ndarray | None = None  # (nq, n_docs) when an exhaustive pass scored every pair

    def get(self, i: int, docs: np.ndarray) -> np.ndarray:
        if self.full is not None:
            return self.full[i, docs]
        c = self.cache[i]
        missing = np.asarray([d for d in docs.tolist() if d not in c], np.int64)
        if len(missing):
            tok, off = gather(self.tokens, self.offsets, missing)
            c.update(zip(missing.tolist(), maxsim_scores(self.qtok[i], tok, off).tolist()))
        return np.asarray([c[d] for d in docs.tolist()], np.float32)


def _rank(cand: np.ndarray, score: Callable[[int, np.ndarray], np.ndarray], k: int = K,
          times: list[float] | None = None, timed: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidates sorted by `score(i, docs)`: (nq, k) indices and scores, best first."""
    nq = len(cand)
    out_i = np.full((nq, k), -1, np.int64)
    out_s = np.full((nq, k), -np.inf, np.float32)
    for i in range(nq):
        t0 = time.perf_counter()
        s = score(i, cand[i])
        order = np.argsort(-s, kind="stable")[:k]
        if times is not None and i < timed:
            times.append(time.perf_counter() - t0)
        out_i[i, : len(order)], out_s[i, : len(order)] = cand[i][order], s[order]
    return out_i, out_s


def _fresh(qtok: list[np.ndarray], tokens: np.ndarray, offsets: np.ndarray, decode=None):
    """A scoring function reading the candidates' tokens (or codes) and computing MaxSim, no cache."""
    def score(i: int, docs: np.ndarray) -> np.ndarray:
        tok, off = gather(tokens, offsets, docs)
        return maxsim_scores(qtok[i], tok, off, decode=decode)
    return score


def _pooled(name: str, tokens: np.ndarray, offsets: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Ward-pooled float16 tokens and offsets for `factor`, cached next to the token cache."""
    d = CACHE / name
    tp, op = d / f"pool{factor}.f16", d / f"pool{factor}.offsets.npy"
    if not op.exists():
        t0 = time.perf_counter()
        out, lens = [], []
        for s in range(0, len(offsets) - 1, 256):
            e = min(s + 256, len(offsets) - 1)
            docs = [np.asarray(tokens[offsets[i] : offsets[i + 1]], np.float32) for i in range(s, e)]
            pooled, _ = pool_tokens(docs, factor)
            out.extend(p.astype(np.float16) for p in pooled)
            lens.extend(len(p) for p in pooled)
        np.concatenate(out).tofile(tp)
        np.save(op, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64))
        _log(f"{name}: pool factor {factor} in {time.perf_counter() - t0:.0f} s")
    off = np.load(op)
    return np.memmap(tp, dtype=np.float16, mode="r", shape=(int(off[-1]), tokens.shape[1])), off


def _residual(name: str, tag: str, tokens: np.ndarray, centroids: int) -> dict:
    """Residual token codes with 2 and 1 bits sharing one k-means codebook (fitted once on 50k sampled
    tokens) and one centroid assignment per token; cached next to the token cache."""
    from slimvec.codecs.base import load as load_codec
    from slimvec.codecs.base import save as save_codec

    d = CACHE / name / f"residual-{tag}-{centroids}"
    if not (d / "codes1.npy").exists():
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(len(tokens), size=min(50_000, len(tokens)), replace=False))
        sample = np.asarray(tokens[rows], np.float32)
        two = fit_token_codec(f"residual:{centroids}:2", sample, sample=len(sample))
        one = two.with_bits(1, sample)
        fit_s = time.perf_counter() - t0
        c2, c1 = [], []
        for s in range(0, len(tokens), 200_000):
            x = np.asarray(tokens[s : s + 200_000], np.float32)
            ids = two.assign(x)
            c2.append(two.encode(x, ids))
            c1.append(one.encode(x, ids))
        for bits, codec, codes in ((2, two, c2), (1, one, c1)):
            save_codec(codec, d / f"codec{bits}")
            np.save(d / f"codes{bits}.npy", np.concatenate(codes))
        _log(f"{name}: residual codes ({tag}) fitted in {fit_s:.0f} s, all in {time.perf_counter() - t0:.0f} s")
    return {bits: (load_codec(d / f"codec{bits}"), np.load(d / f"codes{bits}.npy")) for bits in (2, 1)}


def _muvera(name: str, cfg: MuveraConfig, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    path = CACHE / name / f"muvera-r{cfg.reps}-k{cfg.ksim}-p{cfg.dproj}-f{cfg.final_dim}.npy"
    if not path.exists():
        t0 = time.perf_counter()
        parts = []
        for s in range(0, len(offsets) - 1, 500):
            e = min(s + 500, len(offsets) - 1)
            tok = np.asarray(tokens[offsets[s] : offsets[e]], np.float32)
            parts.append(muvera_documents(cfg, tok, offsets[s : e + 1] - offsets[s]))
        np.save(path, np.concatenate(parts))
        _log(f"{name}: MUVERA document encodings in {time.perf_counter() - t0:.0f} s")
    return np.load(path)


def _encode_latency(queries: list[str]) -> list[float]:
    from slimvec.encoders.registry import load_encoder

    enc = load_encoder("minilm-tokens")
    enc.encode_queries_with_tokens(queries[:2])  # warm up
    out = []
    for q in queries:
        t0 = time.perf_counter()
        enc.encode_queries_with_tokens([q])
        out.append(time.perf_counter() - t0)
    return out


def _ingest_ratio(name: str, n: int) -> tuple[float, float]:
    """Docs/s encoding `n` documents dense-only (DenseEncoder) and dense + tokens (one forward pass)."""
    from _common import read_jsonl

    from slimvec.encoders.registry import load_encoder

    texts = [(d.get("title") or "") + " " + d["text"] for d in read_jsonl(DATA / name / "corpus.jsonl", n)]
    dense_enc, tok_enc = load_encoder("minilm"), load_encoder("minilm-tokens")
    dense_enc.encode_documents(texts[:8])
    tok_enc.encode_documents_with_tokens(texts[:8])
    rates = []
    for fn in (dense_enc.encode_documents, tok_enc.encode_documents_with_tokens,
               dense_enc.encode_documents, tok_enc.encode_documents_with_tokens):  # interleaved: shared cores
        t0 = time.perf_counter()
        fn(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return max(rates[0], rates[2]), max(rates[1], rates[3])


def bench(name: str, args: argparse.Namespace) -> dict:
    c = load(name)
    doc_ids, dense, tokens, offsets = c["doc_ids"], c["dense"], c["tokens"], c["offsets"]
    qids, qdense, qtok = c["query_ids"], c["query_dense"], c["query_tokens"]
    qrels = load_qrels(DATA / name, "test")
    n, dim, nq = len(doc_ids), dense.shape[1], len(qids)
    tok_per_doc = offsets[-1] / n
    f16_bytes = tok_per_doc * dim * 2
    _log(f"{name}: {n} docs, {nq} queries, {tok_per_doc:.1f} tokens/doc, "
         f"{sum(len(q) for q in qtok) / nq:.1f} tokens/query")
    rows: list[list[object]] = []
    res: dict[str, float] = {}
    # Quality runs read a float32 copy in RAM (float16 -> float32 conversion of the same candidates over and
    # over would dominate the run); latency is timed separately on the float16 memmap, as search reads it.
    tokens32 = np.asarray(tokens, np.float32)
    pairs = PairScores(qtok, tokens32, offsets)

    def add(label: str, idx: np.ndarray, sc: np.ndarray, tpd: float, disk: float, ram: float,
            times: list[float], note: str = "") -> None:
        ndcg = _ndcg(qrels, qids, doc_ids, idx, sc)
        res[label] = ndcg
        p50 = float(np.percentile(np.asarray(times) * 1000, 50)) if times else float("nan")
        rows.append([label, ndcg, tpd, disk, ram, p50, note])
        _log(f"{name}: {label}: nDCG@10 {ndcg:.4f}, search p50 {p50:.1f} ms")

    # 1. mean-pooled dense, exact
    dtimes = []
    for i in range(min(50, nq)):
        t0 = time.perf_counter()
        s = qdense[i] @ dense.T
        np.argpartition(-s, min(K, n - 1))[:K]
        dtimes.append(time.perf_counter() - t0)
    sd = qdense @ dense.T
    dtop = _topk(sd, max(args.ref_depth, args.binary_depth, DEPTH, 1000))
    add("dense (mean-pooled MiniLM, exact f32)", dtop[:, :K], np.take_along_axis(sd, dtop[:, :K], 1), 0, 1536, 1536,
        dtimes)

    # 2. the MaxSim reference: exact float16-token MaxSim over the dense top-`ref_depth` (or every document)
    t0 = time.perf_counter()
    if args.ref_depth == 0 or args.ref_depth >= n:
        ex = maxsim_scores(qtok, tokens32, offsets)
        pairs.full = ex
        ref_i = _topk(ex, K)
        ref_s = np.take_along_axis(ex, ref_i, 1)
        ref_label = "exhaustive MaxSim, f16 tokens"
    else:
        ref_i, ref_s = _rank(dtop[:, : args.ref_depth], pairs.get)
        ref_label = f"MaxSim f16 over dense top-{args.ref_depth} (reference)"
    ref_s_time = time.perf_counter() - t0
    add(ref_label, ref_i, ref_s, tok_per_doc, f16_bytes + 10, 1536 + 8, [])
    ref = res[ref_label]
    exact10 = ref_i[:, :10]

    # 2b. exhaustive MaxSim (numpy, every token in RAM) on a few queries: the QPS baseline, and a check that
    # the reference's top 10 is the exhaustive top 10
    m = min(args.exhaustive_queries, nq)
    resident = np.asarray(tokens)  # float16 in RAM, as an in-memory exhaustive scan would hold them
    ex_times, agree = [], []
    for i in range(m):
        t0 = time.perf_counter()
        e = maxsim_scores(qtok[i], resident, offsets)
        ex_times.append(time.perf_counter() - t0)
        agree.append(len(set(np.argsort(-e)[:10].tolist()) & set(exact10[i].tolist())) / 10)
    del resident
    ex_p50 = float(np.percentile(np.asarray(ex_times) * 1000, 50)) if ex_times else float("nan")
    _log(f"{name}: exhaustive MaxSim p50 {ex_p50:.0f} ms; top-10 agreement with the reference "
         f"{np.mean(agree) if agree else float('nan'):.1%} on {m} queries")

    # 3. dense top-100 reranked by MaxSim over float16 tokens read from disk (the `multivector` profile)
    times: list[float] = []
    _rank(dtop[: 50, :DEPTH], _fresh(qtok, tokens, offsets), times=times)  # latency: fresh reads, no cache
    ri, rs = _rank(dtop[:, :DEPTH], pairs.get)
    label = "dense f32 top-100 > MaxSim f16 from disk"
    add(label, ri, rs, tok_per_doc, f16_bytes + 10 + 1536, 1536 + 8, [a + b for a, b in zip(dtimes, times)])
    rerank_f16 = res[label]

    # 4. binary dense codes in RAM (48 B/doc) top-100 > MaxSim from disk (the `multivector-binary` profile)
    from slimvec.codecs.base import make_codec

    bcodec = make_codec("binary")
    bcodec.fit(dense)
    bcodes = bcodec.encode(dense)
    btimes = []
    bcand = np.zeros((nq, DEPTH), np.int64)
    for i in range(nq):
        t0 = time.perf_counter()
        bcand[i] = _topk(bcodec.score(qdense[i : i + 1], bcodes), DEPTH)[0]
        if i < 50:
            btimes.append(time.perf_counter() - t0)
    times = []
    _rank(bcand[:50], _fresh(qtok, tokens, offsets), times=times)
    ri, rs = _rank(bcand, pairs.get)
    add("binary dense codes top-100 > MaxSim f16 from disk", ri, rs, tok_per_doc, f16_bytes + 10 + 1536,
        bcodes.shape[1] + 8 + 5, [a + b for a, b in zip(btimes, times)])

    # 5. token pooling (Ward): dense top-100 reranked with pooled tokens
    pooled = {}
    for f in (2, 3):
        ptok, poff = _pooled(name, tokens, offsets, f)
        pooled[f] = (ptok, poff)
        ptpd = poff[-1] / n
        times = []
        _rank(dtop[:50, :DEPTH], _fresh(qtok, ptok, poff), times=times)
        ri, rs = _rank(dtop[:, :DEPTH], _fresh(qtok, np.asarray(ptok, np.float32), poff))
        label = f"dense f32 top-100 > MaxSim f16, pool factor {f}"
        add(label, ri, rs, ptpd, ptpd * dim * 2 + 10 + 1536, 1536 + 8, times)
        rows[-1][-1] = f"{res[label] / rerank_f16:.1%} of unpooled"

    # 6. binary tokens: MaxSim over 1-bit token codes picks 100 of the dense top-`binary_depth`, float16 rescores
    bt = make_codec("binary")
    bt.fit(np.asarray(tokens[:: max(1, len(tokens) // 100_000)], np.float32))
    cand = dtop[:, : args.binary_depth]
    union = np.unique(cand)
    codes_full = np.zeros((len(tokens), -(-dim // 8)), np.uint8)
    for d0 in range(0, len(union), 500):  # code only the documents some query needs
        part = union[d0 : d0 + 500]
        tok, _ = gather(tokens32, offsets, part)
        codes_full[np.concatenate([np.arange(offsets[d], offsets[d + 1]) for d in part])] = bt.encode(
            np.asarray(tok, np.float32))
    times = []
    bi, bs = _rank(cand, _fresh(qtok, codes_full, offsets, decode=bt.decode), times=times, timed=20)
    bpd = tok_per_doc * codes_full.shape[1]
    add(f"binary tokens over dense top-{args.binary_depth}", bi, bs, tok_per_doc, bpd + 10 + 1536, bpd + 1536 + 8,
        times)
    ri, rs = _rank(bi, pairs.get)
    add(f"binary tokens over dense top-{args.binary_depth} > top-100 float16 rescoring", ri, rs, tok_per_doc,
        bpd + f16_bytes + 20 + 1536, bpd + 1536 + 8, [])

    # 7. residual codes (ColBERTv2/PLAID style) as the token file, dense top-100 reranked from them
    for tag, (tk, of) in (("full", (tokens, offsets)), ("pool2", pooled[2]), ("pool3", pooled[3])):
        for bits, (codec, codes) in _residual(name, tag, tk, args.centroids).items():
            tpd = of[-1] / n
            times = []
            ri, rs = _rank(dtop[:, :DEPTH], _fresh(qtok, codes, of, decode=codec.decode), times=times)
            code_bytes = tpd * codes.shape[1]
            label = f"dense f32 top-100 > MaxSim residual:{args.centroids}:{bits}" + (
                "" if tag == "full" else f", pool factor {tag[-1]}")
            add(label, ri, rs, tpd, code_bytes + 10 + 1536, 1536 + 8 + codec.centroids.nbytes / n, times)
            rows[-1][-1] = f"{code_bytes / f16_bytes:.1%} of f16 bytes, {res[label] / rerank_f16:.1%} of f16 MaxSim"

    # 8. MUVERA: FDE candidates reranked by exact MaxSim; recall of the reference's top 10
    cfg = MuveraConfig(dim=dim, reps=args.muvera_reps, ksim=args.muvera_ksim, dproj=args.muvera_dproj)
    dfde = _muvera(name, cfg, tokens32, offsets)
    qfde = muvera_queries(cfg, qtok)
    ftimes = []
    for i in range(min(50, nq)):
        t0 = time.perf_counter()
        s = qfde[i] @ dfde.T
        np.argpartition(-s, min(1000, n - 1))[:1000]
        ftimes.append(time.perf_counter() - t0)
    fs = qfde @ dfde.T
    ftop = _topk(fs, 2000)
    recall = {}
    for cands in (100, 200, 500, 1000, 2000):
        recall[cands] = float(np.mean([len(set(exact10[i].tolist()) & set(ftop[i, :cands].tolist())) / 10
                                       for i in range(nq)]))
    needed = next((c for c, r in recall.items() if r >= 0.95), None)
    _log(f"{name}: MUVERA recall of the reference top-10: {recall}")
    for cands in (100, 500, 1000):
        times = []
        _rank(ftop[:20, :cands], _fresh(qtok, tokens, offsets), times=times, timed=20)
        ri, rs = _rank(ftop[:, :cands], pairs.get)
        add(f"MUVERA ({cfg.fde_dim}-d FDE, exact) top-{cands} > MaxSim f16", ri, rs, tok_per_doc,
            f16_bytes + 10 + cfg.fde_dim * 4, cfg.fde_dim * 4 + 8, [a + b for a, b in zip(ftimes, times)],
            f"holds {recall[cands]:.1%} of the reference top 10")

    return {"rows": rows, "reference": ref, "ref_label": ref_label, "rerank_f16": rerank_f16, "res": res,
            "recall": recall, "needed": needed, "tok_per_doc": tok_per_doc, "f16_bytes": f16_bytes, "n": n,
            "nq": nq, "encode_s": c["encode_seconds"], "ref_s": ref_s_time, "ex_p50": ex_p50,
            "ex_agree": float(np.mean(agree)) if agree else float("nan"), "ex_m": m,
            "qtok": sum(len(q) for q in qtok) / nq}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus"])
    ap.add_argument("--centroids", type=int, default=512)
    ap.add_argument("--ref-depth", type=int, default=0,
                    help="MaxSim reference over the dense top-N (0: every document, exhaustive)")
    ap.add_argument("--binary-depth", type=int, default=300)
    ap.add_argument("--exhaustive-queries", type=int, default=5)
    ap.add_argument("--muvera-reps", type=int, default=20)
    ap.add_argument("--muvera-ksim", type=int, default=5)
    ap.add_argument("--muvera-dproj", type=int, default=16)
    ap.add_argument("--encode-queries", type=int, default=50)
    ap.add_argument("--ingest-docs", type=int, default=256)
    args = ap.parse_args()
    from slimvec.ingest.beir import load_queries

    print(f"machine: {machine()}\n")
    for name in args.datasets:
        r = bench(name, args)
        queries = list(load_queries(DATA / name).values())[: args.encode_queries]
        enc = float(np.percentile(np.asarray(_encode_latency(queries)) * 1000, 50))
        print(f"### {name} (test, {r['nq']} queries, {r['n']} documents, {r['tok_per_doc']:.1f} tokens/doc, "
              f"{r['qtok']:.1f} tokens/query)\n")
        print(f"query encoding (dense + tokens, one forward pass) p50: {enc:.1f} ms\n")
        table = []
        for label, ndcg, tpd, disk, ram, p50, note in r["rows"]:
            table.append([label, f"{ndcg:.4f}", f"{ndcg / r['reference']:.1%}", f"{tpd:.1f}", f"{disk:,.0f}",
                          f"{ram:,.0f}", f"{p50:.1f}" if not np.isnan(p50) else "-",
                          f"{p50 + enc:.1f}" if not np.isnan(p50) else "-", note])
        print_table(["configuration", "nDCG@10", "vs reference", "tokens/doc", "disk B/doc", "RAM B/doc",
                     "search p50 ms", "p50 with encoding ms", "note"], table)
        print(f"\nexhaustive MaxSim (numpy, all f16 tokens in RAM, {r['ex_m']} queries): p50 {r['ex_p50']:.0f} ms "
              f"per query ({1000 / r['ex_p50']:.1f} QPS); its top 10 agrees with the reference's top 10 on "
              f"{r['ex_agree']:.1%} of documents")
        print("MUVERA candidates holding the reference's top 10 (mean fraction): "
              + ", ".join(f"{c}: {v:.1%}" for c, v in r["recall"].items())
              + f"; 95% needs {r['needed'] or '> 2000'} candidates")
        if args.ingest_docs:
            d, t = _ingest_ratio(name, args.ingest_docs)
            print(f"ingest encode, {args.ingest_docs} docs: dense only {d:.1f} docs/s, dense + tokens {t:.1f} docs/s "
                  f"({t / d:.2f}x)")
        print()
        (CACHE / name / "result.json").write_text(json.dumps({k: v for k, v in r.items() if k != "rows"} |
                                                             {"rows": [list(map(str, x)) for x in r["rows"]]}))


if __name__ == "__main__":
    main()
