"""The LlamaIndex vector store: VectorStoreIndex over the real bundled MiniLM (offline), MetadataFilters translated
to slimvec filters (each supported operator against hand-listed expectations, the others refused), deletes,
reopening, and a LlamaIndex embedding model in place of slimvec's."""

from __future__ import annotations

import socket

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from slimvec import Collection
from slimvec.errors import CollectionError, ConfigError, FilterError
from slimvec.integrations.llama_index import SlimvecEmbedding, SlimvecVectorStore, to_slimvec_filter

DOCS = [
    ("cat", "The cat slept on the warm windowsill, purring in the afternoon sun.", {"topic": "pets", "year": 2019}),
    ("rates", "Stock markets fell sharply after the central bank raised interest rates.",
     {"topic": "finance", "year": 2021}),
    ("volcano", "The volcano erupted, sending ash and sulfur dioxide high into the atmosphere.",
     {"topic": "geology", "year": 2022}),
    ("dog", "Dogs need daily walks, regular meals and yearly visits to the veterinarian.",
     {"topic": "pets", "year": 2023}),
]
CAT_QUERY = "a cat sleeping in the sunshine on a windowsill"


def _f(key, value, op=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=op)


@pytest.fixture()
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test (LlamaIndex must not download anything)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def nodes_dir(tmp_path_factory):
    """A MiniLM collection holding DOCS as nodes without embeddings (slimvec encodes them), ids = DOCS ids."""
    path = tmp_path_factory.mktemp("li") / "col"
    store = SlimvecVectorStore(path)
    store.add([TextNode(id_=i, text=t, metadata=m) for i, t, m in DOCS])
    store.client.close()
    return path


@pytest.fixture()
def store(nodes_dir):
    s = SlimvecVectorStore(nodes_dir)
    yield s
    s.client.close()


def _ids(store, filters=None, query=CAT_QUERY, k=10, **fields):
    res = store.query(VectorStoreQuery(query_str=query, similarity_top_k=k, filters=filters, **fields))
    return [n.node_id for n in res.nodes]


def test_vector_store_index_with_slimvec_embeddings_and_a_filtered_retriever(tmp_path, offline):
    store = SlimvecVectorStore(tmp_path / "col")
    docs = [Document(text=t, metadata=m, doc_id=i) for i, t, m in DOCS]
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=store.embed_model)
    assert store.client.manifest["model"] == "bge-small-en-v1.5" and len(store.client) == len(DOCS)  # the default
    best = index.as_retriever(similarity_top_k=2).retrieve(CAT_QUERY)
    assert best[0].node.ref_doc_id == "cat" and best[0].node.metadata == DOCS[0][2]
    assert best[0].node.get_content() == DOCS[0][1] and best[0].score > best[1].score
    # The cat document is from 2019; from 2020 on, the other pets document is the best hit.
    later = MetadataFilters(filters=[_f("year", 2020, FilterOperator.GTE)])
    hits = index.as_retriever(similarity_top_k=4, filters=later).retrieve(CAT_QUERY)
    assert hits[0].node.ref_doc_id == "dog" and len(hits) == 3 and "cat" not in {h.node.ref_doc_id for h in hits}
    index.delete_ref_doc("cat")
    assert len(store.client) == len(DOCS) - 1
    assert "cat" not in {h.node.ref_doc_id for h in index.as_retriever(similarity_top_k=4).retrieve(CAT_QUERY)}
    store.client.close()


def test_query_embedding_from_slimvec_embedding_matches_text_query(store):
    emb = SlimvecEmbedding(store.client.encoder)
    vec = emb.get_query_embedding(CAT_QUERY)
    by_vector = store.query(VectorStoreQuery(query_embedding=vec, similarity_top_k=4))
    by_text = store.query(VectorStoreQuery(query_str=CAT_QUERY, similarity_top_k=4))
    assert by_vector.ids == by_text.ids and by_vector.ids[0] == "cat"
    assert by_vector.similarities == pytest.approx(by_text.similarities, abs=1e-5)


