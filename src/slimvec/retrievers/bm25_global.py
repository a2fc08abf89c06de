"""Corpus-wide BM25 statistics for an index that holds only part of the corpus (one shard of a collection).

BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond") scores a term in a
document with idf(df, N) * tfc(tf, dl, avgdl): N, avgdl and the term's df are statistics of the whole corpus.
A shard that computes them over its own rows scores differently from one collection holding every document.
`Bm25Stats` carries them; each shard reports its own (`local_stats`), the router sums them (`Bm25Stats.total`)
and hands the total back to every shard, whose `Bm25Retriever` then scores its posting lists with them
(`term_scorer`).

The scoring is bm25s's own (`bm25_postings.TermScorer`, with bm25s's idf and term-frequency functions) with the
given statistics in place of the rows' own; tokenisation, variant, k1 and b stay those of the retriever. The
per-(document, term) scores of a shard scored with the corpus-wide statistics are bitwise those of one bm25s
index over the whole corpus, so the summed query scores are too (`tests/test_bm25_global.py`).

Variants bm25l and bm25+ add a per-query "non-occurrence" score summed over every query term of the index's
vocabulary; a shard's vocabulary is not the corpus's, so they are refused (`GLOBAL_METHODS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimvec.errors import ConfigError

# bm25s variants whose scores are idf(df, N) * tfc(tf, dl, avgdl) and nothing else.
GLOBAL_METHODS = ("lucene", "robertson", "atire")


@dataclass(frozen=True)
class Bm25Stats:
    """BM25 corpus statistics: `documents` (N, indexed chunk rows), `tokens` (their total length in tokens, so
    avgdl = tokens / documents) and `df` (term -> number of indexed rows holding it; terms with df 0 left out)."""

    documents: int
    tokens: int
    df: Mapping[str, int]

    @property
    def avgdl(self) -> np.float64:
        """Average row length in tokens, float64 as bm25s computes it (`np.mean` of the integer lengths)."""
        return np.float64(self.tokens) / self.documents if self.documents else np.float64(0.0)

    @staticmethod
    def total(parts: Sequence["Bm25Stats"]) -> "Bm25Stats":
        """The statistics of the union of disjoint parts (shards): N, lengths and document frequencies add up."""
        df: dict[str, int] = {}
        for p in parts:
            for term, n in p.df.items():
                df[term] = df.get(term, 0) + int(n)
        return Bm25Stats(sum(p.documents for p in parts), sum(p.tokens for p in parts), df)


def count_stats(tokens: np.ndarray, offsets: np.ndarray, vocab: Mapping[str, int]) -> Bm25Stats:
    """The statistics of a token cache: `tokens` (int32 token ids of every row, concatenated), `offsets`
    ((rows + 1,) int64, row i is tokens[offsets[i]:offsets[i+1]]) and `vocab` (term -> token id)."""
    rows = len(offsets) - 1
    v = max(len(vocab), 1)
    owner = np.repeat(np.arange(rows, dtype=np.int64), np.diff(offsets))
    pairs = np.unique(owner * v + tokens.astype(np.int64))  # each (row, term) once
    df = np.bincount(pairs % v, minlength=v)
    return Bm25Stats(rows, int(len(tokens)), {t: int(df[i]) for t, i in vocab.items() if df[i]})


def check_method(method: str) -> None:
    """Raise ConfigError when the bm25s variant `method` cannot be scored with injected statistics."""
    if method not in GLOBAL_METHODS:
        raise ConfigError(f"BM25 method {method!r} adds a non-occurrence score over the index's own vocabulary, "
                          f"so it cannot use corpus-wide statistics; sharded BM25 supports {', '.join(GLOBAL_METHODS)}")


def term_scorer(bm: Any, postings: Any, lengths: np.ndarray, terms: Sequence[str], own: tuple[int, int, np.ndarray],
                stats: Bm25Stats | None = None) -> Any:
    """A `bm25_postings.TermScorer` over `postings` (a `Postings` of rows of lengths `lengths`, (positions,) int64,
    whose token ids name `terms`) for the bm25s.BM25 `bm` (its variant, k1, b, dtype). `own`: the statistics of
    the rows that count (N, total length in tokens, (len(terms),) int64 document frequencies; rows deleted since
    they were cached are out of them). Scored with `own` when `stats` is None, else with the corpus-wide N, avgdl
    and document frequencies of `stats`; a term none of these rows holds keeps df 0 (nothing here to score).

    Raises ConfigError when `stats` is given for a variant outside GLOBAL_METHODS.
    """
    from slimvec.retrievers.bm25_postings import TermScorer

    n, tokens, df = own
    if stats is None:
        # np.float64(total) / N is bm25s's np.mean of the integer lengths: the sum of integers is exact
        return TermScorer(bm, postings, lengths, n, np.float64(tokens) / n, lambda t: int(df[t]), df)
    check_method(bm.method)
    return TermScorer(bm, postings, lengths, stats.documents, stats.avgdl,
                      lambda t: int(stats.df.get(terms[t], 0)) if df[t] else 0, df)
