"""`slimvec eval` and `slimvec sweep`: build a collection for a profile on a BEIR dataset, run every query, measure.

Quality comes from the metrics module (ranx); cost from the collection's own accounting and wall clocks.
Corpus vectors go through the embedding cache, so ten storage profiles of one model encode the corpus once.
Query latency: encode timed with the uncached model on a sample of single queries, search timed per query.

Units: by default a ranked id is a document id (BEIR). With `unit="section"` the collection is searched for
section-level hits (`SearchOptions.unit`) and a ranked id is the hit's given section id (its document id when
the chunk has none), to be judged by qrels keyed by section ids, e.g. xquad-en-sentences' qrels (sentence ids)
with its `articles.jsonl` (articles whose records carry those sentences as sections) given as `corpus`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.atomic import check_place
from slimvec.collection import Collection
from slimvec.encoders.cache import CachedEncoder
from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
from slimvec.errors import ConfigError, IngestError
from slimvec.evaluation.datasets import BeirDataset, load_dataset
from slimvec.evaluation.metrics import evaluate, write_trec_run
from slimvec.evaluation.preflight import check_eval_inputs, corpus_source, needs_build
from slimvec.ids import trec_escape
from slimvec.ingest import read_sources
from slimvec.profiles import Profile
from slimvec.search.plan import FUSED_MODES, model_fusion_weights
from slimvec.store.store import MANIFEST

DEPTH = 100  # documents retrieved per query: enough for Recall@100 and MAP@100
LATENCY_SAMPLE = 50  # queries timed one by one through the uncached model
UNITS = ("document", "section")


def collection_dir(out: Path, dataset: BeirDataset, profile: Profile, corpus: Path | None = None) -> Path:
    """Where the collection for (dataset, profile) lives under `out`; the name changes when the profile does,
    and when another `corpus` than the dataset's corpus.jsonl is indexed."""
    key = profile.model_dump_json()
    if corpus is not None and corpus.resolve() != dataset.corpus_path:
        key += "\x00" + str(corpus.resolve())
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return out / "collections" / f"{dataset.name}-{profile.name}-{digest}"


def _corpus(dataset_dir: str | Path, corpus: str | Path | None) -> Path | None:
    """The corpus file or folder to index instead of corpus.jsonl, checked; None for the dataset's own."""
    if corpus is None:
        return None
    path = Path(corpus).expanduser()
    if not path.exists():
        raise IngestError(f"{path}: corpus not found (--corpus names a JSONL file or folder to index)")
    return path.resolve()


def _check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ConfigError(f"unit {unit!r}: choose one of {', '.join(UNITS)}")
    return unit


def build(dataset: BeirDataset, profile: Profile, path: Path, cache_dir: Path | None, progress: bool,
          corpus: Path | None = None) -> dict[str, Any]:
    """Build (or reuse) the collection from `corpus` (default: the dataset's corpus.jsonl); returns build facts
    (seconds, documents encoded afresh)."""
    facts_path = path / "build.json"
    if not _must_build(path, profile):
        return {**json.loads(facts_path.read_text()), "reused": True}
    encoder = CachedEncoder(load_encoder(profile.model or DEFAULT_MODEL), cache_dir)
    if path.exists():  # a build that did not finish: start again
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Collection.create(path, profile=profile, encoder=encoder) as col:
        n = col.add(read_sources([corpus_source(dataset, corpus)], strict=True), progress=progress)
        col.search_many(["warm up"], k=1, mode=profile.mode)  # index structures are built on first sync
    seconds = time.perf_counter() - t0
    facts = {"build_s": seconds, "documents": n, "encoded_texts": encoder.misses, "cached_texts": encoder.hits}
    facts_path.write_text(json.dumps(facts))
    return {**facts, "reused": False}


def _must_build(path: Path, profile: Profile) -> bool:
    """Whether `build` builds the collection at `path` (again): the preflight asks this too, so the corpus is
    read and checked before a rebuild deletes the cached collection, not met bad in the middle of it."""
    return needs_build(path) or _lacks_model_weight(path, profile)