@pytest.mark.parametrize("flt,expected", [
    (_f("topic", "pets"), {"cat", "dog"}),
    (_f("topic", "pets", FilterOperator.NE), {"rates", "volcano"}),
    (_f("year", 2021, FilterOperator.GT), {"volcano", "dog"}),
    (_f("year", 2021, FilterOperator.GTE), {"rates", "volcano", "dog"}),
    (_f("year", 2021, FilterOperator.LT), {"cat"}),
    (_f("year", 2021, FilterOperator.LTE), {"cat", "rates"}),
    (_f("topic", ["finance", "geology"], FilterOperator.IN), {"rates", "volcano"}),
    (_f("year", [2019, 2023], FilterOperator.NIN), {"rates", "volcano"}),
])
def test_each_supported_operator_selects_the_listed_documents(store, flt, expected):
    assert set(_ids(store, MetadataFilters(filters=[flt]))) == expected


def test_conditions_and_nesting(store):
    pets, late = _f("topic", "pets"), _f("year", 2022, FilterOperator.GTE)
    assert set(_ids(store, MetadataFilters(filters=[pets, late]))) == {"dog"}
    assert set(_ids(store, MetadataFilters(filters=[pets, late], condition=FilterCondition.OR))) == {
        "cat", "dog", "volcano"}
    assert set(_ids(store, MetadataFilters(filters=[pets, late], condition=FilterCondition.NOT))) == {"rates"}
    nested = MetadataFilters(filters=[_f("year", 2019, FilterOperator.GT),
                                      MetadataFilters(filters=[pets, _f("topic", "finance")],
                                                      condition=FilterCondition.OR)])
    assert set(_ids(store, nested)) == {"rates", "dog"}
    assert to_slimvec_filter(MetadataFilters(filters=[pets, late], condition=FilterCondition.NOT)) == {
        "$not": {"$or": [{"topic": {"$eq": "pets"}}, {"year": {"$gte": 2022}}]}}
    # doc_ids (LlamaIndex's ref_doc_id of a node, here none were given) and node_ids restrict the search too
    assert set(_ids(store, node_ids=["rates", "dog"])) == {"rates", "dog"}


@pytest.mark.parametrize("op,value", [(FilterOperator.TEXT_MATCH, "cat"), (FilterOperator.CONTAINS, "pets"),
                                      (FilterOperator.ANY, ["pets"]), (FilterOperator.ALL, ["pets"]),
                                      (FilterOperator.IS_EMPTY, None),
                                      (FilterOperator.TEXT_MATCH_INSENSITIVE, "Cat")])
def test_an_unsupported_operator_raises_instead_of_matching_everything(store, op, value):
    with pytest.raises(FilterError, match=f"operator {op.name} is not supported"):
        _ids(store, MetadataFilters(filters=[_f("topic", value, op)]))


def test_a_type_mismatch_is_explained_and_other_modes_are_refused(store):
    with pytest.raises(FilterError, match="stored as number"):
        _ids(store, MetadataFilters(filters=[_f("year", "2021")]))
    with pytest.raises(ConfigError, match="query mode 'svm' is not supported"):
        _ids(store, mode=VectorStoreQueryMode.SVM)
    with pytest.raises(ConfigError, match="bm25"):  # this collection keeps no BM25 index
        _ids(store, mode=VectorStoreQueryMode.TEXT_SEARCH)


def test_get_and_delete_nodes_and_reopen(tmp_path):
    path = tmp_path / "col"
    store = SlimvecVectorStore(path)
    store.add([TextNode(id_=i, text=t, metadata=m) for i, t, m in DOCS])
    got = store.get_nodes(["volcano", "missing", "cat"])
    assert [(n.node_id, n.get_content(), n.metadata) for n in got] == [(i, t, m) for i, t, m in (DOCS[2], DOCS[0])]
    store.delete_nodes(filters=MetadataFilters(filters=[_f("topic", "pets")]))
    assert sorted(n.node_id for n in store.get_nodes()) == ["rates", "volcano"]
    store.client.close()
    again = SlimvecVectorStore(path)
    assert _ids(again, query="volcanic ash in the air", k=1) == ["volcano"]
    again.clear()
    assert len(again.client) == 0 and _ids(again) == []
    again.client.close()


