"""BM25 with injected corpus-wide statistics (retrievers/bm25_global.py), against bm25s itself on real SciFact."""

import bm25s
import numpy as np
import pytest

from slimvec.chunking import chunk_text
from slimvec.errors import ConfigError
from slimvec.retrievers.bm25 import Bm25Config, Tokenizer
from slimvec.retrievers.bm25_global import Bm25Stats, count_stats, term_scorer
from slimvec.retrievers.bm25_postings import Postings

N_DOCS = 300


@pytest.fixture(scope="module")
def corpus(scifact_docs):
    """(vocab term -> id, token ids per SciFact document) with slimvec's default tokenizer."""
    tokens = Tokenizer(Bm25Config())([chunk_text(d.title, d.text) for d in scifact_docs[:N_DOCS]])
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
    return vocab, ids


def _cache(ids):
    flat = np.asarray([t for doc in ids for t in doc], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)
    return flat, offsets


def test_count_stats_counts_documents_length_and_document_frequency():
    vocab = {"a": 0, "b": 1, "c": 2, "d": 3}
    flat, offsets = _cache([[0, 0, 1], [1, 2], [0]])
    s = count_stats(flat, offsets, vocab)
    assert (s.documents, s.tokens, dict(s.df)) == (3, 6, {"a": 2, "b": 2, "c": 1})  # "d" is in no document
    assert s.avgdl == 2.0
    both = Bm25Stats.total([s, Bm25Stats(1, 4, {"d": 1, "a": 1})])
    assert (both.documents, both.tokens, dict(both.df)) == (4, 10, {"a": 3, "b": 2, "c": 1, "d": 1})


def _scorer(ids, terms, stats=None, method="lucene"):
    flat, offsets = _cache(ids)
    postings = Postings.of_cache(flat, offsets, len(terms))
    own = (len(ids), len(flat), postings.df(len(terms)))
    return term_scorer(bm25s.BM25(k1=1.5, b=0.75, method=method), postings, np.diff(offsets), terms, own, stats)


def test_own_statistics_passed_in_score_as_the_rows_own(corpus):
    vocab, ids = corpus
    terms = list(vocab)
    own, given = _scorer(ids, terms), _scorer(ids, terms, count_stats(*_cache(ids), vocab))
    for t in range(len(terms)):
        for (rows_a, a), (rows_b, b) in zip(own.term(t), given.term(t), strict=True):
            assert np.array_equal(rows_a, rows_b) and np.array_equal(a, b)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire"])
def test_parts_scored_with_the_total_statistics_equal_one_index(corpus, scifact_judged, method):
    """Three disjoint parts, each with its own vocabulary ids, scored with the summed statistics: every
    document's query score is bitwise the one a single bm25s index over all of them gives."""
    vocab, ids = corpus
    whole = bm25s.BM25(k1=1.5, b=0.75, method=method)
    whole.scores = whole.build_index_from_ids(unique_token_ids=list(range(len(vocab))), corpus_token_ids=ids,
                                              show_progress=False)
    term = {i: t for t, i in vocab.items()}
    parts = []
    for p in range(3):
        docs = list(range(p, N_DOCS, 3))
        pv: dict[str, int] = {}
        pids = [[pv.setdefault(term[t], len(pv)) for t in ids[d]] for d in docs]
        parts.append((docs, pv, pids))
    total = Bm25Stats.total([count_stats(*_cache(pids), pv) for _, pv, pids in parts])
    assert total == count_stats(*_cache(ids), vocab)
    tok = Tokenizer(Bm25Config())
    checked = 0
    for query, _ in list(scifact_judged.values())[:30]:
        q = [t for t in tok.one(query) if t in vocab]
        if not q:
            continue
        ref = whole.get_scores_from_ids([vocab[t] for t in q])
        for docs, pv, pids in parts:
            got = _scorer(pids, list(pv), total, method).scores([pv[t] for t in q if t in pv], len(pids))
            assert np.array_equal(got, ref[docs])
            checked += int(np.count_nonzero(got))
    assert checked > 100  # real matches were compared, not only zeros


def test_variants_with_a_non_occurrence_score_are_refused(corpus):
    vocab, ids = corpus
    with pytest.raises(ConfigError, match="BM25 method 'bm25l' .* cannot use corpus-wide statistics"):
        _scorer(ids, list(vocab), count_stats(*_cache(ids), vocab), method="bm25l")


def test_a_reopened_collection_counts_the_rows_it_counted_before(tmp_path, scifact_docs, scifact_judged):
    """Rows deleted before the last add are out of N and avgdl, in this process and after reopening (the
    saved token cache drops them), so a shard restarted by Ray sums the same statistics."""
    from fakes import FakeEncoder

    from slimvec import Collection

    docs = scifact_docs[:40]
    queries = [q for q, _ in scifact_judged.values()][:10]
    # BM25 alone is searched: the profile's dense vectors come from a plumbing encoder, not a model run
    with Collection.create(tmp_path / "c", profile="bm25", encoder=FakeEncoder(dim=32)) as col:
        col.add(docs[:30])
        col.delete([d.id for d in docs[:10]])
        col.add(docs[30:])
        before = [[(h.id, h.score) for h in hits] for hits in col.search_many(queries, k=10)]
        assert col._retrievers["bm25"].local_stats().documents == 30
    with Collection.open(tmp_path / "c", encoder=FakeEncoder(dim=32)) as col:
        assert [[(h.id, h.score) for h in hits] for hits in col.search_many(queries, k=10)] == before
        assert col._retrievers["bm25"].local_stats().documents == 30
