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
from slimvec.errors import ConfigError
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

