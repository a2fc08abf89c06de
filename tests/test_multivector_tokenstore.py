"""The token file: row alignment, float16/codes storage, truncate-to-committed, checksums (kill -9 through the
collection: test_collection_multivector.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimvec.errors import CollectionError
from slimvec.multivector.codes import fit_token_codec
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.tokenstore import TokenStore


def _docs(rng: np.random.Generator, lens: list[int], dim: int = 16) -> list[np.ndarray]:
    out = []
    for n in lens:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        out.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
    return out


def test_float16_rows_round_trip_and_gather(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ts = TokenStore.create(tmp_path / "tokens", dim=16)
    a, b = _docs(rng, [3, 0, 5]), _docs(rng, [2, 7])
    ts.append(0, a)
    ts.append(3, b, counts=[np.array([1, 2], np.uint16), np.arange(1, 8, dtype=np.uint16)])
    ts = TokenStore.open(tmp_path / "tokens", committed_rows=5)
    assert ts.rows == 5 and ts.offsets().tolist() == [0, 3, 3, 8, 10, 17]
    all_docs = a + b
    np.testing.assert_allclose(ts.tokens(), np.concatenate(all_docs), atol=1e-3)
    assert ts.tokens().dtype == np.float16 and ts.counts().tolist() == [1] * 8 + [1, 2] + list(range(1, 8))
    tok, off = ts.gather(np.array([4, 1, 0]))
    assert off.tolist() == [0, 7, 7, 10]
    np.testing.assert_allclose(tok, np.concatenate([all_docs[4], all_docs[0]]), atol=1e-3)
    assert ts.check(5) == []
    assert ts.disk_bytes() >= 17 * 16 * 2


def test_codes_storage_decodes_for_maxsim(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    docs = _docs(rng, [40] * 30)
    codec = fit_token_codec("residual:16:2", np.concatenate(docs))
    ts = TokenStore.create(tmp_path / "t", dim=16, storage="codes", codec=codec)
    ts.append(0, docs)
    ts = TokenStore.open(tmp_path / "t", committed_rows=30)
    assert ts.tokens().shape == (1200, 2 + 2 * 2) and ts.bytes_per_token() == 6
    q = docs[3][:4]
    got = maxsim_scores(q, ts.tokens(), ts.offsets(), decode=ts.decode)
    expect = maxsim_scores(q, codec.decode(codec.encode(np.concatenate(docs))), ts.offsets())
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["codec"] == "residual"


def test_uncommitted_tail_is_cut_on_open_and_on_append(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ts = TokenStore.create(tmp_path / "t", dim=16)
    first, second = _docs(rng, [4, 4]), _docs(rng, [9, 1, 1])
    ts.append(0, first)
    ts.append(2, second)  # a writer that crashed before its SQLite commit
    ts = TokenStore.open(tmp_path / "t", committed_rows=2)
    assert ts.rows == 2 and (tmp_path / "t" / "tokens.bin").stat().st_size == 8 * 16 * 2
    assert (tmp_path / "t" / "batches.bin").stat().st_size == 24
    third = _docs(rng, [2])
    ts.append(2, third)
    np.testing.assert_allclose(ts.tokens(3)[8:], third[0], atol=1e-3)
    assert ts.check(3) == []
    with pytest.raises(CollectionError, match="cannot append at row 9"):
        ts.append(9, third)
    with pytest.raises(CollectionError, match="3 rows, 4 committed"):
        TokenStore.open(tmp_path / "t", committed_rows=4)


def test_check_finds_a_flipped_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ts = TokenStore.create(tmp_path / "t", dim=16)
    ts.append(0, _docs(rng, [5, 5]))
    ts.append(2, _docs(rng, [5]))
    with open(tmp_path / "t" / "tokens.bin", "r+b") as f:
        f.seek(10 * 16 * 2 + 7)  # inside the second batch (row 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert ts.check(3) == ["token rows 2..2 fail their checksum"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="storage"):
        TokenStore.create(tmp_path / "a", dim=4, storage="int3")
    with pytest.raises(CollectionError, match="codec"):
        TokenStore.create(tmp_path / "b", dim=4, storage="codes")
    with pytest.raises(CollectionError, match="no token store"):
        TokenStore.open(tmp_path / "nothing")
    ts = TokenStore.create(tmp_path / "c", dim=4)
    with pytest.raises(CollectionError, match=r"token array 0 has shape \(2, 3\)"):
        ts.append(0, [np.zeros((2, 3), np.float32)])
