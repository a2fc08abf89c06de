"""Faults found by the session-20 second breaker (this session's changes), each with the behaviour it now has."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, StaticLikeEncoder
from typer.testing import CliRunner

from slimvec import Collection, Document, registry
from slimvec.cli import app
from slimvec.encoders.registry import register_encoder
from slimvec.encoders.static import STATIC_FUSION_WEIGHT
from slimvec.errors import CollectionError, IngestError
from slimvec.evaluation.planner import write_profile
from slimvec.ingest.sources import read_sources
from slimvec.migrate import runner
from slimvec.profiles import load_profile

cli = CliRunner()
STATIC, NEW = "fake-static", "fake-new"



@pytest.fixture()
def models():
    register_encoder(STATIC, lambda: StaticLikeEncoder(dim=32, name=STATIC))
    register_encoder(NEW, lambda: FakeEncoder(dim=48, name=NEW))
    yield
    registry.unregister("encoder", STATIC)
    registry.unregister("encoder", NEW)


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document {i} about topic {i % 7} river {i * 3} water") for i in range(n)]


def _hybrid_file(tmp_path: Path, **fields) -> Path:
    """A profile file as `slimvec plan` writes one (every field, fusion_weights null), not a built-in's name."""
    path = tmp_path / "mine.json"
    write_profile(load_profile("hybrid").model_copy(update={"name": "mine", **fields}), path)
    return path


# A hybrid collection on a model that declares its fusion weight records [0.2, 1.0] in its profile; the profile file
# it was made with (fusion_weights null, as written by `slimvec plan`) was then refused by every rerun of
# `slimvec index` into it: "built with profile 'mine' with fusion_weights [0.2, 1.0], not None".
def test_rerun_with_the_profile_file_a_model_weighted_collection_was_made_with(tmp_path, models):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("rivers carry water", encoding="utf-8")
    col, prof = tmp_path / "col", _hybrid_file(tmp_path)
    for _ in range(2):
        res = cli.invoke(app, ["index", str(docs), "-c", str(col), "--model", STATIC, "--profile-file", str(prof)])
        assert res.exit_code == 0, res.output
    with Collection.open(col, StaticLikeEncoder(dim=32, name=STATIC)) as c:
        assert c.info()["fusion"]["weights"] == [STATIC_FUSION_WEIGHT, 1.0] and len(c) == 1
    with pytest.raises(CollectionError, match=r"with fusion_weights \[0.2, 1.0\], not \[0.5, 1.0\]"):
        Collection.open_or_create(col, model=STATIC, profile=load_profile(file=_hybrid_file(tmp_path,
                                                                                        fusion_weights=(0.5, 1.0))))
    # a collection whose profile set its weights keeps comparing them
    own = tmp_path / "own"
    Collection.create(own, model=STATIC, profile=load_profile(file=_hybrid_file(tmp_path, fusion_weights=(0.5, 1.0)))
                      ).close()
    with pytest.raises(CollectionError, match=r"with fusion_weights \[0.5, 1.0\], not None"):
        Collection.open_or_create(own, model=STATIC, profile=load_profile(file=_hybrid_file(tmp_path)))


# Migrating such a collection to another model carried the old model's weight for its own ranking: the new model's
# dense ranking stayed at 0.2 against BM25's 1.0, where a new hybrid collection on it fuses at equal weights.
def test_migrate_drops_the_weight_the_old_model_declared(tmp_path, models):
    path = tmp_path / "col"
    with Collection.create(path, model=STATIC, profile="hybrid") as col:
        col.add(_docs(60))
        assert col.info()["fusion"]["weights"] == [STATIC_FUSION_WEIGHT, 1.0]
    runner.start(path, NEW, sample=30, encoder=FakeEncoder(dim=48, name=NEW))
    runner.reembed(path, batch=16, encoder=FakeEncoder(dim=48, name=NEW))
    with Collection.open(path, FakeEncoder(dim=48, name=NEW)) as col:
        assert col.manifest["model"] == NEW
        assert col.info()["fusion"] == {"mode": "hybrid", "method": "softmax", "weights": None}
        assert col.search("river water", k=3)
    # weights the profile set itself are the user's: they migrate as they are
    own = tmp_path / "own"
    with Collection.create(own, model=STATIC, profile=load_profile("hybrid").model_copy(
            update={"fusion_weights": (0.5, 1.0)})) as col:
        col.add(_docs(60))
    runner.start(own, NEW, sample=30, encoder=FakeEncoder(dim=48, name=NEW))
    runner.reembed(own, batch=16, encoder=FakeEncoder(dim=48, name=NEW))
    with Collection.open(own, FakeEncoder(dim=48, name=NEW)) as col:
        assert col.info()["fusion"]["weights"] == [0.5, 1.0]


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "t", "text": "dogs bark"}\n', encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "dogs"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return folder


