"""A full small evaluation on a SciFact subset with the real model: metrics, cost, run file, cache, sweep, plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SCIFACT, _jsonl

from slimvec.encoders import registry
from slimvec.evaluation.metrics import evaluate, read_trec_run
from slimvec.evaluation.planner import held_out_halves, plan
from slimvec.evaluation.runner import run_eval, run_sweep
from slimvec.profiles import load_profile

N_QUERIES = 24
N_OTHERS = 50  # unjudged documents beside the judged ones: each eval here runs the real default model over all


def _mini(root: Path, n_queries: int, n_others: int) -> Path:
    """A BEIR folder at `root`: the judged docs of the first `n_queries` SciFact test queries plus `n_others`."""
    (root / "qrels").mkdir(parents=True)
    lines = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:]]
    qids = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    kept = [r for r in rows if r[0] in qids]
    (root / "qrels" / "test.tsv").write_text(header + "\n" + "\n".join("\t".join(r) for r in kept) + "\n")
    judged = {r[1] for r in kept}
    corpus = _jsonl(SCIFACT / "corpus.jsonl")
    docs = [d for d in corpus if d["_id"] in judged] + [d for d in corpus if d["_id"] not in judged][:n_others]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [q for q in _jsonl(SCIFACT / "queries.jsonl") if q["_id"] in qids]
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n" for q in queries))
    return root


@pytest.fixture(scope="module")
def mini_beir(tmp_path_factory) -> Path:
    """A BEIR folder: the judged docs of N_QUERIES SciFact test queries plus N_OTHERS others."""
    return _mini(tmp_path_factory.mktemp("beir") / "scifact-mini", N_QUERIES, N_OTHERS)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One embedding cache for the module, so the corpus is encoded once (by `first_eval`, which counts it)."""
    return tmp_path_factory.mktemp("cache")


def _count_document_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the texts the real model is asked to encode as documents (one entry per call)."""
    enc = registry.load_encoder()
    calls: list[int] = []
    original = enc.encode_documents

    def counted(texts, progress=False):
        calls.append(len(texts))
        return original(texts, progress=progress)

    monkeypatch.setattr(enc, "encode_documents", counted)
    return calls


@pytest.fixture(scope="module")
def first_eval(mini_beir, tmp_path_factory, shared_cache) -> tuple[dict, int]:
    """The module's first evaluation (exact-f32, an empty cache) and how many document texts it encoded."""
    with pytest.MonkeyPatch.context() as mp:
        calls = _count_document_encodes(mp)
        res = run_eval(mini_beir, load_profile("exact-f32"), out=tmp_path_factory.mktemp("out"),
                       cache_dir=shared_cache)
    return res, sum(calls)


