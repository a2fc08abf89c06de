"""Contextual prefix: the text a chunk is encoded as, with its document title and heading path in front.

The cheap baseline for context-aware chunk embeddings (as in Anthropic's "contextual retrieval" and the
ConTEB baselines, without an LLM): "Title > Heading > Subheading" is prepended to the chunk before encoding,
so a chunk that names its subject only by pronoun still carries it. Costs only the prefix's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from slimvec.chunking import chunk_text
from slimvec.documents import Chunk, Document
from slimvec.sections import heading_path

SEPARATOR = " > "


def contextual_text(doc: Document, chunk: Chunk) -> str:
    """`chunk.text` with "title > heading path" and a newline in front; the bare text when there is neither.

    A first heading equal to the title (a Markdown H1 that gave the document its title) is not repeated.
    """
    path = list(heading_path(doc, chunk))
    if path and doc.title and path[0] == doc.title:
        path = path[1:]
    parts = [p for p in (doc.title, *path) if p]
    return f"{SEPARATOR.join(parts)}\n{chunk.text}" if parts else chunk.text


def chunk_texts(docs: Sequence[Document], chunks: Sequence[Sequence[Chunk]], contextual_prefix: bool) -> list[str]:
    """What each chunk is encoded as, in document-then-chunk order.

    contextual_prefix False: "title text", as the write path encodes chunks today (`chunking.chunk_text`);
    True: `contextual_text` (title and heading path). This is the profile flag `contextual_prefix`.
    """
    if contextual_prefix:
        return [contextual_text(d, c) for d, cs in zip(docs, chunks) for c in cs]
    return [chunk_text(d.title, c.text) for d, cs in zip(docs, chunks) for c in cs]