# A BEIR folder inside a folder was refused as overlapping it ("its files would be stored twice"), though a walk
# reads none of its files (corpus.jsonl is a table, passed over) and the BEIR folder reads only corpus.jsonl; named
# beside its own corpus.jsonl it was read twice, every record skipped once as a duplicate id.
def test_a_beir_folder_is_its_corpus_when_sources_are_checked_for_overlap(tmp_path):
    outer = tmp_path / "outer"
    beir = _beir(outer / "beir")
    (outer / "a.txt").write_text("hello cats", encoding="utf-8")
    assert [d.id for d in read_sources([outer, beir])] == ["a.txt", "d1"]
    assert [d.id for d in read_sources([beir, outer])] == ["d1", "a.txt"]
    with pytest.raises(IngestError, match=f"^{beir / 'corpus.jsonl'}: given twice \\(also as {beir}\\)$"):
        read_sources([beir, beir / "corpus.jsonl"])
    with pytest.raises(IngestError, match="given twice"):
        read_sources([beir / "corpus.jsonl", beir])


# A folder whose every file the walk passes over (a .jsonl export only) stored nothing, with no record skipped: the
# empty collection left behind pinned the call's model and profile, and the rerun naming the export with
# --profile hybrid was refused ("built with profile 'exact-f32', not 'hybrid'").
def test_index_of_a_folder_whose_files_are_all_passed_over_leaves_no_collection(tmp_path, models):
    docs, col = tmp_path / "docs", tmp_path / "col"
    docs.mkdir()
    (docs / "export.jsonl").write_text('{"_id": "r1", "text": "a record about rivers"}\n', encoding="utf-8")
    res = cli.invoke(app, ["index", str(docs), "-c", str(col), "--model", STATIC, "--json"])
    assert res.exit_code == 1, res.output  # nothing stored: exit 1 since session 23
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["created"] is False and summary["notes"] and not col.exists()
    res = cli.invoke(app, ["index", str(docs / "export.jsonl"), "-c", str(col), "--model", STATIC,
                           "--profile", "hybrid"])
    assert res.exit_code == 0, res.output
    with Collection.open(col, StaticLikeEncoder(dim=32, name=STATIC)) as c:
        assert len(c) == 1 and c.manifest["profile"]["name"] == "hybrid"


# `slimvec index --ray` whose every record was skipped left an empty collection (plain, or sharded with --shards)
# where the same run without --ray leaves none.
@pytest.mark.parametrize("shards", [[], ["--shards", "2"]])
def test_index_on_ray_that_stores_nothing_leaves_no_collection(tmp_path, ray_cluster, shards):
    import ray

    bad = tmp_path / "bad.csv"
    bad.write_text("id, text\n1, hello world\n", encoding="utf-8")
    col = tmp_path / "col"
    args = ["index", str(bad), "-c", str(col), "--id-field", "id", "--model", "wordllama", "--ray", "--address",
            ray.get_runtime_context().gcs_address, "--workers", "1", *shards]
    res = cli.invoke(app, [*args, "--json"])
    assert res.exit_code == 1, res.output  # nothing stored: exit 1 since session 23
    assert json.loads(res.stdout[res.stdout.index("{"):])["created"] is False and not col.exists()
    bad.write_text("id,text\n1,hello world\n", encoding="utf-8")
    res = cli.invoke(app, args)
    assert res.exit_code == 0 and "collection holds 1 documents" in res.output, res.output


