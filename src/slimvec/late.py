"""Late chunking: embed a document's tokens once, then pool each chunk's own token span.

Late Chunking (Günther et al., 2024, "Late Chunking: Contextual Chunk Embeddings Using Long-Context Embedding
Models", arXiv:2409.04701): a chunk's vector is the mean of the contextual token vectors of its own span, taken
from one forward pass over the whole document, so every chunk "sees" the text around it. Documents longer than
the model's position limit are cut into overlapping macro windows ("long late chunking", section 3.2 of the
paper); here each chunk is pooled from the single window that gives it the most context on both sides.

`late_weight` mixes each late vector with the chunk encoded alone (its "own" vector):
`normalise((1 - w) * own + w * late)`. Any `w < 1` costs a second encoder pass over the chunks.

Defaults depend on what the chunks are (`default_config`), each chosen on its own measurements (BENCHMARKS.md,
"Late chunking"):
- token chunks of ordinary documents: pure late chunking over the model's whole window (late_weight 1.0,
  window 0 = 510 tokens for MiniLM): one encoder pass, each token encoded once, and it beats chunks encoded
  alone on the BEIR protocol; with bge-small-en-v1.5 it is also the setting chosen on NFCorpus dev queries
  (BENCHMARKS.md "Session 8: late chunking with bge-small-en-v1.5");
- a document's given sections (a record's `sections`, Markdown/HTML headings): the mix, window 256,
  late_weight 0.3 (chosen on a dev half of XQuAD-en sentences): short units of one article made alike by
  context lose to their own vectors, and gain when both are mixed, at the price of a second pass; a model
  whose own dev choice differs has its own (`section_default`: bge-small-en-v1.5 window 128, late_weight 0.2),
  recorded in the collection's manifest at creation.

A late collection of a [CLS]-pooled model pools its queries by token mean, as its chunk vectors are pooled
(`query_pooling`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slimvec.chunking import chunk_text
from slimvec.documents import Chunk, Document
from slimvec.errors import ConfigError


class TokenEncoder(Protocol):
    """What late chunking needs from an encoder (`encoders.dense.DenseEncoder` implements it)."""

    dim: int
    max_positions: int

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]: ...

    def token_embeddings(self, sequences: list[list[int]]) -> list[np.ndarray]: ...

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class LateConfig:
    """Late chunking settings (defaults measured by benchmarks/late_chunking.py, see BENCHMARKS.md "Late chunking").

    window: tokens per macro window (without [CLS]/[SEP]); 0 means the model's whole position limit
        (`max_positions`, 510 for MiniLM). Clipped to `max_positions`.
    overlap: tokens shared by consecutive windows; at least the longest chunk, so every chunk lies whole
        inside some window (a chunk that does not is pooled token by token, see `pool_chunks`).
    late_weight: w in normalise((1 - w) * own + w * late); 1.0 = pure late chunking (one pass),
        below 1 the chunks are also encoded alone (two passes).
    title_context: put the document title in front of its text in the forward pass (context only: the title's
        tokens are pooled into no chunk).
    """

    window: int = 256
    overlap: int = 128
    late_weight: float = 0.3
    title_context: bool = True

    def with_profile(self, window: int | None, overlap: int | None, late_weight: float | None) -> "LateConfig":
        """This config with the profile's fields that are set (None keeps this config's value). A window set
        without an overlap keeps the default overlap cut to half the window, as `window_for` uses it (a window below
        the default overlap used to be refused for an overlap nobody set)."""
        if overlap is None and window:
            overlap = min(self.overlap, window // 2)
        return LateConfig(self.window if window is None else window, self.overlap if overlap is None else overlap,
                          self.late_weight if late_weight is None else late_weight, self.title_context)

    def __post_init__(self) -> None:
        if self.window != 0 and self.window < 16:
            raise ConfigError(f"late window must be 0 (model limit) or at least 16 tokens, got {self.window}")
        if self.overlap < 0 or (self.window and self.overlap >= self.window):
            raise ConfigError(f"late overlap must be in [0, window), got {self.overlap} (window {self.window})")
        if not 0.0 <= self.late_weight <= 1.0:
            raise ConfigError(f"late_weight must be in [0, 1], got {self.late_weight}")

    def window_for(self, max_positions: int) -> tuple[int, int]:
        """(window, overlap) in tokens for a model accepting `max_positions` tokens."""
        window = min(self.window or max_positions, max_positions)
        return window, min(self.overlap, window // 2)


def macro_windows(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) of overlapping windows covering `n_tokens` tokens.

    Windows start every `window - overlap` tokens; the last one is moved back to end at `n_tokens`, so every
    window is full when the text is longer than one window. Returns [(0, n_tokens)] when it fits in one.
    Raises ValueError unless 0 <= overlap < window.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"need 0 <= overlap < window, got overlap {overlap}, window {window}")
    if n_tokens <= window:
        return [(0, n_tokens)]
    step = window - overlap
    out = []
    start = 0
    while start + window < n_tokens:
        out.append((start, start + window))
        start += step
    out.append((n_tokens - window, n_tokens))
    return out


def best_window(start: int, end: int, windows: Sequence[tuple[int, int]]) -> int:
    """Index of the window that holds tokens [start, end) with the most context on both sides.

    Context is min(tokens before the span, tokens after it) inside the window; the first window wins ties.
    A window that does not hold the whole span scores below every window that does.
    """
    best, best_score = 0, None
    for i, (ws, we) in enumerate(windows):
        score = min(start - ws, we - end)
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best


def pool_chunks(spans: Sequence[tuple[int, int]], windows: Sequence[tuple[int, int]],
                window_vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each span's token vectors, from its `best_window`; L2-normalised, float32, shape (len(spans), dim).

    spans: token ranges [a, b) into the sequence the windows cover; an empty span gets a zero vector.
    window_vectors[i]: the token vectors of windows[i], shape (end - start, dim).
    A span no window holds whole (only when overlap < span length) takes each token from the window that
    gives that token the most context.
    """
    dim = window_vectors[0].shape[1]
    out = np.zeros((len(spans), dim), np.float32)
    for j, (a, b) in enumerate(spans):
        if b <= a:
            continue
        w = best_window(a, b, windows)
        ws, we = windows[w]
        if ws <= a and b <= we:
            pooled = window_vectors[w][a - ws : b - ws].mean(axis=0)
        else:
            rows = []
            for t in range(a, b):
                tw = best_window(t, t + 1, windows)
                rows.append(window_vectors[tw][t - windows[tw][0]])
            pooled = np.mean(rows, axis=0)
        out[j] = pooled
    return _normalise(out)


