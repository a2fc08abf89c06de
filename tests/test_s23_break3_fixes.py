"""Faults found by the session 23 breaker s23-break3 in scroll, count, delete by filter and field indexes."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError, FilterError

DOCS = [Document(f"d{i:02d}", f"text {i}", metadata={"f": i % 3}) for i in range(30)]


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=8))
    c.add(DOCS)
    yield c
    c.close()


@pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 10**30])
def test_scroll_with_a_page_size_past_sqlites_integers_lists_every_document(col, limit):
    # Qdrant takes any page size; SQLite's LIMIT took none past 2**63 - 2 (OverflowError traceback).
    docs, nxt = col.scroll(limit=limit)
    assert [d.id for d in docs] == [d.id for d in DOCS] and nxt is None
    docs, _ = col.scroll({"f": 1}, limit=limit, offset="d05")
    assert [d.id for d in docs] == [d.id for d in DOCS[5:] if d.metadata["f"] == 1]


def test_scroll_from_an_offset_holding_a_lone_surrogate_is_one_line(col):
    with pytest.raises(ConfigError, match="offset .* invalid Unicode"):
        col.scroll(offset="d0\ud800")


@pytest.mark.parametrize("flt", [{1: "a"}, {"f": {1: 2}}, {"$and": [{None: 1}]}, {"$not": {("f",): 1}},
                                 {"$or": [{"f": 1}, {"f": {2.0: 1}}]}])
@pytest.mark.parametrize("indexed", [False, True])
def test_a_filter_key_that_is_not_text_is_a_filter_error_everywhere(col, flt, indexed):
    # A Python dict may hold any hashable key; each one was read as text (AttributeError: no startswith).
    if indexed:
        col.create_field_index("f")
    for call in (col.count, lambda f: col.scroll(f), lambda f: col.delete(filter=f)):
        with pytest.raises(FilterError, match="filter keys are text"):
            call(flt)
    with pytest.raises((FilterError, ConfigError)):  # search's options check a top-level key first
        col.search("text", filter=flt)
    assert len(col) == len(DOCS)
