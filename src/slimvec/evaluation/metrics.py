"""Retrieval metrics (computed by ranx, with trec_eval/pytrec_eval semantics) and TREC run files.

Conventions, chosen so numbers are comparable with BEIR papers (BEIR evaluates with pytrec_eval):

- Averages are over every query in `qrels`. A query absent from the run (or with an empty result list)
  scores 0, as `trec_eval -c` does. BEIR divides nDCG/MAP/Recall by the number of queries pytrec_eval
  returned (those present in the run) but MRR by len(qrels); the two agree whenever the run answers
  every query, which is how the harness always runs. Run queries not in qrels are ignored.
- Relevant means grade >= 1. nDCG uses graded gains with the linear (Järvelin) formula `rel / log2(i+1)`,
  which is what trec_eval's `ndcg_cut` computes, not the exponential `2^rel - 1` gain.
- Ties in score are broken as trec_eval does: by doc id, descending (strcmp order). ranx's own sort is
  unstable on ties, so scores are replaced by their trec_eval rank before ranx sees them.
- `mrr@k` stops at rank k (as ranx and BEIR's MRR@k do); trec_eval's `recip_rank` has no cut-off, so it
  equals ours only on a run truncated to k.
- `map@k` is trec_eval's `map_cut.k`: precision summed over relevant docs in the top k, divided by
  the total number of relevant docs (not by min(k, R)).
- Self-hits (doc id == query id) are dropped before ranking by default, as BEIR's
  `EvaluateRetrieval.evaluate(ignore_identical_ids=True)` does; it matters for ArguAna, Quora and
  CQADupStack, where a query is also a corpus document.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from slimvec.errors import ConfigError, IngestError
from slimvec.ids import check_id, trec_escape, trec_unescape

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map@100")

# Our metric names -> ranx's. All take an optional "@k"; no k means the whole ranking.
_RANX_NAMES = {"ndcg": "ndcg", "recall": "recall", "mrr": "mrr", "map": "map", "precision": "precision"}
_METRIC_RE = re.compile(r"^([a-z]+)(?:@(\d+))?$")
_WS = re.compile(r"\s")


def _parse_metric(metric: str) -> tuple[str, int]:
    m = _METRIC_RE.match(metric.strip().lower())
    if not m or m.group(1) not in _RANX_NAMES:
        known = ", ".join(f"{n}@k" for n in _RANX_NAMES)
        raise ConfigError(f"unknown metric {metric!r}; known: {known}")
    k = int(m.group(2)) if m.group(2) else 0
    if m.group(2) and k == 0:
        raise ConfigError(f"metric {metric!r}: cut-off must be at least 1")
    return _RANX_NAMES[m.group(1)], k


def trec_order(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) pairs in trec_eval order: score descending, ties by doc id descending."""
    for doc_id, score in docs.items():
        if score != score:  # NaN sorts inconsistently and would make the ranking arbitrary
            raise ValueError(f"score of {doc_id!r} is NaN")
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def _prepared(qrels: Qrels, run: Run, depth: int, drop_self_hits: bool) -> dict[str, list[str]]:
    """Ranked doc ids per judged query, self-hits dropped, cut at `depth` (0 = no cut)."""
    ranked: dict[str, list[str]] = {}
    for qid in qrels:
        docs = run.get(qid) or {}
        if drop_self_hits and qid in docs:
            docs = {d: s for d, s in docs.items() if d != qid}
        order = [doc_id for doc_id, _ in trec_order(docs)]
        ranked[qid] = order[:depth] if depth else order
    return ranked


def evaluate_per_query(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str] = DEFAULT_METRICS,
    drop_self_hits: bool = True,
) -> dict[str, dict[str, float]]:
    """Per-query metric values, {metric: {query id: value}}, for every query in `qrels`."""
    import numpy as np

    from slimvec.extras import require

    ranx = require("ranx")

    metrics = check_metrics(metrics)
    parsed = [_parse_metric(m) for m in metrics]
    # Metrics only look at the top max-k docs; cutting the run there keeps ranx's arrays small.
    depth = 0 if any(k == 0 for _, k in parsed) else max((k for _, k in parsed), default=0)
    ranked = _prepared(qrels, run, depth, drop_self_hits)

    out: dict[str, dict[str, float]] = {m: {qid: 0.0 for qid in qrels} for m in metrics}
    # Queries without any judgement would break ranx's array building; they score 0 anyway.
    judged = sorted(q for q in qrels if len(qrels[q]) > 0)
    if not judged or not any(ranked[q] for q in judged):
        return out

    # ranx compiles its numba helpers for the width of the longest doc id (a numpy '<Un' array), so a dataset
    # with a new width compiled them again (~27 s each on the 2-core box, measured). Doc ids are renamed to one fixed width, so
    # every call reuses the kernels compiled once (`warm_up`); ranx only matches run ids against qrels ids.
    codes: dict[str, str] = {}

    def code(doc_id: str) -> str:
        return codes.setdefault(doc_id, f"{len(codes):012d}")

    ranx_qrels = ranx.Qrels({q: {code(d): int(g) for d, g in qrels[q].items()} for q in judged})
    # Scores become rank-derived and strictly decreasing, so ranx's order is exactly trec_eval's.
    ranx_run = ranx.Run({q: {code(d): float(len(ranked[q]) - i) for i, d in enumerate(ranked[q])} for q in judged})
    ranx_metrics = [f"{name}@{k}" if k else name for name, k in parsed]
    with warnings.catch_warnings():
        # ranx casts numba's uint64 string hashes to int64 when it first compiles; harmless for ids.
        warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
        ranx.evaluate(ranx_qrels, ranx_run, ranx_metrics, return_mean=False, save_results_in_run=True)
    for ours, theirs in zip(metrics, ranx_metrics):
        for qid, value in ranx_run.scores[theirs].items():
            out[ours][qid] = float(np.float64(value))
    return out


