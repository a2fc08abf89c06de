"""Session 24 breaker (configuration surface): each test failed before its fix."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.codecs import make_codec
from slimvec.errors import ConfigError
from slimvec.profiles import profile_from_dict

DOCS = [Document(f"d{i}", f"text number {i} about apples and pears w{i % 13} v{i % 7} u{i % 5}") for i in range(300)]


# ---- codec specs: numbers are ASCII digits in the stage's range ----------------------------------
@pytest.mark.parametrize("spec, needle", [
    ("pq:4_8", "pq sub-quantizers M"),  # int() read 48: a typo of 4x8 became 48 sub-quantizers
    ("pq:+48", "pq sub-quantizers M"),
    ("pq:٣", "pq sub-quantizers M"),  # Arabic-Indic three
    ("pq:48x٨", "pq bits"),
    ("pq:48x", "pq bits"),  # a trailing x took the default 8 bits
    ("pq:48.0", "pq sub-quantizers M"),
    ("rbinary:٢", "rbinary bits"),
    ("truncate:1_28", "truncate dimension"),
    ("pca:١٩٢ > float8", "pca dimension"),
    ("rotate:-5 > int8", "rotate seed"),  # passed the spec check, then failed every fit
    ("residual:٥١٢:2", "residual centroids"),
])
def test_codec_spec_numbers_are_ascii_digits_in_range(spec, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        make_codec(spec)
    assert "\n" not in str(e.value) and "got" in str(e.value)
    with pytest.raises(ConfigError, match="codec"):
        profile_from_dict({"name": "p", "codec": spec})


@pytest.mark.parametrize("spec", ["pq:4x8", "pq:16", "rbinary:2:rotate", "truncate:16 > int8", "pca:16 > float8",
                                  "rotate:3 > int8", "rotate > binary", "pq: 8"])
def test_codec_specs_written_in_digits_still_parse(spec):
    make_codec(spec)


def test_negative_rotation_seed_no_longer_leaves_the_collection_uncompressed(tmp_path):
    # Before: "rotate:-5 > int8" made the collection, every fit then raised numpy's ValueError (swallowed as "too
    # few rows"), and search stayed float32 for good, at float32's RAM.
    with pytest.raises(ConfigError, match="rotate seed"):
        Collection.create(tmp_path / "c", profile={"name": "p", "codec": "rotate:-5 > int8"}, encoder=FakeEncoder())
    assert not (tmp_path / "c").exists()
    with Collection.create(tmp_path / "ok", profile={"name": "p", "codec": "rotate:5 > int8"},
                           encoder=FakeEncoder()) as col:
        col.add(DOCS)
        assert col.info()["ram_bytes_per_doc"] < 32 * 4  # int8 codes, not float32 rows
