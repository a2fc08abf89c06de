"""Late chunking vs chunks embedded alone: quality (BEIR protocol, XQuAD sections) and ingest speed.

Parts (run one or all; encoded vectors are cached under $LATE_CACHE, default /tmp/slimvec-late):
  beir    SciFact and NFCorpus, whole corpus chunked at 64/128/256 tokens, a document scored by its best chunk:
          naive (each chunk's own text encoded alone, as the reference protocol does), late (one pass over
          "title text" at the model's 510 positions, macro windows beyond), mix (late_weight), the whole document
          cut at 256 tokens, and the contextual prefix ("title chunk", the write path's text; LATE_PREFIX=1).
  weights `late_weight` for BEIR chunks chosen on dev queries (SciFact train, NFCorpus dev), every weight of
          LATE_WEIGHTS (default "0,0.25,0.5,0.75,1") reported on test too; whole corpora only (LATE_SUBSET=0).
  xquad   xquad-en-sentences / xquad-en-articles at section level: units alone, contextual prefix, late over the
          article (macro windows), the late_weight mix; late_weight and window chosen on a dev half of the queries.
          Also reported, not chosen: split mixes (units over t tokens alone, shorter ones the titled mix).
  speed   ingest docs/s of token chunking vs late chunking on the same chunk boundaries.
  work    tokens each mode runs through the encoder on the same documents (machine-independent).
  cost    encoder CPU seconds per 1,000 word pieces at sequence lengths 64/128/254/510 (same pieces each).
  ingest  through a real Collection (one process per run): docs/s of token vs late chunking on the same
          boundaries, and peak RSS of late ingest at two corpus sizes (bounded by the commit batch, not the corpus).
  paired  XQuAD-en: the default for given sections against units alone and the prefix, per query (paired
          bootstrap interval, randomization p), from the xquad part's cached encodings.

    PYTHONPATH=src python benchmarks/late_chunking.py [beir|weights|xquad|speed|work|ingest|paired ...]

LATE_MODEL names the encoder (default all-MiniLM-L6-v2, the model of every recorded figure before session 8;
e.g. bge-small-en-v1.5): cache names of any other model start with its name. With an ONNX encoder the late pass
also pools the Late Chunking paper's way ([CLS] into the first chunk, [SEP] into the last: `late_two_poolings`).
LATE_SUBSET=N sets the BEIR sub-corpus size (default 400, 0 = whole corpus; see `beir_subset`).
LATE_SETS (default "nfcorpus,scifact") and LATE_SIZES (default "128,64,256") set which BEIR rows run, in that
order; each row is printed as soon as it is measured, and encodings are saved block by block, so an interrupted
run resumes where it stopped. LATE_BOUNDARIES=fixed cuts the reference protocol's chunks (fixed word-piece spans
of "title text", see `fixed_token_chunks`) instead of the collection's sentence-snapped ones (the default).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table, read_jsonl  # noqa: E402

from slimvec.chunking import ChunkConfig, chunk_document, chunk_text  # noqa: E402
from slimvec.documents import Chunk, Document  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.evaluation.metrics import evaluate  # noqa: E402
from slimvec.late import LateConfig, chunk_token_counts, late_chunk_vectors, mix  # noqa: E402

# The model: all-MiniLM-L6-v2 unless LATE_MODEL names another registered encoder (e.g. bge-small-en-v1.5, the
# default model of new collections). Every cache name of another model starts with its name, so the cached
# encodings never mix models (MiniLM's keep their old names: the recorded commands still reproduce).
MODEL = os.environ.get("LATE_MODEL", "all-MiniLM-L6-v2")
MODEL_TAG = "" if MODEL == "all-MiniLM-L6-v2" else f"{MODEL}-"
CACHE = Path(os.environ.get("LATE_CACHE", "/tmp/slimvec-late"))
# Documents per BEIR corpus (0 = all). Encoding whole corpora five ways does not fit a shared 2-core machine.
SUBSET = int(os.environ.get("LATE_SUBSET", "400"))
SIZES = (64, 128, 256)
METRICS = ("ndcg@10", "recall@10")
# Jina's published late-chunking results (jina-embeddings-v2-small, 256-token chunks), nDCG@10 x100.
REFERENCE = {"scifact": (64.2, 66.1), "nfcorpus": (23.5, 30.0)}


def cached(name: str, compute) -> np.ndarray:  # noqa: ANN001
    """`compute()` once, then read back from CACHE/name.npy."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{SUBSET}-{MODEL_TAG}{name}.npy"
    if path.exists():
        return np.load(path)
    t = time.perf_counter()
    out = compute()
    np.save(path, out)
    print(f"  encoded {name}: {out.shape[0]} vectors in {time.perf_counter() - t:.0f} s", flush=True)
    return out


