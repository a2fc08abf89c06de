"""Profiles: validation with named fields, files, persistence in the manifest."""

from __future__ import annotations

import json

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.profiles import BUILTIN, load_profile, profile_from_dict


def test_builtin_profiles_named_by_the_issue_exist():
    for name in ("exact-f32", "f16", "float8", "int8", "pca-half-float8", "binary", "binary-rescore",
                 "int8-rescore", "pq-rescore", "binary-ivf-rescore", "int4", "pca-half-float8-rescore"):
        assert BUILTIN[name].name == name


@pytest.mark.parametrize("data,needle", [
    ({"name": "x", "oversample": 0}, "oversample"),
    ({"name": "x", "codec": "nope"}, "unknown codec 'nope'"),
    ({"name": "x", "chunk_mode": "pages"}, "chunk_mode"),
    ({"name": "x", "surprise": 1}, "surprise"),
    ({"name": "bad name!"}, "name"),
    ({"name": "x", "codec": "int8", "index": "ivf"}, "index 'ivf' needs codec 'binary'"),
    ({"name": "x", "codec": "float8", "index": "hnsw"}, "index 'hnsw' holds float32 vectors"),
    ({"name": "x", "codec": "binary", "index": "ivf", "nprobe": 0}, "nprobe"),
    ([1, 2], "JSON object"),
])
def test_invalid_profiles_name_the_field(data, needle):
    with pytest.raises(ConfigError, match=needle):
        profile_from_dict(data)


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
