"""The JSON API: health, collections, search (GET and POST), documents (get, add, upload, delete), compact,
tune."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Callable, Coroutine, Literal
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError

from slimvec import strictjson
from slimvec.documents import Document
from slimvec.errors import FilterError
from slimvec.ids import MAX_ID_CHARS
from slimvec.ingest import FieldMap
from slimvec.search.options import (
    MAX_FUSION_WEIGHTS,
    MAX_K,
    MAX_QUERY_CHARS,
    MAX_RERANK_DEPTH,
    NAME_PATTERN,
    SearchOptions,
    min_relevance_from_text,
)
from slimvec.server.errors import query_errors
from slimvec.server.models import (
    DeleteIn,
    DocumentIn,
    FieldIndexIn,
    SearchIn,
    TuneIn,
    check_json_value,
)
from slimvec.server.pages import report_file
from slimvec.server.state import Served, default_mode, profile_rerank, read_lock
from slimvec.server.upload import read_jsonl_upload
from slimvec.store import probes

# The query parameters GET search takes: the body model's fields (the SearchOptions fields and "q" for the text),
# so a new option is known here once it is declared; anything else is refused.
_SEARCH_PARAMS = tuple(SearchIn.model_fields)

# Rerankers a request may name besides the collection profile's own: neither loads a model from a path.
# Anything else would let a client make the server load an arbitrary filesystem path as a model.
REQUEST_RERANKERS = ("none", "dense")


def _about(field: str) -> str:
    """A search option's description, from its one declaration in SearchOptions."""
    return SearchOptions.model_fields[field].description or ""


class _StrictJSONRequest(Request):
    """A request whose JSON body is parsed by `strictjson.loads`: an object naming one key twice is a 422 naming
    the key, where `json.loads` would keep the last value silently (a document's text, a search's k)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = strictjson.loads(await self.body())
            except strictjson.RepeatedKeyError as e:  # FastAPI re-raises an HTTPException from its body parse as is
                raise HTTPException(422, f"body: {e}") from None
        return self._json


class _StrictJSONRoute(APIRoute):
    """FastAPI's custom route class pattern: the body is read and parsed once, by `_StrictJSONRequest.json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            # A query parameter given twice (?filter=...&filter={}) would keep its last value without a word, as a
            # body naming a key twice would: the first filter, k or mode silently dropped.
            names = [name for name, _ in request.query_params.multi_items()]
            if twice := next((n for i, n in enumerate(names) if n in names[:i]), None):
                raise HTTPException(422, f"query: parameter {twice!r} is given twice (the last value would replace "
                                         "the others); give it once")
            if bad := _undecodable(request.scope):
                raise HTTPException(422, bad)
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


def _undecodable(scope: dict[str, Any]) -> str | None:
    """What in the request's URL is not UTF-8 once its percent-escapes are decoded (a lone surrogate's bytes,
    %ED%A0%80, or a stray %FF), or None. The URL decoding turns such bytes into U+FFFD without a word, so a
    document id or `offset` would silently be another text (a 404 for an id no one sent, an empty page)."""
    try:
        unquote_to_bytes(scope.get("raw_path") or b"").decode("utf-8")
    except UnicodeDecodeError:
        return "path: not valid UTF-8 once its percent-escapes are decoded (e.g. a lone surrogate's bytes)"
    for pair in (scope.get("query_string") or b"").split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return "query: a parameter name is not valid UTF-8 once its percent-escapes are decoded"
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            shown = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
            return (f"query: parameter {shown!r} is not valid UTF-8 once its percent-escapes are decoded (e.g. a "
                    "lone surrogate's bytes)")
    return None


