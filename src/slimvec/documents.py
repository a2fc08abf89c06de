"""Record types that flow through every stage: Document, Chunk, Hit."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Characters that show nothing: controls (NUL, ESC...) and format characters (zero-width space and joiners,
# byte-order mark, soft hyphen). A text of only these and whitespace reads as empty to a person but not to str.strip.
_INVISIBLE = frozenset({"Cc", "Cf"})


def has_content(text: str) -> bool:
    """True when `text` holds a visible character: not whitespace, a control or a format character (Unicode
    categories Cc, Cf: NUL, zero-width space U+200B, BOM U+FEFF...). Stops at the first visible one, so ordinary
    text costs one character."""
    return any(not c.isspace() and unicodedata.category(c) not in _INVISIBLE for c in text)


@dataclass(frozen=True)
class Section:
    """A given part of a document: an id, its character span [start, end) in `Document.text`, its heading path."""

    id: str
    start: int
    end: int
    path: tuple[str, ...] = ()  # headings above and including this section's own ("Intro", "Setup")


@dataclass(frozen=True)
class Document:
    """One source document: a stable id, optional title, body text, JSON metadata and optional given sections."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # None: the chunker cuts the text itself; a tuple: the document's own parts (see `section_problem`).
    sections: tuple[Section, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"document id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"document {self.id!r}: text must be a string")
        if not isinstance(self.metadata, dict):
            raise ValueError(f"document {self.id!r}: metadata must be an object")
        if isinstance(self.sections, list) or (isinstance(self.sections, tuple)
                                               and any(isinstance(x, dict) for x in self.sections)):
            # a list, or the record form `to_record` writes ({"_id", "start", "end", "path"}): as JSONL gives them
            object.__setattr__(self, "sections", tuple(_section_of(self.id, i, x) for i, x in enumerate(self.sections)))
        if self.sections is not None and (problem := section_problem(self.text, self.sections)):
            raise ValueError(f"document {self.id!r}: sections: {problem}")

    def to_record(self, id_key: str = "_id") -> dict[str, Any]:
        """The document as a JSON-ready record: {id_key, "title", "text", "metadata"}, plus "sections" ([{"_id",
        "start", "end", "path"}]) when it has given sections; the JSONL record `slimvec index` reads back (id_key
        "_id", its default id field), or the HTTP API's document ("id"), which POST takes back."""
        out: dict[str, Any] = {id_key: self.id, "title": self.title, "text": self.text, "metadata": self.metadata}
        if self.sections:
            out["sections"] = [{"_id": s.id, "start": s.start, "end": s.end, "path": list(s.path)}
                               for s in self.sections]
        return out


def section_problem(text: str, sections: tuple[Section, ...]) -> str | None:
    """Why `sections` cannot be `text`'s sections (spans inside the text, non-empty, ordered, disjoint, ids unique), or None."""
    seen: set[str] = set()
    prev_end, prev_id = 0, ""
    for i, s in enumerate(sections):
        if not isinstance(s, Section):
            return f"item {i}: expected a Section, got {type(s).__name__}"
        if not isinstance(s.id, str) or not s.id:
            return f"item {i}: _id must be a non-empty string"
        if s.id in seen:
            return f"item {i}: _id {s.id!r} repeated"
        seen.add(s.id)
        if not 0 <= s.start < s.end <= len(text):
            return f"{s.id!r}: span [{s.start}, {s.end}) is empty or outside the text (length {len(text)})"
        if s.start < prev_end:
            return f"{s.id!r}: span [{s.start}, {s.end}) starts before the end of {prev_id!r} ({prev_end}): overlapping or out of order"
        prev_end, prev_id = s.end, s.id
    return None


def _section_of(doc_id: str, i: int, x: Any) -> Any:
    """Item `i` of a document's `sections` as a Section: a Section as it is, a record dict ({"_id" (or "id"),
    "start", "end", optional "path"}) converted; anything else is left for `section_problem` to name."""
    if not isinstance(x, dict):
        return x
    keys = set(x)
    if not keys <= {"_id", "id", "start", "end", "path"} or not keys >= {"start", "end"} or len(keys & {"_id", "id"}) != 1:
        raise ValueError(f"document {doc_id!r}: sections: item {i}: a section is {{\"_id\", \"start\", \"end\", "
                         f"\"path\"}} (path optional), got keys {sorted(keys)}")
    path = x.get("path", ())
    if not isinstance(path, (list, tuple)) or not all(isinstance(h, str) for h in path):
        raise ValueError(f"document {doc_id!r}: sections: item {i}: path must be a list of heading strings")
    start, end = x["start"], x["end"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise ValueError(f"document {doc_id!r}: sections: item {i}: start and end must be integers")
    return Section(x.get("_id", x.get("id")), start, end, tuple(path))


def blank_section_problem(text: str, sections: tuple[Section, ...]) -> str | None:
    """Why a section of `sections` cannot be new input (its span shows nothing: `has_content`), or None.

    Such a section has nothing to embed but the document's title, so it would match on the title alone (the kind
    of fault of a PDF without a text layer). New input refuses it (the readers, `Collection.add` and `upsert`); it
    is not part of `section_problem`, so documents stored before the rule still open, export, import and migrate.
    """
    blank = next((s for s in sections if not has_content(text[s.start:s.end])), None)
    if blank is None:
        return None
    return f"{blank.id!r}: span [{blank.start}, {blank.end}) holds only whitespace or invisible characters: nothing to embed"


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text, with its character span [start, end) in `Document.text`."""

    doc_id: str
    index: int
    start: int
    end: int
    text: str
    section_id: str | None = None  # the given section this chunk lies in (see `Document.sections`)


@dataclass(frozen=True)
class Hit:
    """A search result: a document scored by its best chunk, or (search unit "section") one section of it.

    `id` is always the document id; `chunk_start`/`chunk_end` the character span [start, end) of the best
    chunk in the document's text. `section` is set on section-level hits whose chunk came from a given
    section (`Document.sections`, or a Markdown/HTML heading); a section-level hit of a document without
    given sections is one of its chunks, named by id and span.
    """

    id: str
    score: float
    title: str
    snippet: str
    metadata: dict[str, Any]
    chunk_start: int = 0
    chunk_end: int = 0
    relevance: float | None = None
    section: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, as printed by `slimvec search --json`."""
        out: dict[str, Any] = {
            "id": self.id,
            "score": self.score,
            "title": self.title,
            "snippet": self.snippet,
            "metadata": self.metadata,
            "span": [self.chunk_start, self.chunk_end],
        }
        if self.relevance is not None:
            out["relevance"] = self.relevance
        if self.section is not None:
            out["section"] = self.section
        return out


_new = object.__new__


def make_hit(id: str, score: float, title: str, snippet: str, metadata: dict[str, Any], chunk_start: int = 0,
             chunk_end: int = 0, relevance: float | None = None, section: str | None = None) -> Hit:
    """`Hit(...)` with the same fields, built without the frozen dataclass's per-field `object.__setattr__`:
    search makes one per result, and this is ~5x cheaper (a tenth of a lone query's own cost at k=10)."""
    h = _new(Hit)
    h.__dict__.update(id=id, score=score, title=title, snippet=snippet, metadata=metadata, chunk_start=chunk_start,
                      chunk_end=chunk_end, relevance=relevance, section=section)
    return h


def rescored(hit: Hit, score: float, **fields: Any) -> Hit:
    """`hit` with another score (and any other `fields` given), built as `make_hit` builds one:
    `dataclasses.replace` runs __init__ again, about 5 us a hit (most of a lone merged query's merge)."""
    h = _new(Hit)
    h.__dict__.update(hit.__dict__, score=score, **fields)
    return h