def test_hybrid_profile_runs_text_search_mode(tmp_path):
    store = SlimvecVectorStore(tmp_path / "col", profile="hybrid")
    store.add([TextNode(id_=i, text=t, metadata=m) for i, t, m in DOCS])
    assert _ids(store, query="sulfur dioxide", k=1, mode=VectorStoreQueryMode.TEXT_SEARCH) == ["volcano"]
    assert _ids(store, query="interest rates", k=1, mode=VectorStoreQueryMode.HYBRID) == ["rates"]
    store.client.close()
    again = SlimvecVectorStore(tmp_path / "col", profile="hybrid")  # the same options reopen it
    assert len(again.client) == len(DOCS)
    again.client.close()
    with pytest.raises(ConfigError, match="created with retrievers=\\['dense', 'bm25'\\], not \\['dense'\\]"):
        SlimvecVectorStore(tmp_path / "col", retrievers=["dense"])


def test_a_llama_index_embedding_model_is_recorded_and_required_on_reopen(tmp_path):
    path = tmp_path / "col"
    mock = MockEmbedding(embed_dim=8)  # plumbing only: constant vectors
    store = SlimvecVectorStore(path, embed_model=mock)
    assert store.is_embedding_query and store.embed_model is mock
    index = VectorStoreIndex.from_documents([Document(text=t, doc_id=i) for i, t, _ in DOCS],
                                            storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=mock)
    assert store.client.manifest["model"] == "llama-index:unknown" and store.client.manifest["dim"] == 8
    assert len(index.as_retriever(similarity_top_k=4).retrieve("anything")) == 4
    store.client.close()
    with pytest.raises(ConfigError, match="pass the same model as embed_model"):
        SlimvecVectorStore(path)
    with pytest.raises(CollectionError, match="8-d"):
        SlimvecVectorStore(path, embed_model=MockEmbedding(embed_dim=4))
    col = Collection.open(path)
    with pytest.raises(ConfigError, match="open Collection keeps its own encoder"):
        SlimvecVectorStore(col, embed_model=mock)
    col.close()


def test_embeddings_of_another_dimension_are_refused(store):
    node = TextNode(id_="wrong", text="a node embedded by some other model", embedding=[0.1] * 5)
    with pytest.raises(ConfigError, match="dimension 384"):
        store.add([node])
    assert store.get_nodes(["wrong"]) == []


def test_mmr_skips_a_near_duplicate_that_plain_similarity_returns(tmp_path):
    store = SlimvecVectorStore(tmp_path / "col")
    store.add([TextNode(id_=i, text=t, metadata=m) for i, t, m in DOCS]
              + [TextNode(id_="cat2", text="The cat slept on the warm windowsill, purring in the sun.",
                          metadata={"topic": "pets", "year": 2020})])
    assert set(_ids(store, k=2)) == {"cat", "cat2"}
    got = _ids(store, k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3)
    assert got[0] in {"cat", "cat2"} and got[1] not in {"cat", "cat2"}
    # the retriever's own path, with a filter and LlamaIndex's prefetch keyword
    retriever = VectorStoreIndex.from_vector_store(store, embed_model=store.embed_model).as_retriever(
        similarity_top_k=1, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_prefetch_k": 5},
        filters=MetadataFilters(filters=[_f("year", 2021, FilterOperator.GTE)]))
    assert [n.node.node_id for n in retriever.retrieve(CAT_QUERY)] == ["dog"]
    for bad, needle in (({"mmr_prefetch_k": 1}, "mmr_prefetch_k"), ({"mmr_threshold": 2.0}, "mmr_threshold")):
        with pytest.raises(ConfigError, match=needle):
            store.query(VectorStoreQuery(query_str=CAT_QUERY, similarity_top_k=2, mode=VectorStoreQueryMode.MMR), **bad)
    with pytest.raises(ConfigError, match="apply to mode 'mmr'"):
        store.query(VectorStoreQuery(query_str=CAT_QUERY, similarity_top_k=2), mmr_prefetch_k=5)
    store.client.close()