def api_router(served: Served, require_writer: Callable[[Request], None]) -> APIRouter:
    """The /api routes over `served`; writes depend on `require_writer` (see server.auth.writer_check)."""
    router = APIRouter(prefix="/api", route_class=_StrictJSONRoute)
    collection = served.get
    writer = [Depends(require_writer)]

    # ---- reads ----------------------------------------------------------------------------
    @router.get("/health")
    def health(request: Request) -> dict[str, Any]:
        return {"status": "ok", "collections": sorted(served.collections),
                "auth_required_for_writes": request.app.state.api_key_set}

    @router.get("/collections")
    def list_collections() -> dict[str, Any]:
        out = []
        for name, col in sorted(served.collections.items()):
            info = col.info()
            out.append({"name": name, "documents": info["documents"], "chunks": info["chunks"],
                        "model": info["model"], "retrievers": info["retrievers"],
                        "modes": _modes(info["retrievers"]), "mode": default_mode(col),
                        "has_report": report_file(col) is not None})
        return {"collections": out, "modes": _modes()}

    @router.get("/collections/{name}")
    def collection_info(*, col: Any = Depends(collection), name: str) -> dict[str, Any]:
        info = col.info()
        if "migration" not in info and getattr(col, "path", None) is not None:  # opened before `slimvec migrate` began
            from slimvec.migrate.state import progress

            if (moving := progress(col.path)) is not None:
                info["migration"] = moving
        info.pop("path", None)  # the server's filesystem layout is not the client's business
        return {"name": name, **info, "has_report": report_file(col) is not None}

    @router.get("/collections/{name}/search")
    def search_get(
        *, request: Request, col: Any = Depends(collection),
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Query text.")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description=_about("k"))] = 10,
        filter: Annotated[str | None, Query(max_length=100_000, description="Filter as JSON text: "
                                                                            + _about("filter"))] = None,
        mode: Annotated[str | None, Query(min_length=1, max_length=32, pattern=NAME_PATTERN,
                                          description=_about("mode"))] = None,
        min_relevance: Annotated[str | None, Query(min_length=1, max_length=32,
                                                   description=_about("min_relevance"))] = None,
        rerank: Annotated[str | None, Query(min_length=1, max_length=1000, description=_about("rerank"))] = None,
        rerank_depth: Annotated[int | None, Query(ge=1, le=MAX_RERANK_DEPTH, description=_about("rerank_depth"))] = None,
        fusion: Annotated[str | None, Query(min_length=1, max_length=32, pattern=NAME_PATTERN,
                                            description=_about("fusion"))] = None,
        fusion_weights: Annotated[str | None, Query(min_length=1, max_length=32 * MAX_FUSION_WEIGHTS,
                                                    description=_about("fusion_weights")
                                                    + " Comma-separated, e.g. 0.3,0.7.")] = None,
        fusion_temperature: Annotated[float | None, Query(gt=0, le=100, allow_inf_nan=False,
                                                          description=_about("fusion_temperature"))] = None,
        with_payload: Annotated[bool, Query(description=_about("with_payload"))] = True,
        unit: Annotated[Literal["document", "section"] | None, Query(description=_about("unit"))] = None,
    ) -> dict[str, Any]:
        # as POST refuses unknown fields: a misspelt option (top_k=3) must not be silently ignored
        _refuse_unknown_params(request, _SEARCH_PARAMS, "search parameter")
        given = {"filter": _parse_filter(filter) if filter is not None and filter.strip() else None,
                 "mode": mode, "rerank": rerank, "rerank_depth": rerank_depth,
                 "fusion": fusion, "fusion_weights": _parse_weights(fusion_weights), "unit": unit,
                 "fusion_temperature": fusion_temperature,
                 # a query parameter is text: the number it spells (a JSON body must send the number itself)
                 "min_relevance": min_relevance_from_text(min_relevance) if min_relevance is not None else None}
        try:
            body = SearchIn(q=q, k=k, with_payload=with_payload, **{f: v for f, v in given.items() if v is not None})
        except ValidationError as e:  # report it as FastAPI would (field named)
            raise query_errors(e) from None
        return _search(col, body, "query")

    @router.post("/collections/{name}/search")
    def search_post(*, col: Any = Depends(collection), body: SearchIn) -> dict[str, Any]:
        return _search(col, body, "body")

    @router.get("/collections/{name}/documents")
    def list_documents(
        *, request: Request, col: Any = Depends(collection),
        filter: Annotated[str | None, Query(max_length=100_000, description="Filter as JSON text: "
                                                                            + _about("filter"))] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_K, description="Documents per page.")] = 10,
        offset: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS, description="Id to start the "
                                            "page at: the previous page's next_offset.")] = None,
    ) -> dict[str, Any]:
        """A page of stored documents in id order (`Collection.scroll`), with how many match in all."""
        # a misspelt parameter (where=...) must not list everything without a word
        _refuse_unknown_params(request, ("filter", "limit", "offset"), "parameter")
        flt = _parse_filter(filter) if filter is not None and filter.strip() else None
        # One snapshot for the page and its count (`Collection.reading`): a commit by another process between the two
        # reads made a count that disagreed with the page. A sharded collection reads each shard on its own.
        with col.reading() if hasattr(col, "reading") else read_lock(col):
            docs, nxt = col.scroll(flt, limit, offset)
            total = col.count(flt)
        return {"documents": [d.to_record("id") for d in docs], "next_offset": nxt, "count": total}

    @router.get("/collections/{name}/documents/{doc_id:path}")
    def get_document(*, col: Any = Depends(collection), doc_id: str) -> dict[str, Any]:
        with read_lock(col):
            d = col.get(doc_id)
        if d is None:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return d.to_record("id")  # with its sections: posting it back (an upsert of its metadata) keeps them

    # ---- writes ---------------------------------------------------------------------------
    @router.post("/collections/{name}/documents", dependencies=writer)
    async def add_documents(
        *, col: Any = Depends(collection), name: str, docs: list[DocumentIn],
        upsert: Annotated[bool, Query(description="Replace documents whose id is already stored.")] = False,
    ) -> dict[str, Any]:
        served.check_batch(len(docs))
        batch = [d.to_document() for d in docs]
        return await served.write(name, lambda: _write(col, batch, upsert))

    @router.post("/collections/{name}/documents/upload", dependencies=writer)
    async def upload_documents(
        *, col: Any = Depends(collection), name: str,
        file: Annotated[UploadFile, File(description="JSONL: one object per line, read as `slimvec index` reads "
                                                     "a .jsonl file (id, title and text fields as named below).")],
        upsert: bool = False,
        id_field: Annotated[str, Query(min_length=1, max_length=100, description="Id field of the records.")] = "_id",
        title_field: Annotated[str, Query(min_length=1, max_length=100, description="Title field.")] = "title",
        text_field: Annotated[str, Query(min_length=1, max_length=100, description="Text field.")] = "text",
    ) -> dict[str, Any]:
        # The client's filename is never used: only the parsed documents reach the store.
        raw = await file.read()
        await file.close()
        fields = FieldMap(id_field=id_field, title_field=title_field, text_field=text_field)
        batch = read_jsonl_upload(raw, fields, served.max_batch)
        served.check_batch(len(batch))
        return await served.write(name, lambda: _write(col, batch, upsert))

    @router.delete("/collections/{name}/documents", dependencies=writer)
    async def delete_documents(*, col: Any = Depends(collection), name: str, body: DeleteIn) -> dict[str, Any]:
        if body.filter is not None:
            flt = body.filter
            return {"deleted": await served.write(name, lambda: col.delete(filter=flt))}
        ids = body.ids or []
        served.check_batch(len(ids), "ids")
        n = await served.write(name, lambda: col.delete(ids))
        return {"deleted": n, "requested": len(ids)}

    @router.delete("/collections/{name}/documents/{doc_id:path}", dependencies=writer)
    async def delete_document(*, col: Any = Depends(collection), name: str, doc_id: str) -> dict[str, Any]:
        n = await served.write(name, lambda: col.delete([doc_id]))
        if not n:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return {"deleted": n, "requested": 1}

    @router.post("/collections/{name}/compact", dependencies=writer)
    async def compact(*, col: Any = Depends(collection), name: str) -> dict[str, Any]:
        # The server holds the collection's only handle, so it compacts it: searches go on meanwhile.
        if not hasattr(col, "compact") or getattr(col, "target", None) is not None:
            raise HTTPException(400, f"collection {name!r} is being migrated to a new model and cannot be compacted "
                                     "until the migration has switched")
        return await served.write(name, col.compact)

    @router.post("/collections/{name}/field-indexes", dependencies=writer)
    async def field_indexes(*, col: Any = Depends(collection), name: str, body: FieldIndexIn) -> dict[str, Any]:
        fields = list(body.fields)
        change = col.drop_field_index if body.drop else col.create_field_index
        # The list read on the write thread too: here it would wait on the event loop, stalling every request, for
        # the collection's lock while a search holds it.
        changed, held = await served.write(name, lambda: (change(fields), col.field_indexes()))
        return {"dropped" if body.drop else "created": changed, "field_indexes": held}

    @router.post("/collections/{name}/tune", dependencies=writer)
    async def tune(*, col: Any = Depends(collection), name: str, body: TuneIn) -> dict[str, Any]:
        if (body.queries is not None) + body.reset + body.recent != 1:
            raise HTTPException(422, "give \"queries\" to tune, \"recent\": true to tune on the queries searched "
                                     "lately, or \"reset\": true to forget the stored queries; one of the three")
        if getattr(col, "target", None) is not None:
            raise HTTPException(400, f"collection {name!r} is being migrated to a new model and cannot be tuned "
                                     "until the migration has switched")
        if body.reset:
            return {"reset": await served.write(name, col.reset_tuning)}
        if body.recent:
            kept = col.recent_queries()
            if len(kept) < probes.MIN_QUERIES:
                raise HTTPException(400, f"collection {name!r} has kept {len(kept)} recent queries, tuning needs at "
                                         f"least {probes.MIN_QUERIES} (the server keeps them when started with "
                                         "--keep-queries N)")
            return {"indexes": await served.write(name, lambda: col.tune(vectors=kept)), "queries": len(kept)}
        served.check_batch(len(body.queries or []), "queries")
        return {"indexes": await served.write(name, lambda: col.tune(body.queries))}

    return router


