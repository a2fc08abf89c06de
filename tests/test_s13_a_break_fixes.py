"""Session 13 breaker A: faults found in compaction, export/import, the framework stores and migration, each
pinned by a test that failed before its fix (real parts, the quick WordLlama model)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def wordllama_docs():
    return [("d1", "Vitamin D helps bones absorb calcium.", {"year": 2021}),
            ("d", "Volcanoes emit sulfur dioxide into the air.", {"year": 2019}),
            ("1", "Cats sleep on warm windowsills in the sun.", {"year": 2020})]


# ---- framework stores: one id given as a plain string --------------------------------------------------------
# Collection.delete("d1") deletes document "d1"; the stores turned the string into its characters first, so
# delete("d1") deleted documents "d" and "1" (data loss) and left "d1", and get_by_ids("d1") found "d" and "1".

def test_langchain_delete_and_get_by_ids_read_one_string_as_one_id(tmp_path, wordllama_docs):
    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "lc", model="wordllama")
    store.add_texts([t for _, t, _ in wordllama_docs], [m for _, _, m in wordllama_docs],
                    ids=[i for i, _, _ in wordllama_docs])
    assert [d.id for d in store.get_by_ids("d1")] == ["d1"]
    store.delete("d1")
    assert store.get_by_ids(["d1", "d", "1"]) == store.get_by_ids(["d", "1"])
    assert sorted(d.id for d in store.get_by_ids(["d1", "d", "1"])) == ["1", "d"]
    store.collection.close()


def test_llama_index_get_and_delete_nodes_read_one_string_as_one_id(tmp_path, wordllama_docs):
    from llama_index.core.schema import TextNode

    from slimvec.integrations.llama_index import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "li", model="wordllama")
    store.add([TextNode(id_=i, text=t, metadata=m) for i, t, m in wordllama_docs])
    assert [n.node_id for n in store.get_nodes(node_ids="d1")] == ["d1"]
    store.delete_nodes(node_ids="d1")
    assert sorted(n.node_id for n in store.get_nodes()) == ["1", "d"]
    store.client.close()


# ---- export / import: equal scores break to the same document after a round trip ------------------------------
# Exports were written in document id order (and Qdrant scrolls by point UUID), so the imported collection's rows
# came in another order than the original's, and equal scores (duplicate texts; 1-bit codes) ranked differently.

@pytest.mark.parametrize("kind", ["parquet", "qdrant", "lancedb"])
def test_import_keeps_the_order_ties_break_in(tmp_path, kind):
    from slimvec import Collection, Document
    from slimvec.interop import export_collection, import_records

    same = "Volcanoes emit sulfur dioxide and ash."
    with Collection.create(tmp_path / "a", model="wordllama") as col:
        col.add([Document("beta", same), Document("mid", "Cats sleep on warm windowsills.")])
        col.add([Document("zeta", same), Document("alpha", same)])
        col.upsert([Document("beta", same + " ")])  # replaced: its row now comes after zeta's and alpha's
        expected = [(h.id, h.score) for h in col.search("volcanic gas", k=4)]
        assert [i for i, _ in expected[:3]] == ["zeta", "alpha", "beta"]  # one score, row order
        target = f"{kind}:{tmp_path / ('x.parquet' if kind == 'parquet' else 'x')}"
        export_collection(col, target)
    with import_records(target, tmp_path / "b") as back:
        assert [(h.id, h.score) for h in back.search("volcanic gas", k=4)] == expected


# ---- LangChain relevance scores: the search a call runs decides whether they have a range ---------------------
# The map (1 + s) / 2 looked at the profile's mode only, so mode="bm25" on a dense profile mapped BM25 scores as if
# they were cosines (relevance 0.63 for a BM25 score of 0.25) and score_threshold retrievers cut on that. And a
# float32 cosine of 1 + 1e-7 gave a relevance above 1 (LangChain warns "must be between 0 and 1").

def test_langchain_relevance_scores_refuse_a_per_call_mode_without_a_range(tmp_path):
    import asyncio

    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "lc", model="wordllama")
    store.add_texts(["volcano volcano gas ash", "cats and dogs", "volcano"], ids=["a", "b", "c"])
    store.collection.enable("bm25")
    dense = store.similarity_search_with_score("volcano", k=3)
    relevance = store.similarity_search_with_relevance_scores("volcano", k=3, mode="dense")
    assert [(d.id, min(1.0, (1 + s) / 2)) for d, s in dense] == [(d.id, r) for d, r in relevance]
    assert dense[0][1] > 1.0 and relevance[0][1] == 1.0  # the query's own text: a float32 cosine above 1
    with pytest.raises(NotImplementedError, match="'bm25'"):
        store.similarity_search_with_relevance_scores("volcano", k=3, mode="bm25")
    with pytest.raises(NotImplementedError, match="'bm25'"):
        asyncio.run(store.asimilarity_search_with_relevance_scores("volcano", k=3, mode="bm25"))
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"k": 3, "score_threshold": 0.5, "mode": "bm25"})
    with pytest.raises(NotImplementedError):
        retriever.invoke("volcano")
    store.collection.close()


# ---- import: every refusal names the export it read -----------------------------------------------------------
# The checks of `add_encoded` (a non-finite vector, non-JSON metadata, an id with a newline) reached the user as
# "position 0: id 'a\nb': ..." with no file named, where every other refusal of an import names it.

@pytest.mark.parametrize(("doc_id", "vector_value", "metadata", "problem"), [
    ("a\nb", 0.0625, {}, "control character"),
    ("a ", 0.0625, {}, "leading or trailing whitespace"),
    ("d1", float("nan"), {}, "non-finite"),
    ("d1", 0.0625, {"x": float("nan")}, "non-finite number"),
])
def test_an_import_refusal_names_the_file(tmp_path, doc_id, vector_value, metadata, problem):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from slimvec.errors import IngestError
    from slimvec.interop import import_records
    from slimvec.interop.parquet import _KEY, _schema
    from slimvec.interop.rows import FORMAT, ChunkRecord, meta_json, to_row

    dim = 256  # 256 * 0.0625**2 = 1: unit rows
    row = to_row(ChunkRecord(doc_id, 0, 0, 5, "", "hello", "hello", metadata, np.full(dim, vector_value, np.float32)))
    path = tmp_path / "foreign.parquet"
    meta = meta_json({"format": FORMAT, "model": "wordllama-l2-supercat", "dim": dim}).encode()
    pq.write_table(pa.Table.from_pylist([row], schema=_schema(dim)).replace_schema_metadata({_KEY: meta}), path)
    with pytest.raises(IngestError, match=rf"^parquet:{path}: .*{problem}"):
        import_records(f"parquet:{path}", tmp_path / "c")
    assert not (tmp_path / "c").exists()


# ---- LlamaIndex: its own ref_doc_id field, absent from documents slimvec indexed, means "no match" -----------------
# delete(ref_doc_id) ("none: nothing happens") and a query's doc_ids went through the user-filter check, so on a
# collection indexed by slimvec itself they raised "no document ... has the metadata field 'ref_doc_id' (a misspelt
# field name?)" for a field the user never wrote.

def test_llama_index_ref_doc_id_lookups_on_a_collection_slimvec_indexed(tmp_path, wordllama_docs):
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from slimvec import Collection, Document
    from slimvec.integrations.llama_index import SlimvecVectorStore

    with Collection.create(tmp_path / "c", model="wordllama") as col:
        col.add([Document(i, t, metadata=m) for i, t, m in wordllama_docs])
    store = SlimvecVectorStore(tmp_path / "c")
    store.delete("some-source-document")
    assert sorted(n.node_id for n in store.get_nodes()) == ["1", "d", "d1"]
    assert store.query(VectorStoreQuery(query_str="volcano", similarity_top_k=3, doc_ids=["x"])).ids == []
    assert store.query(VectorStoreQuery(query_str="volcano", similarity_top_k=1)).ids == ["d"]
    store.client.close()


# ---- export of a sharded collection ---------------------------------------------------------------------------
# `slimvec export DIR` on a sharded collection ended in "AttributeError: 'ShardedCollection' object has no attribute
# 'store'" (a traceback); now one line naming the shard directories, which export as plain collections.

def test_export_of_a_sharded_collection_is_one_error_naming_its_shards(tmp_path):
    from slimvec import Collection, Document
    from slimvec.distributed import create_sharded
    from slimvec.errors import ConfigError
    from slimvec.interop import export_collection

    col = create_sharded(tmp_path / "big", shards=2, profile="exact-f32", model="wordllama")
    col.add([Document("d1", "Vitamin D helps bones."), Document("d2", "Volcanoes emit SO2.")])
    with pytest.raises(ConfigError, match=r"sharded collection cannot be exported as one.*shards/000"):
        export_collection(col, f"parquet:{tmp_path / 'x.parquet'}")
    col.close()
    assert not (tmp_path / "x.parquet").exists()
    with Collection.open(tmp_path / "big" / "shards" / "000") as shard:
        assert export_collection(shard, f"parquet:{tmp_path / 's.parquet'}")["documents"] == len(shard)


# ---- framework stores on a sharded collection -----------------------------------------------------------------
# Its directory was refused as "not empty and holds no collection" and an open ShardedCollection ended in
# "TypeError: expected str, bytes or os.PathLike object" (a traceback); now one line saying what it is.

def test_framework_stores_refuse_a_sharded_collection_in_one_line(tmp_path):
    from slimvec import Collection, Document
    from slimvec.distributed import create_sharded
    from slimvec.errors import ConfigError
    from slimvec.integrations.langchain import SlimvecVectorStore as LangChainStore
    from slimvec.integrations.llama_index import SlimvecVectorStore as LlamaIndexStore

    with create_sharded(tmp_path / "big", shards=2, profile="exact-f32", model="wordllama") as col:
        col.add([Document("d1", "Vitamin D helps bones.")])
    for store in (LangChainStore, LlamaIndexStore):
        with pytest.raises(ConfigError, match="holds a sharded collection"):
            store(tmp_path / "big")
        with Collection.open(tmp_path / "big") as sharded:
            with pytest.raises(ConfigError, match="not ShardedCollection"):
                store(sharded)
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["ordinals.db", "shards", "shards.json"]


# ---- framework stores: a NaN vector reaches the collection's finiteness checks ---------------------------------
# `integrations.encoder.normalised` turned a row holding NaN into zeros: a LangChain Embeddings that gave NaN for a
# text had it stored as a zero vector (found by nothing), a NaN query vector searched as zeros and returned hits,
# and a LlamaIndex node with a NaN embedding was refused as "all zeros".

def test_framework_stores_refuse_nan_vectors_by_name(tmp_path):
    import math

    from langchain_core.embeddings import Embeddings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from slimvec.errors import ConfigError, IngestError
    from slimvec.integrations.langchain import SlimvecVectorStore as LangChainStore
    from slimvec.integrations.llama_index import SlimvecVectorStore as LlamaIndexStore

    class NanForBlank(Embeddings):  # an embedding service that answers NaN for a text of only punctuation
        def embed_documents(self, texts):
            return [[math.nan] * 4 if not any(c.isalnum() for c in t) else
                    [1.0 + len(t) % 3, 1.0, 0.5, float(len(t))] for t in texts]

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    lc = LangChainStore(tmp_path / "lc", NanForBlank())
    lc.add_texts(["volcano gas"], ids=["a"])
    with pytest.raises(IngestError, match="non-finite"):
        lc.add_texts(["cats sleep", "..."], ids=["b", "c"])
    assert [d.id for d in lc.get_by_ids(["a", "b", "c"])] == ["a"]
    with pytest.raises(ConfigError, match="finite"):
        lc.similarity_search_by_vector([math.nan] * 4, k=1)
    lc.collection.close()

    li = LlamaIndexStore(tmp_path / "li", embed_model=MockEmbedding(embed_dim=4))
    li.add([TextNode(id_="o", text="hello", embedding=[1.0, 0.0, 0.0, 0.0])])
    with pytest.raises(IngestError, match="non-finite"):
        li.add([TextNode(id_="x", text="hello", embedding=[math.nan] * 4)])
    with pytest.raises(ConfigError, match="finite"):
        li.query(VectorStoreQuery(query_embedding=[math.nan] * 4, similarity_top_k=1))
    assert [n.node_id for n in li.get_nodes()] == ["o"]
    li.client.close()


# ---- Qdrant export: no metadata point among the documents ------------------------------------------------------
# The export metadata was a point with a zero vector: Qdrant's own search returned it as a hit of score 0, above
# every document with a negative score (so not "the same top 10 as slimvec"), and count() counted it.

def test_qdrant_export_holds_only_document_points_and_old_exports_still_read(tmp_path):
    import numpy as np
    from qdrant_client import QdrantClient, models

    from slimvec import Collection, Document
    from slimvec.interop import export_collection, read_records
    from slimvec.interop.qdrant import META_ID, point_id
    from slimvec.interop.rows import meta_json, to_row

    with Collection.create(tmp_path / "a", model="wordllama") as col:
        col.add([Document("a", "Volcanoes emit sulfur dioxide."), Document("b", "Cats sleep on windowsills."),
                 Document("c", "Stock markets fell sharply.")])
        q = col.encoder.encode_queries(["volcanic gas"])[0]
        expected = [(h.id, h.score) for h in col.search_vectors(q, k=3)[0]]
        assert expected[-1][1] < 0  # a document below the zero vector's score
        export_collection(col, f"qdrant:{tmp_path / 'q'}")
    client = QdrantClient(path=str(tmp_path / "q"))
    points = client.query_points("slimvec", query=q.tolist(), limit=10, with_payload=True).points
    assert [p.payload["doc_id"] for p in points] == [i for i, _ in expected]
    assert [p.score for p in points] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert client.count("slimvec").count == 3
    client.close()
    meta, records = read_records(f"qdrant:{tmp_path / 'q'}")
    assert meta["model"] == "wordllama-l2-supercat" and [r.doc_id for r in records] == ["a", "b", "c"]

    # an export written before: the metadata in the payload of point META_ID
    old = QdrantClient(path=str(tmp_path / "old"))
    old.create_collection("slimvec", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    rec = records[0].__class__("d1", 0, 0, 5, "", "hello", "hello", {}, np.full(4, 0.5, np.float32))
    row = to_row(rec)
    old.upsert("slimvec", points=[
        models.PointStruct(id=point_id("d1", 0), vector=row.pop("vector").tolist(), payload=row),
        models.PointStruct(id=META_ID, vector=[0.0] * 4, payload={"slimvec_export": meta_json({**meta, "dim": 4})})])
    old.close()
    meta_old, records_old = read_records(f"qdrant:{tmp_path / 'old'}")
    assert meta_old["dim"] == 4 and [r.doc_id for r in records_old] == ["d1"]


# ---- LangChain add_texts: a bad text, id or metadata is an IngestError naming it ------------------------------
# As documented; a list as metadata ended in "TypeError: cannot convert dictionary update sequence element #0 to
# a sequence", a non-string id in a bare ValueError.

@pytest.mark.parametrize(("texts", "metadatas", "ids", "match"), [
    (["a", "b"], [{}, [1, 2]], ["x", "y"], r"text 1 \(id 'y'\): metadata must be a dict"),
    (["a", "b"], None, ["x", 5], r"text 1: document id must be a non-empty string, got 5"),
    (["a", None], None, ["x", "y"], r"text 1: document 'y': text must be a string"),
])
def test_langchain_add_texts_refuses_a_bad_record_by_name(tmp_path, texts, metadatas, ids, match):
    from slimvec.errors import IngestError
    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "lc", model="wordllama")
    with pytest.raises(IngestError, match=match):
        store.add_texts(texts, metadatas, ids=ids)
    assert len(store.collection) == 0
    store.collection.close()


# ---- LlamaIndex add: nodes with and without embeddings in one all-or-nothing commit ---------------------------
# They were two commits (embedded nodes first): a refused node without embedding left the embedded ones stored,
# and a node id repeated across the two kinds was refused with "nothing from this call was stored" after the
# first had been stored.

def test_llama_index_add_of_mixed_nodes_is_whole_or_nothing(tmp_path):
    from llama_index.core.schema import TextNode

    from slimvec.errors import IngestError
    from slimvec.integrations.llama_index import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "li", model="wordllama")
    given = [0.0625] * 256  # a unit vector the model would not give
    with pytest.raises(IngestError, match="'p1'"):
        store.add([TextNode(id_="e1", text="volcano gas", embedding=given), TextNode(id_="p1", text="   ")])
    with pytest.raises(IngestError, match="'e2' appears twice"):
        store.add([TextNode(id_="e2", text="volcano gas", embedding=given), TextNode(id_="e2", text="cats")])
    assert store.get_nodes() == []
    assert store.add([TextNode(id_="p3", text="cats sleep"), TextNode(id_="e3", text="volcano gas", embedding=given)]
                     ) == ["p3", "e3"]
    hit = store.client.search_vectors(given, k=1)[0][0]
    assert hit.id == "e3" and hit.score == pytest.approx(1.0, abs=1e-6)
    assert store.client.search("cats sleep", k=1)[0].id == "p3"
    store.client.close()


# ---- import into a profile without dense vectors ----------------------------------------------------------------
# `slimvec import ... --profile bm25` ended in "expected 23 vectors of dimension 0, got (23, 256)"; the texts are
# all in the export, so the BM25 index is built from them, as on the exported collection.

def test_import_into_a_bm25_profile_builds_it_from_the_texts(tmp_path, wordllama_docs):
    import shutil

    from slimvec import Collection, Document
    from slimvec.interop import export_collection, import_records

    with Collection.create(tmp_path / "a", model="wordllama") as col:
        col.add([Document(i, t, metadata=m) for i, t, m in wordllama_docs])
        export_collection(col, f"parquet:{tmp_path / 'x.parquet'}")
    shutil.copytree(tmp_path / "a", tmp_path / "same")
    with Collection.open(tmp_path / "same") as same:
        same.enable("bm25")
        expected = [(h.id, h.score) for h in same.search("volcanoes sulfur", k=3, mode="bm25")]
    assert expected and expected[0][0] == "d"
    with import_records(f"parquet:{tmp_path / 'x.parquet'}", tmp_path / "b", profile="bm25") as back:
        assert [(h.id, h.score) for h in back.search("volcanoes sulfur", k=3)] == expected
        assert back.check() == [] and len(back) == 3


# ---- LlamaIndex query: a text mode given only an embedding says what is missing --------------------------------
# mode HYBRID with query_embedding and no query_str was refused as "query has neither an embedding nor a text".

def test_llama_index_text_mode_with_only_an_embedding_names_the_missing_text(tmp_path):
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from slimvec.errors import ConfigError
    from slimvec.integrations.llama_index import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "li", model="wordllama", profile="hybrid")
    store.add([TextNode(id_="a", text="volcano gas"), TextNode(id_="b", text="cats")])
    vector = store.embed_model.get_query_embedding("volcano")
    with pytest.raises(ConfigError, match="'hybrid' runs from the query text: give query_str"):
        store.query(VectorStoreQuery(query_embedding=vector, mode=VectorStoreQueryMode.HYBRID))
    with pytest.raises(ConfigError, match="neither an embedding nor a text"):
        store.query(VectorStoreQuery(mode=VectorStoreQueryMode.HYBRID))
    assert store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=1)).ids == ["a"]
    store.client.close()