def evaluate(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str] = DEFAULT_METRICS,
    drop_self_hits: bool = True,
) -> dict[str, float]:
    """Mean of each metric over the queries in `qrels` (fractions in [0, 1]; missing queries count 0)."""
    if not qrels:
        raise ValueError("qrels is empty: nothing to evaluate")
    per_query = evaluate_per_query(qrels, run, metrics, drop_self_hits)
    return {m: math.fsum(values.values()) / len(qrels) for m, values in per_query.items()}


def warm_up() -> None:
    """Compile ranx's numba kernels for every metric family here, once (numba caches them beside ranx's files).

    Why: the first `slimvec eval` on a fresh install otherwise spends minutes compiling them (measured: the
    metric tests took 174 s cold, 12 s after this, on the 2-core box); `make install` calls this.
    """
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    run = {"q1": {"a": 0.9, "x": 0.5, "b": 0.1}, "q2": {"y": 0.8, "c": 0.4}}
    evaluate(qrels, run, metrics=[f"{name}@10" for name in _RANX_NAMES] + list(_RANX_NAMES))


def _check_token(value: str, what: str) -> None:
    if not value or _WS.search(value):
        raise ValueError(f"{what} {value!r} cannot go in a TREC run file (empty or contains whitespace)")


def write_trec_run(run: Run, path: str | os.PathLike[str], tag: str) -> Path:
    """Write `run` as a TREC run file (`qid Q0 docid rank score tag`), ranked in trec_eval order.

    Query and doc ids go through `slimvec.ids.trec_escape`: whitespace and `%` are percent-encoded
    (`doc 1` -> `doc%201`), so any valid id fits in its field and `read_trec_run` gives it back; ids
    without them are written unchanged. ValueError for an invalid id (`slimvec.ids`) or a tag holding
    whitespace.
    """
    _check_token(tag, "tag")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for qid, docs in run.items():
        qfield = trec_escape(check_id(qid, "query id"))
        for rank, (doc_id, score) in enumerate(trec_order(docs), start=1):
            dfield = trec_escape(check_id(doc_id, "doc id"))
            # repr() of a float round-trips exactly, so reading the file back gives the same run.
            lines.append(f"{qfield} Q0 {dfield} {rank} {float(score)!r} {tag}\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a run file
    return path


def read_trec_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Read a TREC run file into {query id: {doc id: score}} (ids un-escaped, see `write_trec_run`);
    malformed lines raise IngestError."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: run file not found")
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise IngestError(
                    f"{path}:{lineno}: expected 6 fields (qid Q0 docid rank score tag), got {len(fields)}"
                )
            qid, _, doc_id, _, score_text, _ = fields
            qid, doc_id = trec_unescape(qid), trec_unescape(doc_id)
            try:
                score = float(score_text)
            except ValueError:
                raise IngestError(f"{path}:{lineno}: field 'score' is not a number: {score_text!r}") from None
            docs = run.setdefault(qid, {})
            if doc_id in docs:
                raise IngestError(f"{path}:{lineno}: doc {doc_id!r} appears twice for query {qid!r}")
            docs[doc_id] = score
    return run


def top_k(run: Run, k: int) -> dict[str, dict[str, float]]:
    """The first `k` docs per query in trec_eval order (to compare with cut-off-free measures)."""
    return {qid: dict(trec_order(docs)[:k]) for qid, docs in run.items()}


def check_metrics(metrics: Iterable[str]) -> list[str]:
    """Validate metric names before a long encode (ConfigError on unknown ones); returns them."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)  # one name, never its characters
    for m in metrics:
        _parse_metric(m)
    return metrics