def test_eval_reports_metrics_cost_and_run_file(mini_beir, first_eval):
    res, _ = first_eval
    assert res["queries"] == N_QUERIES and res["documents"] > N_OTHERS
    m = res["metrics"]
    assert set(m) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert all(0 <= v <= 1 for v in m.values())
    # Judged docs are about two fifths of 80 docs; the default model (bge-small-en-v1.5) finds most of them
    # (full SciFact: nDCG@10 ~0.72).
    assert m["ndcg@10"] > 0.6 and m["recall@100"] > 0.9
    c = res["cost"]
    assert c["ram_bytes_per_doc"] >= 384 * 4 and c["disk_bytes_per_doc"] > c["ram_bytes_per_doc"]
    assert c["query_ms_p95"] >= c["query_ms_p50"] > 0 and c["build_s"] > 0
    # The TREC run file re-scores to the same numbers.
    qrels = {}
    for line in (mini_beir / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        qrels.setdefault(q, {})[d] = int(s)
    assert evaluate(qrels, read_trec_run(res["run_file"])) == pytest.approx(m)


def test_cache_avoids_reencoding(mini_beir, tmp_path, first_eval, shared_cache, monkeypatch):
    res, encoded = first_eval
    assert encoded >= res["documents"]  # the first evaluation ran the model over every document
    calls = _count_document_encodes(monkeypatch)
    # Another storage profile of the same model: a new collection, zero texts encoded.
    res = run_eval(mini_beir, load_profile("int8"), out=tmp_path / "out", cache_dir=shared_cache)
    assert sum(calls) == 0
    assert res["metrics"]["ndcg@10"] > 0.55


def test_sweep_writes_report(mini_beir, tmp_path, shared_cache):
    out = tmp_path / "sweep"
    results = run_sweep(mini_beir, [load_profile(p) for p in ("exact-f32", "binary", "binary-rescore")],
                        out=out, cache_dir=shared_cache)
    assert [r["profile"] for r in results] == ["exact-f32", "binary", "binary-rescore"]
    for name in ("report.md", "results.csv", "pareto.png", "report.html"):
        assert (out / name).stat().st_size > 100
    assert "binary-rescore" in (out / "report.md").read_text()
    for r in results:  # the server's report page reads it from each collection
        assert (Path(r["collection"]) / "reports" / "latest" / "report.html").stat().st_size > 100
    ram = {r["profile"]: r["cost"]["ram_bytes_per_doc"] for r in results}
    assert ram["binary"] * 16 < ram["exact-f32"] * 1.2


def test_plan_respects_budget_and_holds_out_report_queries(mini_beir, tmp_path, monkeypatch, shared_cache):
    import slimvec.evaluation.planner as planner

    seen: list[tuple[str, set[str] | None]] = []
    real = planner.run_eval

    def spy(dataset_dir, profile, split, out, cache_dir, query_ids=None, tag=""):
        seen.append((tag, query_ids))
        return real(dataset_dir, profile, split, out, cache_dir, query_ids=query_ids, tag=tag)

    monkeypatch.setattr(planner, "run_eval", spy)
    cands = [load_profile(p) for p in ("exact-f32", "int8", "binary-rescore")]
    budget = 700.0
    result = plan(mini_beir, budget, cands, out=tmp_path / "plan", cache_dir=shared_cache)
    chosen = next(r for r in result.selection if r["profile"] == result.profile.name)
    assert chosen["cost"]["ram_bytes_per_doc"] <= budget
    assert result.profile.name != "exact-f32"
    select_ids = set().union(*(ids for tag, ids in seen if tag == "-select"))
    report_ids = set().union(*(ids for tag, ids in seen if tag == "-report"))
    assert select_ids and report_ids and not select_ids & report_ids
    assert set(result.report["query_ids"]) == report_ids


def test_cli_plan_prints_its_choice_and_writes_the_profile(mini_beir, tmp_path, shared_cache):
    # The command's --out folder once shadowed the console it prints with: the table, then a traceback.
    from typer.testing import CliRunner

    from slimvec.cli import app

    written = tmp_path / "chosen.json"
    r = CliRunner().invoke(app, ["plan", str(mini_beir), "--max-ram-bytes-per-doc", "700", "--profiles",
                                 "exact-f32,int8", "--out", str(tmp_path / "plan"), "--cache", str(shared_cache),
                                 "--write", str(written)])
    assert r.exit_code == 0, r.output
    assert "chosen:" in r.stdout and f"profile written to {written}" in r.stdout.replace("\n", "")
    assert json.loads(written.read_text())["name"] == "int8"  # exact-f32 keeps ~1.6 kB per document: over budget


def test_held_out_halves_are_stable_and_disjoint():
    ids = [str(i) for i in range(200)]
    a, b = held_out_halves(ids)
    assert a | b == set(ids) and not a & b and 60 < len(a) < 140
    assert held_out_halves(list(reversed(ids))) == (a, b)


def test_cli_calibrate_then_min_relevance(mini_beir, tmp_path, shared_cache):
    from typer.testing import CliRunner

    from slimvec import Collection
    from slimvec.cli import app

    res = run_eval(mini_beir, load_profile("exact-f32"), out=tmp_path / "out", cache_dir=shared_cache)
    col = res["collection"]
    r = CliRunner().invoke(app, ["calibrate", col, str(mini_beir), "--split", "test", "--report-split", "test", "--json"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)["report"]
    # The cut-off trades recall for precision against the plain top 10.
    assert report["cutoff"]["mean_returned"] <= report["top10"]["mean_returned"] == 10
    assert report["cutoff"]["micro_precision"] >= report["top10"]["micro_precision"]
    with Collection.open(col) as c:
        hits = c.search("vitamin D", k=10, min_relevance=0.5)
        assert all(h.relevance is not None and h.relevance >= 0.5 for h in hits)
        plain = c.search("vitamin D", k=10)
        assert all(h.relevance is not None for h in plain)


def test_a_late_profile_reports_its_encoding_speed_even_from_a_warm_cache(tmp_path):
    from slimvec.profiles import profile_from_dict

    tiny = _mini(tmp_path / "scifact-tiny", 3, 4)  # a late build encodes every document again: keep it small
    cache = tmp_path / "cache"
    tokens = run_eval(tiny, load_profile("exact-f32"), out=tmp_path / "out", cache_dir=cache)
    late = run_eval(tiny, profile_from_dict({"name": "late-speed", "chunk_mode": "late"}),
                    out=tmp_path / "out", cache_dir=cache)
    # Every text of the tokens build may come from the shared cache (then no speed is claimed); a late build
    # always runs the model over each document, so its docs/s is a real encoding speed.
    assert late["cost"]["encode_docs_per_s"] == pytest.approx(late["documents"] / late["cost"]["build_s"])
    assert late["cost"]["encode_docs_per_s"] > 0 and tokens["documents"] == late["documents"]
