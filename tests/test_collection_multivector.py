"""Multi-vector collections end to end: MaxSim through the collection against a numpy reference, every
multi-vector stage honouring deletes, upserts and filters, the token file under kill -9 and damage, the
profiles' errors, CLI and HTTP; then the real minilm-tokens model on a SciFact slice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app as cli_app
from slimvec.errors import CollectionError, ConfigError
from slimvec.multivector.tokenstore import TokenStore
from slimvec.profiles import BUILTIN, profile_from_dict

HERE = Path(__file__).resolve().parent
DIM = 32

DOCS = [
    Document("bones", "vitamin d supplementation prevents bone fractures in older adults"),
    Document("tumour", "tumours evade the immune system with checkpoint proteins"),
    Document("coffee", "coffee consumption and the risk of heart disease"),
    Document("sleep", "sleep deprivation impairs memory consolidation"),
    Document("exercise", "exercise improves bone density and muscle strength"),
    Document("diet", "a mediterranean diet lowers cardiovascular risk"),
]


def _profile(name: str, **changes: object):
    if name == "multivector-binary-tokens":  # not built in: 1-bit token codes rescored with float16 ones
        name, changes = "multivector", {"tokens": "binary", "token_rescore": 3, **changes}
    return profile_from_dict({**BUILTIN[name].model_dump(), **changes})


def _maxsim_reference(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """Brute force: for each document, sum over query tokens of the best inner product with its tokens."""
    return np.array([sum(max(float(q @ d) for d in doc) for q in query) for doc in docs])


# ---- MaxSim through the collection equals brute force ----------------------------------------------------
def test_multivector_mode_is_exact_maxsim_over_every_document(tmp_path: Path) -> None:
    enc = FakeEncoder(dim=DIM)
    prof = _profile("multivector", model=None, maxsim_depth=1000, tokens="float32")
    with Collection.create(tmp_path / "c", profile=prof, encoder=enc) as col:
        col.add(DOCS)
        query = "bone fractures and heart risk"
        hits = col.search(query, k=len(DOCS), mode="multivector")
    ref = _maxsim_reference(enc._tokens(query), [enc._tokens(d.text) for d in DOCS])
    order = sorted(range(len(DOCS)), key=lambda i: (-ref[i], i))
    assert [h.id for h in hits] == [DOCS[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], ref[order], rtol=1e-5)


def test_maxsim_reranker_follows_any_first_stage(tmp_path: Path) -> None:
    enc = FakeEncoder(dim=DIM)
    with Collection.create(tmp_path / "c", profile=_profile("hybrid-multivector", model=None), encoder=enc) as col:
        col.add(DOCS)
        query = "immune checkpoint tumours"
        ref = _maxsim_reference(enc._tokens(query), [enc._tokens(d.text) for d in DOCS])
        for mode in ("dense", "bm25"):
            hits = col.search(query, k=3, mode=mode, rerank="maxsim", rerank_depth=len(DOCS))
            top = sorted(range(len(DOCS)), key=lambda i: (-ref[i], i))[:3]
            if mode == "bm25":  # BM25 hands on only documents sharing a term with the query
                top = [i for i in top if set(query.split()) & set(DOCS[i].text.split())]
            assert [h.id for h in hits] == [DOCS[i].id for i in top], mode
            np.testing.assert_allclose([h.score for h in hits], ref[top], rtol=1e-3)  # float16 tokens


def test_binary_token_codes_rescored_with_float16_tokens(tmp_path: Path) -> None:
    """tokens="binary" + token_rescore: 1-bit codes pick the rows, float16 tokens kept beside them score the best
    ones exactly (ColBERT-style binary first pass, float rescoring); check covers both files."""
    enc = FakeEncoder(dim=DIM)
    prof = _profile("multivector", model=None, tokens="binary", token_rescore=len(DOCS), maxsim_depth=1000)
    path = tmp_path / "c"
    query = "bone fractures and heart risk"
    with Collection.create(path, profile=prof, encoder=enc) as col:
        col.add(DOCS)
        hits = col.search(query, k=len(DOCS), mode="multivector")
        assert col.info()["indexes"]["multivector"]["token_storage"] == "binary"
    ref = _maxsim_reference(enc._tokens(query), [enc._tokens(d.text).astype(np.float16).astype(np.float32)
                                                 for d in DOCS])
    order = sorted(range(len(DOCS)), key=lambda i: (-ref[i], i))
    assert [h.id for h in hits] == [DOCS[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], ref[order], rtol=1e-5)
    with pytest.raises(ConfigError, match="token_rescore rescores coded tokens"):
        _profile("multivector", token_rescore=10)
    blob = bytearray((path / "tokens" / "float16" / "tokens.bin").read_bytes())
    blob[5] ^= 0xFF
    (path / "tokens" / "float16" / "tokens.bin").write_bytes(bytes(blob))
    with Collection.open(path, encoder=enc) as col:
        assert col.check() == [f"multivector index: float16 tokens: token rows 0..{len(DOCS) - 1} fail their checksum"]


# ---- deletes, upserts and filters in every multi-vector stage --------------------------------------------
STAGES = [
    ("multivector", "multivector", None),
    ("multivector-pooled", "multivector", None),
    ("multivector-compressed", "multivector", None),
    ("multivector-binary-tokens", "multivector", None),
    ("multivector-muvera", "multivector", None),
    ("hybrid-multivector", "hybrid-multivector", None),
    ("multivector", "dense", "maxsim"),
]


@pytest.mark.parametrize(("profile", "mode", "rerank"), STAGES)
def test_deletes_upserts_and_filters_hide_rows(tmp_path: Path, profile: str, mode: str, rerank: str | None) -> None:
    enc = FakeEncoder(dim=DIM)
    docs = [Document(d.id, d.text, metadata={"group": "a" if i % 2 else "b"}) for i, d in enumerate(DOCS)]
    opts = {"k": 3, "mode": mode, **({"rerank": rerank} if rerank else {})}
    q = "vitamin d bone fractures"
    with Collection.create(tmp_path / "c", profile=_profile(profile, model=None), encoder=enc) as col:
        col.add(docs)
        assert col.search(q, **opts)[0].id == "bones"
        assert "bones" not in [h.id for h in col.search(q, filter={"group": "a"}, **opts)]
        assert all(h.metadata["group"] == "a" for h in col.search(q, filter={"group": "a"}, **opts))
        col.delete(["bones"])
        assert "bones" not in [h.id for h in col.search(q, **opts)]
        col.upsert([Document("tumour", "vitamin d bone fractures prevention trial", metadata={"group": "b"})])
        hits = col.search(q, **opts)
        assert hits[0].id == "tumour" and "vitamin" in hits[0].snippet  # the new version, not the old row
        assert [h.id for h in hits].count("tumour") == 1
        assert col.check() == []


def test_info_reports_tokens_and_bytes(tmp_path: Path) -> None:
    enc = FakeEncoder(dim=DIM)
    with Collection.create(tmp_path / "c", profile=_profile("multivector-pooled", model=None), encoder=enc) as col:
        col.add(DOCS)
        info = col.info()
    mv = info["indexes"]["multivector"]
    words = sum(len(d.text.split()) for d in DOCS)
    assert mv["kind"] == "maxsim" and mv["candidates"] == "dense" and mv["pool_factor"] == 2.0
    # Ward pooling by 2: at most half the words of each document (fewer where words share a vector), one at least
    assert len(DOCS) <= mv["tokens"] <= sum(max(len(d.text.split()) // 2, 1) for d in DOCS) < words
    assert mv["token_disk_bytes"] >= mv["tokens"] * DIM * 2  # float16 tokens
    assert info["disk_bytes"] > mv["token_disk_bytes"]
    assert info["tokens_per_doc"] == mv["tokens"] / len(DOCS)
    assert info["token_disk_bytes_per_doc"] == mv["token_disk_bytes"] / len(DOCS)
    # RAM: the dense float32 rows plus 8 bytes of token offsets per row; the tokens stay on disk
    assert info["ram_bytes"] < len(DOCS) * (DIM * 4 + 8) + 4096


# ---- the token file: kill -9, damage, a missing file --------------------------------------------------------
def test_token_file_survives_kill_9_during_adds(tmp_path: Path) -> None:
    path = tmp_path / "col"
    enc = FakeEncoder()  # the encoder crash_writer.py opens the collection with
    Collection.create(path, profile=_profile("multivector", model=None), encoder=enc).close()
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    committed = 0
    for run in range(3):
        proc = subprocess.Popen([sys.executable, str(HERE / "crash_writer.py"), str(path), f"r{run}",
                                 str(rng.choice([1, 5, 20]))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.3, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        printed = out.splitlines() if out.endswith("\n") else out.splitlines()[:-1]
        with Collection.open(path, encoder=enc) as col:
            assert col.check() == []
            assert col.store.existing_ids(printed) == set(printed)  # every promised add is there
            tokens = TokenStore.open(path / "tokens")
            off, tok = tokens.offsets(col.store.committed_rows), tokens.tokens(col.store.committed_rows)
            for doc in col.store.iter_documents():
                ((row, _, _),) = col.store.chunks_of(doc["id"])
                want = enc._tokens(doc["text"]).astype(np.float16)  # one chunk: the whole document
                np.testing.assert_array_equal(tok[off[row] : off[row + 1]], want)
            committed = len(col)
            text = doc["text"]
            # searchable after the crash: the document's own text reaches MaxSim's maximum, one per query token
            # (the plumbing encoder's words collide, so other documents may tie with it)
            top = col.search(text, k=1, mode="multivector")[0]
            assert top.score == pytest.approx(len(enc._tokens(text)), rel=1e-3)
    assert committed > 0


def test_check_names_a_damaged_or_missing_token_file(tmp_path: Path) -> None:
    enc = FakeEncoder(dim=DIM)
    path = tmp_path / "c"
    with Collection.create(path, profile=_profile("multivector", model=None), encoder=enc) as col:
        col.add(DOCS)
    blob = bytearray((path / "tokens" / "tokens.bin").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "tokens" / "tokens.bin").write_bytes(bytes(blob))
    with Collection.open(path, encoder=enc) as col:
        assert col.check() == [f"multivector index: token rows 0..{len(DOCS) - 1} fail their checksum"]
    with open(path / "tokens" / "offsets.bin", "r+b") as f:
        f.truncate(8 * 2)
    with Collection.open(path, encoder=enc) as col:
        assert col.check() == [f"multivector index: token offsets hold 2 rows, {len(DOCS)} committed"]
        with pytest.raises(CollectionError, match="token file holds 2 rows, 6 committed"):
            col.search("bone", mode="multivector")


# ---- profiles and options that cannot work fail in one line ----------------------------------------------
def test_bad_multivector_configurations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="multivector retriever needs token storage"):
        _profile("multivector", tokens=None)
    with pytest.raises(ConfigError, match="candidates 'bm25' must be another retriever"):
        _profile("multivector", candidates="bm25")
    with pytest.raises(ConfigError, match="unknown codec 'float7'"):
        _profile("multivector", tokens="float7")
    with pytest.raises(ConfigError, match="unknown MUVERA setting 'planes'"):
        _profile("multivector-muvera", muvera={"planes": 3})
    with pytest.raises(ConfigError, match="gives no token vectors"):
        Collection.create(tmp_path / "w", profile="multivector", model="wordllama")
    assert not (tmp_path / "w").exists()
    with Collection.create(tmp_path / "d", encoder=FakeEncoder(dim=DIM)) as col:
        col.add(DOCS)
        with pytest.raises(ConfigError, match="reranker 'maxsim' needs the multivector index"):
            col.search("bone", rerank="maxsim")
        with pytest.raises(ConfigError, match="mode 'multivector' needs the multivector index"):
            col.search("bone", mode="multivector")


# ---- real model: minilm-tokens on a SciFact slice ------------------------------------------------------------
# the judged documents of the first queries come first in scifact_docs (those of the first 25 fill fewer than 50);
# the checks compare every stored document with brute force or the model, which holds at any count
MV_DOCS = 50


@pytest.fixture(scope="module")
def minilm_mv(tmp_path_factory, scifact_docs) -> Path:
    path = tmp_path_factory.mktemp("mv") / "c"
    with Collection.create(path, profile="multivector", chunk_mode="truncate") as col:
        col.add(scifact_docs[:MV_DOCS])
    return path


def test_minilm_tokens_rows_are_minilms_dense_vector_and_its_token_vectors(minilm_mv: Path, scifact_docs) -> None:
    from slimvec.encoders.registry import load_encoder

    with Collection.open(minilm_mv) as mv:
        rows = [mv.store.chunks_of(d.id)[0][0] for d in scifact_docs[:3]]
        info = mv.store.chunks_for_rows(rows)
        texts = [f"{info[r].title} {info[r].text}" for r in rows]
        vectors = np.asarray(mv.store.vectors()[rows])
        store = TokenStore.open(minilm_mv / "tokens")
        off, tok = store.offsets(), store.tokens()
        stored = [np.asarray(tok[off[r] : off[r + 1]], np.float32) for r in rows]
    # the dense vector of the token pass is the plain MiniLM encoder's
    np.testing.assert_allclose(vectors, load_encoder("all-MiniLM-L6-v2").encode_documents(texts), atol=1e-5)
    for got, want in zip(stored, load_encoder("minilm-tokens").encode_document_tokens(texts)):
        np.testing.assert_allclose(got, want, atol=2e-3)  # float16 on disk


def test_minilm_maxsim_over_every_document_matches_brute_force(minilm_mv: Path, scifact_judged) -> None:
    """Real token vectors: the maxsim reranker over every stored document (MV_DOCS) ranks exactly as numpy brute force over the
    stored float16 tokens, with the query's token vectors from the model."""
    from slimvec.encoders.registry import load_encoder

    texts = [text for text, _ in list(scifact_judged.values())[:5]]
    store = TokenStore.open(minilm_mv / "tokens")
    off, tok = store.offsets(), np.asarray(store.tokens(), np.float32)
    with Collection.open(minilm_mv) as col:
        ids = [col.store.chunks_for_rows([r])[r].doc_id for r in range(len(off) - 1)]
        for text, qtok in zip(texts, load_encoder("minilm-tokens").encode_query_tokens(texts)):
            sims = qtok @ tok.T  # (query tokens, all stored tokens)
            ref = np.array([sims[:, off[r] : off[r + 1]].max(axis=1).sum() for r in range(len(off) - 1)])
            top = np.lexsort((np.arange(len(ref)), -ref))[:10]
            hits = col.search(text, k=10, mode="dense", rerank="maxsim", rerank_depth=len(ids))
            assert [h.id for h in hits] == [ids[r] for r in top]
            np.testing.assert_allclose([h.score for h in hits], ref[top], rtol=1e-4)


