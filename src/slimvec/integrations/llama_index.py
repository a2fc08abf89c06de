"""A LlamaIndex vector store on a slimvec collection (extra `slimvec[llama-index]`, llama-index-core).

    store = SlimvecVectorStore("my-collection")                # slimvec's own model (MiniLM), its prompts
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=store.embed_model)
    index.as_retriever(filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2020,
                                                                       operator=FilterOperator.GTE)]))

Each node is one slimvec document (id = node id, text = node text, metadata = the node's metadata plus
LlamaIndex's `_node_content`, `ref_doc_id`...), stored with the embedding LlamaIndex computed for it, or
encoded by the collection's model when it comes without one. MetadataFilters become slimvec filters
(EQ NE GT GTE LT LTE IN NIN; AND / OR / NOT, nested); any other operator raises FilterError, never ignored.
Query modes: DEFAULT, HYBRID, TEXT_SEARCH, SPARSE (slimvec's modes of the same meaning) and MMR.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.collection import Collection
from slimvec.documents import Chunk
from slimvec.documents import Document as SlimDocument
from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import load_encoder
from slimvec.errors import ConfigError, FilterError
from slimvec.extras import require
from slimvec.integrations.encoder import FunctionEncoder, normalised
from slimvec.integrations.opening import open_or_create
from slimvec.records import plain_metadata
from slimvec.search.plan import stored_fusion
from slimvec.store.filters import quote_key

require("llama_index.core")

from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402  (after the missing-extra check)
from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.schema import BaseNode, MetadataMode, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict  # noqa: E402

NAME_PREFIX = "llama-index:"  # manifests of collections whose vectors come from a LlamaIndex embedding model
_OPERATORS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
              FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
              FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}
# Keywords of mode MMR, named as LlamaIndex's other vector stores name them (vector_store_kwargs of a retriever).
_MMR_KEYWORDS = ("mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor")
DEFAULT_MMR_PREFETCH_FACTOR = 4.0
# LlamaIndex query modes slimvec runs from the query text, as its own search modes of the same meaning.
_MODES = {VectorStoreQueryMode.DEFAULT: None, VectorStoreQueryMode.HYBRID: "hybrid",
          VectorStoreQueryMode.TEXT_SEARCH: "bm25", VectorStoreQueryMode.SPARSE: "sparse"}


class SlimvecEmbedding(BaseEmbedding):
    """LlamaIndex embedding model over a slimvec `Encoder` (default: the bundled all-MiniLM-L6-v2, no download):
    texts with its document prompt, queries with its query prompt; L2-normalised lists of floats."""

    _encoder: Encoder = PrivateAttr()

    def __init__(self, encoder: Encoder | None = None, **kwargs: Any) -> None:
        encoder = encoder or load_encoder()
        super().__init__(model_name=encoder.name, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "SlimvecEmbedding"

    @property
    def encoder(self) -> Encoder:
        """The slimvec encoder behind this model."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_queries([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode_documents(list(texts)).tolist()


def embedding_encoder(embed_model: BaseEmbedding, name: str | None = None) -> FunctionEncoder:
    """A slimvec `Encoder` over a LlamaIndex embedding model, recorded as "llama-index:NAME" (default its
    model_name); pass it as `encoder=` to `Collection.create` / `Collection.open`."""
    return FunctionEncoder(NAME_PREFIX + (name or embed_model.model_name), embed_model.get_text_embedding_batch,
                           embed_model.get_query_embedding)