def _search(col: Any, body: SearchIn, where: str) -> dict[str, Any]:
    _check_request_rerank(col, body.rerank, where)
    t0 = time.perf_counter()
    hits = col.search(body.q, body.options())
    out = {"query": body.q, "k": body.k, "mode": body.mode or default_mode(col), "unit": body.unit,
           "filter": body.filter,
           "took_ms": round((time.perf_counter() - t0) * 1000, 3),
           "hits": [_hit(h) if body.with_payload else _bare_hit(h) for h in hits]}
    if body.rerank is not None or body.rerank_depth is not None:
        out["rerank"], out["rerank_depth"] = body.rerank, body.rerank_depth
    return out


def _modes(retrievers: list[str] | None = None) -> list[str]:
    """Search modes, "dense" first; with `retrievers`, only those a collection keeping them can run."""
    from slimvec.search.plan import modes

    return modes(retrievers)


def _check_request_rerank(col: Any, spec: str | None, where: str) -> None:
    """422 unless a request's reranker is "none", "dense" or the collection profile's own spec."""
    if spec is None or spec.strip() in REQUEST_RERANKERS or spec.strip() == profile_rerank(col):
        return
    # The profile's spec is not echoed: it may hold a path on the server.
    msg = (f"rerank {spec!r} is not allowed from a request: use 'none', 'dense', or leave it out for the "
           "collection profile's own reranker (other rerankers are set in the profile by the operator)")
    raise RequestValidationError([{"type": "value_error", "loc": (where, "rerank"), "msg": msg, "input": spec}])


