"""The visible text of an HTML page, as a browser lays it out: block elements as paragraphs, table cells and
rows, `<br>` and `<pre>` as word and line boundaries.

What is not page text is dropped with everything inside it: `<script>`, `<style>` and `<template>` (code, never
shown), `<head>` (its `<title>` is the document's title), `<noscript>` (what a browser without scripts shows
instead, mostly "enable JavaScript"), `<iframe>` and `<object>` (another document), `<svg>` (a drawing: its
labels and `<title>` tooltips are not prose, and an SVG `<title>` is never the page's title), `<video>`, `<audio>`
and `<canvas>` (their text is fallback a browser shows only when it cannot play or draw them: "your browser does
not support video"), elements marked `hidden`, comments and processing instructions. MathML stays (browsers
render it).
"""

from __future__ import annotations

import re
from typing import Any

_DROP = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object", "video", "audio", "canvas"]
# fmt: off
_BLOCKS = [
    "address", "article", "aside", "blockquote", "caption", "center", "dd", "details", "dialog", "dir", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hgroup", "hr", "legend", "li", "listing", "main", "menu", "nav", "ol", "optgroup", "option", "p", "pre",
    "search", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul", "xmp",
]
# fmt: on
# Markers no HTML text can hold (stripped from the input first): a paragraph break, a line break, and around the
# number of a <pre> block whose text is put back as it was, its lines and indentation kept.
_PARA, _LINE, _PRE = "\x00", "\x01", "\x02"
_PRE_MARK = re.compile(f"{_PRE}(\\d+){_PRE}")


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page or fragment: whitespace collapsed inside a line, block boundaries
    kept as blank lines, `<br>` as a line break, cells of a row apart by a space, `<pre>` lines and indentation
    as written. The title is the page's `<title>` (not an SVG one), "" without one."""
    # Deferred: bs4 is a slow import that most runs never need.
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html.replace(_PARA, "").replace(_LINE, "").replace(_PRE, ""), "lxml")
    title_tag = soup.find(lambda t: t.name == "title" and t.find_parent(["svg", "math"]) is None)
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    return title, _visible_text(soup)


def tag_text(tag: Any) -> str:
    """The visible text of a BeautifulSoup tag as `html_to_text` writes it for the same markup (worked on a copy:
    the tag and its tree are left as they are)."""
    import copy

    return _visible_text(copy.copy(tag))


def dropped(tag: Any) -> bool:
    """Whether `html_to_text` drops BeautifulSoup `tag` with everything in it: it or an element around it is one of
    those the module doc lists, or is marked `hidden`."""
    return any(t.name in _DROP or t.has_attr("hidden") for t in (tag, *tag.parents) if t.name != "[document]")


def _visible_text(soup: Any) -> str:
    from bs4 import Comment, Declaration, Doctype, ProcessingInstruction

    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(hidden=True):
        tag.decompose()
    for node in soup.find_all(
        string=lambda s: isinstance(s, (Comment, Declaration, Doctype, ProcessingInstruction))
    ):
        node.extract()
    for tag in soup.find_all("br"):
        tag.replace_with(_LINE)
    pres: list[str] = []
    for tag in soup.find_all("pre"):  # preformatted: its newlines and indentation are the text's (code, poems)
        lines = [line.rstrip() for line in tag.get_text().replace(_LINE, "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        tag.clear()
        tag.append(f"{_PRE}{len(pres)}{_PRE}")
        pres.append("\n".join(lines))
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(_PARA)
        tag.insert_after(_PARA)
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" ")  # adjacent cells must not glue their words together
    paragraphs = []
    for block in soup.get_text().split(_PARA):
        lines = (" ".join(line.split()) for line in block.split(_LINE))
        para = "\n".join(line for line in lines if line)
        if para := _PRE_MARK.sub(lambda m: pres[int(m[1])], para).strip("\n"):
            paragraphs.append(para)
    return "\n\n".join(paragraphs)
