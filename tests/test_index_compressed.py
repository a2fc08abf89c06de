"""CodecIndex, CodecIVFIndex, rescore, staged search: independent scans, filters, RAM, persistence."""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import pytest
from _real_vectors import recall_at_k

import slimvec.index.compressed as compressed
from slimvec.codecs import make_codec
from slimvec.codecs.binary import hamming
from slimvec.index.base import top_k
from slimvec.index.compressed import CodecIndex, CodecIVFIndex, binary_pq_centroids, rescore, staged_search
from slimvec.index.flat import ExactIndex
from slimvec.scoring import inner_products

D = 384


def _index(spec: str, docs: np.ndarray, **kw) -> CodecIndex:  # noqa: ANN003
    codec = make_codec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec.fit(docs)
    index = CodecIndex(codec, D, **kw)
    index.add(docs)
    return index


@pytest.fixture(scope="module")
def memmap_vectors(real: tuple[np.ndarray, np.ndarray], tmp_path_factory) -> np.memmap:
    docs, _ = real
    path = tmp_path_factory.mktemp("vec") / "full.f32"
    mm = np.memmap(path, np.float32, "w+", shape=docs.shape)
    mm[:] = docs
    mm.flush()
    return np.memmap(path, np.float32, "r", shape=docs.shape)


