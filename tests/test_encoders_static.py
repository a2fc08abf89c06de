"""WordLlama static encoder: bundled weights, normalised vectors, token spans, Matryoshka truncation."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec import Collection, Document
from slimvec.encoders.registry import load_encoder
from slimvec.encoders.static import WORDLLAMA
from slimvec.profiles import profile_from_dict


@pytest.fixture(scope="module")
def enc():
    return load_encoder("wordllama")


def test_vectors_are_normalised_and_similar_texts_score_higher(enc):
    assert enc.name == WORDLLAMA and enc.dim == 256
    docs = enc.encode_documents(["Vitamin D helps bones absorb calcium.", "Galaxies collide over billions of years."])
    assert docs.shape == (2, 256) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    q = enc.encode_queries(["calcium and bone health"])[0]
    assert q @ docs[0] > q @ docs[1]
    assert enc.encode_documents([]).shape == (0, 256)


def test_token_spans_cover_the_words(enc):
    text = "Tumours evade immunity."
    spans = enc.token_spans(text)
    assert spans and all(0 <= a < b <= len(text) for a, b in spans)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")


def test_matryoshka_collection_ranks_by_the_leading_dimensions(tmp_path, enc, scifact_docs):
    docs = [Document(d.id, d.text, d.title) for d in scifact_docs[:60]]
    prof = profile_from_dict({"name": "mrl64", "model": "wordllama", "codec": "truncate:64", "chunk_mode": "whole"})
    with Collection.create(tmp_path / "c", profile=prof) as col:
        col.add(docs)
        query = "cell signalling in cancer"
        hits = col.search(query, k=10)
        vecs = np.asarray(col.store.vectors(col.store.committed_rows))
    # Brute force: the first 64 coordinates, renormalised on the document side.
    head = vecs[:, :64] / np.linalg.norm(vecs[:, :64], axis=1, keepdims=True)
    scores = head @ enc.encode_queries([query])[0][:64]
    expected = [docs[i].id for i in np.argsort(-scores, kind="stable")[:10]]
    assert [h.id for h in hits] == expected
    with Collection.open(tmp_path / "c") as again:  # the manifest names the model, which loads by that name
        assert again.manifest["model"] == WORDLLAMA
        assert [h.id for h in again.search(query, k=10)] == expected


def test_loading_wordllama_leaves_the_host_root_logger_alone():
    import subprocess
    import sys

    code = ("import logging; from slimvec.encoders.registry import load_encoder; load_encoder('wordllama'); "
            "r = logging.getLogger(); print(r.level, len(r.handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(30), "0"]  # WARNING and no handler, as an untouched interpreter has