def to_slimvec_filter(filters: MetadataFilters | None) -> dict[str, Any]:
    """slimvec filter (see slimvec.store.filters) for LlamaIndex MetadataFilters; {} for none.

    EQ NE GT GTE LT LTE IN NIN map to $eq $ne $gt $gte $lt $lte $in $nin (an array-valued field matches $eq/$in
    when any element does); AND / OR to $and / $or; NOT to "none of them" ($not over $or), as LlamaIndex's own
    simple store reads it. Raises FilterError naming any other operator or condition.
    """
    if filters is None or not filters.filters:
        return {}
    parts = [to_slimvec_filter(f) if isinstance(f, MetadataFilters) else _leaf(f) for f in filters.filters]
    parts = [p for p in parts if p]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if condition == FilterCondition.OR:
        return parts[0] if len(parts) == 1 else {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    raise FilterError(f"filter condition {condition!r} is not supported (and, or, not)")


def _leaf(f: MetadataFilter) -> dict[str, Any]:
    op = _OPERATORS.get(FilterOperator(f.operator))
    if op is None:
        supported = ", ".join(o.name for o in _OPERATORS)
        raise FilterError(f"filter on {f.key!r}: operator {FilterOperator(f.operator).name} is not supported by "
                          f"slimvec ({supported})")
    if op in ("$in", "$nin") and not isinstance(f.value, list):
        raise FilterError(f"filter on {f.key!r}: {FilterOperator(f.operator).name} takes a list of values")
    return {quote_key(f.key): {op: f.value}}  # LlamaIndex keys are flat: a dot is part of the key


class SlimvecVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store backed by a slimvec `Collection` (one directory, SQLite + vectors on disk).

    collection: a directory (opened, or created with `create_options` such as `profile="hybrid"`) or an open
    `Collection`. embed_model: None (or a `SlimvecEmbedding`) for slimvec's own model: queries then go to slimvec
    as text (`is_embedding_query` False), encoded with its query prompt and run in the profile's search mode;
    another LlamaIndex embedding model to use it instead (recorded as "llama-index:" + its model_name, one
    vector per node; reopening needs the same model). Pass `store.embed_model` to `VectorStoreIndex` so nodes
    are embedded by the model the collection holds. Node ids already stored are refused (IngestError) when
    nodes arrive with embeddings; delete first (LlamaIndex's refresh does).
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    _collection: Collection = PrivateAttr()
    _embed_model: BaseEmbedding = PrivateAttr()

    def __init__(self, collection: str | Path | Collection, embed_model: BaseEmbedding | None = None,
                 **create_options: Any) -> None:
        own = embed_model is None or isinstance(embed_model, SlimvecEmbedding)
        super().__init__(stores_text=True, is_embedding_query=not own)
        if isinstance(collection, Collection):
            if embed_model is not None or create_options:
                raise ConfigError("an open Collection keeps its own encoder: pass its directory with embed_model= "
                                  "or open it with Collection.open(path, encoder=embedding_encoder(model))")
            col = collection
        elif "model" in create_options and embed_model is not None:
            raise ConfigError("give either embed_model= (LlamaIndex) or model= (slimvec), not both")
        elif own:
            enc = embed_model.encoder if isinstance(embed_model, SlimvecEmbedding) else None
            col = open_or_create(collection, enc, create_options)
        else:
            col = open_or_create(collection, embedding_encoder(embed_model), create_options,
                                 {"chunk_mode": "whole"})
        model = str(col.manifest["model"])
        if own and model.startswith(NAME_PREFIX) and not isinstance(collection, Collection):
            col.close()
            raise ConfigError(f"{collection}: collection was built with LlamaIndex embedding model {model!r}; "
                              "pass the same model as embed_model=")
        self._collection = col
        self._embed_model = embed_model if not own else SlimvecEmbedding(col.encoder)

    @classmethod
    def class_name(cls) -> str:
        return "SlimvecVectorStore"

    @property
    def client(self) -> Collection:
        """The slimvec Collection."""
        return self._collection

    @property
    def embed_model(self) -> BaseEmbedding:
        """The embedding model of the collection's vectors, to give `VectorStoreIndex(embed_model=...)`."""
        return self._embed_model

    # ---- writing ---------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes: with their embeddings where LlamaIndex computed them (float32, normalised, one chunk per
        node), else encoded by the collection's model; in one all-or-nothing commit. Returns the node ids. Raises
        IngestError (nothing stored) for a node id repeated or already stored, non-JSON metadata or an empty
        text; ConfigError for embeddings of another dimension."""
        if kwargs:
            raise ConfigError(f"add: unknown keyword(s) {', '.join(sorted(kwargs))}")
        docs = [_document(n) for n in nodes]
        if all(n.embedding is None for n in nodes):
            self._collection.add(docs)
            return [n.node_id for n in nodes]
        # Nodes without an embedding are chunked and encoded first, without writing, so that both kinds go in one
        # add_encoded commit (two commits left the embedded nodes stored when the others were refused).
        plain = [d for d, n in zip(docs, nodes) if n.embedding is None]
        cut, encoded = self._collection.chunk_and_encode(plain) if plain else ([], None)
        by_doc: dict[str, list[int]] = {}
        for i, c in enumerate(cut):
            by_doc.setdefault(c.doc_id, []).append(i)
        chunks, rows, dim = [], [], int(self._collection.manifest["dim"])
        for d, n in zip(docs, nodes):
            if n.embedding is not None and len(n.embedding) != dim:
                raise ConfigError(f"node {n.node_id!r}: an embedding of dimension {len(n.embedding)}; this collection "
                                  f"holds vectors of dimension {dim}")
            if n.embedding is not None:
                chunks.append(Chunk(d.id, 0, 0, len(d.text), d.text))
                rows.append(normalised(np.asarray(n.embedding, dtype=np.float32)))
            else:
                chunks += [cut[i] for i in by_doc.get(d.id, [])]
                rows += [encoded[i] for i in by_doc.get(d.id, [])]
        self._collection.add_encoded(docs, chunks, np.stack(rows))
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of source document `ref_doc_id` (none: nothing happens)."""
        if delete_kwargs:
            raise ConfigError(f"delete: unknown keyword(s) {', '.join(sorted(delete_kwargs))}")
        self._collection.delete(self._ids({"ref_doc_id": ref_doc_id}, strict=False))

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete the nodes with these ids and/or matching these filters (both given: those that are both)."""
        if delete_kwargs:
            raise ConfigError(f"delete_nodes: unknown keyword(s) {', '.join(sorted(delete_kwargs))}")
        self._collection.delete(self._selected(node_ids, filters))

    def clear(self) -> None:
        """Delete every node."""
        with self._collection.reading():  # see _ids
            ids = [d["id"] for d in self._collection.store.iter_documents()]
        self._collection.delete(ids)

    # ---- reading ---------------------------------------------------------------------------
    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Stored nodes with these ids and/or matching these filters, in the order of `node_ids` when given."""
        out = []
        for i in self._selected(node_ids, filters):
            d = self._collection.get(i)
            if d is not None:
                out.append(_node(d.id, d.text, d.metadata))
        return out

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The `similarity_top_k` best nodes: by `query_embedding` (dense search) when given, else by `query_str`
        (slimvec encodes it; DEFAULT runs the profile's mode, HYBRID / TEXT_SEARCH / SPARSE slimvec's hybrid /
        bm25 / sparse, which the collection must keep; in HYBRID, `alpha` weighs dense against BM25 and
        `hybrid_top_k` sets how many nodes return). Similarities are slimvec's scores (cosine for dense).
        Raises FilterError for a filter it cannot translate, ConfigError for another query mode or a query
        with neither embedding nor text."""
        mmr = {k: kwargs.pop(k) for k in _MMR_KEYWORDS if k in kwargs}
        if kwargs or (mmr and query.mode != VectorStoreQueryMode.MMR):
            raise ConfigError(f"query: unknown keyword(s) {', '.join(sorted(kwargs or mmr))}"
                              + ("" if kwargs else f" (they apply to mode {VectorStoreQueryMode.MMR.value!r})"))
        if query.mode not in _MODES and query.mode != VectorStoreQueryMode.MMR:
            raise ConfigError(f"query mode {query.mode.value!r} is not supported by slimvec "
                              f"({', '.join(m.value for m in (*_MODES, VectorStoreQueryMode.MMR))})")
        k, fusion = _hybrid_fields(query)
        if "fusion_weights" in fusion and stored_fusion(self._collection.manifest.get("profile") or {}) == "rrf":
            # said of alpha, the field the caller gave, not of the fusion_weights it becomes (which no one gave)
            raise ConfigError("query: alpha weighs vector against text scores, and this collection's profile fuses "
                              "the two rankings by rank (fusion 'rrf'), which takes no weights: leave alpha out, or "
                              "use a collection whose profile fuses by 'softmax' (the default) or 'weighted'")
        of_docs = None  # the node ids of the source documents `doc_ids` (LlamaIndex's field, not the user's)
        doc_ids, node_ids = _id_list(query.doc_ids), _id_list(query.node_ids)
        if doc_ids:
            of_docs = self._ids({"ref_doc_id": {"$in": doc_ids}}, strict=False)
            if not of_docs:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        flt = _restricted(to_slimvec_filter(query.filters), of_docs, node_ids)
        if query.mode == VectorStoreQueryMode.MMR:
            return self._mmr(query, flt, **mmr)
        mode = _MODES[query.mode]
        if query.query_embedding is not None and mode is None:
            # the collection's recorded model (checked at open): during a migration, not the new model's
            hits = self._collection.search_vectors(normalised(query.query_embedding), k=k, filter=flt or None,
                                                   model=self._collection.manifest["model"])[0]
        elif query.query_str:
            extra = {"mode": mode, **fusion} if mode else {}
            hits = self._collection.search(query.query_str, k=k, filter=flt or None, **extra)
        elif query.query_embedding is not None:  # HYBRID / TEXT_SEARCH / SPARSE with an embedding only
            raise ConfigError(f"query mode {query.mode.value!r} runs from the query text: give query_str (an "
                              "embedding alone serves the default mode)")
        else:
            raise ConfigError("query has neither an embedding nor a text (query_str)")
        nodes, scores, ids = [], [], []
        for h in hits:
            d = self._collection.get(h.id)
            if d is not None:  # deleted by another writer since the search
                nodes.append(_node(d.id, d.text, d.metadata))
                scores.append(float(h.score))
                ids.append(d.id)
        return VectorStoreQueryResult(nodes=nodes, similarities=scores, ids=ids)

    def _mmr(self, query: VectorStoreQuery, flt: dict[str, Any], mmr_threshold: float | None = None,
             mmr_prefetch_k: int | None = None, mmr_prefetch_factor: float = DEFAULT_MMR_PREFETCH_FACTOR
             ) -> VectorStoreQueryResult:
        """similarity_top_k nodes chosen by maximal marginal relevance (Carbonell & Goldstein, 1998; LlamaIndex's
        `get_top_k_mmr_embeddings`, mmr_threshold = its lambda, default 0.5) among the mmr_prefetch_k (default
        similarity_top_k x mmr_prefetch_factor, 4) best of a dense search. The candidates' vectors are their whole
        texts embedded again by the store's embed_model (a slimvec document scores by its best chunk; MMR compares
        documents), so a call costs that many document embeddings. Similarities are LlamaIndex's MMR scores."""
        from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings

        threshold = query.mmr_threshold if query.mmr_threshold is not None else mmr_threshold
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"mmr_threshold must be a number in [0, 1], got {threshold!r}")
        k = query.similarity_top_k
        fetch = mmr_prefetch_k if mmr_prefetch_k is not None else int(k * mmr_prefetch_factor)
        if isinstance(fetch, bool) or not isinstance(fetch, int) or fetch < k:
            raise ConfigError(f"mmr_prefetch_k must be an integer of at least similarity_top_k ({k}), got {fetch!r}")
        if query.query_embedding is not None:
            vector = normalised(np.asarray(query.query_embedding)).ravel()
        elif query.query_str:
            vector = normalised(np.asarray(self._embed_model.get_query_embedding(query.query_str))).ravel()
        else:
            raise ConfigError("query has neither an embedding nor a text (query_str)")
        hits = self._collection.search_vectors(vector, k=fetch, filter=flt or None,
                                               model=self._collection.manifest["model"])[0]
        found = [d for d in (self._collection.get(h.id) for h in hits) if d is not None]
        if not found:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        vectors = normalised(np.asarray(self._embed_model.get_text_embedding_batch([d.text for d in found])))
        scores, ids = get_top_k_mmr_embeddings(vector.tolist(), vectors.tolist(),
                                               similarity_top_k=k, embedding_ids=[d.id for d in found],
                                               mmr_threshold=threshold)
        by_id = {d.id: d for d in found}
        return VectorStoreQueryResult(nodes=[_node(i, by_id[i].text, by_id[i].metadata) for i in ids],
                                      similarities=[float(x) for x in scores], ids=list(ids))

    # ---- helpers ---------------------------------------------------------------------------
    def _ids(self, flt: dict[str, Any], strict: bool = True) -> list[str]:
        """Ids of the stored documents matching slimvec filter `flt`. strict: a user's filter, refused (FilterError)
        when it can never match (a field no document has); False for LlamaIndex's own fields (`ref_doc_id`), absent
        from documents slimvec indexed itself, where that simply means no match."""
        # In one snapshot under the collection's lock: a compaction through another thread closes the store and
        # renumbers the rows, and a read on the connection it was closing crashed the process (a segmentation
        # fault in sqlite3), or failed ("Cannot operate on a closed database").
        with self._collection.reading():
            store = self._collection.store
            rows = store.rows_matching(flt, explain=strict)  # through the collection's field indexes, if any
            return sorted({s.doc_id for s in store.sections_for_rows(rows.tolist()).values()})

    def _selected(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list[str]:
        node_ids = _id_list(node_ids)
        flt = to_slimvec_filter(filters)
        if node_ids is None and not flt:
            with self._collection.reading():  # see _ids
                return [d["id"] for d in self._collection.store.iter_documents()]
        if not flt:
            return list(node_ids or [])
        matching = set(self._ids(flt))
        return [i for i in node_ids if i in matching] if node_ids is not None else sorted(matching)


def _hybrid_fields(query: VectorStoreQuery) -> tuple[int, dict[str, Any]]:
    """The number of nodes to return and the fusion options of LlamaIndex's hybrid fields: `alpha` (1 vector
    search only, 0 text search only) weighs dense against BM25 and `hybrid_top_k` is the count returned, in mode
    HYBRID. ConfigError for a field that would change nothing: either outside HYBRID, `sparse_top_k` always
    (slimvec sets no per-retriever depth), and an alpha outside [0, 1]."""
    if query.sparse_top_k is not None:
        raise ConfigError("query: sparse_top_k is not supported: slimvec fuses its retrievers' rankings at a depth "
                          "of its own (leave it out; similarity_top_k or hybrid_top_k sets how many nodes return)")
    given = [name for name in ("alpha", "hybrid_top_k") if getattr(query, name) is not None]
    if not given:
        return query.similarity_top_k, {}
    if query.mode != VectorStoreQueryMode.HYBRID:
        raise ConfigError(f"query: {' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to query mode {VectorStoreQueryMode.HYBRID.value!r}, "
                          f"and this query runs mode {query.mode.value!r}: leave {'them' if len(given) > 1 else 'it'} out or choose "
                          "that mode")
    fusion: dict[str, Any] = {}
    alpha = query.alpha
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"query: alpha must be a number in [0, 1] (1: vector search only, 0: text search "
                              f"only), got {alpha!r}")
        fusion["fusion_weights"] = (float(alpha), 1.0 - float(alpha))  # slimvec's hybrid: dense, then bm25
    return (query.hybrid_top_k if query.hybrid_top_k is not None else query.similarity_top_k), fusion