def _hit(h: Any) -> dict[str, Any]:
    d = h.to_dict()
    if not math.isfinite(d["score"]):  # never emit invalid JSON
        d["score"] = None
    return d


def _bare_hit(h: Any) -> dict[str, Any]:
    """A hit searched without payload: its id and score (relevance, section when set), and no title, snippet,
    metadata or span, which were not read: empty fields would be mistaken for empty values."""
    return {k: v for k, v in _hit(h).items() if k not in _PAYLOAD_FIELDS}


_PAYLOAD_FIELDS = frozenset({"title", "snippet", "metadata", "span"})


def _refuse_unknown_params(request: Request, known: tuple[str, ...], what: str) -> None:
    """422, as FastAPI reports a body's unknown field, for each query parameter a GET route does not take."""
    unknown = [p for p in request.query_params if p not in known]
    if unknown:
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", p), "input": request.query_params[p],
                                       "msg": f"unknown {what} (known: {', '.join(known)})"} for p in unknown])


def _parse_filter(text: str) -> dict[str, Any]:
    from slimvec.store.filters import parse_filter

    try:
        flt = parse_filter(text)
    except RecursionError:
        raise FilterError("filter is nested too deeply") from None
    try:
        check_json_value(flt)
    except ValueError as e:
        raise FilterError(f"filter: {e}") from None
    return flt


def _parse_weights(text: str | None) -> list[float] | None:
    """"0.3,0.7" -> [0.3, 0.7]; 422 naming `fusion_weights` when a part is not a number."""
    if text is None or not text.strip():
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        msg = f"expected numbers separated by commas, e.g. 0.3,0.7, got {text!r}"
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "fusion_weights"), "msg": msg,
                                       "input": text}]) from None


def _write(col: Any, docs: list[Document], upsert: bool) -> dict[str, Any]:
    n = col.upsert(docs) if upsert else col.add(docs)
    return {"written": n, "upsert": upsert, "documents": len(col)}
