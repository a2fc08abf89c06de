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


def _rerank_all(qtok: list[np.ndarray], tokens: np.ndarray, offsets: np.ndarray, cand: np.ndarray, decode=None,
                times: list[float] | None = None, timed: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """MaxSim over each query's candidate documents: (nq, depth) indices and scores, best first."""
    out_i = np.full(cand.shape, -1, np.int64)
    out_s = np.full(cand.shape, -np.inf, np.float32)
    for i, q in enumerate(qtok):
        t0 = time.perf_counter()
        tok, off = gather(tokens, offsets, cand[i])
        s = maxsim_scores(q, tok, off, decode=decode)
        order = np.argsort(-s, kind="stable")
        if times is not None and i < timed:
            times.append(time.perf_counter() - t0)
        out_i[i], out_s[i] = cand[i][order], s[order]
    return out_i, out_s


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


def _codes(name: str, tag: str, spec: str, tokens: np.ndarray):  # noqa: ANN202
    """A token codec fitted once on 100k sampled tokens and the codes of every token (cached)."""
    from slimvec.codecs.base import load as load_codec
    from slimvec.codecs.base import save as save_codec

    d = CACHE / name / f"codes-{tag}"
    if not (d / "codes.npy").exists():
        t0 = time.perf_counter()
        codec = fit_token_codec(spec, tokens, sample=100_000)
        fit_s = time.perf_counter() - t0
        codes = np.concatenate([codec.encode(np.asarray(tokens[s : s + 200_000], np.float32))
                                for s in range(0, len(tokens), 200_000)])
        save_codec(codec, d / "codec")
        np.save(d / "codes.npy", codes)
        _log(f"{name}: {spec} fitted in {fit_s:.0f} s, all tokens coded in {time.perf_counter() - t0:.0f} s")
    return load_codec(d / "codec"), np.load(d / "codes.npy", mmap_mode="r")


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
    n, dim = len(doc_ids), dense.shape[1]
    tok_per_doc = offsets[-1] / n
    f16_bytes = tok_per_doc * dim * 2
    _log(f"{name}: {n} docs, {len(qids)} queries, {tok_per_doc:.1f} tokens/doc")
    rows: list[list[object]] = []
    res: dict[str, float] = {}

    def add(label: str, ndcg: float, tpd: float, disk: float, ram: float, times: list[float]) -> None:
        res[label] = ndcg
        p50 = float(np.percentile(np.asarray(times) * 1000, 50)) if times else float("nan")
        rows.append([label, ndcg, tpd, disk, ram, p50])
        _log(f"{name}: {label}: nDCG@10 {ndcg:.4f}, search p50 {p50:.1f} ms")

    # 1. mean-pooled dense, exact
    times = []
    for i in range(min(100, len(qids))):
        t0 = time.perf_counter()
        s = qdense[i] @ dense.T
        np.argpartition(-s, K)[:K]
        times.append(time.perf_counter() - t0)
    sd = qdense @ dense.T
    dtop = _topk(sd, DEPTH)
    add("dense (mean-pooled MiniLM, exact f32)", _ndcg(qrels, qids, doc_ids, dtop, np.take_along_axis(sd, dtop, 1)),
        0, 1536, 1536, times)

    # 2. exhaustive MaxSim over every float16 token (numpy, tokens in RAM): the reference and QPS baseline
    resident = np.asarray(tokens)  # read once into RAM, as an in-memory exhaustive baseline would hold them
    t0 = time.perf_counter()
    ex = maxsim_scores(qtok, resident, offsets)
    batch_s = time.perf_counter() - t0
    times = []
    for i in range(10):
        t0 = time.perf_counter()
        maxsim_scores(qtok[i], resident, offsets)
        times.append(time.perf_counter() - t0)
    extop = _topk(ex, K)
    ex_ndcg = _ndcg(qrels, qids, doc_ids, extop, np.take_along_axis(ex, extop, 1))
    add("exhaustive MaxSim, f16 tokens in RAM", ex_ndcg, tok_per_doc, f16_bytes + 8, f16_bytes + 8, times)
    _log(f"{name}: exhaustive batch of {len(qids)} queries in {batch_s:.1f} s")
    exact10 = extop[:, :10]

    # 3. dense top-100 reranked by MaxSim over float16 tokens read from disk (the `multivector` profile)
    times = []
    ri, rs = _rerank_all(qtok, tokens, offsets, dtop, times=times)
    add("dense f32 top-100 > MaxSim f16 from disk", _ndcg(qrels, qids, doc_ids, ri, rs), tok_per_doc,
        f16_bytes + 10 + 1536, 1536 + 8, times)
    rerank_f16 = res["dense f32 top-100 > MaxSim f16 from disk"]

    # 4. binary dense codes in RAM (48 B/doc) top-100 > MaxSim from disk (the `multivector-binary` profile)
    from slimvec.codecs.base import make_codec

    bcodec = make_codec("binary")
    bcodec.fit(dense)
    bcodes = bcodec.encode(dense)
    times = []
    bcand = np.zeros((len(qids), DEPTH), np.int64)
    for i in range(len(qids)):
        t0 = time.perf_counter()
        bcand[i] = _topk(bcodec.score(qdense[i : i + 1], bcodes), DEPTH)[0]
        if i < 100:
            times.append(time.perf_counter() - t0)
    rtimes: list[float] = []
    ri, rs = _rerank_all(qtok, tokens, offsets, bcand, times=rtimes)
    add("binary dense codes top-100 > MaxSim f16 from disk", _ndcg(qrels, qids, doc_ids, ri, rs), tok_per_doc,
        f16_bytes + 10 + 1536, bcodes.shape[1] + 8 + 5, [a + b for a, b in zip(times, rtimes)])

    # 5. token pooling (Ward), exhaustive and as the reranking stage
    pooled = {}
    for f in (2, 3):
        ptok, poff = _pooled(name, tokens, offsets, f)
        pooled[f] = (ptok, poff)
        ptpd = poff[-1] / n
        pres = np.asarray(ptok)
        pe = maxsim_scores(qtok, pres, poff)
        ptop = _topk(pe, K)
        add(f"exhaustive MaxSim, pool factor {f}", _ndcg(qrels, qids, doc_ids, ptop, np.take_along_axis(pe, ptop, 1)),
            ptpd, ptpd * dim * 2 + 10, ptpd * dim * 2 + 8, [])
        times = []
        ri, rs = _rerank_all(qtok, ptok, poff, dtop, times=times)
        add(f"dense f32 top-100 > MaxSim f16, pool factor {f}", _ndcg(qrels, qids, doc_ids, ri, rs), ptpd,
            ptpd * dim * 2 + 10 + 1536, 1536 + 8, times)

    # 6. binary tokens: exhaustive MaxSim over 1-bit tokens, then the top 100 rescored with float16 tokens
    bt, bt_codes = _codes(name, "binary", "binary", tokens)
    be = maxsim_scores(qtok, np.asarray(bt_codes), offsets, decode=bt.decode)
    btop = _topk(be, K)
    bpd = tok_per_doc * bt_codes.shape[1]
    add("exhaustive MaxSim, binary tokens in RAM", _ndcg(qrels, qids, doc_ids, btop, np.take_along_axis(be, btop, 1)),
        tok_per_doc, bpd + 8, bpd + 8, [])
    times = []
    ri, rs = _rerank_all(qtok, tokens, offsets, btop, times=times)
    add("binary tokens top-100 > float16 rescoring", _ndcg(qrels, qids, doc_ids, ri, rs), tok_per_doc,
        bpd + f16_bytes + 18, bpd + 8, [])

    # 7. residual codes (ColBERTv2/PLAID style) as the token file, dense top-100 reranked from them
    for tag, spec, (tk, of) in (("res2", f"residual:{args.centroids}:2", (tokens, offsets)),
                                ("res1", f"residual:{args.centroids}:1", (tokens, offsets)),
                                ("p2res1", f"residual:{args.centroids}:1", pooled[2]),
                                ("p3res2", f"residual:{args.centroids}:2", pooled[3]),
                                ("p3res1", f"residual:{args.centroids}:1", pooled[3])):
        codec, codes = _codes(name, tag, spec, tk)
        tpd = of[-1] / n
        times = []
        ri, rs = _rerank_all(qtok, codes, of, dtop, decode=codec.decode, times=times)
        code_bytes = tpd * codes.shape[1]
        label = f"dense f32 top-100 > MaxSim {spec}" + ("" if tk is tokens else f", pool {3 if tag.startswith('p3') else 2}")
        add(label, _ndcg(qrels, qids, doc_ids, ri, rs), tpd, code_bytes + 10 + 1536,
            1536 + 8 + codec.centroids.nbytes / n, times)
        rows[-1].append(f"{code_bytes / f16_bytes:.1%} of f16")

    # 8. MUVERA: FDE candidates reranked by exact MaxSim; recall of exact MaxSim's top 10
    cfg = MuveraConfig(dim=dim, reps=args.muvera_reps, ksim=args.muvera_ksim, dproj=args.muvera_dproj)
    dfde = _muvera(name, cfg, tokens, offsets)
    qfde = muvera_queries(cfg, qtok)
    fs = qfde @ dfde.T
    ftop = _topk(fs, 2000)
    recall = {}
    for cands in (100, 200, 500, 1000, 2000):
        hit = [len(set(exact10[i]) & set(ftop[i, :cands])) / 10 for i in range(len(qids))]
        recall[cands] = float(np.mean(hit))
    needed = next((c for c, r in recall.items() if r >= 0.95), None)
    _log(f"{name}: MUVERA recall of exact top-10: {recall}")
    for cands in (100, 500, 1000):
        times = []
        ri, rs = _rerank_all(qtok, tokens, offsets, ftop[:, :cands], times=times, timed=30)
        add(f"MUVERA ({cfg.fde_dim}-d FDE) top-{cands} > MaxSim f16", _ndcg(qrels, qids, doc_ids, ri[:, :K], rs[:, :K]),
            tok_per_doc, f16_bytes + 10 + cfg.fde_dim * 4, cfg.fde_dim * 4 + 8, times)

    return {"rows": rows, "exhaustive": ex_ndcg, "rerank_f16": rerank_f16, "res": res, "recall": recall,
            "needed": needed, "tok_per_doc": tok_per_doc, "f16_bytes": f16_bytes, "n": n, "nq": len(qids),
            "encode_s": c["encode_seconds"], "batch_s": batch_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus"])
    ap.add_argument("--centroids", type=int, default=4096)
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
        print(f"### {name} (test, {r['nq']} queries, {r['n']} documents, {r['tok_per_doc']:.1f} tokens/doc)\n")
        print(f"query encoding (dense + tokens, one forward pass) p50: {enc:.1f} ms\n")
        table = []
        for label, ndcg, tpd, disk, ram, p50, *note in r["rows"]:
            table.append([label, f"{ndcg:.4f}", f"{ndcg / r['exhaustive']:.1%}", f"{tpd:.1f}", f"{disk:,.0f}",
                          f"{ram:,.0f}", f"{p50:.1f}" if p50 == p50 else "-",
                          f"{p50 + enc:.1f}" if p50 == p50 else "-", note[0] if note else ""])
        print_table(["configuration", "nDCG@10", "vs exhaustive MaxSim", "tokens/doc", "disk B/doc", "RAM B/doc",
                     "search p50 ms", "p50 with encoding ms", "token bytes"], table)
        print(f"\nexhaustive MaxSim, all {r['nq']} queries in one pass: {r['batch_s']:.1f} s "
              f"({r['nq'] / r['batch_s']:.1f} QPS batched)")
        print("MUVERA candidates holding exact MaxSim's top 10 (mean fraction): "
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