def cached_blocks(name: str, n: int, compute_block, block: int) -> np.ndarray:  # noqa: ANN001
    """`compute_block(lo, hi)` for items [lo, hi) in blocks of `block`, each block saved when done (a killed
    run resumes at the first missing block); the whole array is then saved as CACHE/name.npy, as `cached`."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{SUBSET}-{MODEL_TAG}{name}.npy"
    if path.exists():
        return np.load(path)
    parts, t = [], time.perf_counter()
    for lo in range(0, n, block):
        part = CACHE / f"{SUBSET}-{MODEL_TAG}{name}.part{lo}.npy"
        if not part.exists():
            tb = time.perf_counter()
            np.save(part, compute_block(lo, min(n, lo + block)))
            print(f"  {name}: items {lo}-{min(n, lo + block)} of {n} in {time.perf_counter() - tb:.0f} s", flush=True)
        parts.append(np.load(part))
    out = np.concatenate(parts)
    np.save(path, out)
    for lo in range(0, n, block):
        (CACHE / f"{SUBSET}-{MODEL_TAG}{name}.part{lo}.npy").unlink()
    print(f"  encoded {name}: {out.shape[0]} vectors in {time.perf_counter() - t:.0f} s", flush=True)
    return out


def beir_subset(name: str, n_docs: int) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]]]:
    """A fixed sub-corpus of `n_docs` documents (0 = the whole corpus) and the test queries it can answer.

    Judged documents are added query by query (qrels order) while they fit in half the budget (a query whose
    judged set no longer fits is passed over); the rest is filled with other documents in corpus order. Every
    test query with a judged document in the sub-corpus is then evaluated on its judgements restricted to it.
    Deterministic, so every variant sees the same corpus and queries.
    """
    ds = load_dataset(DATA / name)
    corpus = read_jsonl(DATA / name / "corpus.jsonl")
    queries, qrels = ds.queries("test"), ds.qrels("test")
    if n_docs:
        known = {r["_id"] for r in corpus}
        keep: set[str] = set()
        for judged in qrels.values():
            if len(keep | set(judged)) <= n_docs // 2:
                keep |= set(judged)
        keep &= known
        keep |= set([r["_id"] for r in corpus if r["_id"] not in keep][: n_docs - len(keep)])
        corpus = [r for r in corpus if r["_id"] in keep]
        qrels = {q: {d: g for d, g in j.items() if d in keep} for q, j in qrels.items()}
        qrels = {q: j for q, j in qrels.items() if any(g > 0 for g in j.values())}
        queries = {q: queries[q] for q in qrels}
    docs = [Document(r["_id"], r["text"], r.get("title") or "") for r in corpus]
    return docs, queries, qrels


def chunks_like_collection(doc: Document, enc, max_tokens: int, overlap: int) -> list[Chunk]:  # noqa: ANN001
    """Chunks as `Collection._chunk` cuts them: room for the title taken off the chunk size."""
    title_tokens = len(enc.token_spans(doc.title)) + 1 if doc.title else 0
    room = max(8, max_tokens - title_tokens)
    return chunk_document(doc, enc, ChunkConfig(room, min(overlap, room // 2 - 1), "tokens"))


def fixed_token_chunks(doc: Document, enc, sizes: tuple[int, ...]) -> tuple[Document, dict[int, list[Chunk]]]:  # noqa: ANN001
    """The reference protocol's chunks, per size: "title text" cut into consecutive spans of `size` word pieces.

    As jina-ai/late-chunking cuts them (`Chunker.chunk_by_tokens`, Günther et al. 2024): the title is part of the
    text (so of the first chunk), no special tokens, no overlap, no sentence snapping, and the last span keeps
    whatever is left however short. Returns the title-less document whose text is "title text" (so
    `late_chunk_vectors` pools exactly these spans, title included) and its chunks as character spans into it.
    A chunk's own text is its character slice; the reference decodes the span's word pieces instead, which
    re-tokenises to the same pieces except that a span starting inside a word loses its "##" marker.
    """
    text = chunk_text(doc.title, doc.text)
    _, offsets = enc.tokenize(text)
    full = Document(doc.id, text, "")
    out = {}
    for size in sizes:
        spans = [(a, min(a + size, len(offsets))) for a in range(0, len(offsets), size)]
        out[size] = [Chunk(doc.id, k, offsets[a][0], offsets[b - 1][1], text[offsets[a][0] : offsets[b - 1][1]])
                     for k, (a, b) in enumerate(spans)]
    return full, out


def late_two_poolings(docs: list[Document], chunks: list[list[Chunk]], enc, config: LateConfig,  # noqa: ANN001
                      group_windows: int = 64) -> np.ndarray:
    """Late chunk vectors pooled two ways from one forward pass: (total chunks, 2 x dim) float32, unit rows.

    Columns [:dim]: the span's mean, exactly as `late.late_chunk_vectors` pools it (same windows, same groups of
    `group_windows` windows per call, so the same int8 activation scales). Columns [dim:]: the Late Chunking
    paper's convention (Günther et al. 2024, section 4.1 "Dealing with Non-Context Tokens"; jina-ai/late-chunking
    `_extend_special_tokens`): the [CLS] output joins the mean of the document's first chunk and the [SEP]
    output that of its last chunk (here [CLS] of the first macro window, [SEP] of the last). For a [CLS]-pooled
    model such as bge-small-en-v1.5 this puts the model's own pooled output into the first chunk.
    Needs an `encoders.onnx.OnnxTransformerEncoder` (its forward pass keeps the special tokens' rows).
    """
    from slimvec.late import best_window, macro_windows, pool_chunks, token_span

    window, overlap = config.window_for(int(enc.max_positions))
    cls, sep, _ = enc._special
    plans = []
    for doc, doc_chunks in zip(docs, chunks):
        prefix = f"{doc.title} " if config.title_context and doc.title else ""
        ids, offsets = enc.tokenize(chunk_text(doc.title, doc.text) if prefix else doc.text)
        starts = [a for a, _ in offsets]
        spans = [token_span(starts, len(prefix) + c.start, len(prefix) + c.end) for c in doc_chunks]
        plans.append((spans, macro_windows(len(ids), window, overlap) if ids else [], ids))
    dim = int(enc.dim)
    out = np.zeros((sum(len(c) for c in chunks), 2 * dim), np.float32)

    def embed(group: list[int], row: int) -> int:
        seqs = [[cls, *plans[g][2][ws:we], sep] for g in group for ws, we in plans[g][1]]
        full: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(seqs)
        for idx in enc._batches([len(x) for x in seqs]):  # as OnnxTransformerEncoder.token_embeddings batches
            hidden = enc._run([seqs[i] for i in idx])
            for r, i in enumerate(idx):
                full[i] = hidden[r, : len(seqs[i])]
        k = 0
        for g in group:
            spans, windows, _ = plans[g]
            rows = full[k : k + len(windows)]
            k += len(windows)
            if windows and spans:
                out[row : row + len(spans), :dim] = pool_chunks(spans, windows, [h[1:-1] for h in rows])
                for j, (a, b) in enumerate(spans):
                    w = best_window(a, b, windows)
                    ws, we = windows[w]
                    if ws <= a and b <= we:
                        picked = list(rows[w][1 + a - ws : 1 + b - ws])
                    else:
                        picked = [rows[best_window(t, t + 1, windows)][1 + t - windows[best_window(t, t + 1, windows)][0]]
                                  for t in range(a, b)]
                    if j == 0:
                        picked.append(rows[0][0])  # [CLS] of the first window
                    if j == len(spans) - 1:
                        picked.append(rows[-1][-1])  # [SEP] of the last window
                    out[row + j, dim:] = np.mean(picked, axis=0)
            row += len(spans)
        return row

    group, n_windows, row = [], 0, 0
    for i, (_, windows, _) in enumerate(plans):
        group.append(i)
        n_windows += len(windows)
        if n_windows >= group_windows or i == len(plans) - 1:
            row = embed(group, row)
            group, n_windows = [], 0
    for half in (slice(0, dim), slice(dim, 2 * dim)):
        part = out[:, half]
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        out[:, half] = part / np.where(norms > 0, norms, 1.0)
    empty = np.flatnonzero(~out[:, :dim].any(axis=1))
    if len(empty):  # chunks without tokens get their own vector, as late_chunk_vectors does
        flat = [c.text for cs in chunks for c in cs]
        own = enc.encode_documents([flat[i] for i in empty])
        out[empty, :dim] = own
        out[empty, dim:] = own
    return out


def best_chunk_run(q: np.ndarray, qids: list[str], vecs: np.ndarray, owner: np.ndarray, ids: list[str],
                   depth: int = 100) -> dict[str, dict[str, float]]:
    """Exact inner-product search; a unit (document or section) scores its best chunk; top `depth` units."""
    scores = q @ vecs.T
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # chunks are stored grouped by owner
    unit_scores = np.maximum.reduceat(scores, starts, axis=1)
    unit_ids = [ids[owner[s]] for s in starts]
    run = {}
    for i, qid in enumerate(qids):
        top = np.argsort(-unit_scores[i])[:depth]
        run[qid] = {unit_ids[j]: float(unit_scores[i, j]) for j in top}
    return run


def _flat(chunks: list[list[Chunk]]) -> tuple[list[Chunk], np.ndarray]:
    flat = [c for cs in chunks for c in cs]
    owner = np.repeat(np.arange(len(chunks)), [len(cs) for cs in chunks])
    return flat, owner


# ---- (i) BEIR protocol -----------------------------------------------------------------------------------


BEIR_SETS = tuple(os.environ.get("LATE_SETS", "nfcorpus,scifact").split(","))
BEIR_SIZES = tuple(int(x) for x in os.environ.get("LATE_SIZES", "128,64,256").split(","))
HEADERS_I = ["dataset", "boundaries", "chunk tokens", "chunks/doc", "naive", "late", "mix w=0.5", "late - naive (pts)",
             "whole doc (model's cut)", "late - whole (pts)", "prefix (title chunk)",
             "late, [CLS]/[SEP] in first/last chunk", "Jina ref naive / late (x100)"]
# The prefix column encodes every chunk a second time ("title chunk", the write path's text): off for the full
# corpora unless LATE_PREFIX=1 (or its encodings are already cached), shown as "-" then.
PREFIX = os.environ.get("LATE_PREFIX", "") == "1"
# Where chunks are cut. "sentences": as the collection cuts them (`chunks_like_collection`: sentence-snapped token
# chunks of the text, the title as context only). "fixed": the reference protocol's (`fixed_token_chunks`).
# Naive and late always share the boundaries; the prefix column is measured for "sentences" only.
BOUNDARIES = os.environ.get("LATE_BOUNDARIES", "sentences")
if BOUNDARIES not in ("sentences", "fixed"):
    raise SystemExit(f"LATE_BOUNDARIES must be 'sentences' or 'fixed', got {BOUNDARIES!r}")
TAG = "fixed-" if BOUNDARIES == "fixed" else ""  # cache names: fixed-boundary encodings apart from the others


def size_vectors(name: str, docs: list[Document], enc) -> dict[int, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[list[Chunk]]]]:  # noqa: ANN001,E501
    """For each size of BEIR_SIZES: (owner of each chunk, naive vectors, late vectors per pooling, the chunks per
    document), the chunks cut by BOUNDARIES; encodings cached (one late pass per document serves every size).
    Poolings: "mean" (the span's mean, the library's), and for ONNX encoders also "specials" (the paper's
    [CLS]/[SEP] convention, `late_two_poolings`)."""
    late_cfg = LateConfig(window=0, overlap=256, late_weight=1.0)
    if BOUNDARIES == "fixed":
        fixed = [fixed_token_chunks(d, enc, SIZES) for d in docs]
        late_docs = [f for f, _ in fixed]
        per_size = {size: [c[size] for _, c in fixed] for size in SIZES}
    else:
        late_docs = docs
        per_size = {size: [chunks_like_collection(d, enc, size, 0) for d in docs] for size in SIZES}
    # One forward pass per document serves every chunk size: concatenate the three chunk lists.
    merged = [sum((per_size[s][i] for s in SIZES), []) for i in range(len(docs))]
    bounds = np.cumsum([0] + [len(m) for m in merged])
    if hasattr(enc, "_run"):  # ONNX encoders: both poolings from one pass (`late_two_poolings`)
        both = cached_blocks(f"{name}-{TAG}late2-all", len(docs), lambda lo, hi: late_two_poolings(
            late_docs[lo:hi], merged[lo:hi], enc, late_cfg), 256)
        dim = both.shape[1] // 2
        lates = {"mean": both[:, :dim], "specials": both[:, dim:]}
    else:
        lates = {"mean": cached_blocks(f"{name}-{TAG}late-all", len(docs), lambda lo, hi: late_chunk_vectors(
            late_docs[lo:hi], merged[lo:hi], enc, late_cfg), 256)}
    assert all(len(v) == bounds[-1] for v in lates.values())
    offsets: dict[int, list[np.ndarray]] = {}
    k = 0
    for i in range(len(docs)):
        for s in SIZES:
            n = len(per_size[s][i])
            offsets.setdefault(s, []).append(np.arange(k, k + n))
            k += n
    out = {}
    for size in BEIR_SIZES:
        chunks = per_size[size]
        _, owner = _flat(chunks)
        # naive = the reference protocol's: each chunk's own text encoded alone, same boundaries as late
        bare = [c.text for cs in chunks for c in cs]
        naive = cached_blocks(f"{name}-{TAG}bare{size}", len(bare),
                              lambda lo, hi: enc.encode_documents(bare[lo:hi]), 2048)
        rows = np.concatenate(offsets[size])
        out[size] = (owner, naive, {k: v[rows] for k, v in lates.items()}, chunks)
    return out


def beir(enc) -> None:  # noqa: ANN001
    rows = []
    for name in BEIR_SETS:
        docs, queries, qrels = beir_subset(name, SUBSET)
        ids = [d.id for d in docs]
        qids = list(queries)
        print(f"{name}: {len(docs)} documents, {len(qids)} test queries", flush=True)
        q = cached(f"{name}-judged-queries", lambda: enc.encode_queries([queries[i] for i in qids]))
        q_mean = None
        if getattr(enc, "pooling", "mean") == "cls":  # a [CLS] model: the same queries pooled as late chunks are
            twin = type(enc)(enc.path, f"{enc.name}-mean", pooling="mean")  # same session, mean over every position
            q_mean = cached(f"{name}-judged-queries-meanpool", lambda: twin.encode_queries([queries[i] for i in qids]))
        whole = cached_blocks(f"{name}-whole256", len(docs), lambda lo, hi: enc.encode_documents(
            [chunk_text(d.title, d.text) for d in docs[lo:hi]]), 512)
        whole_m = evaluate(qrels, best_chunk_run(q, qids, whole, np.arange(len(docs)), ids), METRICS)
        for size, (owner, naive, lates, chunks) in size_vectors(name, docs, enc).items():
            res = {}
            late = lates["mean"]
            variants = [("naive", naive), ("late", late), ("mix 0.5", mix(naive, late, 0.5))]
            if "specials" in lates:
                variants.append(("specials", lates["specials"]))
            for label, vecs in variants:
                res[label] = evaluate(qrels, best_chunk_run(q, qids, vecs, owner, ids), METRICS)
            if q_mean is not None:  # late chunks are token means: score them with token-mean queries too
                res["late, mean queries"] = evaluate(qrels, best_chunk_run(q_mean, qids, late, owner, ids), METRICS)
                print(f"  {name} {size}: late (span mean) with mean-pooled queries: "
                      f"{res['late, mean queries']['ndcg@10']:.4f} (CLS queries {res['late']['ndcg@10']:.4f})",
                      flush=True)
            prefix_m = "-"
            if BOUNDARIES == "sentences" and (PREFIX or (CACHE / f"{SUBSET}-{MODEL_TAG}{name}-naive{size}.npy").exists()):
                texts = [chunk_text(d.title, c.text) for d, cs in zip(docs, chunks) for c in cs]
                prefix = cached_blocks(f"{name}-naive{size}", len(texts),
                                       lambda lo, hi: enc.encode_documents(texts[lo:hi]), 2048)
                prefix_m = f"{evaluate(qrels, best_chunk_run(q, qids, prefix, owner, ids), METRICS)['ndcg@10']:.4f}"
            rows.append([name, BOUNDARIES, size, f"{len(owner) / len(docs):.1f}",
                         *(f"{res[v]['ndcg@10']:.4f}" for v in ("naive", "late", "mix 0.5")),
                         f"{100 * (res['late']['ndcg@10'] - res['naive']['ndcg@10']):+.2f}",
                         f"{whole_m['ndcg@10']:.4f}",
                         f"{100 * (res['late']['ndcg@10'] - whole_m['ndcg@10']):+.2f}", prefix_m,
                         f"{res['specials']['ndcg@10']:.4f}" if "specials" in res else "-",
                         f"{REFERENCE[name][0]:.1f} / {REFERENCE[name][1]:.1f}" if size == 256 else ""])
            print("row: | " + " | ".join(map(str, rows[-1])) + " |", flush=True)
    print(f"\n### (i) BEIR protocol: nDCG@10, a document scored by its best chunk ({MODEL})\n")
    print_table(HEADERS_I, rows)


# The split each BEIR set offers for choosing a setting without its test queries (SciFact has no dev split).
DEV_SPLIT = {"scifact": "train", "nfcorpus": "dev"}
MIX_WEIGHTS = tuple(float(x) for x in os.environ.get("LATE_WEIGHTS", "0,0.25,0.5,0.75,1").split(","))


def weights(enc) -> None:  # noqa: ANN001
    """`late_weight` chosen on dev queries, reported on test: w=0 is naive chunks, w=1 pure late chunking.

    The whole corpus (LATE_SUBSET=0) of every set in LATE_SETS, at every size of LATE_SIZES; the (pooling, weight)
    with the best mean dev nDCG@10 over all of them is the one chosen (one setting for every corpus and size, as a
    profile default must be). Poolings as `size_vectors` gives them (the span's mean; for ONNX encoders also the
    paper's [CLS]/[SEP] convention)."""
    if SUBSET:
        raise SystemExit("the weights part runs on whole corpora: set LATE_SUBSET=0")
    dev_rows, test_rows, extra_rows, dev_score = [], [], [], {}
    for name in BEIR_SETS:
        docs, test_q, test_qrels = beir_subset(name, 0)
        ids = [d.id for d in docs]
        ds = load_dataset(DATA / name)
        split = DEV_SPLIT[name]
        dev_q, dev_qrels = ds.queries(split), ds.qrels(split)
        dev_q = {q: dev_q[q] for q in dev_qrels if q in dev_q}
        splits, mean_q = {}, {}
        twin = type(enc)(enc.path, f"{enc.name}-mean", pooling="mean") if getattr(enc, "pooling", "") == "cls" else None
        for label, qs, qrels in ((split, dev_q, dev_qrels), ("test", test_q, test_qrels)):
            qids = list(qs)
            qname = f"{name}-{label}-queries" if label != "test" else f"{name}-judged-queries"
            vec = cached(qname, lambda: enc.encode_queries([qs[i] for i in qids]))
            splits[label] = (qids, vec, qrels)
            if twin is not None:  # [CLS] model: the queries pooled as late chunks are (token mean), reported apart
                mean_q[label] = cached(f"{qname}-meanpool", lambda: twin.encode_queries([qs[i] for i in qids]))
        print(f"{name}: {len(docs)} documents, {len(dev_q)} {split} queries, {len(test_q)} test queries", flush=True)
        for size, (owner, naive, lates, _) in size_vectors(name, docs, enc).items():
            for pooling, late in lates.items():
                for label, (qids, vec, qrels) in splits.items():
                    row = [name, label, size, pooling]
                    for w in MIX_WEIGHTS:
                        m = evaluate(qrels, best_chunk_run(vec, qids, mix(naive, late, w), owner, ids),
                                     METRICS)["ndcg@10"]
                        row.append(f"{m:.4f}")
                        if label != "test":
                            dev_score.setdefault((pooling, w), []).append(m)
                    (dev_rows if label != "test" else test_rows).append(row)
                    print("row: | " + " | ".join(map(str, row)) + " |", flush=True)
            for label, (qids, _, qrels) in splits.items():
                if label in mean_q and "mean" in lates:  # not a candidate of the choice: queries pooled otherwise
                    m = evaluate(qrels, best_chunk_run(mean_q[label], qids, lates["mean"], owner, ids),
                                 METRICS)["ndcg@10"]
                    extra_rows.append([name, label, size, "mean, token-mean queries", f"{m:.4f}"])
                    print("row: | " + " | ".join(map(str, extra_rows[-1])) + " |", flush=True)
    best = max(dev_score, key=lambda k: (float(np.mean(dev_score[k])), k[0] == "mean", -abs(k[1] - 0.5)))
    heads = ["dataset", "split", "chunk tokens", "late pooling", *(f"w={w:g}" for w in MIX_WEIGHTS)]
    print(f"\n### late_weight chosen on dev queries ({BOUNDARIES} boundaries, {MODEL}): nDCG@10\n")
    print_table(heads, dev_rows + test_rows)
    print("\nmean dev nDCG@10 per pooling and weight: "
          + ", ".join(f"{p} w={w:g} {np.mean(v):.4f}" for (p, w), v in dev_score.items()))
    print(f"chosen on dev: pooling {best[0]}, w={best[1]:g}")
    if extra_rows:
        print("\npure late chunks (w=1) scored by the same model's token-mean query vectors (not a candidate above):\n")
        print_table(["dataset", "split", "chunk tokens", "late pooling, queries", "w=1"], extra_rows)


# ---- (ii) XQuAD sections ----------------------------------------------------------------------------------

WINDOWS = (128, 256, 510)
WEIGHTS = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75)
ALONE_ABOVE = (32, 48, 64, 96)  # LateConfig.alone_above candidates (tokens)
OWNS = {"unit": "the unit alone", "titled": "title + unit (late_chunk_vectors' default own text)"}


def is_dev(unit_id: str) -> bool:
    """Dev half: questions about articles xq00, xq04, xq08, ...; the test half is xq02, xq06, ..."""
    return int(unit_id[2:4]) % 4 == 0


class XquadSet:
    """One XQuAD-en set at section level: its articles cut at their given sections, the test queries (also
    pooled by token mean for a [CLS] model: `q_mean`, else None), the dev/test/all qrels, and the units' own
    vectors ("unit": alone; "titled": title + unit), all encoded through `cached`."""

    def __init__(self, name: str, enc) -> None:  # noqa: ANN001
        from slimvec.ingest.tables import FieldMap, iter_table
        from slimvec.sections import section_chunks

        ds = load_dataset(DATA / name)
        self.docs = [d for _, d in iter_table(DATA / name / "articles.jsonl", FieldMap())]
        assert all(isinstance(d, Document) and d.sections for d in self.docs), "articles.jsonl must load with sections"
        self.chunks = [section_chunks(d, enc, ChunkConfig(enc.max_tokens, 32)) for d in self.docs]
        self.flat, _ = _flat(self.chunks)
        self.section_ids = sorted({c.section_id for c in self.flat})
        index = {sid: i for i, sid in enumerate(self.section_ids)}
        self.owner = np.array([index[c.section_id] for c in self.flat])
        queries, qrels = ds.queries("test"), ds.qrels("test")
        self.qids = qids = list(queries)
        self.q = cached(f"{name}-queries", lambda: enc.encode_queries([queries[i] for i in qids]))
        self.q_mean = None
        if getattr(enc, "pooling", "mean") == "cls":  # a [CLS] model: also score with queries pooled as late chunks
            twin = type(enc)(enc.path, f"{enc.name}-mean", pooling="mean")
            self.q_mean = cached(f"{name}-queries-meanpool", lambda: twin.encode_queries([queries[i] for i in qids]))
        self.splits = {
            "dev": {k: v for k, v in qrels.items() if is_dev(next(iter(v)))},
            "test": {k: v for k, v in qrels.items() if not is_dev(next(iter(v)))},
            "all": qrels,
        }
        self.own = {
            "unit": cached(f"{name}-alone", lambda: enc.encode_documents([c.text for c in self.flat])),
            "titled": cached(f"{name}-titled", lambda: enc.encode_documents(
                [chunk_text(d.title, c.text) for d, cs in zip(self.docs, self.chunks) for c in cs])),
        }

    def late(self, name: str, enc, window: int) -> np.ndarray:  # noqa: ANN001
        """Pure late vectors (w=1) of every unit over the article, macro windows of `window`, overlap half."""
        cfg = LateConfig(window=window, overlap=window // 2, late_weight=1.0)
        return cached(f"{name}-late{window}", lambda: late_chunk_vectors(self.docs, self.chunks, enc, cfg))


def xquad(enc) -> None:  # noqa: ANN001
    from slimvec.contextual import contextual_text

    results: dict[str, dict[tuple, dict[str, dict[str, float]]]] = {}
    for name in ("xquad-en-sentences", "xquad-en-articles"):
        x = XquadSet(name, enc)
        docs, chunks, owner, section_ids = x.docs, x.chunks, x.owner, x.section_ids
        qids, q, q_mean, splits, own = x.qids, x.q, x.q_mean, x.splits, x.own
        variants: dict[tuple, np.ndarray] = {
            ("alone",): own["unit"],
            ("prefix",): cached(f"{name}-prefix", lambda: enc.encode_documents(
                [contextual_text(d, c) for d, cs in zip(docs, chunks) for c in cs])),
        }
        counts = chunk_token_counts(docs, chunks, enc)
        for w in WINDOWS:
            late = x.late(name, enc, w)
            variants[("late", w)] = late
            for o, vecs in own.items():
                for lw in WEIGHTS:
                    variants[("mix", w, lw, o)] = mix(vecs, late, lw)
            for lw in WEIGHTS:  # explored, not a product setting: long units alone, short ones the titled mix
                for t in ALONE_ABOVE:
                    variants[("split", w, lw, t)] = np.where((counts > t)[:, None], own["unit"],
                                                             mix(own["titled"], late, lw))
        res = results[name] = {}
        for key, vecs in variants.items():
            run = best_chunk_run(q, qids, vecs, owner, section_ids)
            res[key] = {split: evaluate(sq, run, METRICS) for split, sq in splits.items()}
            if q_mean is not None:  # the same vectors scored by token-mean queries, key marked "meanq"
                run = best_chunk_run(q_mean, qids, vecs, owner, section_ids)
                res[(*key, "meanq")] = {split: evaluate(sq, run, METRICS) for split, sq in splits.items()}

    sent, art = results["xquad-en-sentences"], results["xquad-en-articles"]
    # The default: best dev nDCG@10 on sentences among mixes that do not lose on paragraphs' dev half. Split
    # mixes are reported only: a collection cannot make them (no profile field), so they are no candidates.
    floor = art[("alone",)]["dev"]["ndcg@10"]
    mixes = [k for k in sent if k[0] == "mix" and k[-1] != "meanq" and art[k]["dev"]["ndcg@10"] >= floor]
    chosen = max(mixes, key=lambda k: sent[k]["dev"]["ndcg@10"])
    print(f"\n### (ii) XQuAD-en, section-level hits ({MODEL}, exact search, 612 queries)\n")
    print(f"default chosen on the dev half (articles xq00, xq04, ...): window {chosen[1]}, overlap {chosen[1] // 2}, "
          f"late_weight {chosen[2]}, own vector = {OWNS[chosen[3]]}\n")

    def label(k: tuple) -> str:
        if k[0] == "alone":
            return "(a) units alone"
        if k[0] == "prefix":
            return "(b) contextual prefix (article title)"
        if k[0] == "late":
            return f"(c) late, window {k[1]} (overlap {k[1] // 2})"
        if k[0] == "split":
            return f"(e) split mix w={k[2]}, window {k[1]}: units over {k[3]} tokens alone, others titled mix"
        return f"(d) mix w={k[2]}, window {k[1]}, own = {k[3]}" + (" **chosen**" if k == chosen else "")

    def shown_label(k: tuple) -> str:
        return label(k[:-1]) + ", token-mean queries" if k[-1] == "meanq" else label(k)

    base_s, base_a = sent[("alone",)]["all"]["ndcg@10"], art[("alone",)]["all"]["ndcg@10"]
    shown = [("alone",), ("prefix",), *[("late", w) for w in WINDOWS], chosen,
             *[k for k in sent if k[0] == "mix" and k[-1] != "meanq" and k[2] in (0.25, 0.5) and k != chosen],
             *[k for k in sent if k[0] == "split" and k[-1] != "meanq" and k[1] == chosen[1] and k[2] == chosen[2]
               and k != chosen]]
    if ("alone", "meanq") in sent:  # [CLS] model: the same rows scored by token-mean queries
        shown += [(*k, "meanq") for k in shown]
        pure = [k for k in sent if k[0] == "mix" and k[-1] == "meanq" and k[2] >= 0.75]
        shown += [k for k in pure if k not in shown]
    rows = []
    for k in shown:
        s_, a_ = sent[k], art[k]
        rows.append([shown_label(k), f"{s_['all']['ndcg@10']:.4f}", f"{100 * (s_['all']['ndcg@10'] - base_s):+.2f}",
                     f"{s_['all']['recall@10']:.4f}", f"{s_['dev']['ndcg@10']:.4f}", f"{s_['test']['ndcg@10']:.4f}",
                     f"{a_['all']['ndcg@10']:.4f}", f"{100 * (a_['all']['ndcg@10'] - base_a):+.2f}",
                     f"{a_['all']['recall@10']:.4f}", f"{a_['dev']['ndcg@10']:.4f}", f"{a_['test']['ndcg@10']:.4f}"])
    print_table(["variant", "sent. nDCG@10", "vs (a) pts", "sent. R@10", "sent. dev", "sent. test",
                 "para. nDCG@10", "vs (a) pts", "para. R@10", "para. dev", "para. test"], rows)
    for o in OWNS:
        print(f"\nEvery mix, own = {OWNS[o]}: nDCG@10 on all queries, sentences / paragraphs\n")
        print_table(["window", *[f"w={lw}" for lw in WEIGHTS]],
                    [[str(w), *[f"{sent[('mix', w, lw, o)]['all']['ndcg@10']:.4f} / "
                                f"{art[('mix', w, lw, o)]['all']['ndcg@10']:.4f}" for lw in WEIGHTS]]
                     for w in WINDOWS])
    print("\nEvery split mix (own = title + unit, units over t tokens alone): nDCG@10 on all queries, "
          "sentences / paragraphs\n")
    print_table(["window", "t", *[f"w={lw}" for lw in WEIGHTS]],
                [[str(w), str(t), *[f"{sent[('split', w, lw, t)]['all']['ndcg@10']:.4f} / "
                                    f"{art[('split', w, lw, t)]['all']['ndcg@10']:.4f}" for lw in WEIGHTS]]
                 for w in WINDOWS for t in ALONE_ABOVE])


def paired(enc) -> None:  # noqa: ANN001
    """Is the default for given sections better or worse than units alone per query, beyond chance?

    On both XQuAD-en sets (all 612 test queries): units alone (a), the contextual prefix (b) and the mix a
    collection makes for given sections (d: `section_default(MODEL)`, own vector title + unit), scored with the
    queries the collection would pool (`late.query_pooling` with the weight unset; a profile that sets the
    weight below 0.5 keeps the model's own pooling: shown too when it differs). Each difference of per-query
    nDCG@10: mean, paired bootstrap 95% interval, two-sided randomization p (10,000 resamples each), and how many
    queries gained / lost / did not move. Reads the xquad part's cached encodings (computes what is missing).
    """
    from _common import paired_bootstrap, randomization_p

    from slimvec.contextual import contextual_text
    from slimvec.evaluation.metrics import evaluate_per_query
    from slimvec.late import query_pooling, section_default

    cfg = section_default(MODEL)
    pooling = getattr(enc, "pooling", "mean")
    rows = []
    for name in ("xquad-en-sentences", "xquad-en-articles"):
        x = XquadSet(name, enc)
        qrels = x.splits["all"]

        def per_query(queries: np.ndarray, vecs: np.ndarray) -> np.ndarray:
            run = best_chunk_run(queries, x.qids, vecs, x.owner, x.section_ids)
            got = evaluate_per_query(qrels, run, ["ndcg@10"])["ndcg@10"]
            return np.asarray([got[q] for q in sorted(qrels)])

        assert cfg.overlap == cfg.window // 2, "the cached late vectors use overlap = window / 2"
        d = mix(x.own["titled"], x.late(name, enc, cfg.window), cfg.late_weight)
        prefix = cached(f"{name}-prefix", lambda: enc.encode_documents(
            [contextual_text(doc, c) for doc, cs in zip(x.docs, x.chunks) for c in cs]))
        own_q = x.q
        unset_q = x.q_mean if query_pooling("late", None, pooling) == "mean" else own_q
        a, b = per_query(own_q, x.own["unit"]), per_query(own_q, prefix)
        label_d = f"(d) mix w={cfg.late_weight}, window {cfg.window}"
        pairs = [("(b) prefix", "(a) alone", a, b), (f"{label_d}, weight unset (default)", "(a) alone", a,
                                                     per_query(unset_q, d))]
        if unset_q is not own_q:
            pairs.append((f"{label_d}, weight set (model's own query pooling)", "(a) alone", a, per_query(own_q, d)))
        pairs.append((f"{label_d}, weight unset (default)", "(b) prefix", b, pairs[1][3]))
        for what, against, before, after in pairs:
            gain, lo, hi = paired_bootstrap(before, after)
            diff = after - before
            rows.append([name, what, against, f"{after.mean():.4f}", f"{100 * gain:+.2f}", f"[{100 * lo:+.2f}, {100 * hi:+.2f}]",
                         f"{randomization_p(before, after):.3f}",
                         f"{(diff > 1e-9).sum()} / {(diff < -1e-9).sum()} / {(abs(diff) <= 1e-9).sum()}"])
    print(f"\n### (ii c) XQuAD-en: the default for given sections against units alone, per query ({MODEL}, "
          f"all {len(a)} test queries)\n")
    print_table(["set", "variant", "against", "nDCG@10", "difference (points)", "95% CI (paired bootstrap)",
                 "p (randomization)", "queries gained / lost / same"], rows)


# ---- (iii) ingest speed ------------------------------------------------------------------------------------


# Modes of `speed` (LATE_SPEED_MODES, comma-separated keys; default all): key -> (label, LateConfig or None = tokens).
SPEED_MODES = {
    "tokens": ("tokens", None),
    "late510": ("late, window 510 (model limit), w=1: one pass", LateConfig(window=0, late_weight=1.0)),
    "late256": ("late, window 256/overlap 128, w=1", LateConfig(late_weight=1.0)),
    "sections": ("late default for sections (window 256, w=0.3): two passes", LateConfig()),
    "late510mix": ("late, window 510, w=0.5 (any w < 1): two passes", LateConfig(window=0, late_weight=0.5)),
}


def speed(enc, n_docs: int = 100, repeats: int = 2) -> None:  # noqa: ANN001
    """docs/s of chunk + encode per mode on the same boundaries, best of `repeats` (interleaved), with the
    process CPU seconds of that best run (ONNX Runtime and torch threads included) and the load average."""
    docs = [Document(r["_id"], r["text"], r.get("title") or "")
            for r in read_jsonl(DATA / "nfcorpus" / "corpus.jsonl", n_docs)]
    cfg = ChunkConfig()  # the collection's default chunking: 254 tokens, 32 overlap

    def chunked() -> list[list[Chunk]]:
        return [chunks_like_collection(d, enc, cfg.max_tokens, cfg.overlap) for d in docs]

    def run(late_cfg: LateConfig | None) -> None:
        chunks = chunked()
        if late_cfg is None:
            enc.encode_documents([chunk_text(d.title, c.text) for d, cs in zip(docs, chunks) for c in cs])
        else:
            late_chunk_vectors(docs, chunks, enc, late_cfg)

    keys = os.environ.get("LATE_SPEED_MODES", ",".join(SPEED_MODES)).split(",")
    if keys[0] != "tokens":
        raise SystemExit(f"LATE_SPEED_MODES must start with 'tokens' (the baseline) and name modes of {list(SPEED_MODES)}")
    best = {k: (float("inf"), 0.0) for k in keys}
    run(None)  # warm-up: model load, first-call allocations
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):  # interleaved, best of `repeats`, since the cores are shared
        for k in keys:
            t, c = time.perf_counter(), time.process_time()
            run(SPEED_MODES[k][1])
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            if wall < best[k][0]:
                best[k] = (wall, cpu)
        loads.append(os.getloadavg()[0])
    n_chunks = sum(len(c) for c in chunked())
    base_wall, base_cpu = best["tokens"]
    rows = [[SPEED_MODES[k][0], f"{len(docs) / w:.2f}", f"{base_wall / w:.2f}x", f"{c:.1f}", f"{base_cpu / c:.2f}x"]
            for k, (w, c) in best.items()]
    print(f"\n### (iii) ingest speed ({MODEL}): {len(docs)} NFCorpus documents, {n_chunks} chunks of <= 254 tokens "
          f"(overlap 32), chunk + encode, best of {repeats}; 1-min load average {min(loads):.1f}-{max(loads):.1f}\n")
    print_table(["mode", "docs/s (wall)", "vs tokens (wall)", "CPU s", "vs tokens (CPU)"], rows)


def work(enc, n_docs: int = 100) -> None:  # noqa: ANN001
    """Tokens through the encoder per mode on the `speed` documents: the machine-independent side of speed."""
    from slimvec.late import macro_windows

    docs = [Document(r["_id"], r["text"], r.get("title") or "")
            for r in read_jsonl(DATA / "nfcorpus" / "corpus.jsonl", n_docs)]
    cfg = ChunkConfig()
    naive = 0
    for d in docs:
        for c in chunks_like_collection(d, enc, cfg.max_tokens, cfg.overlap):
            naive += min(len(enc.token_spans(chunk_text(d.title, c.text))), enc.max_tokens) + 2
    rows = [["tokens (each chunk alone, title repeated)", naive, "1.00x"]]
    for label, window, overlap in (("late, window 510", 510, 255), ("late, window 256/overlap 128", 256, 128)):
        n = sum(e - s + 2 for d in docs
                for s, e in macro_windows(len(enc.token_spans(chunk_text(d.title, d.text))), window, overlap))
        rows.append([label, n, f"{n / naive:.2f}x"])
    print(f"\n### (iii b) tokens through the encoder, same {len(docs)} documents ([CLS]/[SEP] counted)\n")
    print_table(["mode", "tokens encoded", "vs tokens"], rows)


def cost(enc, total: int = 8160, repeats: int = 3) -> None:  # noqa: ANN001
    """Encoder CPU seconds per 1,000 word pieces by sequence length, the same `total` pieces at every length:
    why one late pass over a whole window can cost more than chunks of the same tokens (attention grows with the
    square of the length). Real NFCorpus word pieces; best of `repeats`; `token_embeddings` as late chunking calls it."""
    ids: list[int] = []
    for r in read_jsonl(DATA / "nfcorpus" / "corpus.jsonl", 200):
        ids += enc.tokenize(r["text"])[0]
    lengths = [n for n in (64, 128, 254, 510) if n <= enc.max_positions]
    enc.token_embeddings([ids[:64]])  # warm-up
    rows = []
    for n in lengths:
        seqs = [ids[i : i + n] for i in range(0, total - total % n, n)]
        best_cpu, best_wall = float("inf"), float("inf")
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            enc.token_embeddings(seqs)
            best_cpu, best_wall = min(best_cpu, time.process_time() - c), min(best_wall, time.perf_counter() - t)
        rows.append([n, len(seqs), f"{1000 * best_cpu / (n * len(seqs)):.3f}", f"{1000 * best_wall / (n * len(seqs)):.3f}"])
    base = float(rows[lengths.index(254)][2]) if 254 in lengths else float(rows[-1][2])
    for r in rows:
        r.append(f"{float(r[2]) / base:.2f}x")
    print(f"\n### (iii c) encoder cost by sequence length ({MODEL}), about {total} word pieces per length, best of "
          f"{repeats}; 1-min load average {os.getloadavg()[0]:.1f}\n")
    print_table(["sequence length", "sequences", "CPU s per 1k pieces", "wall s per 1k pieces", "CPU vs 254"], rows)


# ---- (iv) ingest through a Collection: docs/s and peak RSS ---------------------------------------------------

INGEST_RUNS = (  # (label, documents, profile fields); every run cuts the same boundaries (254-token chunks)
    ("tokens", 64, {"chunk_mode": "tokens"}),
    ("late, window 510 (model limit), w=1: one pass", 64, {"chunk_mode": "late", "late_window": 0,
                                                            "late_weight": 1.0}),
    # Only chunk_mode set: documents without sections get the default for token chunks (the one-pass setting
    # above); the second size shows whether peak RSS grows with the corpus.
    ("late, profile sets only chunk_mode (default for token chunks)", 64, {"chunk_mode": "late"}),
    ("tokens", 256, {"chunk_mode": "tokens"}),
    ("late, profile sets only chunk_mode (default for token chunks)", 256, {"chunk_mode": "late"}),
)
INGEST_BATCH = 16  # documents per commit (Collection._BATCH_DOCS, 512 by default) so both sizes span batches


def ingest_one(n_docs: int, fields: str) -> None:
    """One ingest in this (fresh) process: prints "docs/s peak_rss_mib" for `n_docs` NFCorpus documents."""
    import json
    import tempfile

    from _common import peak_rss_mb

    import slimvec.collection as collection
    from slimvec.profiles import profile_from_dict

    collection._BATCH_DOCS = INGEST_BATCH
    docs = (Document(r["_id"], r["text"], r.get("title") or "")
            for r in read_jsonl(DATA / "nfcorpus" / "corpus.jsonl", n_docs))
    prof = profile_from_dict({"name": "ingest", **json.loads(fields)})
    enc = load_encoder(MODEL)
    enc.encode_documents(["warm up"])  # model load and first-call allocations are not ingest
    with tempfile.TemporaryDirectory(dir=os.environ.get("LATE_TMP", "/tmp")) as tmp:
        with collection.Collection.create(Path(tmp) / "c", profile=prof, encoder=enc) as col:
            t = time.perf_counter()
            n = col.add(iter(list(docs)))
            seconds = time.perf_counter() - t
    print(f"{n / seconds:.3f} {peak_rss_mb():.0f}")


def ingest(enc) -> None:  # noqa: ANN001
    """Each run in its own process, so peak RSS is that run's alone."""
    import json
    import subprocess

    rows = []
    for label, n, fields in INGEST_RUNS:
        out = subprocess.run([sys.executable, __file__, "_ingest_one", str(n), json.dumps(fields)],
                             capture_output=True, text=True, check=True).stdout.split()
        rate, rss = float(out[-2]), float(out[-1])
        rows.append([label, n, rate, rss])
        print(f"row: {label} | {n} docs | {rate:.2f} docs/s | peak RSS {rss:.0f} MiB", flush=True)
    base = {n: r for lbl, n, r, _ in rows if lbl == "tokens"}  # each late run against tokens on the same documents
    print(f"\n### (iv) ingest through a Collection: NFCorpus documents, the default chunking (model limit), commits of "
          f"{INGEST_BATCH} documents, one process per run\n")
    print_table(["mode", "documents", "docs/s", "vs tokens (same documents)", "peak RSS MiB"],
                [[lbl, n, f"{r:.2f}", f"{r / base[n]:.2f}x", f"{m:.0f}"] for lbl, n, r, m in rows])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_ingest_one":
        ingest_one(int(argv[1]), argv[2])
        return
    parts = argv or ["beir", "xquad", "speed"]
    enc = load_encoder(MODEL)
    print(f"machine: {machine()}\nmodel: {MODEL}\ncommand: PYTHONPATH=src python benchmarks/late_chunking.py {' '.join(parts)}")
    for part in parts:
        parts_by_name = {"beir": beir, "weights": weights, "xquad": xquad, "speed": speed, "work": work, "cost": cost,
                         "ingest": ingest, "paired": paired}
        parts_by_name[part](enc)


if __name__ == "__main__":
    main(sys.argv[1:])