def _lacks_model_weight(path: Path, profile: Profile) -> bool:
    """Whether the collection at `path` was built before slimvec recorded the fusion weight its model declares
    (a static model's, `encoders.static`) while the evaluation's mode would fuse with it: its searches would run
    at equal weights, so it is built again. Another mode never uses the weight, and its corpus is not re-encoded."""
    fused = FUSED_MODES.get(profile.mode, ())
    if profile.fusion_weights is not None or model_fusion_weights(profile.fusion, fused, 1.0) is None:
        # the profile's own weights, or no softmax fusion of dense + BM25: no model weight is used (and the model
        # is not loaded to ask)
        return False
    if getattr(load_encoder(profile.model or DEFAULT_MODEL), "fusion_weight", None) is None:
        return False
    manifest = json.loads((path / MANIFEST).read_text())
    return "model_fusion_weight" not in manifest and not manifest.get("fusion_weights_from_model")


def run_eval(
    dataset_dir: str | Path,
    profile: Profile,
    split: str = "test",
    out: str | Path = "slimvec-eval",
    cache_dir: str | Path | None = None,
    max_queries: int | None = None,
    progress: bool = False,
    query_ids: set[str] | None = None,
    tag: str = "",
    check: bool = True,
    unit: str = "document",
    corpus: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate one profile on one BEIR dataset split (optionally only `query_ids`); writes a TREC run file.

    unit: "document" (ranked ids are document ids) or "section" (section-level hits, ranked ids are section
    ids; see the module docstring). corpus: a JSONL file or folder indexed instead of the dataset's corpus.jsonl.
    Inputs are checked first (`preflight.check_eval_inputs`, skipped with `check=False` when the caller
    did it): a bad dataset fails in one line before any encoding. Raises ConfigError for an unknown unit,
    IngestError for a missing corpus.
    """
    _check_unit(unit)
    check_place(Path(out), "evaluation output folder", folder=True)
    corpus_path = _corpus(dataset_dir, corpus)
    if check:
        ds0 = load_dataset(dataset_dir)
        check_eval_inputs(dataset_dir, [profile], split, max_queries,
                          corpus=_must_build(collection_dir(Path(out), ds0, profile, corpus_path), profile),
                          corpus_path=corpus_path, unit=unit)
    ds = load_dataset(dataset_dir)
    qrels = ds.qrels(split)
    queries = ds.queries(split)
    if query_ids is not None:
        queries = {q: t for q, t in queries.items() if q in query_ids}
        qrels = {q: qrels[q] for q in queries}
    if max_queries:
        queries = dict(list(queries.items())[:max_queries])
        qrels = {q: qrels[q] for q in queries}
    if not queries:  # before the corpus is encoded
        raise ConfigError(f"{ds.name}: no {split} queries left to evaluate (query_ids selects none of the "
                          f"{len(ds.qrels(split))} judged)")
    out = Path(out)
    path = collection_dir(out, ds, profile, corpus_path)
    facts = build(ds, profile, path, Path(cache_dir) if cache_dir else None, progress, corpus_path)
    run: dict[str, dict[str, float]] = {}
    encode_s: list[float] = []
    search_s: list[float] = []
    with Collection.open(path) as col:
        # MUVERA collections hold FDEs as their dense vectors: their queries are encoded by the collection
        dense = "dense" in col.manifest["retrievers"] and not profile.muvera
        texts = list(queries.values())
        vecs = None
        if dense:
            model = col.encoder  # as the collection encodes queries: its prompts and query pooling
            # Encode latency is the model's, whatever the profile: time single queries on a sample, then take
            # every query vector from the cache in one batch.
            for text in texts[:LATENCY_SAMPLE]:
                t0 = time.perf_counter()
                model.encode_queries([text])
                encode_s.append(time.perf_counter() - t0)
            vecs = CachedEncoder(model, cache_dir).encode_queries(texts)
        for i, (qid, text) in enumerate(queries.items()):
            t1 = time.perf_counter()
            hits = col.search_many([text], k=DEPTH, mode=profile.mode, unit=unit, encoded=True,  # of the texts
                                   vectors=None if vecs is None else vecs[i : i + 1])[0]
            search_s.append(time.perf_counter() - t1)
            run[qid] = _ranked(hits, unit)
        info = col.info()
    metrics = evaluate(qrels, run)
    level = "-section" if unit == "section" else ""  # a section run never overwrites the document run
    run_file = write_trec_run(run, out / "runs" / f"{ds.name}-{split}{tag}{level}-{profile.name}.trec",
                              tag=trec_escape(f"slimvec-{profile.name}"))
    docs = max(info["documents"], 1)
    cost = {
        "ram_bytes_per_doc": info["ram_bytes"] / docs,
        "disk_bytes_per_doc": info["disk_bytes"] / docs,
        "build_s": facts["build_s"],
        # A late pass runs the model over every document whatever the cache holds (token outputs are not cached;
        # a late collection of a [CLS] model encodes through a pooled copy of the cache, whose counts are its own).
        "encode_docs_per_s": (facts["documents"] / facts["build_s"]
                              if facts["encoded_texts"] or profile.chunk_mode == "late" else None),
        # End-to-end latency: the median/95th encode plus the median/95th search (measured apart).
        "query_ms_p50": (_ms(encode_s, 50) or 0.0) + (_ms(search_s, 50) or 0.0),
        "query_ms_p95": (_ms(encode_s, 95) or 0.0) + (_ms(search_s, 95) or 0.0),
        "encode_ms_p50": _ms(encode_s, 50),
        "encode_ms_p95": _ms(encode_s, 95),
        "search_ms_p50": _ms(search_s, 50),
        "search_ms_p95": _ms(search_s, 95),
    }
    return {
        "dataset": ds.name,
        "profile": profile.name,
        "split": split + tag,
        "unit": unit,
        "corpus": str(corpus_path or ds.corpus_path),
        "queries": len(queries),
        "query_ids": sorted(queries),
        "documents": info["documents"],
        "chunks": info["chunks"],
        "metrics": metrics,
        "cost": cost,
        "run_file": str(run_file),
        "collection": str(path),
        "reused_collection": facts["reused"],
    }


def _ranked(hits: list[Any], unit: str) -> dict[str, float]:
    """{ranked id: score}, best first: document ids, or for unit "section" each hit's section id (its document
    id when its chunk has no given section; a repeat keeps the better, earlier hit)."""
    if unit == "document":
        return {h.id: h.score for h in hits}
    out: dict[str, float] = {}
    for h in hits:
        out.setdefault(h.section if h.section is not None else h.id, h.score)
    return out


def _ms(seconds: Any, pct: int) -> float | None:
    return float(np.percentile(np.asarray(seconds) * 1000, pct)) if len(seconds) else None


def run_sweep(
    dataset_dir: str | Path, profiles: list[Profile], split: str = "test", out: str | Path = "slimvec-eval",
    cache_dir: str | Path | None = None, max_queries: int | None = None, progress: bool = False,
    unit: str = "document", corpus: str | Path | None = None,
) -> list[dict[str, Any]]:
    """`run_eval` for each profile (same `unit` and `corpus`), then the Markdown/CSV table, Pareto plot and
    HTML page under `out`."""
    from slimvec.evaluation.report import write_report

    if isinstance(profiles, Profile):  # one profile, never its fields
        profiles = [profiles]
    _check_unit(unit)
    check_place(Path(out), "evaluation output folder", folder=True)
    corpus_path = _corpus(dataset_dir, corpus)
    ds = load_dataset(dataset_dir)
    # Every profile's inputs are checked before the first one is encoded.
    check_eval_inputs(dataset_dir, profiles, split, max_queries,
                      corpus=any(_must_build(collection_dir(Path(out), ds, p, corpus_path), p) for p in profiles),
                      corpus_path=corpus_path, unit=unit)
    results = [run_eval(dataset_dir, p, split, out, cache_dir, max_queries, progress, check=False, unit=unit,
                        corpus=corpus_path) for p in profiles]
    files = write_report(results, Path(out))
    (Path(out) / "results.json").write_text(json.dumps(results, indent=2))
    # Each evaluated collection keeps the latest report, so `slimvec serve` can show it on its report page.
    for r in results:
        latest = Path(r["collection"]) / "reports" / "latest"
        latest.mkdir(parents=True, exist_ok=True)
        for f in files.values():
            shutil.copy2(f, latest / Path(f).name)
    return results
