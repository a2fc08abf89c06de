"""The JSON API and the search page, over a fixed set of open collections.

Reads (search, info, get) are plain `def` endpoints: FastAPI runs them in its thread pool.
Writes run on one dedicated thread per collection, so a long add (encoding happens before the
collection lock is taken) queues behind other writes of that collection but never occupies the
pool that answers searches. Collection.lock and the store's writer file lock still serialise the
commit itself, across processes too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from slimvec.documents import Document
from slimvec.errors import FilterError, IngestError, SlimvecError
from slimvec.search.options import MAX_K, MAX_QUERY_CHARS, MAX_RERANK_DEPTH, NAME_PATTERN, SearchOptions

log = logging.getLogger("slimvec.server")

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 1000
MAX_ID_CHARS = 512
MAX_TEXT_CHARS = 2_000_000
MAX_METADATA_DEPTH = 16
# Rerankers a request may name besides the collection profile's own: neither loads a model from a path.
# Anything else would let a client make the server load an arbitrary filesystem path as a model.
REQUEST_RERANKERS = ("none", "dense")
REPORT_CANDIDATES = ("reports/latest/report.html", "reports/latest/index.html", "reports/report.html", "report.html")


# ---- request models -------------------------------------------------------------------------
def _check_unicode(value: str, what: str) -> str:
    """Reject text that cannot be stored as UTF-8 (lone surrogates from JSON escapes like \\ud800)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains invalid Unicode (a lone surrogate)") from None
    return value