def token_span(starts: Sequence[int], start: int, end: int) -> tuple[int, int]:
    """Token range [a, b) of the tokens that begin inside characters [start, end); `starts` = token start chars.

    Chunk spans are token-aligned (chunking uses the same tokenizer), so token starts decide membership.
    """
    return bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)


def query_pooling(chunk_mode: str, late_weight: float | None, model_pooling: str | None) -> str | None:
    """How a collection's queries are pooled: "mean" (over every position, [CLS]/[SEP] included) for a
    late-chunking collection of a [CLS]-pooled model whose chunk vectors are mostly late ones (the profile's
    `late_weight` at least 0.5, or unset: token chunks then get pure late vectors), None (the model's own
    pooling) otherwise.

    Late chunk vectors are means of contextual token vectors, not [CLS] outputs, and queries pooled the same way
    score them better. bge-small-en-v1.5, pure late chunks: NFCorpus dev +0.57 to +0.91 nDCG@10 at 64-256-token
    chunks, SciFact train +0.80 at 128 (BENCHMARKS.md "Session 8: late chunking with bge-small-en-v1.5"). Mixes
    led by the chunk's own [CLS] vector do not gain: on XQuAD-en sections (window 128, w=0.2) token-mean queries
    lost 0.27 (sentences) and 0.21 (paragraphs) points, so an explicit weight below 0.5 keeps [CLS] queries;
    given sections in a collection with the weight unset (their default mix: w=0.2 with bge) pay that small loss
    (BENCHMARKS.md "Session 9: token-mean queries for late chunking"). Mean-pooled models (MiniLM) need nothing.
    """
    if chunk_mode != "late" or model_pooling != "cls":
        return None
    return "mean" if late_weight is None or late_weight >= 0.5 else None


SECTION_DEFAULT = LateConfig(window=256, overlap=128, late_weight=0.3)
CHUNK_DEFAULT = LateConfig(window=0, overlap=128, late_weight=1.0)
# Models whose own dev choice for given sections differs from SECTION_DEFAULT (chosen by MiniLM): the setting
# with the best dev nDCG@10 on XQuAD-en sentences among those not losing on paragraphs' dev half
# (benchmarks/late_chunking.py xquad; BENCHMARKS.md "Session 9: token-mean queries for late chunking").
SECTION_DEFAULT_BY_MODEL = {"bge-small-en-v1.5": LateConfig(window=128, overlap=64, late_weight=0.2)}


def section_default(model: str) -> LateConfig:
    """The measured default for given sections with `model` (its registered name); a collection records it at
    creation (manifest "late_sections"), so a later change of defaults never mixes two settings in it."""
    return SECTION_DEFAULT_BY_MODEL.get(model, SECTION_DEFAULT)


def default_config(sections: bool, recorded: dict[str, float] | None = None) -> LateConfig:
    """The measured default for a document's chunks: given sections (True) or token chunks (False). recorded:
    the collection's "late_sections" ({"window", "overlap", "late_weight"}); collections made before it was
    recorded (None) keep SECTION_DEFAULT, the setting their sections were encoded with."""
    if not sections:
        return CHUNK_DEFAULT
    if not recorded:
        return SECTION_DEFAULT
    return LateConfig(int(recorded["window"]), int(recorded["overlap"]), float(recorded["late_weight"]))


