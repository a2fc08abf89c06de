"""MaxSim read in place (`maxsim_rows`, ONNX Runtime Cast + MatMul) against a brute-force per-document loop,
and the hand-written ONNX graph against onnx's own helper and checker."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_multivector_maxsim import _brute, _unit

from slimvec.multivector import kernel
from slimvec.multivector import maxsim as ms


def _corpus(rng: np.random.Generator, lens: list[int], dim: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.concatenate([_unit(rng, n, dim) for n in lens]).astype(dtype)
    return tokens, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("workers", [1, 3])
def test_matches_brute_force(monkeypatch: pytest.MonkeyPatch, dtype: type, workers: int) -> None:
    monkeypatch.setattr(ms, "_workers", lambda: workers)
    rng = np.random.default_rng(7)
    lens = [int(n) for n in rng.integers(0, 40, 60)]
    lens[3] = lens[17] = 0
    tokens, offsets = _corpus(rng, lens, 24, dtype)
    q = _unit(rng, 6, 24)
    docs = np.array([3, 5, 5, 59, 0, 17, 22, 40, 41, 8], np.int64)  # a repeat and empty documents included
    got = ms.maxsim_rows(q, tokens, offsets, docs)
    # the reference sees exactly the stored values (float16 widened exactly) and the float32 query
    ref = _brute(q, [tokens[offsets[d] : offsets[d + 1]].astype(np.float32) for d in docs])
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    assert got[0] == 0.0 and got[5] == 0.0  # documents 3 and 17 have no tokens


def test_products_in_slices_across_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    # More rows than one products slice, with a slice edge inside documents: same as the brute force.
    monkeypatch.setattr(ms, "_workers", lambda: 1)
    monkeypatch.setattr(kernel, "_SLICE_ROWS", 64)
    rng = np.random.default_rng(8)
    lens = [int(n) for n in rng.integers(1, 50, 40)]
    tokens, offsets = _corpus(rng, lens, 16, np.float16)
    q = _unit(rng, 5, 16)
    docs = np.arange(40)[::-1].copy()
    assert offsets[-1] > 64 * 10
    ref = _brute(q, [tokens[offsets[d] : offsets[d + 1]].astype(np.float32) for d in docs])
    np.testing.assert_allclose(ms.maxsim_rows(q, tokens, offsets, docs), ref, rtol=0, atol=1e-5)


def test_equals_gather_then_maxsim_scores_on_float16_memmap(tmp_path) -> None:
    rng = np.random.default_rng(3)
    lens = [int(n) for n in rng.integers(1, 30, 200)]
    tokens, offsets = _corpus(rng, lens, 32, np.float16)
    tokens.tofile(tmp_path / "tokens.bin")
    mm = np.memmap(tmp_path / "tokens.bin", dtype=np.float16, mode="r", shape=tokens.shape)
    q = _unit(rng, 9, 32)
    docs = rng.permutation(200)[:80]
    got = ms.maxsim_rows(q, mm, offsets, docs)
    sub, sub_off = ms.gather(mm, offsets, docs, np.float32)
    np.testing.assert_allclose(got, ms.maxsim_scores(q, sub, sub_off), rtol=0, atol=1e-5)
    s, i = ms.rerank(q, mm, offsets, np.concatenate([docs, [-1]]), 5)
    order = np.lexsort((docs, -ms.maxsim_scores(q, sub, sub_off)))[:5]
    assert list(i) == list(docs[order])  # rerank's float16 path ranks as the gathered float32 path


def test_empty_query_and_no_documents() -> None:
    rng = np.random.default_rng(1)
    tokens, offsets = _corpus(rng, [3, 4], 8, np.float16)
    assert ms.maxsim_rows(np.zeros((0, 8), np.float32), tokens, offsets, np.array([0, 1])).tolist() == [0.0, 0.0]
    assert ms.maxsim_rows(_unit(rng, 2, 8), tokens, offsets, np.zeros(0, np.int64)).shape == (0,)


def test_bad_input_raises() -> None:
    rng = np.random.default_rng(2)
    tokens, offsets = _corpus(rng, [3, 4], 8, np.float16)
    with pytest.raises(ValueError, match=r"expected \(q, 8\)"):
        ms.maxsim_rows(_unit(rng, 2, 6), tokens, offsets, np.array([0]))
    with pytest.raises(ValueError, match="float16 or float32 tokens, got uint8"):
        ms.maxsim_rows(_unit(rng, 2, 8), np.zeros((7, 8), np.uint8), offsets, np.array([0]))
    with pytest.raises(ValueError, match="got int8"):
        kernel.model_bytes(np.int8)


def test_threads_score_concurrently() -> None:
    """Searches from several threads share the session; each thread has its own scratch block."""
    rng = np.random.default_rng(5)
    lens = [int(n) for n in rng.integers(5, 50, 100)]
    tokens, offsets = _corpus(rng, lens, 16, np.float16)
    queries = [_unit(rng, 4, 16) for _ in range(6)]
    docs = [rng.permutation(100)[: 20 + 10 * j] for j in range(6)]  # different sizes: scratch blocks grow
    want = [_brute(q, [tokens[offsets[d] : offsets[d + 1]].astype(np.float32) for d in ds])
            for q, ds in zip(queries, docs)]
    got: dict[int, np.ndarray] = {}

    def run(j: int) -> None:
        for _ in range(3):
            got[j] = ms.maxsim_rows(queries[j], tokens, offsets, docs[j])

    threads = [threading.Thread(target=run, args=(j,)) for j in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j in range(6):
        np.testing.assert_allclose(got[j], want[j], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_graph_matches_onnx_helper(dtype: type) -> None:
    onnx = pytest.importorskip("onnx")  # the `onnx` extra; the kernel itself needs only onnxruntime
    from onnx import TensorProto, helper

    model = onnx.load_from_string(kernel.model_bytes(dtype))
    onnx.checker.check_model(model, full_check=True)
    half = dtype == np.float16
    nodes = ([helper.make_node("Cast", ["x"], ["xf"], name="widen", to=TensorProto.FLOAT)] if half else []) + [
        helper.make_node("MatMul", ["xf" if half else "x", "q"], ["s"], name="products")]
    graph = helper.make_graph(
        nodes, "maxsim_products",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16 if half else TensorProto.FLOAT, ["n", "d"]),
         helper.make_tensor_value_info("q", TensorProto.FLOAT, ["d", "m"])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", "m"])])
    want = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert model == want