def _as_made_before_session_20(path: Path) -> None:
    """The manifest an older slimvec wrote for a profile of 50-token chunks overlapping by 30: the profile's own
    overlap, which create cut to 24 (its chunking), before the profile validator refused such a pair."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["chunking"]["overlap"] == 24
    manifest["profile"]["chunk_overlap"] = 30
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


# Collections made before a profile's overlap of half its chunk or more was refused record that overlap (create cut
# it to fit): their exports no longer imported ("exported profile: ... chunk overlap 30 must be below half of the 50
# chunk tokens") and they could not be migrated ("migration profile: ..."), with no option to change it.
def test_a_collection_recording_an_overlap_create_cut_still_exports_imports_and_migrates(tmp_path, models):
    path = tmp_path / "col"
    with Collection.create(path, model=STATIC, chunk_tokens=50, chunk_overlap=24) as col:
        col.add(_docs(60))
    _as_made_before_session_20(path)
    with Collection.open(path, StaticLikeEncoder(dim=32, name=STATIC)) as col:  # still opens and searches
        assert col.manifest["profile"]["chunk_overlap"] == 30 and col.search("river water", k=2)
    out = tmp_path / "e.parquet"
    res = cli.invoke(app, ["export", str(path), "--to", f"parquet:{out}"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["import", f"parquet:{out}", "-c", str(tmp_path / "imported")])
    assert res.exit_code == 0, res.output
    with Collection.open(tmp_path / "imported", StaticLikeEncoder(dim=32, name=STATIC)) as col:
        assert len(col) == 60 and col.manifest["chunking"]["overlap"] == 24
        assert col.manifest["profile"]["chunk_overlap"] == 24
    runner.start(path, NEW, sample=30, encoder=FakeEncoder(dim=48, name=NEW))
    runner.reembed(path, batch=16, encoder=FakeEncoder(dim=48, name=NEW))
    with Collection.open(path, FakeEncoder(dim=48, name=NEW)) as col:
        assert col.manifest["model"] == NEW and col.manifest["chunking"] == {"max_tokens": 50, "overlap": 24,
                                                                             "mode": "tokens"}


# A sharded hybrid collection on such a model searches with the router profile's weights [0.2, 1.0], but its info()
# had no "fusion" entry (a plain collection's has): only each shard's own info showed the weights.
def test_a_sharded_collections_info_shows_the_fusion_its_searches_use(tmp_path, models):
    from slimvec.distributed import create_sharded

    with create_sharded(tmp_path / "col", shards=2, profile="hybrid", model=STATIC,
                        encoder=StaticLikeEncoder(dim=32, name=STATIC)) as col:
        col.add(_docs(10))
        info = col.info()
        assert info["fusion"] == {"mode": "hybrid", "method": "softmax", "weights": [STATIC_FUSION_WEIGHT, 1.0]}
        assert all(s["fusion"] == info["fusion"] for s in info["shards"])
    with create_sharded(tmp_path / "plain", shards=2, encoder=StaticLikeEncoder(dim=32, name=STATIC)) as col:
        assert "fusion" not in col.info()  # no fused default mode: no entry, as for a plain collection


# A multi-vector profile's token codec was not checked against the model's token dimension: the collection was made,
# then every add failed with a bare ValueError from the codec's first fit ("pq: dimension 32 is not a multiple of
# m=7"), the empty collection left on disk.
@pytest.mark.parametrize(("tokens", "problem"), [("pq:7x8", "pq: dimension 32 is not a multiple of m=7"),
                                                 ("truncate:64", "cannot truncate 32-d vectors to 64"),
                                                 ("pca:64 > int8", "cannot project 32-d vectors to 64")])
def test_a_token_codec_that_cannot_code_the_models_tokens_is_refused_at_create(tmp_path, tokens, problem):
    from slimvec.errors import ConfigError

    prof = load_profile("multivector").model_copy(update={"tokens": tokens, "model": None})
    with pytest.raises(ConfigError) as e:
        Collection.create(tmp_path / "col", profile=prof, encoder=FakeEncoder(dim=32))
    assert str(e.value) == f"token codec (tokens) {tokens!r} cannot code this model's 32-d vectors: {problem}"
    assert not (tmp_path / "col").exists()
    for fits in ("pq:8x4", "residual:16:2", "int8"):  # token codecs that code 32-d tokens still build and search
        prof = load_profile("multivector").model_copy(update={"tokens": fits, "model": None})
        with Collection.create(tmp_path / fits.replace(":", "-"), profile=prof, encoder=FakeEncoder(dim=32)) as col:
            col.add(_docs(40))
            assert col.search("river water", k=2)


# A text query the model has no vector for (a static model knows none of its tokens: an emoji, a script it never
# saw) encodes to all zeros, which scores every row 0: search returned the first k rows as hits, scored 0 (as
# search_vectors did for a given zero vector before it refused one), and a hybrid search ranked every document
# alike from them.
class KnownWordsEncoder(FakeEncoder):
    """FakeEncoder keeping only words of letters and digits, as a static model drops the tokens it does not know."""

    def _vec(self, text: str) -> np.ndarray:
        return super()._vec(" ".join(w for w in text.split() if w.isalnum()))


@pytest.mark.parametrize("profile", ["exact-f32", "hnsw-f32", "binary-rescore", "int8", "hybrid"])
def test_a_query_whose_vector_is_all_zeros_finds_nothing_by_its_vector(tmp_path, profile):
    with Collection.create(tmp_path / "col", profile=profile, encoder=KnownWordsEncoder(dim=32)) as col:
        col.add(_docs(30))
        assert not col.encoder.encode_queries(["!!! ???"]).any()
        assert col.search("!!! ???", k=5) == []
        assert col.search_many(["!!! ???", "river water"], k=5)[0] == []
        assert len(col.search("river water !!!", k=5)) == 5  # a query with a direction still ranks


# Front matter `title: 3.10` (a title YAML reads as a number) became the title "3.1", `0x1F` became "31" and
# `1_000` "1000": the number's text, not the one written.
def test_a_front_matter_title_yaml_reads_as_a_number_is_the_text_written(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    written = {"a.md": "3.10", "b.md": "0x1F", "c.md": "1_000", "d.md": "1984", "e.md": "7.0   # the seventh"}
    for name, title in written.items():
        (docs / name).write_text(f"---\ntitle: {title}\n---\nbody text\n", encoding="utf-8")
    (docs / "f.md").write_bytes(b"---\r\ntitle: 2.50\r\n---\r\nbody text\r\n")
    (docs / "g.md").write_text("---\nx: &v 4.20\ntitle: *v\n---\nbody text\n", encoding="utf-8")
    got = {d.id: d.title for d in read_sources([docs])}
    assert got == {"a.md": "3.10", "b.md": "0x1F", "c.md": "1_000", "d.md": "1984", "e.md": "7.0", "f.md": "2.50",
                   "g.md": "4.2"}  # an alias is not the text written there: the number's text
    meta = {d.id: d.metadata["title"] for d in read_sources([docs])}
    assert meta["a.md"] == 3.1 and meta["b.md"] == 31  # metadata keeps the value YAML reads, as for other keys


# The default overlap (32) still shrinks to fit small chunks without being refused: a collection recording it is
# no older collection, and a rerun with its profile file (chunk_tokens 50, overlap 32 written out) still matches.
def test_the_default_overlap_cut_to_fit_still_matches_its_profile_file(tmp_path, models):
    prof = tmp_path / "p.json"
    write_profile(load_profile("exact-f32").model_copy(update={"name": "mine", "chunk_tokens": 50}), prof)
    for _ in range(2):
        with Collection.open_or_create(tmp_path / "col", model=STATIC, profile=load_profile(file=prof)) as col:
            assert col.manifest["chunking"]["overlap"] == 24 and col.manifest["profile"]["chunk_overlap"] == 32
