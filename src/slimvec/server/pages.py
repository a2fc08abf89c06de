"""The search page, its static files, and each collection's evaluation report (an HTML file in its directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from slimvec.server.state import Served

STATIC = Path(__file__).parent / "static"
# Where `slimvec evaluate --report` and older layouts leave a collection's report, first found wins.
REPORT_CANDIDATES = ("reports/latest/report.html", "reports/latest/index.html", "reports/report.html", "report.html")

_REPORT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>slimvec report: {name}</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="report"><header><a href="/">&larr; search</a> <h1>Evaluation report: {name}</h1></header>
<main>{body}</main></body></html>"""


def report_file(col: Any) -> Path | None:
    """The collection's evaluation report (an HTML file), or None when none was written."""
    root = Path(col.path)
    for rel in REPORT_CANDIDATES:
        p = root / rel
        if p.is_file():
            return p
    return None


def add_pages(app: FastAPI, served: Served) -> None:
    """`/` (the search page), `/static/*`, `/report/{name}` and the report's status in the JSON API."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @router.get("/api/collections/{name}/report")
    def report_status(*, col: Any = Depends(served.get), name: str) -> dict[str, Any]:
        f = report_file(col)
        return {"name": name, "available": f is not None, "url": _view_url(name) if f else None}

    @router.get("/report/{name}", include_in_schema=False)
    def report_page(name: str) -> HTMLResponse:
        f = report_file(served.get(name))
        body = (f'<iframe src="{_html(_view_url(name))}" title="report"></iframe>' if f
                else '<p class="empty">no report yet</p>')
        return HTMLResponse(_REPORT_PAGE.format(name=_html(name), body=body))

    @router.get("/report/{name}/view", include_in_schema=False)
    def report_view(name: str) -> Any:
        f = report_file(served.get(name))
        if f is None:
            raise HTTPException(404, "no report yet")
        # A report may hold scripts (plots): sandboxed, they cannot act as the API's origin.
        return FileResponse(f, media_type="text/html", headers={"Content-Security-Policy": "sandbox allow-scripts"})

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _view_url(name: str) -> str:
    """The report's URL: a collection is named after its directory, and a '#', '?' or '%' in the name, taken as
    URL syntax, cut the path short (the report tab showed "no collection named ..." for another name)."""
    return f"/report/{quote(name, safe='')}/view"


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
