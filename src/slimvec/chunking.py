"""Split documents into token-bounded chunks that prefer sentence and paragraph boundaries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from slimvec.documents import Chunk, Document
from slimvec.errors import ConfigError


class TokenSpans(Protocol):
    """What a chunker needs from a model's tokenizer."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text`, without special tokens."""
        ...


# A sentence ends at . ! ? (optionally closed by quotes/brackets) followed by space; paragraphs at blank lines.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+|\n\s*\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences/paragraphs, covering all non-space text."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


@dataclass(frozen=True)
class ChunkConfig:
    """How to cut text: `max_tokens` per chunk (without special tokens), `overlap` tokens carried over."""

    max_tokens: int = 254
    overlap: int = 32
    # "tokens": split long text; "truncate": one chunk cut at max_tokens; "whole": one chunk, the model
    # truncates (the BEIR/MTEB protocol; full text for BM25 and sparse); "late": the chunks of "tokens", each
    # embedded from one pass over its whole document (slimvec.late).
    mode: str = "tokens"

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError(f"chunk tokens must be at least 8, got {self.max_tokens}")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise ConfigError(f"chunk overlap must be in [0, {self.max_tokens // 2}), got {self.overlap}")
        if self.mode not in ("tokens", "truncate", "whole", "late"):
            raise ConfigError(f"chunk mode must be 'tokens', 'truncate', 'whole' or 'late', got {self.mode!r}")


def chunk_document(doc: Document, tokenizer: TokenSpans, config: ChunkConfig) -> list[Chunk]:
    """Cut one document into chunks of at most `config.max_tokens` tokens."""
    text = doc.text
    if config.mode == "whole":
        return [Chunk(doc.id, 0, 0, len(text), text)]
    tokens = tokenizer.token_spans(text)
    if not tokens:
        return [Chunk(doc.id, 0, 0, len(text), text)]
    if config.mode == "truncate" or len(tokens) <= config.max_tokens:
        end = tokens[min(len(tokens), config.max_tokens) - 1][1]
        if len(tokens) <= config.max_tokens:
            end = len(text)
        return [Chunk(doc.id, 0, 0, end, text[:end])]
    windows = _pack(tokens, _boundary_token_starts(text, tokens), config.max_tokens, config.overlap)
    return [
        Chunk(doc.id, i, tokens[a][0], tokens[b - 1][1], text[tokens[a][0] : tokens[b - 1][1]])
        for i, (a, b) in enumerate(windows)
    ]


def _boundary_token_starts(text: str, tokens: list[tuple[int, int]]) -> list[int]:
    """Indices of tokens that begin a sentence or paragraph."""
    starts = [s for s, _ in sentence_spans(text)]
    out, j = [], 0
    for s in starts:
        while j < len(tokens) and tokens[j][0] < s:
            j += 1
        if j < len(tokens):
            out.append(j)
    return sorted(set(out) | {0})


def _pack(tokens: list[tuple[int, int]], boundaries: list[int], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy windows [a, b) over token indices that end on a boundary when one fits."""
    n = len(tokens)
    bset = set(boundaries)
    windows: list[tuple[int, int]] = []
    a = 0
    while a < n:
        limit = min(n, a + max_tokens)
        b = limit
        if limit < n:
            # Prefer the last sentence start inside the window that keeps it at least half full.
            cands = [t for t in range(limit, a + max_tokens // 2, -1) if t in bset]
            if cands:
                b = cands[0]
        windows.append((a, b))
        if b >= n:
            break
        nxt = max(b - overlap, a + 1)
        # Start the overlap on a sentence boundary when one lies inside it.
        inside = [t for t in range(nxt, b) if t in bset]
        a = inside[0] if inside else nxt
    return windows


def chunk_text(title: str, text: str) -> str:
    """The text a chunk is encoded and indexed as: the title is context for every chunk, as BEIR encodes "title text"."""
    return f"{title} {text}" if title else text
