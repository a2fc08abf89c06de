"""Chunking: token bounds, overlap, sentence preference and exact character spans, with the real tokenizer."""

from __future__ import annotations

import pytest

from slimvec.chunking import ChunkConfig, chunk_document, sentence_spans
from slimvec.documents import Document
from slimvec.encoders import load_encoder
from slimvec.errors import ConfigError


@pytest.fixture(scope="module")
def tok():
    return load_encoder()


def _long_text(n_sentences: int) -> str:
    return " ".join(f"Sentence number {i} talks about protein folding and cell biology." for i in range(n_sentences))


def test_short_text_is_one_chunk(tok):
    doc = Document("d", "A short text about vitamin D.")
    chunks = chunk_document(doc, tok, ChunkConfig(max_tokens=64, overlap=8))
    assert [(c.start, c.end, c.text) for c in chunks] == [(0, len(doc.text), doc.text)]


def test_chunks_respect_token_limit_and_spans(tok):
    doc = Document("d", _long_text(80))
    cfg = ChunkConfig(max_tokens=60, overlap=10)
    chunks = chunk_document(doc, tok, cfg)
    assert len(chunks) > 5
    for c in chunks:
        assert len(tok.token_spans(c.text)) <= cfg.max_tokens
        assert doc.text[c.start : c.end] == c.text
    # Together the chunks cover the whole text.
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start <= a.end, "consecutive chunks must touch or overlap"
        assert b.start > a.start


def test_chunks_prefer_sentence_boundaries(tok):
    doc = Document("d", _long_text(40))
    chunks = chunk_document(doc, tok, ChunkConfig(max_tokens=50, overlap=0))
    for c in chunks[:-1]:
        assert c.text.endswith("."), c.text[-30:]
    for c in chunks:
        assert c.text.startswith("Sentence")


def test_overlap_shares_text(tok):
    doc = Document("d", _long_text(40))
    chunks = chunk_document(doc, tok, ChunkConfig(max_tokens=50, overlap=20))
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))


def test_sentence_without_boundaries_is_split_by_tokens(tok):
    doc = Document("d", "word " * 500)
    chunks = chunk_document(doc, tok, ChunkConfig(max_tokens=100, overlap=0))
    assert len(chunks) == 5
    assert all(len(tok.token_spans(c.text)) <= 100 for c in chunks)


def test_truncate_mode_keeps_first_window(tok):
    doc = Document("d", _long_text(80))
    chunks = chunk_document(doc, tok, ChunkConfig(max_tokens=30, overlap=0, mode="truncate"))
    assert len(chunks) == 1 and chunks[0].start == 0
    assert len(tok.token_spans(chunks[0].text)) == 30


def test_sentence_spans_cover_sentences():
    text = "One. Two!  Three?\n\nFour"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["One.", "Two!", "Three?", "Four"]


@pytest.mark.parametrize("kwargs", [{"max_tokens": 4}, {"max_tokens": 64, "overlap": 40}, {"mode": "words"}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ConfigError):
        ChunkConfig(**kwargs)