def _check_json_value(value: Any, depth: int = 0) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        _check_unicode(value, "a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**63 - 1:
            raise ValueError(f"integer {value} is out of the 64-bit range")
    elif isinstance(value, list):
        for v in value:
            _check_json_value(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("object keys must be strings")
            _check_unicode(k, "a key")
            _check_json_value(v, depth + 1)
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"unsupported value of type {type(value).__name__}")


class DocumentIn(BaseModel):
    """One document to add or upsert."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Stable document id.")
    title: str = Field("", max_length=10_000)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict, description="JSON object, filterable.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("id must not be blank")
        return _check_unicode(v, "id")

    @field_validator("title", "text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _check_unicode(v, "text")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_json_value(v)
        return v

    def to_document(self) -> Document:
        return Document(self.id, self.text, self.title, self.metadata)


class SearchIn(SearchOptions):
    """A search request (POST body): the query and the search options (slimvec.search.SearchOptions).

    GET takes the same fields as query parameters.
    """

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Query text.")

    @field_validator("rerank")
    @classmethod
    def _rerank(cls, v: str | None) -> str | None:
        from slimvec.errors import ConfigError
        from slimvec.search.rerank import parse_spec

        if v is not None:
            try:
                parse_spec(_check_unicode(v, "rerank"))
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("q")
    @classmethod
    def _q(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query must not be blank")
        return _check_unicode(v, "query")

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            _check_json_value(v)
        return v


class DeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(min_length=1)

    @field_validator("ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for i in v:
            _check_unicode(i, "id")
        return v


# ---- app ------------------------------------------------------------------------------------
def create_app(
    collections: dict[str, Any],
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """A FastAPI app serving `collections` (name -> open Collection).

    Writes need `Authorization: Bearer <api_key>` when a key is given; reads are open.
    Request bodies over `max_body_bytes` get 413, as do batches of more than `max_batch` documents.
    """
    cols = dict(collections)
    writers = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"slimvec-write-{name}") for name in cols}
    key = api_key.encode("utf-8") if api_key else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # Load each model before the first request: a lazy load under concurrent searches would
        # stall them all (and could load the model once per waiting thread).
        for col in cols.values():
            await asyncio.to_thread(lambda c=col: c.encoder)
            await asyncio.to_thread(_load_profile_reranker, col)
        yield
        for ex in writers.values():
            ex.shutdown(wait=True)

    app = FastAPI(
        title="slimvec",
        version="0.1.0",
        description="Search and maintain slimvec collections.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.collections = cols
    app.state.api_key_set = key is not None

    # ---- errors ---------------------------------------------------------------------------
    @app.exception_handler(SlimvecError)
    async def _slimvec_error(request: Request, exc: SlimvecError) -> JSONResponse:
        return SafeJSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but echoed inputs may hold lone surrogates or NaN: render them safely.
        return SafeJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "input is nested too deeply"}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    # ---- dependencies ---------------------------------------------------------------------
    def collection(name: str) -> Any:
        col = cols.get(name)
        if col is None:
            raise HTTPException(404, f"no collection named {name!r}")
        return col

    def require_writer(request: Request) -> None:
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("utf-8", "replace"), key)
        if not ok:
            raise HTTPException(401, "writes need 'Authorization: Bearer <api key>'",
                                headers={"WWW-Authenticate": "Bearer"})

    Writer = Depends(require_writer)

    async def run_write(name: str, fn: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(writers[name].submit(fn))

    def check_batch(n: int) -> None:
        if n > max_batch:
            raise HTTPException(413, f"batch of {n} documents exceeds the limit of {max_batch} per request")
        if n == 0:
            raise HTTPException(422, "no documents given")

    # ---- reads ----------------------------------------------------------------------------
    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "collections": sorted(cols), "auth_required_for_writes": key is not None}

    @app.get("/api/collections")
    def list_collections() -> dict[str, Any]:
        out = []
        for name, col in sorted(cols.items()):
            info = col.info()
            out.append({"name": name, "documents": info["documents"], "chunks": info["chunks"],
                        "model": info["model"], "retrievers": info["retrievers"],
                        "modes": _modes(info["retrievers"]), "mode": _default_mode(col),
                        "has_report": _report_file(col) is not None})
        return {"collections": out, "modes": _modes()}

    @app.get("/api/collections/{name}")
    def collection_info(*, col: Any = Depends(collection), name: str) -> dict[str, Any]:
        info = col.info()
        info.pop("path", None)  # the server's filesystem layout is not the client's business
        return {"name": name, **info, "has_report": _report_file(col) is not None}

    def do_search(col: Any, body: SearchIn, where: str) -> dict[str, Any]:
        _check_request_rerank(col, body.rerank, where)
        t0 = time.perf_counter()
        hits = col.search(body.q, SearchOptions(**body.model_dump(exclude={"q"}, exclude_unset=True)))
        mode = body.mode or _default_mode(col)
        out = {"query": body.q, "k": body.k, "mode": mode, "filter": body.filter,
               "took_ms": round((time.perf_counter() - t0) * 1000, 3), "hits": [_hit(h) for h in hits]}
        if body.rerank is not None or body.rerank_depth is not None:
            out["rerank"], out["rerank_depth"] = body.rerank, body.rerank_depth
        return out

    @app.get("/api/collections/{name}/search")
    def search_get(
        *, col: Any = Depends(collection),
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        filter: Annotated[str | None, Query(max_length=100_000, description="Filter as JSON text.")] = None,
        mode: Annotated[str | None, Query(min_length=1, max_length=32, pattern=NAME_PATTERN)] = None,
        rerank: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
        rerank_depth: Annotated[int | None, Query(ge=1, le=MAX_RERANK_DEPTH)] = None,
        with_payload: bool = True,
    ) -> dict[str, Any]:
        flt = None
        if filter is not None and filter.strip():
            flt = _parse_filter(filter)
        try:
            given = {"filter": flt, "mode": mode, "rerank": rerank, "rerank_depth": rerank_depth}
            body = SearchIn(q=q, k=k, with_payload=with_payload, **{f: v for f, v in given.items() if v is not None})
        except ValidationError as e:  # report it as FastAPI would (field named)
            raise RequestValidationError(_query_errors(e)) from None
        return do_search(col, body, "query")

    @app.post("/api/collections/{name}/search")
    def search_post(*, col: Any = Depends(collection), body: SearchIn) -> dict[str, Any]:
        return do_search(col, body, "body")

    @app.get("/api/collections/{name}/documents/{doc_id:path}")
    def get_document(*, col: Any = Depends(collection), doc_id: str) -> dict[str, Any]:
        with _lock(col):
            d = col.get(doc_id)
        if d is None:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return {"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata}

    # ---- writes ---------------------------------------------------------------------------
    @app.post("/api/collections/{name}/documents", dependencies=[Writer])
    async def add_documents(
        *, col: Any = Depends(collection), name: str, docs: list[DocumentIn],
        upsert: Annotated[bool, Query(description="Replace documents whose id is already stored.")] = False,
    ) -> dict[str, Any]:
        check_batch(len(docs))
        batch = [d.to_document() for d in docs]
        return await run_write(name, lambda: _write(col, batch, upsert))

    @app.post("/api/collections/{name}/documents/upload", dependencies=[Writer])
    async def upload_documents(
        *, col: Any = Depends(collection), name: str,
        file: Annotated[UploadFile, File(description="JSONL: one {_id|id, title, text, ...} object per line.")],
        upsert: bool = False,
    ) -> dict[str, Any]:
        # The client's filename is never used: the content is read from the upload's own spool
        # (outside the collection directory) and only parsed documents reach the store.
        raw = await file.read()
        await file.close()
        batch = _parse_jsonl(raw, max_batch)
        check_batch(len(batch))
        return await run_write(name, lambda: _write(col, batch, upsert))

    @app.delete("/api/collections/{name}/documents", dependencies=[Writer])
    async def delete_documents(*, col: Any = Depends(collection), name: str, body: DeleteIn) -> dict[str, Any]:
        if len(body.ids) > max_batch:
            raise HTTPException(413, f"batch of {len(body.ids)} ids exceeds the limit of {max_batch} per request")
        n = await run_write(name, lambda: col.delete(body.ids))
        return {"deleted": n, "requested": len(body.ids)}

    @app.delete("/api/collections/{name}/documents/{doc_id:path}", dependencies=[Writer])
    async def delete_document(*, col: Any = Depends(collection), name: str, doc_id: str) -> dict[str, Any]:
        try:
            _check_unicode(doc_id, "id")
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        n = await run_write(name, lambda: col.delete([doc_id]))
        if not n:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return {"deleted": n, "requested": 1}

    # ---- pages ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/collections/{name}/report")
    def report_status(*, col: Any = Depends(collection), name: str) -> dict[str, Any]:
        f = _report_file(col)
        return {"name": name, "available": f is not None, "url": f"/report/{name}/view" if f else None}

    @app.get("/report/{name}", include_in_schema=False)
    def report_page(name: str) -> HTMLResponse:
        col = collection(name)
        f = _report_file(col)
        body = (f'<iframe src="/report/{_html(name)}/view" title="report"></iframe>' if f
                else '<p class="empty">no report yet</p>')
        return HTMLResponse(_REPORT_PAGE.format(name=_html(name), body=body))

    @app.get("/report/{name}/view", include_in_schema=False)
    def report_view(name: str) -> Any:
        f = _report_file(collection(name))
        if f is None:
            raise HTTPException(404, "no report yet")
        return FileResponse(f, media_type="text/html", headers={"Content-Security-Policy": "sandbox allow-scripts"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: non-ASCII escaped (lone surrogates included), NaN/Infinity as null."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError):
            text = json.dumps(_json_safe(content), ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=str)
        return text.encode("ascii")


class BodyLimit:
    """413 for request bodies over `max_bytes`: at once from Content-Length, else (chunked) while reading."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body exceeds the limit of {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = self.max_bytes + 1
            if n > self.max_bytes:
                await self._reject(send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        # Chunked upload: buffer at most max_bytes, then replay it to the app.
        chunks, total, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            part = msg.get("body", b"")
            total += len(part)
            if total > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(part)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ---- helpers --------------------------------------------------------------------------------
_REPORT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>slimvec report: {name}</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="report"><header><a href="/">&larr; search</a> <h1>Evaluation report: {name}</h1></header>
<main>{body}</main></body></html>"""


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _lock(col: Any) -> Any:
    lock = getattr(col, "_lock", None)
    return lock if lock is not None else nullcontext()


def _modes(retrievers: list[str] | None = None) -> list[str]:
    """Search modes, "dense" first; with `retrievers`, only those a collection keeping them can run."""
    from slimvec.search.plan import modes

    return modes(retrievers)


def _default_mode(col: Any) -> str:
    """The mode a search without one runs: the collection profile's."""
    manifest = getattr(col, "manifest", None) or {}
    retrievers = manifest.get("retrievers") or ["dense"]
    return (manifest.get("profile") or {}).get("mode") or ("dense" if "dense" in retrievers else retrievers[0])


def _profile_rerank(col: Any) -> str | None:
    manifest = getattr(col, "manifest", None) or {}
    return (manifest.get("profile") or {}).get("rerank")


def _check_request_rerank(col: Any, spec: str | None, where: str) -> None:
    """422 unless a request's reranker is "none", "dense" or the collection profile's own spec."""
    if spec is None or spec.strip() in REQUEST_RERANKERS or spec.strip() == _profile_rerank(col):
        return
    # The profile's spec is not echoed: it may hold a path on the server.
    msg = (f"rerank {spec!r} is not allowed from a request: use 'none', 'dense', or leave it out for the "
           "collection profile's own reranker (other rerankers are set in the profile by the operator)")
    raise RequestValidationError([{"type": "value_error", "loc": (where, "rerank"), "msg": msg, "input": spec}])


def _load_profile_reranker(col: Any) -> None:
    """Load the profile's reranker model at start-up; a broken one is logged (its searches answer 400)."""
    from slimvec.search.rerank import load_reranker

    spec = _profile_rerank(col)
    if not spec:
        return
    try:
        reranker = load_reranker(spec)
        if reranker is not None:
            reranker.load()
    except SlimvecError as e:
        log.warning("%s: reranker %r of the collection's profile cannot be used: %s", getattr(col, "path", "?"),
                    spec, e)


def _report_file(col: Any) -> Path | None:
    root = Path(col.path)
    for rel in REPORT_CANDIDATES:
        p = root / rel
        if p.is_file():
            return p
    return None


def _hit(h: Any) -> dict[str, Any]:
    d = h.to_dict()
    if not math.isfinite(d["score"]):  # never emit invalid JSON
        d["score"] = None
    return d


def _parse_filter(text: str) -> dict[str, Any]:
    from slimvec.store.filters import parse_filter

    try:
        flt = parse_filter(text)
    except RecursionError:
        raise FilterError("filter is nested too deeply") from None
    try:
        _check_json_value(flt)
    except ValueError as e:
        raise FilterError(f"filter: {e}") from None
    return flt


def _query_errors(e: Exception) -> list[dict[str, Any]]:
    errors = getattr(e, "errors", None)
    if errors is None:
        return [{"type": "value_error", "loc": ("query",), "msg": str(e), "input": None}]
    out = []
    for err in errors(include_url=False, include_context=False):
        out.append({**err, "loc": ("query", *err["loc"])})
    return out


def _write(col: Any, docs: list[Document], upsert: bool) -> dict[str, Any]:
    n = col.upsert(docs) if upsert else col.add(docs)
    return {"written": n, "upsert": upsert, "documents": len(col)}


def _parse_jsonl(raw: bytes, max_batch: int) -> list[Document]:
    """Documents from uploaded JSONL bytes; any bad line rejects the whole upload, naming the line."""
    from slimvec.ingest.tables import FieldMap, record_to_document

    fields = FieldMap()
    docs: list[Document] = []
    lines = raw.split(b"\n")
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        where = f"upload line {lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise IngestError(f"{where}: invalid UTF-8 at byte {e.start}") from None
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise IngestError(f"{where}: malformed JSON: {e.msg} (column {e.colno})") from None
        except RecursionError:
            raise IngestError(f"{where}: nested too deeply") from None
        if not isinstance(rec, dict):
            raise IngestError(f"{where}: expected a JSON object")
        if "_id" not in rec and "id" in rec:
            rec = {"_id": rec["id"], **{k: v for k, v in rec.items() if k != "id"}}
        doc = record_to_document(rec, fields, where)
        try:
            _check_unicode(doc.id, "id")
            _check_unicode(doc.title, "title")
            _check_unicode(doc.text, "text")
            if len(doc.id) > MAX_ID_CHARS:
                raise ValueError(f"id longer than {MAX_ID_CHARS} characters")
            _check_json_value(doc.metadata)
        except ValueError as e:
            raise IngestError(f"{where}: {e}") from None
        docs.append(doc)
        if len(docs) > max_batch:
            raise HTTPException(413, f"upload holds more than {max_batch} documents, the limit per request")
    return docs
