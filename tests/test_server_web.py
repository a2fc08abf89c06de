"""The search page in a real headless Chromium (Debian's), against a real server on loopback.

Needs /usr/bin/chromium and playwright-python: scripts/setup-browser.sh installs both.
This is also the small end-to-end test with the real default model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _server_util import search_page

from slimvec import Collection, Document

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def real_collection(tmp_path_factory):
    """Twelve sample documents embedded with the real default model."""
    docs = []
    with open(ROOT / "samples" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            meta = r.get("metadata") or {}
            docs.append(Document(r["_id"], r["text"], r.get("title", ""), meta))
            if len(docs) == 12:
                break
    col = Collection.create(tmp_path_factory.mktemp("web") / "samples")
    col.add(docs)
    yield col
    col.close()


def test_search_page_shows_highlighted_results(real_collection):
    from playwright import sync_api  # installed by the test extras; chromium by scripts/setup-browser.sh

    ARTIFACTS.mkdir(exist_ok=True)
    with search_page({"samples": real_collection}, viewport={"width": 1100, "height": 900}) as (page, errors):
        assert page.locator("#collection option").first.get_attribute("value") == "samples"
        page.fill("#q", "How do tumours evade the immune system?")
        page.fill("#k", "3")
        page.click("#go")
        try:
            page.wait_for_selector("#results li.hit mark", state="attached", timeout=30_000)
        except sync_api.TimeoutError:
            page.screenshot(path=str(ARTIFACTS / "web-search-failed.png"), full_page=True)
            raise AssertionError(f"no highlighted hits; status: {page.inner_text('#status')!r}; "
                                 f"results: {page.inner_text('#results')[:500]!r}; errors: {errors}") from None
        hits = page.locator("#results li.hit")
        assert hits.count() == 3
        marks = [m.lower() for m in page.locator("#results mark").all_inner_texts()]
        assert any(m in ("immune", "tumours", "evade", "system") for m in marks), marks
        assert "hits in" in page.inner_text("#status")
        page.screenshot(path=str(ARTIFACTS / "web-search.png"), full_page=True)
        # a bad filter is reported on the page, not as a crash
        page.fill("#filter", '{"year": {"$near": 1}}')
        page.click("#go")
        page.wait_for_selector("#status.error", timeout=15_000)
        assert "400" in page.inner_text("#status")
        # the report tab
        page.click("#tab-report")
        page.wait_for_selector("#report-body .empty", timeout=15_000)
        assert page.inner_text("#report-body") == "no report yet"
        assert not errors, errors
    assert (ARTIFACTS / "web-search.png").stat().st_size > 10_000