def _assert_same_top(vals: np.ndarray, rows: np.ndarray, reference: np.ndarray, k: int) -> None:
    """Scores equal the reference top-k; each returned row really has its score (ties may reorder rows)."""
    ref_vals = np.sort(reference, axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(vals, ref_vals, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(reference, rows, axis=1), vals, atol=1e-5)


@pytest.mark.parametrize("spec", ["int8", "float16", "float8", "int4", "rbinary:2", "pca:192 > int8"])
def test_asymmetric_search_equals_top_k_of_codec_scores(
    spec: str, real: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = real
    index = _index(spec, docs)
    assert not index.hamming and index.rows == len(docs)
    vals, rows = index.search(queries, 10)
    _assert_same_top(vals, rows, index.codec.score(queries, index.codes), 10)


@pytest.mark.parametrize("spec", ["int8", "float16"])
def test_few_queries_use_faiss_and_agree_with_numpy_scan(
    spec: str, real: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, queries = real
    index = _index(spec, docs)
    few = queries[:5]  # <= _FAISS_MAX_QUERIES: faiss scalar-quantizer scan over the same codes
    assert len(few) <= compressed._FAISS_MAX_QUERIES < len(queries)
    reference = index.codec.score(few, index.codes)
    vals, rows = index.search(few, 10)
    _assert_same_top(vals, rows, reference, 10)
    allowed = np.arange(len(docs)) % 5 == 2
    vals, rows = index.search(few, 10, allowed)
    reference[:, ~allowed] = -np.inf
    _assert_same_top(vals, rows, reference, 10)
    # the faiss index the scan runs on decodes the stored codes as the codec does
    np.testing.assert_allclose(
        index.codec.faiss_index(D).sa_decode(index.codes.view(np.uint8)), index.codec.decode(index.codes), atol=1e-6
    )


def test_blocked_scan_equals_single_block(real: tuple[np.ndarray, np.ndarray], monkeypatch) -> None:
    docs, queries = real
    index = _index("int8", docs)
    whole = index.search(queries, 10)
    monkeypatch.setattr(compressed, "_SCAN_CELLS", 1)  # 1024 rows per block at the minimum
    big = np.vstack([docs] * 4)  # 1200 rows: two blocks, duplicates tie across block boundaries
    index.add(np.vstack([docs] * 3))
    vals, rows = index.search(queries, 10)
    _assert_same_top(vals, rows, index.codec.score(queries, index.codec.encode(big)), 10)
    np.testing.assert_allclose(vals[:, ::4], whole[0][:, :3], atol=1e-6)


def test_pq_search_through_faiss_equals_numpy_adc(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    index = _index("pq:48x8", docs)
    vals, rows = index.search(queries, 10)
    _assert_same_top(vals, rows, index.codec.score(queries, index.codes), 10)


def test_hamming_search_equals_numpy_popcount(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    index = _index("binary", docs)
    assert index.hamming
    vals, rows = index.search(queries, 10)
    mean = docs.mean(axis=0)
    ham = hamming(np.packbits(queries - mean >= 0, axis=1), np.packbits(docs - mean >= 0, axis=1))
    _assert_same_top(vals, rows, (D - 2 * ham) / D, 10)


def test_binary_codes_can_be_searched_asymmetrically(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    index = _index("binary", docs, hamming=False)
    for q in (queries[:3], queries):  # few and many queries take different code paths elsewhere
        vals, rows = index.search(q, 10)
        _assert_same_top(vals, rows, index.codec.score(q, index.codes), 10)


def test_hamming_search_through_a_chain(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    index = _index("pca:128 > binary", docs)
    assert index.hamming
    vals, rows = index.search(queries, 5)
    chain = index.codec
    ref = chain.quantizer.symmetric_score(chain.transform_documents(queries), index.codes)
    _assert_same_top(vals, rows, ref, 5)


@pytest.mark.parametrize("spec", ["int8", "binary", "pq:48x8"])
@pytest.mark.parametrize("share", [0.05, 0.5])
def test_filters_exclude_rows(spec: str, share: float, real: tuple[np.ndarray, np.ndarray]) -> None:
    # 5% takes the subset path (scores only allowed rows), 50% the masked full scan.
    docs, queries = real
    index = _index(spec, docs)
    allowed = np.random.default_rng(0).random(len(docs)) < share
    vals, rows = index.search(queries, 10, allowed)
    found = rows[rows >= 0]
    assert found.size and allowed[found].all()
    full = (
        index.codec.symmetric_score(queries, index.codes)
        if index.hamming
        else index.codec.score(queries, index.codes)
    )
    full[:, ~allowed] = -np.inf
    kk = min(10, int(allowed.sum()))
    _assert_same_top(vals[:, :kk], rows[:, :kk], full, kk)


def test_pads_with_minus_one(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    for spec in ("int8", "binary", "pq:48x8"):
        index = _index(spec, docs)
        allowed = np.zeros(len(docs), bool)
        allowed[[3, 7]] = True
        vals, rows = index.search(queries[:2], 5, allowed)
        assert rows.shape == (2, 5)
        assert set(rows[0, :2]) == {3, 7} and (rows[:, 2:] == -1).all() and np.isneginf(vals[:, 2:]).all()
        vals, rows = index.search(queries[:1], len(docs) + 5)
        assert (rows[0, len(docs) :] == -1).all() and sorted(rows[0, : len(docs)]) == list(range(len(docs)))
    empty = CodecIndex(make_codec("float16"), D)
    vals, rows = empty.search(queries[:3], 4)
    assert rows.shape == (3, 4) and (rows == -1).all()


def test_rescore_reads_exact_scores_from_a_memmap(
    real: tuple[np.ndarray, np.ndarray], memmap_vectors: np.memmap
) -> None:
    docs, queries = real
    cand = np.array([[5, 17, -1, 2], [299, 0, 1, -1]])
    scores, rows = rescore(queries[:2], cand, memmap_vectors)
    for i in range(2):
        valid = cand[i][cand[i] >= 0]
        exact = queries[i] @ docs[valid].T
        order = np.argsort(-exact)
        np.testing.assert_array_equal(rows[i, :3], valid[order])
        np.testing.assert_allclose(scores[i, :3], exact[order], atol=1e-6)
        assert rows[i, 3] == -1 and np.isneginf(scores[i, 3])


def test_rescore_to_k_equals_scoring_every_candidate(real: tuple[np.ndarray, np.ndarray]) -> None:
    # rescore(..., k) scores only the candidates a float32 BLAS pass cannot rule out; the answer must be the
    # first k of scoring all of them, bit for bit, also with exact ties and with rows one ulp apart (where a
    # BLAS ranking and the exact one can disagree).
    docs, queries = real
    rng = np.random.default_rng(7)
    pool = np.concatenate([docs, np.repeat(docs[:1], 30, axis=0), docs[:40]])
    pool[len(docs) + 30 :] = np.nextafter(pool[len(docs) + 30 :], np.float32(np.inf))
    qs = np.concatenate([queries[:20], docs[:1], docs[3:4]])
    cand = np.stack([rng.permutation(len(pool))[:200] for _ in qs])
    cand[-2, :30] = np.arange(len(docs), len(docs) + 30)  # the 30 copies of row 0 tie with each other
    cand[-1, :80] = np.concatenate([np.arange(40), np.arange(len(docs) + 30, len(docs) + 70)])
    cand[1, -50:] = -1
    all_scores, all_rows = rescore(qs, cand, pool)
    for k in (1, 10, 40, 150, 200, 250):
        scores, rows = rescore(qs, cand, pool, k)
        w = min(k, cand.shape[1])
        assert scores.shape == (len(qs), w)
        np.testing.assert_array_equal(rows, all_rows[:, :w])
        np.testing.assert_array_equal(scores, all_scores[:, :w])
    assert (all_rows[1, 150:] == -1).all() and np.isneginf(all_scores[1, 150:]).all()
    for i, q in enumerate(qs):  # the scores are the shared kernel's, not BLAS's
        valid = all_rows[i] >= 0
        np.testing.assert_array_equal(all_scores[i, valid], inner_products(pool[all_rows[i, valid]], q))


@pytest.mark.parametrize("spec", ["binary", "int4", "pq:48x8", "pca:64 > int8"])
def test_staged_search_covering_everything_is_exact(
    spec: str, real: tuple[np.ndarray, np.ndarray], memmap_vectors: np.memmap
) -> None:
    docs, queries = real
    index = _index(spec, docs)
    exact = ExactIndex(D)
    exact.add(docs)
    want_vals, want_rows = exact.search(queries, 10)
    vals, rows = staged_search(queries, 10, 30, index, memmap_vectors)  # 10 * 30 >= 300 rows
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(vals, want_vals, rtol=1e-5)
    allowed = np.arange(len(docs)) % 3 == 0
    want_vals, want_rows = exact.search(queries, 10, allowed)
    vals, rows = staged_search(queries, 10, 30, index, memmap_vectors, allowed)
    np.testing.assert_array_equal(rows, want_rows)


def test_staged_search_recall(real: tuple[np.ndarray, np.ndarray], memmap_vectors: np.memmap) -> None:
    # Measured on 300 docs / 100 queries: binary Hamming alone 0.567; Hamming top 40 re-ranked exactly 0.910,
    # top 80 re-ranked 0.981. Floors sit a little lower.
    docs, queries = real
    index = _index("binary", docs)
    truth = top_k(queries @ docs.T, 10)[1]
    assert recall_at_k(truth, index.search(queries, 10)[1]) >= 0.5
    assert recall_at_k(truth, staged_search(queries, 10, 4, index, memmap_vectors)[1]) >= 0.87
    assert recall_at_k(truth, staged_search(queries, 10, 8, index, memmap_vectors)[1]) >= 0.95


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("int8", 300 * 384 + 2 * 384 * 4),  # codes + low/step float32 per dimension
        ("binary", 300 * 48 + 2 * 384 * 4),  # packed bits + mean and scale per dimension
        ("rbinary:2", 300 * 96 + 384 * 4 + 2 * 384 * 4),  # two levels of bits and scales
        ("pq:48x8", 300 * 48 + 48 * 256 * 8 * 4),  # codes + 48 x 256 centroids of 8 floats
        ("float16", 300 * 768),  # nothing fitted
    ],
)
def test_ram_bytes_counts_codes_and_parameters(
    spec: str, expected: int, real: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, _ = real
    assert _index(spec, docs).ram_bytes() == expected


def test_save_load_round_trip(real: tuple[np.ndarray, np.ndarray], tmp_path) -> None:
    docs, queries = real
    for spec in ("binary", "pq:48x8", "pca:192 > float8"):
        index = _index(spec, docs)
        index.save(tmp_path / spec.replace(" ", ""))
        again = CodecIndex.load(tmp_path / spec.replace(" ", ""))
        assert again.rows == index.rows and again.hamming == index.hamming
        np.testing.assert_array_equal(again.codes, index.codes)
        for got, want in zip(again.search(queries, 10), index.search(queries, 10)):
            np.testing.assert_array_equal(got, want)


def test_hamming_needs_binary_codec() -> None:
    with pytest.raises(ValueError, match="1-bit binary"):
        CodecIndex(make_codec("int8"), D, hamming=True)


def _ivf(docs: np.ndarray, nlist: int = 8, nprobe: int = 8) -> CodecIVFIndex:
    codec = make_codec("binary")
    codec.fit(docs)
    index = CodecIVFIndex(codec, D, nlist, nprobe)
    index.train(docs)
    index.add(docs[:100])
    index.add(docs[100:])  # two adds: ids continue
    return index


def test_binary_pq_centroids_decode_like_the_codec(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, _ = real
    codec = make_codec("binary")
    codec.fit(docs)
    pq = faiss.ProductQuantizer(D, D // 8, 8)
    faiss.copy_array_to_vector(binary_pq_centroids(codec).ravel(), pq.centroids)
    codes = codec.encode(docs)
    np.testing.assert_allclose(pq.decode(codes), codec.decode(codes), atol=1e-6)


def test_binary_ivf_probing_every_list_is_exact_asymmetric_search(
    real: tuple[np.ndarray, np.ndarray],
) -> None:
    docs, queries = real
    index = _ivf(docs)
    assert index.rows == len(docs)
    vals, rows = index.search(queries, 10)
    _assert_same_top(vals, rows, index.codec.score(queries, index.codec.encode(docs)), 10)
    allowed = np.arange(len(docs)) % 4 == 1
    vals, rows = index.search(queries, 10, allowed)
    assert allowed[rows].all()
    ref = index.codec.score(queries, index.codec.encode(docs))
    ref[:, ~allowed] = -np.inf
    _assert_same_top(vals, rows, ref, 10)


def test_binary_ivf_probing_one_list_stays_in_it(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    index = _ivf(docs, nlist=8, nprobe=1)
    _, rows = index.search(queries[:5], 300)
    lists = (docs @ index.centroids.T).argmax(axis=1)
    nearest = (queries[:5] @ index.centroids.T).argmax(axis=1)
    for i in range(5):
        found = rows[i][rows[i] >= 0]
        assert sorted(found) == sorted(np.flatnonzero(lists == nearest[i]))


def test_binary_ivf_staged_search_and_ram(
    real: tuple[np.ndarray, np.ndarray], memmap_vectors: np.memmap, tmp_path
) -> None:
    docs, queries = real
    index = _ivf(docs)
    exact = ExactIndex(D)
    exact.add(docs)
    vals, rows = staged_search(queries, 10, 30, index, memmap_vectors)
    np.testing.assert_array_equal(rows, exact.search(queries, 10)[1])
    # 48 code bytes + 8-byte id per row; 8 centroids; 48 x 256 x 8 float tables; mean + scale per dimension.
    assert index.ram_bytes() == 300 * (48 + 8) + 8 * D * 4 + 48 * 256 * 8 * 4 + 2 * D * 4
    before = index.search(queries, 10)
    index.compact()
    assert index.ram_bytes() == 300 * (48 + 8) + 8 * D * 4 + 48 * 256 * 8 * 4 + 2 * D * 4
    for got, want in zip(index.search(queries, 10), before):
        np.testing.assert_array_equal(got, want)
    index.add(docs[:10])  # still growable after compaction
    assert index.rows == 310
    index.save(tmp_path / "ivf")
    again = CodecIVFIndex.load(tmp_path / "ivf")
    for got, want in zip(again.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(got, want)
