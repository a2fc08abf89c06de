"""BM25 retriever: agrees with bare bm25s under the same tokenisation, follows deletes/upserts, reloads identically."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest
import Stemmer
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.retrievers.base import Query
from slimvec.retrievers.bm25 import Bm25Config, Bm25Retriever

CORPUS = [
    Document("d0", "The cat sat on the mat and purred at the other cats", "Cats"),
    Document("d1", "Dogs are running in the park while children are playing", "Dogs"),
    Document("d2", "Protein folding is studied with molecular dynamics simulations"),
    Document("d3", "A running cat chased a dog through the garden", "Pets running"),
    Document("d4", "Vitamin D deficiency is associated with bone fractures in elderly patients", "Vitamin D"),
    Document("d5", "Molecular biology of proteins: folding, misfolding and disease", "Proteins"),
    Document("d6", "Elderly dogs need less running and more sleep", ""),
    Document("d7", "Bone density decreases with age; vitamin supplements may help", "Bones"),
    Document("d8", "Stock markets fell sharply as investors feared rising interest rates"),
    Document("d9", "Interest in cats as pets has been rising among young people", "Pets"),
]
QUERIES = ["cats running", "protein folding", "vitamin bone elderly", "interest rates rising", "the dog", "zebra"]


def _indexed_text(d: Document) -> str:
    return f"{d.title} {d.text}" if d.title else d.text


def _bare_scores(docs: list[Document], query: str, stemmer=Stemmer.Stemmer("english"), stopwords="en") -> dict[str, float]:
    """Scores of bare bm25s (k1=1.5, b=0.75, lucene) over `docs`: doc id -> score, for docs scoring > 0."""
    tokens = bm25s.tokenize([_indexed_text(d) for d in docs], stopwords=stopwords, stemmer=stemmer, show_progress=False)
    bm = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    bm.index(tokens, show_progress=False)
    q = bm25s.tokenize([query], stopwords=stopwords, stemmer=stemmer, return_ids=False, show_progress=False)[0]
    q = [t for t in q if t in bm.vocab_dict]
    if not q:
        return {}
    scores = bm.get_scores(q)
    return {d.id: float(s) for d, s in zip(docs, scores) if s > 0}


def _ours(col: Collection, query: str, **kw) -> dict[str, float]:
    return {h.id: h.score for h in col.search(query, k=len(CORPUS), mode="bm25", **kw)}


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "bm25"])
    c.add(CORPUS)
    yield c
    c.close()


def _assert_same(ours: dict[str, float], bare: dict[str, float]) -> None:
    assert set(ours) == set(bare)
    for doc, s in bare.items():
        assert ours[doc] == pytest.approx(s, rel=1e-5)


def test_scores_and_ranking_equal_bare_bm25s(col):
    for q in QUERIES:
        bare = _bare_scores(CORPUS, q)
        hits = col.search(q, k=len(CORPUS), mode="bm25")
        _assert_same({h.id: h.score for h in hits}, bare)
        # ranking: best first, in bare bm25s's score order
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert [round(s, 4) for s in sorted(bare.values(), reverse=True)] == [round(h.score, 4) for h in hits]
    assert _bare_scores(CORPUS, "zebra") == {} and col.search("zebra", mode="bm25") == []


def test_top_k_is_a_prefix(col):
    full = col.search("cats running", k=len(CORPUS), mode="bm25")
    top2 = col.search("cats running", k=2, mode="bm25")
    assert [h.id for h in top2] == [h.id for h in full[:2]]


def test_deletes_disappear_and_upserts_appear(col):
    before = _ours(col, "cats running")
    assert "d0" in before and "d3" in before
    col.delete(["d0"])
    after = _ours(col, "cats running")
    assert "d0" not in after and "d3" in after
    # an upsert replaces d3's text: its old words no longer find it, its new ones do
    col.upsert([Document("d3", "Zebras graze on the savanna", "Zebra")])
    assert "d3" not in _ours(col, "cats running")
    assert list(_ours(col, "zebra")) == ["d3"]
    # after a change that adds rows the statistics are those of the live corpus again
    live = [d for d in CORPUS if d.id not in ("d0", "d3")] + [Document("d3", "Zebras graze on the savanna", "Zebra")]
    for q in QUERIES:
        _assert_same(_ours(col, q), _bare_scores(live, q))


def test_filter_never_returns_disallowed_rows(tmp_path):
    docs = [Document(d.id, d.text, d.title, {"n": i}) for i, d in enumerate(CORPUS)]
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["bm25"]) as c:
        c.add(docs)
        hits = c.search("cats running dogs", k=10, mode="bm25", filter={"n": {"$gte": 5}})
        assert hits and all(h.metadata["n"] >= 5 for h in hits)
        assert {h.id for h in hits} == {d for d in _bare_scores(CORPUS, "cats running dogs") if int(d[1:]) >= 5}


def test_persisted_index_reloads_identical(tmp_path, col):
    index = tmp_path / "col" / "index"
    retriever = Bm25Retriever.load(index)  # as the collection's write saved it: tokens and their postings
    assert retriever is not None and retriever.rows == len(CORPUS) and retriever.describe()["postings_built"]
    (index / "bm25" / "postings.json").unlink()  # a folder saved before postings: built at the first search
    retriever = Bm25Retriever.load(index)
    assert retriever is not None and not retriever.describe()["postings_built"]
    expected = {q: col.search(q, k=len(CORPUS), mode="bm25") for q in QUERIES}
    retriever.sync(col.store)
    retriever.search(Query("cats"), 1, np.ones(len(CORPUS), dtype=bool))  # builds the postings
    assert retriever.cache_pending
    retriever.save_cache(index)  # what a collection does after a search, when no writer is busy
    col.close()
    loaded = Bm25Retriever.load(index)
    assert loaded is not None and loaded.rows == len(CORPUS) and loaded.describe()["postings_built"]
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(max_tokens=256)) as again:
        for q in QUERIES:
            assert again.search(q, k=len(CORPUS), mode="bm25") == expected[q]
    # a folder written by other parameters is not reused
    assert Bm25Retriever.load(tmp_path / "col" / "index", Bm25Config(k1=0.9)) is None


def test_enable_builds_from_stored_rows_with_custom_tokenisation(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(CORPUS)
        with pytest.raises(ConfigError):
            c.search("cats", mode="bm25")
        c.store.save_manifest({"bm25": {"stemmer": None, "stopwords": None}})
        c.enable("bm25")
        assert c.manifest["retrievers"] == ["dense", "bm25"]
        for q in ("cats running", "the dog"):
            _assert_same(_ours(c, q), _bare_scores(CORPUS, q, stemmer=None, stopwords=[]))
        # without stemming "cats" does not match "cat"
        assert "d3" not in _ours(c, "cats")


def test_unknown_retriever_is_refused(tmp_path):
    with pytest.raises(ConfigError):
        Collection.create(tmp_path / "c", encoder=FakeEncoder(), retrievers=["dense", "nope"])


def test_scores_match_bare_after_incremental_batches(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["bm25"]) as c:
        c.add(CORPUS[:4])
        assert set(_ours(c, "cats running")) == set(_bare_scores(CORPUS[:4], "cats running"))
        c.add(CORPUS[4:])
        for q in QUERIES:
            _assert_same(_ours(c, q), _bare_scores(CORPUS, q))
        # every row's tokens cached once: as many tokens and terms as bm25s finds in the whole corpus
        ids, vocab = bm25s.tokenize([_indexed_text(d) for d in CORPUS], stopwords="en",
                                    stemmer=Stemmer.Stemmer("english"), show_progress=False)
        described = c.info()["indexes"]["bm25"]
        assert described["rows"] == described["indexed_rows"] == len(CORPUS)
        assert described["tokens"] == sum(map(len, ids)) and described["vocabulary"] == len(vocab)


def test_query_fast_path_tokenises_like_bm25s():
    import json
    from pathlib import Path

    from slimvec.retrievers.bm25 import Bm25Config, Tokenizer

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    texts = [json.loads(line)["text"] for line in open(data / "scifact" / "queries.jsonl", encoding="utf-8")]
    texts += ["The THE a of", "", "über-naïve café's 2024 ÉTÉ", "don't stop-words!!"]
    for cfg in (Bm25Config(), Bm25Config(stemmer=None, stopwords=None), Bm25Config(lower=False)):
        tok = Tokenizer(cfg)
        reference = tok(texts)  # bm25s.tokenize itself
        assert [tok.one(t) for t in texts] == [[t for t in r if t] for r in reference]


def test_cjk_bigrams_by_hand():
    from slimvec.retrievers.bm25 import cjk_bigrams

    assert cjk_bigrams(["北京是中国的首都"]) == ["北京", "京是", "是中", "中国", "国的", "的首", "首都"]
    assert cjk_bigrams(["2008年奥运会", "beijing", "猫"]) == ["2008", "年奥", "奥运", "运会", "beijing", "猫"]
    assert cjk_bigrams(["東京タワー"]) == ["東京", "京タ", "タワ", "ワー"]


ZH = [
    Document("z0", "北京是中华人民共和国的首都，也是全国的政治中心。"),
    Document("z1", "上海是中国最大的经济中心和国际港口城市。"),
    Document("z2", "熊猫主要生活在四川的山区，以竹子为食。"),
]


def test_cjk_profile_finds_chinese_words_inside_sentences(tmp_path):
    from slimvec.profiles import BUILTIN

    with Collection.create(tmp_path / "plain", profile="bm25", encoder=FakeEncoder(max_tokens=256)) as plain:
        plain.add(ZH)
        assert plain.search("中国的首都", mode="bm25") == []  # whole clauses are single tokens: nothing matches
    with Collection.create(tmp_path / "cjk", profile="bm25-cjk", encoder=FakeEncoder(max_tokens=256)) as col:
        col.add(ZH)
        assert col.manifest["bm25"] == BUILTIN["bm25-cjk"].bm25
        assert col.search("中国的首都", mode="bm25")[0].id == "z0"
        assert col.search("熊猫吃什么", mode="bm25")[0].id == "z2"
        # Same scores as bare bm25s over the same bigram tokens.
        from slimvec.retrievers.bm25 import Tokenizer

        tok = Tokenizer(Bm25Config.from_dict(col.manifest["bm25"]))
        bm = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        bm.index(bm25s.tokenization.Tokenized(*_ids(tok([d.text for d in ZH]))), show_progress=False)
        q = [t for t in tok.one("上海的经济") if t in bm.vocab_dict]
        bare = {d.id: float(s) for d, s in zip(ZH, bm.get_scores(q)) if s > 0}
        _assert_same(_ours(col, "上海的经济"), bare)


def _ids(token_lists):
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in token_lists]
    return ids, vocab


def test_profile_bm25_settings_are_checked():
    from slimvec.profiles import profile_from_dict

    with pytest.raises(ConfigError, match="unknown BM25 setting 'stem'"):
        profile_from_dict({"name": "x", "retrievers": ["bm25"], "bm25": {"stem": "english"}})
    with pytest.raises(ConfigError, match="klingon"):
        profile_from_dict({"name": "x", "retrievers": ["bm25"], "bm25": {"stemmer": "klingon"}})
    assert profile_from_dict({"name": "x", "bm25": {"stemmer": "german", "stopwords": "de"}}).bm25["stemmer"] == "german"
