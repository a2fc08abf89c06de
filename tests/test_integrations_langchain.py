"""The LangChain vector store: langchain-tests' standard integration suite (fake 6-d embeddings, as the suite
prescribes), then slimvec's own checks with the real bundled MiniLM (filters, bad filters, reopening)."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from slimvec import Collection
from slimvec.errors import CollectionError, ConfigError, FilterError
from slimvec.integrations.langchain import SlimvecVectorStore, embeddings_encoder


class TestSlimvecStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        store = SlimvecVectorStore(tmp_path / "col", self.get_embeddings())
        try:
            yield store
        finally:
            store.collection.close()



# ---- slimvec's own checks, with the real bundled MiniLM -------------------------------------------------------
DOCS = [
    ("cat", "The cat slept on the warm windowsill, purring in the afternoon sun.", {"topic": "pets", "year": 2019}),
    ("rates", "Stock markets fell sharply after the central bank raised interest rates.",
     {"topic": "finance", "year": 2021}),
    ("volcano", "The volcano erupted, sending ash and sulfur dioxide high into the atmosphere.",
     {"topic": "geology", "year": 2022}),
    ("dog", "Dogs need daily walks, regular meals and yearly visits to the veterinarian.",
     {"topic": "pets", "year": 2023, "tags": ["dogs", "care"]}),
]
CAT_QUERY = "a cat sleeping in the sunshine on a windowsill"


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory):
    """A directory holding a collection of DOCS (default model), built once through the LangChain store."""
    path = tmp_path_factory.mktemp("lc") / "col"
    store = SlimvecVectorStore(path)
    ids = store.add_texts([t for _, t, _ in DOCS], [m for _, _, m in DOCS], ids=[i for i, _, _ in DOCS])
    assert ids == [i for i, _, _ in DOCS]
    store.collection.close()
    return path


@pytest.fixture()
def minilm_store(minilm_dir):
    store = SlimvecVectorStore(minilm_dir)
    yield store
    store.collection.close()


def test_slimvec_encodes_by_default_and_a_filter_removes_the_best_hit(minilm_store):
    assert minilm_store.collection.manifest["model"] == "bge-small-en-v1.5"  # the default model
    assert [d.id for d in minilm_store.similarity_search(CAT_QUERY, k=4)][0] == "cat"
    # The cat document is from 2019: excluding it leaves the other pets document on top.
    hits = minilm_store.similarity_search(CAT_QUERY, k=4, filter={"year": {"$gte": 2020}})
    assert [d.id for d in hits][0] == "dog" and "cat" not in {d.id for d in hits}
    assert len(hits) == 3
    assert hits[0].page_content == DOCS[3][1] and hits[0].metadata == DOCS[3][2]


def test_filter_language_operators_reach_the_search(minilm_store):
    def ids(flt):
        return {d.id for d in minilm_store.similarity_search(CAT_QUERY, k=10, filter=flt)}

    assert ids({"topic": "pets"}) == {"cat", "dog"}  # the plain dict form
    assert ids({"topic": {"$in": ["finance", "geology"]}}) == {"rates", "volcano"}
    assert ids({"$or": [{"year": 2019}, {"tags": "care"}]}) == {"cat", "dog"}
    assert ids({"$not": {"topic": "pets"}, "year": {"$lt": 2022}}) == {"rates"}
    assert ids({"tags": {"$exists": True}}) == {"dog"}
    assert ids({"_id": {"$nin": ["cat", "dog"]}}) == {"rates", "volcano"}


@pytest.mark.parametrize("flt,match", [
    ({"year": {"$regex": "20"}}, "unknown operator '\\$regex'"),
    ({"$where": "1"}, "unknown operator"),
    ({"year": "2021"}, "stored as number"),  # matches nothing because of its type: said, not silent
    ("year > 2020", "must be a dict"),
])
def test_a_filter_slimvec_cannot_compile_raises(minilm_store, flt, match):
    with pytest.raises(FilterError, match=match):
        minilm_store.similarity_search(CAT_QUERY, k=2, filter=flt)


def test_an_unknown_search_keyword_is_refused_not_ignored(minilm_store):
    with pytest.raises(ConfigError, match="where"):
        minilm_store.similarity_search(CAT_QUERY, k=2, where={"topic": "pets"})  # Chroma's keyword


def test_retriever_scores_and_vector_search(minilm_store):
    retriever = minilm_store.as_retriever(search_kwargs={"k": 2, "filter": {"topic": "pets"}})
    assert [d.id for d in retriever.invoke("walking a dog and feeding it")] == ["dog", "cat"]
    scored = minilm_store.similarity_search_with_relevance_scores(CAT_QUERY, k=4)
    assert scored[0][0].id == "cat" and all(0.0 <= s <= 1.0 for _, s in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    thresholded = minilm_store.as_retriever(search_type="similarity_score_threshold",
                                            search_kwargs={"score_threshold": scored[0][1] - 1e-6})
    assert [d.id for d in thresholded.invoke(CAT_QUERY)] == ["cat"]
    vec = minilm_store.embeddings.embed_query(CAT_QUERY)
    assert len(vec) == 384
    assert minilm_store.similarity_search_by_vector(vec, k=1)[0].id == "cat"


def test_mmr_skips_a_near_duplicate_that_plain_similarity_returns(tmp_path):
    store = SlimvecVectorStore(tmp_path / "col")
    store.add_texts([t for _, t, _ in DOCS] + ["The cat slept on the warm windowsill, purring in the sun."],
                    [m for _, _, m in DOCS] + [{"topic": "pets", "year": 2020}], ids=[i for i, _, _ in DOCS] + ["cat2"])
    assert {d.id for d in store.similarity_search(CAT_QUERY, k=2)} == {"cat", "cat2"}
    mmr = store.max_marginal_relevance_search(CAT_QUERY, k=2, fetch_k=5, lambda_mult=0.3)
    assert mmr[0].id in {"cat", "cat2"} and mmr[1].id not in {"cat", "cat2"}
    assert [d.id for d in store.as_retriever(search_type="mmr", search_kwargs={
        "k": 1, "fetch_k": 5, "filter": {"year": {"$gte": 2021}}}).invoke(CAT_QUERY)] == ["dog"]
    store.collection.close()


def test_reopening_the_directory_keeps_documents_and_metadata(minilm_dir):
    store = SlimvecVectorStore(minilm_dir)
    try:
        got = store.get_by_ids(["volcano", "missing", "rates"])
        assert [(d.id, d.page_content, d.metadata) for d in got] == [(i, t, m) for i, t, m in (DOCS[2], DOCS[1])]
        assert len(store.collection) == len(DOCS)
    finally:
        store.collection.close()
    with pytest.raises(ConfigError, match="created with profile='exact-f32', not 'hybrid'"):
        SlimvecVectorStore(minilm_dir, profile="hybrid")  # would otherwise be silently ignored
    same = SlimvecVectorStore(minilm_dir, profile="exact-f32", chunk_mode="tokens")  # what it was created with
    same.collection.close()
    col = Collection.open(minilm_dir)
    try:
        assert SlimvecVectorStore(col).similarity_search("volcanic ash", k=1)[0].id == "volcano"
    finally:
        col.close()


async def test_async_search_and_delete_with_minilm(tmp_path):
    store = await SlimvecVectorStore.afrom_texts([t for _, t, _ in DOCS], None, [m for _, _, m in DOCS],
                                                 ids=[i for i, _, _ in DOCS], collection=tmp_path / "col")
    hits = await store.asimilarity_search(CAT_QUERY, k=1, filter={"topic": "pets"})
    assert [d.id for d in hits] == ["cat"]
    await store.adelete(["cat"])
    assert [d.id for d in await store.asimilarity_search(CAT_QUERY, k=1, filter={"topic": "pets"})] == ["dog"]
    store.delete()  # ids=None: every document
    assert store.similarity_search(CAT_QUERY, k=1) == [] and len(store.collection) == 0
    store.collection.close()


# ---- LangChain embeddings instead of slimvec's model -----------------------------------------------------------
def test_langchain_embeddings_are_recorded_and_required_on_reopen(tmp_path):
    path = tmp_path / "col"
    fake = DeterministicFakeEmbedding(size=6)
    store = SlimvecVectorStore.from_texts(["foo", "bar"], fake, [{"n": 1}, {"n": 2}], ids=["1", "2"], collection=path)
    assert store.collection.manifest["model"] == "langchain:DeterministicFakeEmbedding"
    assert store.collection.manifest["dim"] == 6 and store.embeddings is fake
    store.collection.close()
    with pytest.raises(ConfigError, match="pass the same embeddings"):
        SlimvecVectorStore(path)
    with pytest.raises(CollectionError, match="built with model 'langchain:DeterministicFakeEmbedding'"):
        SlimvecVectorStore(path, fake, embedding_name="other")
    with pytest.raises(CollectionError, match="6-d"):
        SlimvecVectorStore(path, DeterministicFakeEmbedding(size=8))
    again = SlimvecVectorStore(path, fake)
    assert again.similarity_search("bar", k=2) == [Document(id="2", page_content="bar", metadata={"n": 2}),
                                                   Document(id="1", page_content="foo", metadata={"n": 1})]
    again.collection.close()
    col = Collection.open(path, encoder=embeddings_encoder(fake))  # the same collection through slimvec itself
    try:
        assert [h.id for h in col.search("foo", k=1)] == ["1"]
    finally:
        col.close()


def test_bad_documents_store_nothing(tmp_path):
    store = SlimvecVectorStore(tmp_path / "col", DeterministicFakeEmbedding(size=6))
    from slimvec.errors import IngestError

    with pytest.raises(IngestError, match="not JSON-serialisable"):
        store.add_texts(["ok", "bad"], [{}, {"when": object()}], ids=["a", "b"])
    with pytest.raises(ValueError, match="2 texts, 1 metadatas"):
        store.add_texts(["x", "y"], [{}])
    with pytest.raises(ConfigError, match="not both"):
        SlimvecVectorStore(tmp_path / "other", DeterministicFakeEmbedding(size=6), model="all-MiniLM-L6-v2")
    assert len(store.collection) == 0
    store.collection.close()


@pytest.mark.parametrize("module,top,extra", [("slimvec.integrations.langchain", "langchain_core", "langchain"),
                                              ("slimvec.integrations.llama_index", "llama_index", "llama-index")])
def test_the_package_imports_no_framework_and_a_missing_extra_is_named(module, top, extra):
    import json
    import subprocess
    import sys

    code = ("import sys, json\nimport slimvec, slimvec.integrations\n"
            "print(json.dumps([m for m in ('langchain_core', 'llama_index') if m in sys.modules]))\n"
            f"sys.modules[{top!r}] = None\nfrom slimvec.errors import ConfigError\n"
            f"try:\n    import {module}\nexcept ConfigError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    loaded, line = res.stdout.strip().split("\n")
    assert json.loads(loaded) == []
    assert line.startswith(f"{top} is not installed") and line.endswith(f"pip install 'slimvec[{extra}]'")