def test_cli_and_http_take_the_multivector_mode(minilm_mv: Path) -> None:
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    res = CliRunner().invoke(cli_app, ["search", str(minilm_mv), "vitamin D and bone density", "--json", "-k", "3"])
    assert res.exit_code == 0, res.output
    default = json.loads(res.stdout)["hits"]
    res = CliRunner().invoke(cli_app, ["search", str(minilm_mv), "vitamin D and bone density", "--json", "-k", "3",
                                       "--mode", "dense", "--rerank", "maxsim"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["hits"]) == 3
    res = CliRunner().invoke(cli_app, ["info", str(minilm_mv), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["indexes"]["multivector"]["tokens"] > 0
    with Collection.open(minilm_mv) as col, TestClient(create_app({"c": col}, api_key=None)) as client:
        assert "multivector" in client.get("/api/collections").json()["modes"]
        r = client.post("/api/collections/c/search", json={"q": "vitamin D and bone density", "k": 3,
                                                             "mode": "multivector"})
        assert r.status_code == 200, r.text
        assert [h["id"] for h in r.json()["hits"]] == [h["id"] for h in default]


def test_pool_method_is_recorded_and_old_collections_keep_ward(tmp_path: Path) -> None:
    from slimvec.multivector.writer import TokenConfig

    enc = FakeEncoder(dim=DIM)
    with Collection.create(tmp_path / "c", profile=_profile("multivector-pooled", model=None), encoder=enc) as col:
        col.add(DOCS)
        assert col.info()["indexes"]["multivector"]["pool_method"] == "ward-profile-capped"
    with Collection.create(tmp_path / "w", profile=_profile("multivector-pooled", model=None,
                                                            token_pool_method="ward"), encoder=enc) as col:
        col.add(DOCS)
        assert col.info()["indexes"]["multivector"]["pool_method"] == "ward"
    # a collection made under the previous default goes on pooling its new rows as it did
    with Collection.create(tmp_path / "p", profile=_profile("multivector-pooled", model=None,
                                                            token_pool_method="ward-profile"), encoder=enc) as col:
        col.add(DOCS[:2])
    with Collection.open(tmp_path / "p", encoder=enc) as col:
        col.add(DOCS[2:])
        assert col.info()["indexes"]["multivector"]["pool_method"] == "ward-profile"
        assert col.token_config.pool_method == "ward-profile"  # what the write path pools with
    with Collection.create(tmp_path / "u", profile=_profile("multivector", model=None), encoder=enc) as col:
        col.add(DOCS)
        assert col.info()["indexes"]["multivector"]["pool_method"] is None  # nothing pooled
    # a manifest written before the field existed: its collection goes on pooling as it did
    old = {k: v for k, v in _profile("multivector-pooled", model=None).model_dump().items() if k != "token_pool_method"}
    assert TokenConfig.of(old, DIM).pool_method == "ward"
