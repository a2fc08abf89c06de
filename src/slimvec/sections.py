"""Given sections: chunk a document along its own parts, and find the parts of Markdown and HTML documents.

A `Document.sections` tuple (character spans, see `documents.section_problem`) replaces the token chunker's
own cuts: each section becomes one chunk that keeps the section id. Headings of Markdown (parsed by
markdown-it-py, so fenced code and setext headings are handled as CommonMark says) and of HTML become section
boundaries, each section keeping its heading path.
"""

from __future__ import annotations

from slimvec.chunking import ChunkConfig, TokenSpans, chunk_document
from slimvec.documents import Chunk, Document


def section_chunks(
    doc: Document,
    tokenizer: TokenSpans,
    config: ChunkConfig = ChunkConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> list[Chunk]:
    """One chunk per given section of `doc`, keeping its id; text outside every section is not indexed.

    A section longer than `config.max_tokens` tokens is cut into token windows inside the section (each keeps
    the section id), so no part of it is silently cut off by the model; its first window starts where the
    section starts and its last ends where it ends (whitespace there included), so the section's chunks span it
    exactly and `Collection.get` gives back the span as given. A document without sections (None) is chunked by
    `chunking.chunk_document`. Chunk spans are character spans into `doc.text`.
    """
    if doc.sections is None:
        return chunk_document(doc, tokenizer, config)
    out: list[Chunk] = []
    for s in doc.sections:
        text = doc.text[s.start : s.end]
        if len(tokenizer.token_spans(text)) <= config.max_tokens:
            out.append(Chunk(doc.id, len(out), s.start, s.end, text, s.id))
            continue
        windows = chunk_document(Document(doc.id, text), tokenizer, ChunkConfig(config.max_tokens, config.overlap))
        # The store keeps no section spans of its own: `get` rebuilds each from its chunks' first start and
        # last end, so windows trimmed to their tokens would give back a section without its edge whitespace.
        last = len(windows) - 1
        for i, c in enumerate(windows):
            start, end = (0 if i == 0 else c.start), (len(text) if i == last else c.end)
            out.append(Chunk(doc.id, len(out), s.start + start, s.start + end, text[start:end], s.id))
    return out


def heading_path(doc: Document, chunk: Chunk) -> tuple[str, ...]:
    """The heading path of the section `chunk` lies in, or () when it has none."""
    if chunk.section_id is None or not doc.sections:
        return ()
    for s in doc.sections:
        if s.id == chunk.section_id:
            return s.path
    return ()


# ---- Markdown -----------------------------------------------------------------------------------------------