def _id_list(ids: Any) -> list[str] | None:
    """`ids` as a list (None stays None); one id given as a plain string is that id, as Collection.delete reads it
    (list("n1") would be the ids "n" and "1": other nodes, or none, selected)."""
    return None if ids is None else [ids] if isinstance(ids, str) else list(ids)


def _restricted(flt: dict[str, Any], of_docs: list[str] | None, node_ids: list[str] | None) -> dict[str, Any]:
    # An empty list restricts nothing: LlamaIndex's retriever passes node_ids=[] when the index lists no nodes
    # of its own (a store that keeps the text), as every other store reads it.
    parts = [flt] if flt else []
    if of_docs:
        parts.append({"_id": {"$in": list(of_docs)}})
    if node_ids:
        parts.append({"_id": {"$in": list(node_ids)}})
    return {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}


def _document(node: BaseNode) -> SlimDocument:
    if (plain := plain_metadata(node.metadata)) is not node.metadata:
        # numpy scalars (pandas): LlamaIndex's own serialisation of the node below cannot write them
        node = node.model_copy(update={"metadata": plain})
    meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    return SlimDocument(node.node_id, node.get_content(metadata_mode=MetadataMode.NONE), "", meta)


def _node(doc_id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    """The node LlamaIndex stored, or a TextNode for a document slimvec indexed itself."""
    if "_node_content" in metadata:
        return metadata_dict_to_node(metadata, text=text)
    return TextNode(id_=doc_id, text=text, metadata=metadata)
