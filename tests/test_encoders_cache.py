"""Embedding cache plumbing, with a fake encoder that counts its calls (no model needed for plumbing)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from slimvec.encoders.base import Encoder
from slimvec.encoders.cache import CachedEncoder, cache_file, default_cache_dir

SRC = Path(__file__).resolve().parents[1] / "src"


class CountingEncoder:
    """Deterministic 8-d vectors from the text's hash; remembers every batch it was asked to encode."""

    kind = "dense"
    dim = 8
    max_tokens = 128

    def __init__(self, name: str = "fake-encoder", query_prompt: str = "") -> None:
        self.name = name
        self.query_prompt = query_prompt
        self.document_batches: list[list[str]] = []
        self.query_batches: list[list[str]] = []

    @staticmethod
    def vector(text: str, salt: str = "d") -> np.ndarray:
        digest = hashlib.sha256((salt + text).encode()).digest()[:8]
        raw = np.frombuffer(digest, dtype=np.uint8).astype(np.float32)
        return raw / np.linalg.norm(raw)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]

    def encode_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.document_batches.append(list(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, 8), np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        self.query_batches.append(list(texts))
        return np.stack([self.vector(self.query_prompt + t, "q") for t in texts])


def expected(texts: list[str], salt: str = "d") -> np.ndarray:
    return np.stack([CountingEncoder.vector(t, salt) for t in texts])


def test_forwards_the_encoder_protocol(tmp_path: Path) -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    assert isinstance(enc, Encoder)
    assert (enc.name, enc.kind, enc.dim, enc.max_tokens) == ("fake-encoder", "dense", 8, 128)
    assert enc.token_spans("abc") == [(0, 3)]
    assert enc.query_prompt == ""  # other attributes reach the wrapped encoder
    assert enc.cache_path == cache_file(tmp_path, "fake-encoder")
    assert enc.cache_path.parent == tmp_path


def test_second_call_makes_no_encoder_call(tmp_path: Path) -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    texts = ["alpha", "beta", "gamma"]
    first = enc.encode_documents(texts)
    second = enc.encode_documents(texts)
    assert len(inner.document_batches) == 1
    assert enc.encode_calls == 1
    assert (enc.hits, enc.misses) == (3, 3)
    assert second.dtype == np.float32 and second.shape == (3, 8)
    np.testing.assert_array_equal(first, expected(texts))
    np.testing.assert_array_equal(second, expected(texts))


def test_mixed_call_encodes_only_misses_in_one_batch_and_keeps_order(tmp_path: Path) -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    enc.encode_documents(["b", "d"])
    texts = ["a", "b", "c", "d", "e", "a"]
    out = enc.encode_documents(texts)
    # One call, misses only, each distinct text once, in first-seen order.
    assert inner.document_batches == [["b", "d"], ["a", "c", "e"]]
    assert enc.encode_calls == 2
    assert enc.misses == 2 + 3
    assert enc.hits == 3  # "b", "d" and the repeated "a"
    np.testing.assert_array_equal(out, expected(texts))


def test_persists_across_instances(tmp_path: Path) -> None:
    texts = [f"document number {i}" for i in range(50)]
    with CachedEncoder(CountingEncoder(), tmp_path) as first:
        first.encode_documents(texts)
    inner = CountingEncoder()
    second = CachedEncoder(inner, tmp_path)
    np.testing.assert_array_equal(second.encode_documents(texts[::-1]), expected(texts[::-1]))
    assert inner.document_batches == []
    assert second.cached_count() == 50


def test_queries_are_a_separate_namespace(tmp_path: Path) -> None:
    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    enc.encode_documents(["same text"])
    q = enc.encode_queries(["same text"])
    np.testing.assert_array_equal(q, expected(["same text"], "q"))
    assert inner.query_batches == [["same text"]]
    enc.encode_queries(["same text"])
    assert inner.query_batches == [["same text"]]


def test_models_and_prompts_do_not_share_vectors(tmp_path: Path) -> None:
    CachedEncoder(CountingEncoder("model-a"), tmp_path).encode_queries(["x"])
    other_model = CountingEncoder("model-b")
    CachedEncoder(other_model, tmp_path).encode_queries(["x"])
    assert other_model.query_batches == [["x"]]
    prompted = CountingEncoder("model-a", query_prompt="query: ")
    out = CachedEncoder(prompted, tmp_path).encode_queries(["x"])
    assert prompted.query_batches == [["x"]]
    np.testing.assert_array_equal(out, expected(["query: x"], "q"))


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLIMVEC_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert CachedEncoder(CountingEncoder()).cache_path.parent == tmp_path / "c"
    monkeypatch.delenv("SLIMVEC_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "slimvec" / "embeddings"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_row_is_detected_and_reencoded(tmp_path: Path, damage: str) -> None:
    texts = ["one", "two", "three"]
    enc = CachedEncoder(CountingEncoder(), tmp_path)
    enc.encode_documents(texts)
    enc.close()
    key = hashlib.sha256(b"two").digest()
    with sqlite3.connect(enc.cache_path) as conn:
        if damage == "truncate":  # a short blob, as a torn write would leave
            conn.execute("UPDATE vectors SET data = substr(data, 1, 10) WHERE key = ?", (key,))
        else:  # same length, different bytes
            conn.execute("UPDATE vectors SET data = zeroblob(length(data)) WHERE key = ?", (key,))
    conn.close()

    inner = CountingEncoder()
    again = CachedEncoder(inner, tmp_path)
    np.testing.assert_array_equal(again.encode_documents(texts), expected(texts))
    assert inner.document_batches == [["two"]]
    assert again.damaged == 1
    # The repaired row is served from now on.
    again.encode_documents(texts)
    assert inner.document_batches == [["two"]]


def test_truncated_file_is_set_aside(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(600)]
    enc = CachedEncoder(CountingEncoder(), tmp_path)
    enc.encode_documents(texts)
    enc.close()
    size = enc.cache_path.stat().st_size
    with open(enc.cache_path, "r+b") as fh:
        fh.truncate(size // 2)

    inner = CountingEncoder()
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = CachedEncoder(inner, tmp_path)
        out = again.encode_documents(texts)
    np.testing.assert_array_equal(out, expected(texts))
    assert any(p.name.startswith(enc.cache_path.name + ".corrupt-") for p in tmp_path.iterdir())


def test_garbage_file_is_set_aside(tmp_path: Path) -> None:
    path = cache_file(tmp_path, "fake-encoder")
    path.write_bytes(os.urandom(8192))
    inner = CountingEncoder()
    with pytest.warns(RuntimeWarning, match="damaged"):
        enc = CachedEncoder(inner, tmp_path)
    np.testing.assert_array_equal(enc.encode_documents(["a"]), expected(["a"]))
    assert enc.cached_count() == 1


def test_crash_in_the_middle_of_a_write_loses_only_that_batch(tmp_path: Path) -> None:
    # A child process caches ["kept-0", "kept-1"], then dies (os._exit) while inserting its next batch.
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(SRC)!r}, {str(Path(__file__).parent)!r}]
        from test_encoders_cache import CountingEncoder
        from slimvec.encoders.cache import CachedEncoder
        enc = CachedEncoder(CountingEncoder(), {str(tmp_path)!r})
        enc.encode_documents(["kept-0", "kept-1"])
        store = enc._store
        original = store.put_many
        def dying_put(ns, items):
            # Die a few hundred SQLite VM steps into the INSERT: rows written, transaction not committed.
            store._conn.set_progress_handler(lambda: os._exit(7), 200)
            original(ns, items)
        store.put_many = dying_put
        enc.encode_documents([f"lost-{{i}}" for i in range(300)])
        sys.exit(0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    assert Path(str(cache_file(tmp_path, "fake-encoder")) + "-journal").exists()  # a hot journal was left

    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    lost = [f"lost-{i}" for i in range(300)]
    out = enc.encode_documents(["kept-0", "kept-1", *lost])
    np.testing.assert_array_equal(out, expected(["kept-0", "kept-1", *lost]))
    assert inner.document_batches == [lost]
    assert enc.cached_count() == 302


def test_empty_input(tmp_path: Path) -> None:
    enc = CachedEncoder(CountingEncoder(), tmp_path)
    assert enc.encode_documents([]).shape == (0, 8)


def test_ragged_outputs_round_trip_as_lists(tmp_path: Path) -> None:
    class MultiVector(CountingEncoder):
        kind = "multivector"

        def encode_documents(self, texts: list[str], progress: bool = False) -> list[np.ndarray]:
            self.document_batches.append(list(texts))
            return [np.full((len(t), 4), len(t), dtype=np.float16) for t in texts]

    inner = MultiVector("multi")
    enc = CachedEncoder(inner, tmp_path)
    enc.encode_documents(["ab", "abcd"])
    out = enc.encode_documents(["abcd", "ab"])
    assert inner.document_batches == [["ab", "abcd"]]
    assert isinstance(out, list)
    assert [a.shape for a in out] == [(4, 4), (2, 4)]
    assert out[0].dtype == np.float16 and float(out[0][0, 0]) == 4.0


def test_token_vectors_are_cached_with_their_dense_vectors(tmp_path: Path) -> None:
    """Multi-vector encoders: dense + tokens cached together; only misses reach the model, in one call."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fakes import FakeEncoder

    class Counting(FakeEncoder):
        def __init__(self) -> None:
            super().__init__(dim=16, name="fake-tokens")
            self.batches: list[list[str]] = []

        def encode_documents_with_tokens(self, texts, progress=False, prune=None):
            self.batches.append(list(texts))
            return super().encode_documents_with_tokens(texts, progress, prune)

    model = Counting()
    cached = CachedEncoder(model, tmp_path)
    texts = ["alpha beta gamma", "delta", "alpha beta gamma"]
    dense, toks = cached.encode_documents_with_tokens(texts)
    want_d, want_t = model.encode_documents(texts), [model._tokens(t) for t in texts]
    np.testing.assert_allclose(dense, want_d, rtol=1e-6)
    for got, want in zip(toks, want_t):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))
    model.batches.clear()
    again = CachedEncoder(model, tmp_path).encode_documents_with_tokens(["delta", "epsilon zeta"])
    assert model.batches == [["epsilon zeta"]]  # only the miss, once
    assert again[1][1].shape == (2, 16)
    np.testing.assert_allclose(again[0][0], dense[1])
