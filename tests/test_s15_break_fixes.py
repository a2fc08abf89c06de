"""Session 15 breaker: values and keys a user gives keep their meaning through ingest, store, filter and the
framework integrations."""

from __future__ import annotations

import pytest

from slimvec import Collection, Document


@pytest.fixture(scope="module")
def col(tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("s15b") / "col", model="wordllama")
    c.add([Document("doc-a", "alpha text", metadata={"_id": "inner", "$price": 5, "kind": "a"}),
           Document("inner", "beta text", metadata={"_id": "other", "$price": 7, "kind": "b"})])
    yield c
    c.close()


def _ids(col, flt) -> set[str]:
    return {h.id for h in col.search("text", k=10, filter=flt)}


# ---- LlamaIndex: a flat metadata key `_id` or `$...` is that key, not the document id or an operator -------------


@pytest.mark.parametrize("key,value,op,want", [
    ("_id", "inner", "==", {"doc-a"}),     # the metadata key _id: unquoted it named the document id ("inner")
    ("_id", "other", "==", {"inner"}),
    ("$price", 5, "==", {"doc-a"}),        # unquoted it was refused as an unknown operator
    ("$price", 6, ">", {"inner"}),
    ("kind", "b", "==", {"inner"}),
])
def test_llama_index_filter_keys_are_metadata_keys(col, key, value, op, want) -> None:
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from slimvec.integrations.llama_index import to_slimvec_filter

    flt = to_slimvec_filter(MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)]))
    assert _ids(col, flt) == want
