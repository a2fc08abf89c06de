"""Faults fixed in session 21, each with the behaviour it now has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.errors import CollectionError, ConfigError
from slimvec.ingest import read_sources
from slimvec.profiles import profile_from_dict

SRC = Path(__file__).parent.parent / "src"
TESTS = Path(__file__).parent
cli = CliRunner()


# ---- 1: a profile's reranker is checked at create ------------------------------------------------
# A profile whose rerank named a cross-encoder directory that does not exist, or a model no registry knows, made a
# collection whose every search failed ("cross-encoder '/nope': no such directory"). It is refused at create now,
# by names and directories only (no model is loaded), and nothing is left on disk.
def _bad_specs(tmp_path: Path) -> list[tuple[str, str]]:
    empty = tmp_path / "empty-model"
    empty.mkdir(exist_ok=True)
    return [
        (f"cross-encoder:{tmp_path / 'nope'}", "no such directory"),
        ("cross-encoder:nope-model", "neither a registered model"),
        (f"cross-encoder:{empty}", "no config.json"),
        ("bi-encoder:nope-model", "unknown model 'nope-model'"),
        (f"bi-encoder:{tmp_path / 'nope'}", "unknown model"),
    ]


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("given", ["profile", "dict"])
def test_a_profile_reranker_that_cannot_load_is_refused_at_create(tmp_path, case, given):
    spec, needle = _bad_specs(tmp_path)[case]
    fields = {"name": "mine", "rerank": spec}
    profile = profile_from_dict(fields) if given == "profile" else fields
    with pytest.raises(ConfigError) as e:
        Collection.create(tmp_path / "col", profile=profile, encoder=FakeEncoder())
    message = str(e.value)
    assert message.startswith("rerank: ") and needle in message and "\n" not in message
    assert spec.partition(":")[2] in message  # the value is named
    assert not (tmp_path / "col").exists()


def test_a_profile_given_as_a_dict_creates_and_reopens(tmp_path):
    fields = {"name": "mine", "retrievers": ["dense", "bm25"], "mode": "hybrid", "rerank": "dense"}
    for _ in range(2):  # created, then opened: the dict's fields are the stored ones
        with Collection.open_or_create(tmp_path / "col", profile=fields, encoder=FakeEncoder()) as col:
            assert col.manifest["profile"]["rerank"] == "dense" and col.manifest["profile"]["mode"] == "hybrid"
    with pytest.raises(CollectionError, match="profile 'mine' with"):
        Collection.open_or_create(tmp_path / "col", profile={**fields, "mode": "bm25"})


def test_cli_index_refuses_a_profile_file_whose_reranker_cannot_load(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"_id": "a", "text": "alpha"}\n', encoding="utf-8")
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"name": "mine", "rerank": f"cross-encoder:{tmp_path / 'nope'}"}), encoding="utf-8")
    res = cli.invoke(app, ["index", str(tmp_path / "docs.jsonl"), "-c", str(tmp_path / "col"), "--profile-file",
                           str(profile), "--model", "wordllama"])
    assert res.exit_code == 2 and "rerank: cross-encoder" in res.output and str(tmp_path / "nope") in res.output
    assert not (tmp_path / "col").exists()


def test_valid_rerankers_still_create_and_load_no_model_at_create(tmp_path):
    model = tmp_path / "ce"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    specs = ["dense", "cross-encoder", "cross-encoder:ms-marco-minilm-l12", "bi-encoder:minilm", f"cross-encoder:{model}",
             "none"]
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from fakes import FakeEncoder\n"
        "from slimvec import Collection, Document\n"
        "from slimvec.profiles import profile_from_dict\n"
        f"for i, spec in enumerate({specs!r}):\n"
        f"    prof = profile_from_dict({{'name': 'p', 'rerank': spec}})\n"
        f"    with Collection.create({str(tmp_path)!r} + f'/c{{i}}', profile=prof, encoder=FakeEncoder()) as col:\n"
        "        col.add([Document('a', 'alpha beta')])\n"
        "        assert col.search('alpha', rerank='none')[0].id == 'a'\n"
        "loaded = sorted(m for m in ('torch', 'onnxruntime', 'sentence_transformers') if m in sys.modules)\n"
        "print('loaded', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "loaded []" in out.stdout


# ---- 2: one file reached by two paths is one document ----------------------------------------------
# `slimvec index COL docs/ other/a.txt` with docs/link.txt -> ../other/a.txt stored the file twice, as "link.txt" and
# "a.txt" (ids are paths relative to the folder named; a lone file's is its name); a link to a sibling in one folder
# did the same. The first path a file is met under is read; the others are passed over with a note.
@pytest.fixture()
def linked(tmp_path, monkeypatch) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("alpha one", encoding="utf-8")
    (tmp_path / "docs" / "b.txt").write_text("beta two", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "d.md").write_text("delta four", encoding="utf-8")
    (tmp_path / "docs" / "link.txt").symlink_to(Path("..") / "other" / "a.txt")
    (tmp_path / "docs" / "sub" / "again.txt").symlink_to(Path("..") / "b.txt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("sources", "ids", "skipped", "first"), [
    (["docs", "other/a.txt"], ["b.txt", "link.txt", "sub/d.md"], "other/a.txt", "docs/link.txt"),
    (["other/a.txt", "docs"], ["a.txt", "b.txt", "sub/d.md"], "docs/link.txt", "other/a.txt"),
    (["docs", "other"], ["b.txt", "link.txt", "sub/d.md"], "other/a.txt", "docs/link.txt"),
    (["docs", "docs/link.txt"], ["b.txt", "link.txt", "sub/d.md"], "docs/link.txt", None),
])
def test_a_file_reached_by_two_paths_is_read_once_with_a_note(linked, sources, ids, skipped, first):
    notes, errors = [], []
    docs = list(read_sources(sources, on_skip=notes.append, on_error=errors.append))
    assert sorted(d.id for d in docs) == ids and not errors  # ordinary files keep their ids
    same = [n for n in notes if n.startswith(f"{skipped}: skipped")]
    assert len(same) == 1 and "read once" in same[0] and "\n" not in same[0]
    if first is not None:
        assert f"the same file as {first}" in same[0]
    # docs/sub/again.txt links to docs/b.txt: the walk meets b.txt first (sorted ids)
    assert any(n.startswith("docs/sub/again.txt: skipped, the same file as docs/b.txt") for n in notes)


def test_cli_index_stores_a_linked_file_and_its_target_once(linked):
    with registered_encoders(FakeEncoder(name="fake-s21")):
        res = cli.invoke(app, ["index", "docs", "other/a.txt", "-c", "col", "--model", "fake-s21"])
        assert res.exit_code == 0, res.output
        assert "note: other/a.txt: skipped, the same file as docs/link.txt" in res.output
        with Collection.open("col") as col:
            assert len(col) == 3 and all(col.get(i) is not None for i in ("b.txt", "link.txt", "sub/d.md"))


def test_distributed_ingest_stores_a_linked_file_and_its_target_once(linked, ray_cluster):
    from slimvec.distributed.ingest import index

    notes: list[str] = []
    # absolute paths: the session's Ray workers did not start in this test's folder
    n = index([linked / "docs", linked / "other" / "a.txt"], linked / "col", workers=1, model="wordllama",
              on_skip=notes.append)
    assert n == 3, notes  # b.txt, link.txt, sub/d.md: as read_sources reads them
    skipped, first = linked / "other" / "a.txt", linked / "docs" / "link.txt"
    assert any(x.startswith(f"{skipped}: skipped, the same file as {first}") for x in notes), notes  # across paths
    skipped, first = linked / "docs" / "sub" / "again.txt", linked / "docs" / "b.txt"
    assert any(x.startswith(f"{skipped}: skipped, the same file as {first}") for x in notes), notes  # in a walk
    with Collection.open(linked / "col") as col:
        assert len(col) == 3 and col.get("a.txt") is None and col.get("sub/again.txt") is None


# The session's Ray workers started in another folder (as a cluster's do): a relative source path was read there,
# and `index docs --ray` stored the project's own docs/ instead of the user's (found by the helper of this file).
def test_distributed_ingest_reads_a_relative_path_where_the_caller_stands(linked, ray_cluster, monkeypatch):
    from slimvec.distributed.ingest import index

    monkeypatch.chdir(linked)
    n = index(["docs"], linked / "col", workers=1, model="wordllama", on_skip=lambda _: None)
    with Collection.open(linked / "col") as col:
        assert n == 3 and len(col) == 3 and all(col.get(i) is not None for i in ("b.txt", "link.txt", "sub/d.md"))


# ---- 3: a given all-zero query vector is refused everywhere ---------------------------------------
# search_vectors refused an all-zero query vector, but search_many(["q"], vectors=zeros) returned no hits silently
# (dense), or BM25's alone (hybrid), and a sharded collection did the same. A text a static model knows no token
# of still encodes to zeros and finds nothing by its vector (retrievers.base.no_direction), also when a router or a
# migration encodes it and hands the vector on.
ZERO = "^query vector 1 is all zeros: it has no direction to search by$"


class KnownWordsEncoder(FakeEncoder):
    """FakeEncoder keeping only words of letters and digits, as a static model drops the tokens it does not know."""

    def _vec(self, text: str) -> np.ndarray:
        return super()._vec(" ".join(w for w in text.split() if w.isalnum()))


def _zero_docs(n: int = 24) -> list[Document]:
    return [Document(f"d{i}", f"word{i} common river text {i % 3}") for i in range(n)]


def _with_zero(dim: int = 32) -> np.ndarray:
    return np.vstack([KnownWordsEncoder(dim=dim).encode_queries(["word3 common"]), np.zeros((1, dim), np.float32)])


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_search_many_refuses_a_given_zero_vector_as_search_vectors_does(tmp_path, mode):
    with Collection.create(tmp_path / "col", profile="hybrid", encoder=KnownWordsEncoder()) as col:
        col.add(_zero_docs())
        with pytest.raises(ConfigError, match=ZERO):
            col.search_many(["word3 common", "word4"], vectors=_with_zero(), mode=mode)
        with pytest.raises(ConfigError, match=ZERO):
            col.search_vectors(_with_zero())
        assert col.search_many(["word3 common"], vectors=_with_zero()[:1], mode=mode)[0][0].id == "d3"
        assert col.search_many(["!!! ???", "word3 common"], mode=mode)[0] == []  # a text: no hits, no error
        assert col.search("!!! ???", mode=mode) == []


def test_a_sharded_collection_refuses_a_given_zero_vector_and_finds_nothing_for_a_zero_text(tmp_path):
    from slimvec.distributed import create_sharded

    sharded = create_sharded(tmp_path / "sh", shards=2, profile="exact-f32", encoder=KnownWordsEncoder())
    try:
        sharded.add(_zero_docs())
        with pytest.raises(ConfigError, match=ZERO):
            sharded.search_many(["word3 common", "word4"], vectors=_with_zero())
        assert sharded.search("!!! ???") == []
        assert sharded.search_many(["word3 common"], vectors=_with_zero()[:1])[0][0].id == "d3"
    finally:
        sharded.close()


def test_a_migrating_collection_refuses_a_given_zero_vector_and_finds_nothing_for_a_zero_text(tmp_path):
    from slimvec.migrate import runner
    from slimvec.migrate.merged import MigratingCollection

    with registered_encoders(KnownWordsEncoder(dim=32, name="known-s21"), KnownWordsEncoder(dim=48, name="known-s21b")):
        with Collection.create(tmp_path / "col", model="known-s21") as col:
            col.add(_zero_docs(40))
        runner.start(tmp_path / "col", "known-s21b", adapter="procrustes", sample=20)
        with Collection.open(tmp_path / "col") as col:
            assert isinstance(col, MigratingCollection)
            with pytest.raises(ConfigError, match=ZERO):
                col.search_many(["word3 common", "word4"], vectors=_with_zero(48))
            assert col.search("!!! ???") == []
            assert len(col.search("word3 common", k=3)) == 3  # a query with a direction still ranks


def test_eval_runs_a_query_whose_text_encodes_to_zeros_as_one_with_no_hits(tmp_path):
    # the runner hands search_many the vectors it encoded from the query texts (cached): not a caller's bug
    from slimvec.evaluation.runner import run_eval

    root = tmp_path / "mini"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "title": "", "text": d.text}) + "\n"
                                               for d in _zero_docs()), encoding="utf-8")
    queries = {"q0": "word3 common", "q1": "!!! ???"}
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()),
                                        encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td3\t1\nq1\td4\t1\n", encoding="utf-8")
    with registered_encoders(KnownWordsEncoder(name="known-s21-eval")):
        result = run_eval(root, profile_from_dict({"name": "p", "model": "known-s21-eval"}), out=tmp_path / "out",
                          cache_dir=tmp_path / "cache")
    assert 0 < result["metrics"]["ndcg@10"] <= 0.5  # q0 finds d3, q1 (no known word) finds nothing


def test_integrations_searching_by_a_zero_vector_give_the_same_error(tmp_path):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from slimvec.integrations.langchain import SlimvecVectorStore as LangChainStore
    from slimvec.integrations.llama_index import SlimvecVectorStore as LlamaStore

    with Collection.create(tmp_path / "col", encoder=KnownWordsEncoder()) as col:
        col.add(_zero_docs())
        with pytest.raises(ConfigError, match=ZERO.replace("1", "0")):
            LangChainStore(col).similarity_search_by_vector([0.0] * 32)
        with pytest.raises(ConfigError, match=ZERO.replace("1", "0")):
            LlamaStore(col).query(VectorStoreQuery(query_embedding=[0.0] * 32, similarity_top_k=2))
        with pytest.raises(ConfigError, match=ZERO.replace("1", "0")):  # the same message from search_many
            col.search_many(["word3"], vectors=np.zeros((1, 32), np.float32))


# ---- 4: a search option the call gave that its mode cannot use is refused --------------------------------
# fusion="rrf", fusion_weights or fusion_temperature with a mode of one retriever, and rerank_depth where nothing
# reranks, were ignored without a word. The profile's own settings (fusion, weights, reranker and depth recorded at
# create) never trigger it, whatever mode is searched.
FUSED_PROFILE = {"name": "fused", "retrievers": ["dense", "bm25"], "mode": "hybrid", "fusion": "softmax",
                 "fusion_weights": [0.3, 0.7], "fusion_temperature": 1.5, "rerank": "dense", "rerank_depth": 20}


@pytest.fixture()
def fused(tmp_path):
    col = Collection.create(tmp_path / "fused", profile=FUSED_PROFILE, encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"word{i} common river text") for i in range(8)])
    yield col
    col.close()


@pytest.mark.parametrize(("options", "field", "mode"), [
    ({"mode": "dense", "fusion": "rrf"}, "fusion", "dense"),
    ({"mode": "dense", "fusion_weights": [1.0]}, "fusion_weights", "dense"),
    ({"mode": "bm25", "fusion_weights": [0.5, 0.5]}, "fusion_weights", "bm25"),
    ({"mode": "bm25", "fusion_temperature": 1.0}, "fusion_temperature", "bm25"),
])
def test_fusion_options_given_for_a_mode_of_one_retriever_are_refused(fused, options, field, mode):
    with pytest.raises(ConfigError) as e:
        fused.search("word1", **options)
    message = str(e.value)
    assert message.startswith(f"{field} applies to fused modes (hybrid") and f"runs mode {mode!r}" in message
    assert "\n" not in message


def test_rerank_depth_where_nothing_reranks_is_refused(fused, tmp_path):
    with pytest.raises(ConfigError, match=r"^rerank_depth applies to reranking, and this search reranks nothing "
                                          r"\(rerank is 'none'\)$"):
        fused.search("word1", rerank="none", rerank_depth=50)
    with Collection.create(tmp_path / "plain", encoder=FakeEncoder()) as plain:
        plain.add([Document("a", "alpha beta")])
        with pytest.raises(ConfigError, match="the profile sets no reranker; give rerank too"):
            plain.search("alpha", rerank_depth=50)
        assert plain.search("alpha", rerank="dense", rerank_depth=50)[0].id == "a"


def test_the_profiles_own_fusion_and_rerank_settings_never_trigger_the_refusal(fused):
    for mode in ("dense", "bm25", "hybrid"):
        assert fused.search("word1 common", mode=mode, k=3)
        assert fused.search("word1 common", mode=mode, k=3, rerank="none")
    assert fused.search("word1", rerank_depth=30)  # the profile's reranker runs: a depth applies
    assert fused.search("word1", mode="hybrid", fusion="rrf")  # a fused mode takes a fusion override


def test_cli_and_server_refuse_a_fusion_option_given_for_a_mode_of_one_retriever(fused):
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    with registered_encoders(FakeEncoder()):  # the CLI opens the collection's model by name
        res = cli.invoke(app, ["search", str(fused.path), "word1", "--mode", "dense", "--fusion", "rrf"])
        assert res.exit_code == 2 and "fusion applies to fused modes" in res.output
        assert len(res.output.strip().splitlines()) == 1
        for mode in ("dense", "bm25", "hybrid"):  # it sends only the options given
            res = cli.invoke(app, ["search", str(fused.path), "word1", "--mode", mode, "--json"])
            assert res.exit_code == 0 and json.loads(res.stdout)["hits"], res.output
    with TestClient(create_app({"c": fused}), raise_server_exceptions=False) as client:
        url = "/api/collections/c/search"
        r = client.post(url, json={"q": "word1", "mode": "dense", "fusion_weights": [1.0]})
        assert r.status_code == 400 and r.json()["detail"].startswith("fusion_weights applies to fused modes")
        r = client.get(url, params={"q": "word1", "mode": "bm25", "rerank": "none", "rerank_depth": 5})
        assert r.status_code == 400 and r.json()["detail"].startswith("rerank_depth applies to reranking")
        for mode in ("dense", "bm25"):  # the page and a client naming only the mode
            r = client.post(url, json={"q": "word1", "k": 3, "mode": mode, "unit": "document"})
            assert r.status_code == 200 and r.json()["hits"], r.text


def test_integrations_send_no_option_they_were_not_given(fused):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from slimvec.integrations.langchain import SlimvecVectorStore as LangChainStore
    from slimvec.integrations.llama_index import SlimvecVectorStore as LlamaStore

    assert LangChainStore(fused).similarity_search("word1 common", k=2, mode="dense")
    assert LangChainStore(fused).similarity_search_by_vector(FakeEncoder().encode_queries(["word1"])[0].tolist(), k=2)
    with pytest.raises(ConfigError, match="fusion applies to fused modes"):
        LangChainStore(fused).similarity_search("word1", k=2, mode="dense", fusion="rrf")
    res = LlamaStore(fused).query(VectorStoreQuery(query_str="word1 common", similarity_top_k=2,
                                                   mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert res.ids


# A sharded collection had no search_vectors (AttributeError), the dense-by-vector search a plain one offers.
def test_a_sharded_collection_searches_by_vector_as_a_plain_one(tmp_path):
    from slimvec.distributed import create_sharded

    enc = FakeEncoder(dim=16)
    docs = [Document(f"d{i}", f"river {i} water stone {i % 4}") for i in range(30)]
    v = enc.encode_queries(["river 3 water", "stone 2"])
    with Collection.create(tmp_path / "plain", profile="exact-f32", encoder=enc) as col:
        col.add(docs)
        want = col.search_vectors(v, k=5, filter=None)
    with create_sharded(tmp_path / "sharded", shards=3, profile="exact-f32", encoder=enc) as col:
        col.add(docs)
        got = col.search_vectors(v, k=5)
        assert [h.id for h in col.search_vectors(v[0], k=5)[0]] == [h.id for h in want[0]]
        with pytest.raises(ConfigError, match="all zeros"):
            col.search_vectors(np.zeros(16, np.float32))
    assert [[h.id for h in q] for q in got] == [[h.id for h in q] for q in want]
    np.testing.assert_allclose([[h.score for h in q] for q in got], [[h.score for h in q] for q in want], atol=1e-6)


# create_sharded refused by the first shard's create (an unknown index here) left the directory and its empty
# shards/ folder behind; a plain collection's refused create leaves nothing.
def test_a_refused_sharded_create_leaves_nothing(tmp_path):
    from slimvec.distributed import create_sharded

    with pytest.raises(ConfigError, match="index"):
        create_sharded(tmp_path / "col", shards=2, index="nope", encoder=FakeEncoder(dim=16))
    assert not (tmp_path / "col").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, empty
    with pytest.raises(ConfigError, match="index"):
        create_sharded(tmp_path / "mine", shards=2, index="nope", encoder=FakeEncoder(dim=16))
    assert (tmp_path / "mine").exists() and not any((tmp_path / "mine").iterdir())


# A relative reranker directory was checked against the working directory at create and stored as given: a search
# from anywhere else (a server started elsewhere, a later `slimvec search`) looked for it there.
def test_a_relative_reranker_directory_is_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "models" / "ce").mkdir(parents=True)
    (tmp_path / "models" / "ce" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path / "models")
    prof = profile_from_dict({"name": "mine", "rerank": "cross-encoder:ce"}, source="test")
    with Collection.create(tmp_path / "col", profile=prof, encoder=FakeEncoder(dim=16)) as col:
        assert col.manifest["profile"]["rerank"] == f"cross-encoder:{tmp_path / 'models' / 'ce'}"
    Collection.open_or_create(tmp_path / "col", profile=prof, encoder=FakeEncoder(dim=16)).close()  # rerun matches
    monkeypatch.chdir(tmp_path)
    with Collection.open(tmp_path / "col", FakeEncoder(dim=16)) as col:
        assert col.manifest["profile"]["rerank"].endswith("/models/ce")
    named = profile_from_dict({"name": "named", "rerank": "cross-encoder"}, source="test")
    with Collection.create(tmp_path / "col2", profile=named, encoder=FakeEncoder(dim=16)) as col:
        assert col.manifest["profile"]["rerank"] == "cross-encoder"  # a name stays a name
