"""Exact MaxSim against a brute-force per-document loop, and against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.multivector import maxsim as ms


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """sum over query tokens of the max dot product over the document's tokens, in float64; 0 without tokens."""
    out = []
    for d in docs:
        if len(d) == 0 or len(q) == 0:
            out.append(0.0)
            continue
        out.append(sum(max(float(np.dot(t.astype(np.float64), u.astype(np.float64))) for u in d) for t in q))
    return np.asarray(out)


def _corpus(rng: np.random.Generator, lens: list[int], dim: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    docs = [_unit(rng, n, dim) for n in lens]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.concatenate(docs) if sum(lens) else np.zeros((0, dim), np.float32)
    return docs, tokens, offsets


def test_hand_computed() -> None:
    q = np.array([[1, 0], [0, 1]], np.float32)
    d0 = np.array([[1, 0], [0.6, 0.8]], np.float32)  # best per query token: 1.0 and 0.8
    d1 = np.array([[0, -1]], np.float32)  # 0.0 and -1.0
    tokens = np.concatenate([d0, d1])
    got = ms.maxsim_scores(q, tokens, np.array([0, 2, 3]))
    np.testing.assert_allclose(got, [1.8, -1.0], rtol=1e-6)


def test_matches_brute_force_with_empty_documents_and_queries() -> None:
    rng = np.random.default_rng(0)
    lens = [5, 0, 1, 17, 3, 0, 40]
    docs, tokens, offsets = _corpus(rng, lens, 16)
    queries = [_unit(rng, 4, 16), np.zeros((0, 16), np.float32), _unit(rng, 9, 16)]
    got = ms.maxsim_scores(queries, tokens, offsets)
    assert got.shape == (3, len(lens)) and got.dtype == np.float32
    for j, q in enumerate(queries):
        np.testing.assert_allclose(got[j], _brute(q, docs), rtol=1e-5, atol=1e-5)


def test_blocks_do_not_change_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    lens = list(rng.integers(0, 30, size=60))
    docs, tokens, offsets = _corpus(rng, lens, 8)
    q = _unit(rng, 6, 8)
    whole = ms.maxsim_scores(q, tokens, offsets)
    monkeypatch.setattr(ms, "_BLOCK_BYTES", 4 * (6 + 8) * 7)  # 7 tokens: smaller than some documents
    np.testing.assert_allclose(ms.maxsim_scores(q, tokens, offsets), whole, rtol=1e-6)
    np.testing.assert_allclose(whole, _brute(q, docs), rtol=1e-5, atol=1e-5)


def test_float16_tokens_score_close_to_float32() -> None:
    rng = np.random.default_rng(2)
    docs, tokens, offsets = _corpus(rng, [12, 7, 30], 32)
    q = _unit(rng, 5, 32)
    np.testing.assert_allclose(ms.maxsim_scores(q, tokens.astype(np.float16), offsets),
                               _brute(q, docs), atol=5 * 5e-4)


def test_topk_respects_allowed_and_pads() -> None:
    rng = np.random.default_rng(3)
    docs, tokens, offsets = _corpus(rng, [4, 4, 4, 4, 4], 8)
    q = _unit(rng, 3, 8)
    ref = _brute(q, docs)
    allowed = np.array([True, False, True, False, True])
    s, i = ms.maxsim_topk(q, tokens, offsets, 4, allowed)
    expect = [d for d in np.argsort(-ref) if allowed[d]]
    assert list(i[:3]) == expect and i[3] == -1 and s[3] == -np.inf
    np.testing.assert_allclose(s[:3], ref[expect], rtol=1e-5)


def test_rerank_returns_candidate_ids() -> None:
    rng = np.random.default_rng(4)
    docs, tokens, offsets = _corpus(rng, [3, 9, 1, 6, 2, 8], 8)
    q = _unit(rng, 4, 8)
    ref = _brute(q, docs)
    cand = np.array([5, -1, 1, 3])
    s, i = ms.rerank(q, tokens, offsets, cand, 2)
    best = sorted([5, 1, 3], key=lambda d: -ref[d])[:2]
    assert list(i) == best
    np.testing.assert_allclose(s, ref[best], rtol=1e-5)


def test_bad_offsets_raise() -> None:
    tokens = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="offsets"):
        ms.maxsim_scores(np.zeros((1, 4), np.float32), tokens, np.array([0, 3, 2, 5]))
    with pytest.raises(ValueError, match="token count"):
        ms.maxsim_scores(np.zeros((1, 4), np.float32), tokens, np.array([0, 3]))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_gather_as_float32_equals_copy_then_cast(tmp_path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    # The rerank hot path casts float16 rows straight into float32, split over threads: same rows, same order,
    # exact values, whatever the split (documents of 0 tokens included).
    monkeypatch.setattr(ms, "_workers", lambda: workers)
    rng = np.random.default_rng(workers)
    lens = [int(n) for n in rng.integers(0, 30, 50)]
    _, tokens, offsets = _corpus(rng, lens, 16)
    path = tmp_path / "t.f16"
    tokens.astype(np.float16).tofile(path)
    mm = np.memmap(path, dtype=np.float16, mode="r", shape=tokens.shape)
    docs = rng.permutation(50)[:37]
    ref_tok, ref_off = ms.gather(mm, offsets, docs)
    got_tok, got_off = ms.gather(mm, offsets, docs, np.float32)
    assert ref_tok.dtype == np.float16 and got_tok.dtype == np.float32
    np.testing.assert_array_equal(got_off, ref_off)
    np.testing.assert_array_equal(got_tok, ref_tok.astype(np.float32))
    expect = np.concatenate([tokens[offsets[d]:offsets[d + 1]] for d in docs]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got_tok, expect)
    empty_tok, empty_off = ms.gather(mm, offsets, np.zeros(0, np.int64), np.float32)
    assert empty_tok.shape == (0, 16) and empty_tok.dtype == np.float32 and empty_off.tolist() == [0]
