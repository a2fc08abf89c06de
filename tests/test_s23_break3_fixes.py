"""Faults found by the session 23 breaker s23-break3 in scroll, count, delete by filter and field indexes."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError

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
