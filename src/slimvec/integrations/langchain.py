"""A LangChain `VectorStore` on a slimvec collection (extra `slimvec[langchain]`, langchain-core).

    store = SlimvecVectorStore("my-collection")            # slimvec's own model (MiniLM), its prompts
    store.add_texts(["..."], metadatas=[{"year": 2021}])
    store.similarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    store.as_retriever(search_kwargs={"k": 3}).invoke("query")

Filters are slimvec's filter language (`slimvec.store.filters`: $eq $ne $in $nin $gt $gte $lt $lte $exists
$and $or $not, dotted paths, `_id`); the plain `{"field": value}` dicts LangChain users pass are part of it.
A filter slimvec cannot compile raises `FilterError`; an unknown search keyword raises `ConfigError`: neither
is ignored. Maximal marginal relevance (`search_type="mmr"`) re-embeds the fetched candidates' texts. Async
methods are langchain-core's defaults (the sync method in an executor thread; a
`Collection` serialises its own writes and searches).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimvec.collection import Collection
from slimvec.documents import Document as SlimDocument
from slimvec.documents import Hit
from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError, FilterError, IngestError
from slimvec.extras import require
from slimvec.integrations.encoder import FunctionEncoder, normalised
from slimvec.integrations.opening import open_or_create

require("langchain_core")

from langchain_core.documents import Document  # noqa: E402  (after the one-line missing-extra check)
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402

NAME_PREFIX = "langchain:"  # manifests of collections whose vectors come from a LangChain Embeddings


def embeddings_encoder(embedding: Embeddings, name: str | None = None, dim: int | None = None) -> FunctionEncoder:
    """A slimvec `Encoder` over a LangChain `Embeddings` (recorded as "langchain:NAME", default its class name).

    Pass it as `encoder=` to `Collection.create` / `Collection.open` to build or open such a collection yourself.
    """
    return FunctionEncoder(NAME_PREFIX + (name or type(embedding).__name__), embedding.embed_documents,
                           embedding.embed_query, dim)


class SlimvecEmbeddings(Embeddings):
    """LangChain `Embeddings` over a slimvec `Encoder`: documents with its document prompt, queries with its query
    prompt; vectors as lists of floats, L2-normalised, of the encoder's dimension."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, as the collection encodes its documents."""
        return self.encoder.encode_documents(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query, as the collection encodes queries."""
        return self.encoder.encode_queries([text])[0].tolist()


class SlimvecVectorStore(VectorStore):
    """LangChain vector store backed by a slimvec `Collection` (one directory, SQLite + vectors on disk).

    collection: a directory (opened if it holds a collection, else created with `create_options`, e.g.
    `profile="hybrid"`, `model=...`) or an open `Collection`. embedding: None to let slimvec encode documents
    and queries with the collection's own model and prompts; a LangChain `Embeddings` to use it instead (the
    collection then keeps one vector per document, chunk mode "whole", and records "langchain:" +
    `embedding_name` as its model; reopening needs the same embeddings). Scores are the collection's search
    scores: cosine similarity in [-1, 1] for dense search.

    Raises ConfigError when an open Collection is given together with `embedding` (open it with
    `encoder=embeddings_encoder(embedding)` instead), or when a collection built on LangChain embeddings is
    opened without them; CollectionError when the embeddings differ from those the collection was built with.
    """

    def __init__(self, collection: str | Path | Collection, embedding: Embeddings | None = None, *,
                 embedding_name: str | None = None, **create_options: Any) -> None:
        self._embedding = embedding
        if isinstance(collection, Collection):
            if embedding is not None or create_options:
                raise ConfigError("an open Collection keeps its own encoder: pass its directory with embedding= "
                                  "or open it with Collection.open(path, encoder=embeddings_encoder(embedding))")
            self.collection = collection
        else:
            self.collection = _open_or_create(collection, embedding, embedding_name, create_options)
        model = str(self.collection.manifest["model"])
        if embedding is None and model.startswith(NAME_PREFIX) and not isinstance(collection, Collection):
            self.collection.close()
            raise ConfigError(f"{collection}: collection was built with LangChain embeddings {model!r}; "
                              "pass the same embeddings as embedding=")

    # ---- writing ---------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Add or replace (by id) texts with their metadata (JSON objects); returns the ids, generated
        (uuid4 hex) where none is given. One all-or-nothing call: raises IngestError naming a bad document
        (non-JSON metadata, empty text, invalid id) with nothing stored, ValueError for mismatched lengths."""
        if kwargs:
            raise ConfigError(f"add_texts: unknown keyword(s) {', '.join(sorted(kwargs))}")
        # One string (or one metadata dict) where a list is meant would be iterated: "hello" added as five
        # documents "h", "e", ..., ids="abc" naming three documents "a", "b", "c", a dict read as its keys.
        for name, value, of in (("texts", texts, "strings"), ("metadatas", metadatas, "dicts"), ("ids", ids, "strings")):
            if isinstance(value, (str, bytes, dict)):
                raise TypeError(f"add_texts: {name} must be a list of {of}, not one {type(value).__name__}; "
                                "nothing was stored")
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        given = list(ids) if ids is not None else [None] * len(texts)
        if len(metadatas) != len(texts) or len(given) != len(texts):
            raise ValueError(f"got {len(texts)} texts, {len(metadatas)} metadatas and {len(given)} ids")
        out = [i if i is not None else uuid.uuid4().hex for i in given]
        docs = []
        for n, (i, t, m) in enumerate(zip(out, texts, metadatas)):
            if m is not None and not isinstance(m, dict):  # dict([1, 2]) says "dictionary update sequence element"
                raise IngestError(f"text {n} (id {i!r}): metadata must be a dict (a JSON object), not "
                                  f"{type(m).__name__}; nothing from this call was stored")
            try:
                docs.append(SlimDocument(i, t, "", dict(m or {})))
            except ValueError as e:
                raise IngestError(f"text {n}: {e}; nothing from this call was stored") from None
        self.collection.upsert(docs)
        return out

    def delete(self, ids: list[str] | None = None, filter: dict[str, Any] | None = None,
               **kwargs: Any) -> bool | None:
        """Delete documents by id (unknown ids are ignored), or those matching `filter` (slimvec's filter language,
        in one transaction: `Collection.delete`); neither deletes every document. Returns True."""
        if kwargs:
            raise ConfigError(f"delete: unknown keyword(s) {', '.join(sorted(kwargs))}")
        if filter is not None:
            _check_filter(filter)
            self.collection.delete(_id_list(ids) if ids is not None else None, filter=filter)
            return True
        if ids is None:
            # Under the collection's lock: a compaction through another thread closes the store this reads.
            with self.collection.reading():
                ids = [d["id"] for d in self.collection.store.iter_documents()]
        self.collection.delete(_id_list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order given; unknown ids are left out. One id given as a
        plain string is that id (never its characters)."""
        out = []
        for i in _id_list(ids):
            d = self.collection.get(i)
            if d is not None:
                out.append(Document(id=d.id, page_content=d.text, metadata=_metadata(d.metadata, d.title)))
        return out

    # ---- searching -------------------------------------------------------------------------
    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                          **kwargs: Any) -> list[Document]:
        """The k best documents for `query` (see `similarity_search_with_score`)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, score) for the k best documents, best first, scored as `Collection.search` scores them.

        filter: slimvec's filter language. Other keywords are `Collection.search` options (mode, rerank,
        min_relevance, ...). Raises FilterError for a filter slimvec cannot compile, ConfigError for an unknown
        option. A document's page_content is its whole stored text (the hit's best chunk decided its rank).
        """
        _check_filter(filter)
        return self._documents(self.collection.search(query, k=k, filter=filter, **kwargs))

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None,
                                    **kwargs: Any) -> list[Document]:
        """The k best documents for a query vector of the collection's dimension (normalised here; dense search)."""
        if kwargs:
            raise ConfigError(f"similarity_search_by_vector: unknown keyword(s) {', '.join(sorted(kwargs))}")
        _check_filter(filter)
        # The store's embeddings are the model the collection records (checked at open): said, so that during a
        # migration to a model of the same dimension they are not taken for the other model's.
        hits = self.collection.search_vectors(normalised(embedding), k=k, filter=filter,
                                              model=self.collection.manifest["model"])[0]
        return [doc for doc, _ in self._documents(hits)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        """k documents chosen by maximal marginal relevance (Carbonell & Goldstein, 1998; langchain-core's
        `maximal_marginal_relevance`) among the fetch_k best of a dense search for the query's embedding."""
        return self.max_marginal_relevance_search_by_vector(self.embeddings.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: dict[str, Any] | None = None,
                                                **kwargs: Any) -> list[Document]:
        """MMR over the fetch_k best documents for a query vector. The candidates' vectors are their whole texts
        embedded again by `self.embeddings` (a slimvec document scores by its best chunk; MMR compares documents),
        so this costs fetch_k document embeddings per call."""
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        candidates = self.similarity_search_by_vector(embedding, k=fetch_k, filter=filter, **kwargs)
        if not candidates:
            return []
        vectors = normalised(np.asarray(self.embeddings.embed_documents([d.page_content for d in candidates])))
        picked = maximal_marginal_relevance(normalised(np.asarray(embedding)), list(vectors), lambda_mult, k)
        return [candidates[i] for i in picked]

    def _documents(self, hits: list[Hit]) -> list[tuple[Document, float]]:
        out = []
        for h in hits:
            d = self.collection.get(h.id)
            if d is not None:  # deleted by another writer since the search
                out.append((Document(id=d.id, page_content=d.text, metadata=_metadata(d.metadata, d.title)),
                            float(h.score)))
        return out

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, relevance in [0, 1]) for the k best documents: `similarity_search_with_score` with the
        scores mapped by `_select_relevance_score_fn` for the search this call runs (its `mode` and `rerank`
        keywords over the profile's)."""
        relevance = self._relevance_fn(kwargs.get("mode"), kwargs.get("rerank"))
        return [(doc, relevance(score)) for doc, score in self.similarity_search_with_score(query, k, **kwargs)]

    async def _asimilarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                        **kwargs: Any) -> list[tuple[Document, float]]:
        """The async twin of `_similarity_search_with_relevance_scores` (same mode check)."""
        relevance = self._relevance_fn(kwargs.get("mode"), kwargs.get("rerank"))
        return [(doc, relevance(score)) for doc, score in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity s in [-1, 1] -> relevance (1 + s) / 2 in [0, 1]; other modes' scores have no fixed
        range (use min_relevance with a calibration instead)."""
        return self._relevance_fn(None, None)

    def _relevance_fn(self, mode: str | None, rerank: Any) -> Callable[[float], float]:
        """The relevance map of a search in `mode` with `rerank` (None: the profile's); raises NotImplementedError
        for scores without a fixed range (BM25, SPLADE, fused, cross-encoder)."""
        prof = self.collection.manifest.get("profile") or {}
        mode, rerank = mode or prof.get("mode") or "dense", rerank or prof.get("rerank") or "none"
        if mode != "dense" or rerank not in ("none", "dense"):
            raise NotImplementedError(f"search mode {mode!r} with reranker {rerank!r} gives scores without a fixed "
                                      "range; use min_relevance='auto' with a fitted calibration")
        return lambda s: min(1.0, max(0.0, (1.0 + s) / 2.0))  # float32 cosines reach 1 + 1e-7

    # ---- LangChain plumbing -----------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        """The embeddings in use: those given, else `SlimvecEmbeddings` over the collection's own encoder."""
        return self._embedding if self._embedding is not None else SlimvecEmbeddings(self.collection.encoder)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                   collection: str | Path | None = None, **kwargs: Any) -> "SlimvecVectorStore":
        """A store on directory `collection` (required; created or opened, `kwargs` as in the constructor) with
        `texts` added."""
        if collection is None:
            raise ConfigError("from_texts needs collection=<directory> (where the collection lives)")
        store = cls(collection, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _open_or_create(path: str | Path, embedding: Embeddings | None, name: str | None,
                    options: dict[str, Any]) -> Collection:
    if embedding is None:
        return open_or_create(path, None, options)
    if "model" in options or "encoder" in options:
        raise ConfigError("give either embedding= (LangChain) or model= (slimvec), not both")
    # the encoder probes the dimension with one call, so embeddings of another size are refused on reopening
    return open_or_create(path, embeddings_encoder(embedding, name), options, {"chunk_mode": "whole"})


def _id_list(ids: Any) -> list[Any]:
    """`ids` as a list; one id given as a plain string is that id, as `Collection.delete` reads it (list("d1")
    would be the ids "d" and "1": nothing deleted or found, or other documents deleted)."""
    return [ids] if isinstance(ids, str) else list(ids)


def _check_filter(flt: Any) -> None:
    if flt is not None and not isinstance(flt, dict):
        raise FilterError(f"filter must be a dict in slimvec's filter language (e.g. {{\"year\": {{\"$gte\": 2020}}}}), "
                          f"not {type(flt).__name__}")


def _metadata(meta: dict[str, Any], title: str) -> dict[str, Any]:
    """The stored metadata; a slimvec title (documents indexed by slimvec itself) appears as "title"."""
    if title and "title" not in meta:
        return {**meta, "title": title}
    return meta
