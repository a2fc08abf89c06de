"""MUVERA fixed-dimensional encodings against a per-token loop, hand-computed cases, and MaxSim."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.muvera import MuveraConfig, muvera_documents, muvera_queries


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _reference(cfg: MuveraConfig, docs: list[np.ndarray], document: bool) -> np.ndarray:
    """The paper's definition, token by token."""
    out = []
    for x in docs:
        parts = []
        for planes, proj in cfg._matrices:
            bits = [tuple(int(v > 0) for v in t @ planes) for t in x]
            ids = [sum(b << i for i, b in enumerate(bt)) for bt in bits]
            y = x if proj is None else x @ proj
            for p in range(cfg.partitions):
                members = [j for j, i in enumerate(ids) if i == p]
                if members:
                    v = y[members].sum(axis=0)
                    parts.append(v / len(members) if document else v)
                elif document and cfg.fill_empty and len(x):
                    pbits = [(p >> i) & 1 for i in range(cfg.ksim)]
                    ham = [sum(a != b for a, b in zip(bt, pbits)) for bt in bits]
                    parts.append(y[int(np.argmin(ham))])
                else:
                    parts.append(np.zeros(cfg.dproj, np.float32))
        out.append(np.concatenate(parts))
    return np.stack(out)


def _docs(rng: np.random.Generator, lens: list[int], dim: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    docs = [_unit(rng.standard_normal((n, dim))) if n else np.zeros((0, dim), np.float32) for n in lens]
    return docs, np.concatenate(docs), np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


@pytest.mark.parametrize("dproj", [4, 12])  # 12 == dim: identity projection
def test_matches_token_by_token_definition(dproj: int) -> None:
    rng = np.random.default_rng(dproj)
    cfg = MuveraConfig(dim=12, reps=3, ksim=3, dproj=dproj, seed=5)
    docs, tokens, offsets = _docs(rng, [1, 7, 0, 30], 12)
    got = muvera_documents(cfg, tokens, offsets)
    assert got.shape == (4, cfg.fde_dim) == (4, 3 * 8 * dproj)
    np.testing.assert_allclose(got, _reference(cfg, docs, True), atol=1e-5)
    np.testing.assert_allclose(muvera_queries(cfg, docs), _reference(cfg, docs, False), atol=1e-5)
    assert not got[2].any()  # an empty document has an all-zero encoding


def test_one_partition_is_sum_against_mean() -> None:
    q = np.array([[1, 0], [0, 1]], np.float32)
    d = np.array([[1, 0], [0.6, 0.8]], np.float32)
    cfg = MuveraConfig(dim=2, reps=1, ksim=0, dproj=2)
    score = float(muvera_queries(cfg, [q])[0] @ muvera_documents(cfg, d, np.array([0, 2]))[0])
    # <q1 + q2, (d1 + d2) / 2> = <(1, 1), (0.8, 0.4)> = 1.2
    assert score == pytest.approx(1.2, abs=1e-6)


def test_fill_empty_off_leaves_zeros() -> None:
    rng = np.random.default_rng(1)
    cfg = MuveraConfig(dim=8, reps=2, ksim=4, dproj=8, fill_empty=False)
    _, tokens, offsets = _docs(rng, [2], 8)
    fde = muvera_documents(cfg, tokens, offsets).reshape(2, 16, 8)
    assert (np.abs(fde).sum(axis=2) > 0).sum(axis=1).max() <= 2  # at most 2 tokens, so at most 2 partitions
    filled = muvera_documents(MuveraConfig(dim=8, reps=2, ksim=4, dproj=8), tokens, offsets).reshape(2, 16, 8)
    assert (np.abs(filled).sum(axis=2) > 0).all()


def test_final_projection_is_a_count_sketch() -> None:
    rng = np.random.default_rng(2)
    base = MuveraConfig(dim=8, reps=2, ksim=2, dproj=4, seed=3)
    cfg = MuveraConfig(dim=8, reps=2, ksim=2, dproj=4, final_dim=10, seed=3)
    _, tokens, offsets = _docs(rng, [5, 3], 8)
    full = muvera_documents(base, tokens, offsets)
    idx, sign = cfg._sketch
    sketch = np.zeros((full.shape[1], 10), np.float32)
    sketch[np.arange(full.shape[1]), idx] = sign
    np.testing.assert_allclose(muvera_documents(cfg, tokens, offsets), full @ sketch, atol=1e-5)


def test_fde_ranking_follows_maxsim() -> None:
    # Documents around topics; queries are noisy copies of a few tokens of one document.
    rng = np.random.default_rng(4)
    dim, n_docs = 32, 200
    centres = _unit(rng.standard_normal((60, dim)))
    docs = [_unit(centres[rng.integers(0, 60, 40)] + 0.3 * rng.standard_normal((40, dim))) for _ in range(n_docs)]
    tokens = np.concatenate(docs)
    offsets = np.arange(n_docs + 1) * 40
    cfg = MuveraConfig(dim=dim, reps=10, ksim=3, dproj=16)
    dfde = muvera_documents(cfg, tokens, offsets)
    hits = 0
    for target in range(0, n_docs, 10):
        q = _unit(docs[target][:6] + 0.1 * rng.standard_normal((6, dim)))
        exact = maxsim_scores(q, tokens, offsets)
        top_fde = np.argsort(-(muvera_queries(cfg, [q])[0] @ dfde.T))[:20]
        hits += int(np.argmax(exact)) in top_fde
    assert hits >= 18  # the exact best document is among 20 FDE candidates for at least 90% of queries


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="MUVERA"):
        MuveraConfig(dim=8, ksim=20)
    with pytest.raises(ValueError, match="expected"):
        muvera_documents(MuveraConfig(dim=8), np.zeros((3, 4), np.float32), np.array([0, 3]))
