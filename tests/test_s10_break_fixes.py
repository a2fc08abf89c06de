"""Faults found by attacking session 9's work (late chunking with bge-small-en-v1.5 and its token-mean queries,
distributed reruns skipping unchanged documents), each with the input that showed it. Real bge-small-en-v1.5
(the default model), no fakes: the fault is in which query vector the real model gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimvec import Collection, Document
from slimvec.distributed import create_sharded, open_sharded

QUERY = "Which treaty ended the Thirty Years' War?"
DOCS = [
    Document("w", "The Peace of Westphalia was signed in 1648. It ended the Thirty Years' War. Its negotiations "
                  "took place in Osnabrück and Münster.", "Peace of Westphalia"),
    Document("v", "The Congress of Vienna met in 1814 and 1815. It redrew the map of Europe after Napoleon.",
             "Congress of Vienna"),
    Document("u", "Utrecht is a city in the Netherlands. Its treaties of 1713 ended the War of the Spanish "
                  "Succession.", "Utrecht"),
    Document("m", "Münster is a city in Westphalia with a cathedral and a university.", "Münster"),
]


@pytest.fixture(scope="module")
def bge():
    from slimvec.encoders.registry import load_encoder

    return load_encoder("bge-small-en-v1.5")


def _scores(hits) -> list[tuple[str, float]]:  # noqa: ANN001
    return [(h.id, round(h.score, 5)) for h in hits]


@pytest.fixture(scope="module")
def late_sharded(tmp_path_factory) -> Path:
    """A late bge collection in 2 shards holding DOCS (its manifests record token-mean queries)."""
    path = tmp_path_factory.mktemp("s10") / "big"
    with create_sharded(path, shards=2, chunk_mode="late", chunk_tokens=24, chunk_overlap=0) as col:
        col.add(DOCS)
    return path


def test_a_sharded_late_collection_given_a_bare_encoder_still_searches_with_token_mean_queries(late_sharded, bge):
    mean_q = bge.with_query_pooling("mean").encode_queries([QUERY])
    with Collection.open(late_sharded) as col:
        want = _scores(col.search(QUERY, k=4))
        assert want == _scores(col.search_many([QUERY], k=4, vectors=mean_q)[0])
        assert col.info()["query_pooling"] == "mean"  # at the top level, as a plain collection shows it
    # The router encodes the query once for every shard: with a bare bge it used to encode [CLS] queries.
    with Collection.open(late_sharded, encoder=bge) as col:
        assert col.encoder.query_pooling == "mean"
        assert _scores(col.search(QUERY, k=4)) == want
    with open_sharded(late_sharded, encoder=bge) as col:
        assert _scores(col.search(QUERY, k=4)) == want


def test_a_sharded_late_collection_on_ray_given_a_bare_encoder_pools_queries_by_mean(ray_cluster, late_sharded, bge):
    with Collection.open(late_sharded) as col:
        want = _scores(col.search(QUERY, k=4))
    with open_sharded(late_sharded, encoder=bge, ray=True) as col:
        assert col.encoder.query_pooling == "mean"
        assert _scores(col.search(QUERY, k=4)) == want


def test_index_into_a_sharded_collection_without_ray_names_what_it_holds(late_sharded, tmp_path):
    from typer.testing import CliRunner

    from slimvec.cli import app
    from slimvec.errors import CollectionError

    source = tmp_path / "more.jsonl"
    source.write_text('{"_id": "z", "text": "Osnabrück is a city in Lower Saxony."}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["index", str(source), "-c", str(late_sharded)])
    # was "directory is not empty and holds no collection": it holds one, sharded
    assert res.exit_code == 2 and "holds a sharded collection" in res.output and "--ray" in res.output, res.output
    assert "holds no collection" not in res.output
    with pytest.raises(CollectionError, match="holds a sharded collection"):
        Collection.open_or_create(late_sharded)
    with Collection.open(late_sharded) as col:
        assert len(col) == len(DOCS)  # nothing written


def test_an_encoder_taken_from_a_late_collection_keeps_cls_queries_in_another_collection(tmp_path, bge):
    cls_q = bge.encode_queries([QUERY])
    with Collection.create(tmp_path / "late", chunk_mode="late") as late:
        late.add(DOCS)
        pooled = late.encoder  # the late collection's model object: token-mean queries
        assert pooled.query_pooling == "mean"
        with Collection.create(tmp_path / "tok") as tok:
            tok.add(DOCS)
            want = _scores(tok.search_many([QUERY], k=4, vectors=cls_q)[0])
            assert _scores(tok.search(QUERY, k=4)) == want
        # reused to open a collection of token chunks, or to create one, or a late one led by own vectors
        with Collection.open(tmp_path / "tok", encoder=pooled) as tok:
            assert tok.encoder.query_pooling == "cls"
            assert _scores(tok.search(QUERY, k=4)) == want
        with Collection.create(tmp_path / "tok2", encoder=pooled) as tok2:
            assert tok2.encoder.query_pooling == "cls"
        from slimvec.profiles import profile_from_dict

        mix = profile_from_dict({"name": "mix", "chunk_mode": "late", "late_weight": 0.3})
        with Collection.create(tmp_path / "mix", profile=mix, encoder=pooled) as col:
            assert "query_pooling" not in col.manifest and col.encoder.query_pooling == "cls"
    # and the other way round: the late collection opened with it still pools by mean
    with Collection.open(tmp_path / "late", encoder=bge.with_query_pooling("cls")) as late:
        assert late.encoder.query_pooling == "mean"


def test_distributed_ingest_into_a_sharded_collection_refuses_settings_it_was_not_made_with(ray_cluster, tmp_path):
    from slimvec.distributed.ingest import index
    from slimvec.errors import CollectionError

    def rows(docs: list[Document]) -> str:
        return "".join(f'{{"_id": "{d.id}", "title": "{d.title}", "text": "{d.text}"}}\n' for d in docs)

    source, more = tmp_path / "docs.jsonl", tmp_path / "more.jsonl"
    source.write_text(rows(DOCS[:2]), encoding="utf-8")
    more.write_text(rows(DOCS[2:]), encoding="utf-8")
    path = tmp_path / "big"
    assert index([source], path, shards=2, workers=ray_cluster) == 2
    # A plain collection refuses these (open_or_create); a sharded one used to index with its own settings, silently.
    for option in ({"chunk_mode": "late"}, {"profile": "binary"}, {"index": "hnsw"}, {"chunk_tokens": 64},
                   {"query_prompt": "query: "}):
        with pytest.raises(CollectionError, match="keeps the settings it was created with|keeps one prompt per side"):
            index([more], path, workers=ray_cluster, **option)
    with Collection.open(path) as col:
        assert len(col) == 2 and col.router["profile"]["chunk_mode"] == "tokens"
    assert index([more], path, workers=ray_cluster, chunk_mode="tokens") == 2  # the settings it has are fine


def test_late_settings_are_checked_when_the_collection_is_made_and_a_small_window_alone_works(tmp_path, bge):
    from slimvec.documents import Section
    from slimvec.errors import ConfigError
    from slimvec.late import LateConfig, late_chunk_vectors
    from slimvec.profiles import profile_from_dict

    def prof(**kw):  # noqa: ANN003, ANN202
        return profile_from_dict({"name": "late", "chunk_mode": "late", **kw})

    text = "Marie Curie was a physicist. She won two Nobel prizes. Her daughter Irene won one too."
    sec = Document("curie", text, "Marie Curie", sections=(Section("a", 0, 28), Section("b", 29, 54)))
    # A window below the default overlap (128), no overlap set: every add used to fail on that unset overlap.
    with Collection.create(tmp_path / "w64", profile=prof(late_window=64), chunk_tokens=24, chunk_overlap=0) as col:
        col.add([*DOCS, sec])
        assert len(col) == len(DOCS) + 1
        chunks = col.chunk(DOCS)
        # the plain documents' chunks, encoded in one call as the collection does, with the overlap window_for uses
        want = late_chunk_vectors(DOCS, [chunks[d.id] for d in DOCS], bge, LateConfig(64, 32, 1.0))
        got = [col.search_vectors(v, k=1)[0][0] for v in want]
        assert [h.id for h in got] == [d.id for d in DOCS for _ in chunks[d.id]]
        assert min(h.score for h in got) > 0.9999
    # Settings no document could be encoded with are refused at creation, nothing written, not at every add
    # (and the overlap only at the first document with sections, whose default window is 128 with bge).
    for i, bad in enumerate(({"late_window": 8}, {"late_overlap": 600}, {"late_window": 100, "late_overlap": 100})):
        with pytest.raises(ConfigError, match=r"late (window|overlap)"):
            Collection.create(tmp_path / f"bad{i}", profile=prof(**bad))
        assert not (tmp_path / f"bad{i}").exists() or not any((tmp_path / f"bad{i}").iterdir())


def test_indexing_again_with_a_changed_profile_file_of_the_same_name_is_refused(tmp_path):
    from slimvec.errors import CollectionError
    from slimvec.profiles import profile_from_dict

    def prof(**kw):  # noqa: ANN003, ANN202
        return profile_from_dict({"name": "late", "chunk_mode": "late", "chunk_tokens": 128, **kw})

    path = tmp_path / "col"
    with Collection.open_or_create(path, profile=prof(), chunk_tokens=64) as col:
        col.add(DOCS[:1])
    # was ignored, silently: the collection went on with token-mean queries and float32 codes
    for changed in ({"late_weight": 0.2}, {"codec": "binary"}, {"late_window": 256}, {"retrievers": ["dense", "bm25"]}):
        with pytest.raises(CollectionError, match=f"built with profile 'late' with {next(iter(changed))} "):
            Collection.open_or_create(path, profile=prof(**changed), chunk_tokens=64)
    # the same file and options open it (an option given beside the file overrides the file's field, as at creation)
    with Collection.open_or_create(path, profile=prof(), chunk_tokens=64) as col:
        col.add(DOCS[1:2])
    # a built-in profile is compared by name, as before
    with Collection.open_or_create(tmp_path / "bin", profile="binary") as col:
        col.add(DOCS[:1])
    from slimvec.profiles import load_profile

    with Collection.open_or_create(tmp_path / "bin", profile=load_profile("binary")) as col:
        assert len(col) == 1
    with Collection.open(path) as col:
        assert len(col) == 2 and "late_weight" not in {k for k, v in col.manifest["profile"].items() if v is not None}


def test_chunk_chunk_and_encode_and_unchanged_refuse_bad_input_as_add_does(tmp_path):
    import numpy as np

    from slimvec.errors import IngestError

    with Collection.create(tmp_path / "c", chunk_mode="late") as col:
        col.add(DOCS[:2])
        rows = col.info()["rows"]
        # a bare string or Document, not a list: add's TypeError (was AttributeError / "not iterable")
        for bare in ("some text", DOCS[0]):
            for call in (col.chunk, col.chunk_and_encode):
                with pytest.raises(TypeError, match="list or iterable of slimvec.Document"):
                    call(bare)
        # what add refuses, chunk refuses too (was an empty chunk, an AttributeError, the tokenizer's TypeError)
        for bad, needle in (([Document("e", "  ", "")], "'e' .*text and title are empty"),
                            ([None], "position 0: expected a slimvec.Document"),
                            ([Document("s", "bad \ud800 text")], "'s' .*lone surrogate")):
            for call in (col.chunk, col.chunk_and_encode):
                with pytest.raises(IngestError, match=needle):
                    call(bad)
        chunks = col.chunk(DOCS[:2])
        with pytest.raises(IngestError, match="the chunks given hold none for document 'v'"):  # was KeyError 'v'
            col.chunk_and_encode(DOCS[:2], {"w": chunks["w"]})
        # `unchanged` as one bare id is that id (as delete takes one), not its characters
        flat = [c for d in DOCS[:2] for c in chunks[d.id]]
        _, vectors = col.chunk_and_encode([DOCS[1]], chunks)
        assert col.add_encoded(DOCS[:2], flat, vectors, replace=True, unchanged="w") == 2
        assert col.add_encoded(DOCS[:2], flat, np.concatenate([col.chunk_and_encode([d], chunks)[1] for d in DOCS[:2]]),
                               replace=True, unchanged=None) == 2
        info = col.info()
        assert info["documents"] == 2 and info["rows"] == rows + 1 + len(flat)  # "w" kept, "v" then both stored anew
        assert col.check() == []