def late_chunk_vectors(docs: Sequence[Document], chunks: Sequence[Sequence[Chunk]], encoder: TokenEncoder,
                       config: LateConfig = LateConfig(), own_texts: Sequence[str] | None = None,
                       group_windows: int = 64) -> np.ndarray:
    """One vector per chunk, in document-then-chunk order (the order the write path stores rows).

    docs[i] and chunks[i] belong together; chunks come from `chunking.chunk_document` (mode "tokens") or
    `sections.section_chunks`, with character spans into `docs[i].text`.
    own_texts: what each chunk is encoded as alone (default `chunk_text(title, chunk.text)`, as the write path
        encodes it); used only when `config.late_weight < 1`.
    group_windows: windows embedded per call, which bounds memory (about group_windows x window x dim floats).
    Returns float32, L2-normalised, shape (total chunks, encoder.dim).
    Raises ValueError when docs and chunks differ in length.
    """
    if len(docs) != len(chunks):
        raise ValueError(f"{len(docs)} documents but {len(chunks)} chunk lists")
    window, overlap = config.window_for(int(encoder.max_positions))
    total = sum(len(c) for c in chunks)
    late = np.zeros((total, int(encoder.dim)), np.float32)
    # Plan every document, then embed windows in bounded groups and pool as soon as a document's windows are in.
    pending: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]], list[int]]] = []
    row = 0
    for doc, doc_chunks in zip(docs, chunks):
        ids, spans = _document_tokens(doc, doc_chunks, encoder, config.title_context)
        windows = macro_windows(len(ids), window, overlap) if ids else []
        pending.append((row, spans, windows, ids))
        row += len(doc_chunks)
    group: list[int] = []
    n_windows = 0
    for i, (_, _, windows, _) in enumerate(pending):
        group.append(i)
        n_windows += len(windows)
        if n_windows >= group_windows or i == len(pending) - 1:
            _embed_group([pending[g] for g in group], encoder, late)
            group, n_windows = [], 0
    empty = ~late.any(axis=1)
    if config.late_weight >= 1.0 and not empty.any():
        return late
    if own_texts is None:
        own_texts = [chunk_text(d.title, c.text) for d, cs in zip(docs, chunks) for c in cs]
    if len(own_texts) != total:
        raise ValueError(f"{len(own_texts)} own texts for {total} chunks")
    if config.late_weight >= 1.0:  # only chunks without tokens need their own vector
        idx = np.flatnonzero(empty)
        late[idx] = encoder.encode_documents([own_texts[i] for i in idx])
        return late
    own = encoder.encode_documents(list(own_texts))
    late[empty] = own[empty]
    return mix(own, late, config.late_weight)


def chunk_token_counts(docs: Sequence[Document], chunks: Sequence[Sequence[Chunk]], encoder: TokenEncoder,
                       title_context: bool = True) -> np.ndarray:
    """int64 (total chunks,): tokens of each chunk's span in its document's tokenization, as late chunking
    pools it (benchmarks/late_chunking.py splits XQuAD units by it)."""
    return np.array([b - a for d, cs in zip(docs, chunks) for a, b in _document_tokens(d, cs, encoder, title_context)[1]],
                    np.int64)


def _document_tokens(doc: Document, doc_chunks: Sequence[Chunk], encoder: TokenEncoder,
                     title_context: bool) -> tuple[list[int], list[tuple[int, int]]]:
    """(token ids of the document as late chunking encodes it, each chunk's token range [a, b) in them)."""
    prefix = f"{doc.title} " if title_context and doc.title else ""
    ids, offsets = encoder.tokenize(chunk_text(doc.title, doc.text) if prefix else doc.text)
    starts = [s for s, _ in offsets]
    return ids, [token_span(starts, len(prefix) + c.start, len(prefix) + c.end) for c in doc_chunks]


def _embed_group(plans: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]], list[int]]],
                 encoder: TokenEncoder, out: np.ndarray) -> None:
    sequences = [ids[ws:we] for _, _, windows, ids in plans for ws, we in windows]
    vectors = encoder.token_embeddings(sequences)
    k = 0
    for row, spans, windows, _ in plans:
        if windows and spans:
            out[row : row + len(spans)] = pool_chunks(spans, windows, vectors[k : k + len(windows)])
        k += len(windows)


def mix(own: np.ndarray, late: np.ndarray, late_weight: float) -> np.ndarray:
    """normalise((1 - w) * own + w * late), row by row; float32, same shape as the inputs."""
    return _normalise(((1.0 - late_weight) * own + late_weight * late).astype(np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
