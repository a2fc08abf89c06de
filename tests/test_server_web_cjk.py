"""The search page's highlighting of Chinese and Japanese text, in a real headless Chromium.

CJK text has no spaces between words, so whole-word marking never fires on it; the page marks each CJK
run of the query by its overlapping bigrams (the bm25 retriever's cjk_bigrams rule) and joins overlaps.
A bm25-cjk collection with a fake dense encoder: the page's marking is what is tested, not ranking.
"""

from __future__ import annotations

import pytest
from _server_util import search_page
from fakes import FakeEncoder

from slimvec import Collection, Document

DOCS = [
    Document("z0", "北京是中国的首都，也是政治和文化中心。", "首都"),
    Document("z1", "维生素D有助于骨骼健康。These vitamins matter.", "维生素"),
    Document("j0", "東京タワーは東京の観光名所です。", "タワー"),
]


@pytest.fixture(scope="module")
def cjk_collection(tmp_path_factory):
    col = Collection.create(tmp_path_factory.mktemp("webcjk") / "zh", profile="bm25-cjk",
                            encoder=FakeEncoder(max_tokens=256))
    col.add(DOCS)
    yield col
    col.close()


def _marks(page, query: str) -> dict[str, list[str]]:
    page.fill("#q", query)
    page.fill("#k", "3")
    page.click("#go")
    page.wait_for_selector("#results li.hit mark", state="attached", timeout=30_000)
    out: dict[str, list[str]] = {}
    for hit in page.locator("#results li.hit").all():
        hid = hit.locator(".meta").inner_text().split(" ")[0]
        out[hid] = hit.locator(".snippet mark").all_inner_texts()
    return out


def test_page_marks_chinese_and_japanese_words_inside_sentences(cjk_collection):
    with search_page({"zh": cjk_collection}) as (page, errors):
        marks = _marks(page, "中国的首都")
        # bigrams 中国 国的 的首 首都 cover the whole clause where it appears as is: one mark, not four
        assert marks["z0"] == ["中国的首都"], marks
        marks = _marks(page, "维生素 vitamins the")
        # overlapping bigrams 维生 + 生素 join into one mark; the Latin word is still whole-word only
        # and the stopword "the" is not marked inside "These"
        assert marks["z1"] == ["维生素", "vitamins"], marks
        marks = _marks(page, "東京タワー")
        assert marks["j0"] == ["東京タワー", "東京"], marks
        assert not errors, errors
