"""Markdown and HTML headings as given sections: each heading starts a section that keeps its heading path.

The chunker (`slimvec.sections.section_chunks`) then uses exactly these sections as chunks.
"""

from __future__ import annotations

import re

from slimvec.documents import Section
from slimvec.ingest.html import dropped, tag_text


def markdown_sections(text: str) -> tuple[Section, ...] | None:
    """Sections of Markdown `text` cut at its headings (ATX and setext), or None when it has no heading.

    Each section runs from its heading line to the next heading of any level (trailing blank lines dropped);
    text before the first heading is the section "preamble". Ids are GitHub-style anchors of the heading
    ("getting-started", then "getting-started-1" for a repeat). `path` holds the enclosing headings' texts.
    """
    from markdown_it import MarkdownIt  # deferred: only Markdown files need it

    tokens = MarkdownIt("commonmark").parse(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    heads: list[tuple[int, int, str]] = []  # (char start, level, heading text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None:
            inline = tokens[i + 1].content if i + 1 < len(tokens) else ""
            heads.append((line_starts[tok.map[0]], int(tok.tag[1]), " ".join(inline.split())))
    if not heads:
        return None
    return _sections(text, heads)


# ---- HTML ---------------------------------------------------------------------------------------------------


def html_sections(html: str, text: str) -> tuple[Section, ...] | None:
    """Sections of the visible `text` extracted from `html` (by `ingest.files`), cut at its h1-h6 headings.

    Headings are found in `html` with BeautifulSoup, then located in order in `text`, where the extractor puts
    each block element in its own paragraph; a heading the extractor drops (`html.dropped`: hidden, inside a
    dialog marked hidden or a video's fallback) or not found there is skipped. A
    heading's text is looked for as the extractor writes it (`html.tag_text`), so one
    with inline markup (`Hello<b>World</b>`: "HelloWorld") or a `<br>` (two lines) is found too; its label in
    ids and paths is that text on one line. Returns None when no heading is found. Ids and paths as in
    `markdown_sections`.
    """
    from bs4 import BeautifulSoup  # deferred: a slow import that most runs never need

    soup = BeautifulSoup(html, "lxml")
    heads: list[tuple[int, int, str]] = []
    pos = 0
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        # a heading the page never shows (a hidden dialog's, a video's fallback) made a section wherever a
        # paragraph of the same text stood ("Sign in" below a hidden sign-in dialog)
        if dropped(tag) or not (shown := tag_text(tag)):
            continue
        at = _paragraph_at(text, shown, pos)
        if at < 0:
            continue
        heads.append((at, int(tag.name[1]), " ".join(shown.split())))
        pos = at + len(shown)
    if not heads:
        return None
    return _sections(text, heads)


def _paragraph_at(text: str, label: str, pos: int) -> int:
    """Start of the first paragraph at or after `pos` that begins with `label` (a whole line), or -1."""
    for m in re.finditer(re.escape(label), text[pos:]):
        at = pos + m.start()
        before_ok = at == 0 or text[at - 1] == "\n"
        end = at + len(label)
        after_ok = end == len(text) or text[end] == "\n"
        if before_ok and after_ok:
            return at
    return -1


# ---- shared -------------------------------------------------------------------------------------------------


def _sections(text: str, heads: list[tuple[int, int, str]]) -> tuple[Section, ...]:
    out: list[Section] = []
    used: set[str] = set()
    if text[: heads[0][0]].strip():
        out.append(Section(_anchor("preamble", used), *_trimmed(text, 0, heads[0][0])))
    stack: list[tuple[int, str]] = []  # (level, heading) of the enclosing headings
    for i, (start, level, label) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, label))
        s, e = _trimmed(text, start, end)
        if e > s:
            out.append(Section(_anchor(label, used), s, e, tuple(h for _, h in stack)))
    return tuple(out)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without leading and trailing whitespace."""
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    return start + lead, start + len(chunk.rstrip())


def _anchor(label: str, used: set[str]) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to '-', '-N' added for repeats."""
    slug = re.sub(r"[^\w\- ]", "", label.lower()).replace(" ", "-") or "section"
    out, n = slug, 0
    while out in used:
        n += 1
        out = f"{slug}-{n}"
    used.add(out)
    return out
