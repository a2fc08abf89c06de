"""Profiles: validation with named fields, files, persistence in the manifest."""

from __future__ import annotations

import json

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.profiles import load_profile, profile_from_dict

# What each name promises, written from the names (384-d MiniLM: "half" is 192 dimensions).
NAMED = {
    "exact-f32": ("float32", False, "exact"), "f16": ("float16", False, "exact"), "float8": ("float8", False, "exact"),
    "int8": ("int8", False, "exact"), "int4": ("int4", False, "exact"), "binary": ("binary", False, "exact"),
    "pca-half-float8": ("pca:192 > float8", False, "exact"), "pca-half-float8-rescore": ("pca:192 > float8", True, "exact"),
    "binary-rescore": ("binary", True, "exact"), "int8-rescore": ("int8", True, "exact"),
    "binary-ivf-rescore": ("binary", True, "ivf"), "hnsw-f32": ("float32", False, "hnsw"),
    "pq16-ivf-rescore": ("pq:16x8", True, "ivf"),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_builtin_profiles_do_what_their_names_say(name):
    codec, rescore, index = NAMED[name]
    prof = load_profile(name)
    assert (prof.codec, prof.rescore, prof.index) == (codec, rescore, index)
    assert prof.mode == "dense" and tuple(prof.retrievers) == ("dense",)


@pytest.mark.parametrize("name,code_bytes", [("pq-rescore", 48), ("pq16-rescore", 16)])
def test_pq_rescore_profiles_are_product_quantization_with_rescoring(name, code_bytes):
    prof = load_profile(name)
    assert prof.codec == f"pq:{code_bytes}x8" and prof.rescore and prof.index == "exact"


@pytest.mark.parametrize("data,needle", [
    ({"name": "x", "oversample": 0}, "oversample"),
    ({"name": "x", "codec": "nope"}, "unknown codec 'nope'"),
    ({"name": "x", "chunk_mode": "pages"}, "chunk_mode"),
    ({"name": "x", "surprise": 1}, "surprise"),
    ({"name": "bad name!"}, "name"),
    ({"name": "x", "codec": "int8", "index": "ivf"}, r"index 'ivf' needs codec 'binary' \(1-bit codes\) or 'pq:MxBITS', not 'int8'"),
    ({"name": "x", "codec": "pca:192 > pq:16x8", "index": "ivf"}, "or 'pq:MxBITS', not 'pca:192 > pq:16x8'"),
    ({"name": "x", "codec": "float8", "index": "hnsw"}, "index 'hnsw' holds float32 vectors"),
    ({"name": "x", "codec": "binary", "index": "ivf", "nprobe": 0}, "nprobe"),
    ([1, 2], "JSON object"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"method": "bm25x"}}, "unknown BM25 method"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"k1": "1.2"}}, "k1 must be a number"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"k1": float("nan")}}, "k1 must be a number"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"k1": -1}}, "k1 must be a number"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"b": 5}}, "b must be a number"),
    ({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"cjk_bigrams": "yes"}}, "cjk_bigrams must be"),
])
def test_invalid_profiles_name_the_field(data, needle):
    with pytest.raises(ConfigError, match=needle):
        profile_from_dict(data)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_every_bm25s_method_loads(method):
    assert profile_from_dict({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "bm25": {"method": method}})


def test_profile_file_round_trip(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"name": "mine", "codec": "int8", "rescore": True, "oversample": 3}))
    prof = load_profile(file=p)
    assert (prof.codec, prof.rescore, prof.oversample) == ("int8", True, 3)
    with pytest.raises(ConfigError, match="no such profile file"):
        load_profile(file=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("does-not-exist")


def test_profile_persists_in_collection(tmp_path):
    docs = [Document(f"d{i}", f"alpha beta {i} gamma {i % 7}") for i in range(50)]
    with Collection.create(tmp_path / "c", profile="binary-rescore", encoder=FakeEncoder()) as col:
        col.add(docs)
        before = [(h.id, h.score) for h in col.search("alpha gamma 3", k=5)]
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert col.manifest["profile"]["codec"] == "binary" and col.manifest["profile"]["rescore"] is True
        assert [(h.id, h.score) for h in col.search("alpha gamma 3", k=5)] == before
