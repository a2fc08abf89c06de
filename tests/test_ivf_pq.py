"""PQ codes in inverted lists (profile pq16-ivf-rescore): the lists scan with the PQ codec's own scores, nprobe is
calibrated to the target recall, and saves, reopens, small commits, compaction and filters keep every answer."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.codecs.pq import PQCodec
from slimvec.documents import Chunk
from slimvec.index.compressed import CodecIndex, CodecIVFIndex
from slimvec.profiles import BUILTIN, Profile
from slimvec.retrievers.base import Query

DIM = 64


def _rows(n: int, seed: int, centres: int = 300) -> np.ndarray:
    """Unit rows scattered around `centres` fixed directions (the same for every seed), so lists overlap."""
    centre = np.random.default_rng(centres).standard_normal((centres, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centre[rng.integers(0, centres, n)] + 0.9 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _documents(start: int, stop: int) -> tuple[list[Document], list[Chunk]]:
    """Documents d{start}..d{stop-1}, one chunk each, in ten metadata groups."""
    docs = [Document(f"d{i}", f"row {i}", metadata={"group": i % 10}) for i in range(start, stop)]
    return docs, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs]


def _collection(path, rows: np.ndarray, **profile) -> Collection:
    """A pq16-ivf-rescore collection (16 lists unless given) holding `rows`, one document each."""
    prof = BUILTIN["pq16-ivf-rescore"].model_copy(update={"nlist": 16, "compact_threshold": None, **profile})
    if not prof.rescore:  # the built-in's oversample sets how many candidates are rescored: unread without it
        prof = prof.model_copy(update={"oversample": Profile.model_fields["oversample"].default})
    col = Collection.create(path, profile=prof, encoder=FakeEncoder(dim=DIM))
    with warnings.catch_warnings():  # fewer than 39 x 256 training rows: faiss's "codes may be poor" warning
        warnings.simplefilter("ignore")
        col.add_encoded(*_documents(0, len(rows)), rows)
    return col


def _dense(col: Collection, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    retriever = col._retrievers["dense"]
    mask = np.ones(retriever.rows, bool) if allowed is None else allowed
    return retriever.search(Query("", None, q), k, mask)


def _assert_same_ranking(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    """Bitwise the same scores in order, and the same rows wherever a score is not tied with another."""
    np.testing.assert_array_equal(got[0], want[0])
    for i, score in enumerate(want[0]):
        if np.count_nonzero(want[0] == score) == 1:
            assert got[1][i] == want[1][i]


def _fitted_pq(spec: tuple[int, int], rows: np.ndarray) -> PQCodec:
    codec = PQCodec(*spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codec.fit(rows)
    return codec


@pytest.mark.parametrize("spec", [(16, 8), (8, 4)])  # 8-bit codes, and 4-bit fields packed two to a byte
def test_every_list_probed_equals_an_exact_pq_scan(spec):
    rows, queries = _rows(3000, seed=1), _rows(40, seed=2)
    codec = _fitted_pq(spec, rows)
    ivf = CodecIVFIndex(codec, DIM, nlist=16, nprobe=16)
    ivf.train(rows)
    ivf.add(rows)
    exact = CodecIndex(codec, DIM)
    exact.add(rows)
    assert ivf.index.code_size == codec.bytes_per_vector(DIM)
    got, want = ivf.search(queries, 20), exact.search(queries, 20)
    for i in range(len(queries)):
        _assert_same_ranking((got[0][i], got[1][i]), (want[0][i], want[1][i]))
    # and they are the codec's own asymmetric scores (q . decode(code))
    np.testing.assert_allclose(got[0], np.take_along_axis(codec.score(queries, exact.codes), got[1], 1), atol=1e-5)


def test_the_collection_lists_pq_codes_and_scans_them_as_the_codec_does(tmp_path):
    rows, queries = _rows(3000, seed=3), _rows(20, seed=4)
    with _collection(tmp_path / "c", rows, nprobe=16, rescore=False) as col:
        described = col.info()["indexes"]["dense"]
        assert (described["kind"], described["codec"], described["nlist"], described["nprobe"]) == \
            ("ivf", "pq:16x8", 16, 16)
        index = col._retrievers["dense"].index
        assert isinstance(index.codec, PQCodec) and index.index.pq.M == 16 and not index.index.by_residual
        exact = CodecIndex(index.codec, DIM)
        exact.add(rows)
        for q in queries:
            want = exact.search(q[None], 10)
            _assert_same_ranking(_dense(col, q, 10), (want[0][0], want[1][0]))


def _recall(col: Collection, rows: np.ndarray, queries: np.ndarray) -> float:
    hits = 0
    for q in queries:
        truth = set(np.argsort(-(rows @ q), kind="stable")[:10].tolist())
        hits += len(truth & set(_dense(col, q, 10)[1].tolist()))
    return hits / (10 * len(queries))


def test_calibrated_nprobe_reaches_the_target_against_exact_float32(tmp_path):
    from slimvec.index.nprobe import probe_queries

    rows, unseen = _rows(4000, seed=5), _rows(200, seed=6)
    probes = probe_queries(rows, len(rows))
    with _collection(tmp_path / "c", rows, nlist=32, target_recall=0.9) as col:
        described = col.info()["indexes"]["dense"]
        cal = described["calibration"]
        assert described["kind"] == "ivf" and cal["nprobe"] == described["nprobe"] and cal["rows"] == 4000
        assert 1 < cal["nprobe"] < 32
        assert _recall(col, rows, probes) >= 0.9
        # Queries not stored, from the rows' distribution: within two standard errors (2,000 neighbours) of the
        # target the probes reached (here 0.8975 at the chosen nprobe)
        assert _recall(col, rows, unseen) >= 0.9 - 0.015
        col._retrievers["dense"].ivf = (32, cal["nprobe"] - 1)  # one list fewer misses the target
        assert _recall(col, rows, probes) < 0.9
    with Collection.open(tmp_path / "c") as col:  # saved with the lists, not calibrated again
        assert col.info()["indexes"]["dense"]["calibration"] == cal


def test_a_target_the_codes_cannot_reach_probes_only_the_lists_that_matter(tmp_path):
    from slimvec.index.nprobe import CEILING_SLACK, probe_queries

    rows = _rows(4000, seed=5)
    probes = probe_queries(rows, len(rows))
    # Unrescored PQ scores cannot reach Recall@10 0.999 against float32 even with every list probed: rather than
    # every list, the calibration picks the fewest that come within CEILING_SLACK of the best any number of
    # lists gave (probing every list is one of them).
    with _collection(tmp_path / "c", rows, nlist=32, target_recall=0.999, rescore=False) as col:
        cal = col.info()["indexes"]["dense"]["calibration"]
        retriever = col._retrievers["dense"]
        retriever.ivf = (32, 32)
        ceiling = _recall(col, rows, probes)
        assert ceiling < 0.999 and 1 < cal["nprobe"] < 32
        assert cal["recall"] >= ceiling - CEILING_SLACK  # (bisection stops within 1/8 of the smallest such nprobe)


def test_save_and_reopen_give_identical_results(tmp_path):
    rows, queries = _rows(3000, seed=7), _rows(20, seed=8)
    with _collection(tmp_path / "c", rows) as col:
        before = [_dense(col, q, 10) for q in queries]
        described = col.info()["indexes"]["dense"]
    assert json.loads((tmp_path / "c" / "index" / "codes" / "fit.json").read_text())["kind"] == "ivf"
    with Collection.open(tmp_path / "c") as col:
        assert col.info()["indexes"]["dense"] == described
        for q, (scores, found) in zip(queries, before):
            again = _dense(col, q, 10)
            np.testing.assert_array_equal(again[0], scores)
            np.testing.assert_array_equal(again[1], found)


def test_an_add_of_ten_rows_after_a_save_appends_only_those_rows(tmp_path):
    rows, more = _rows(3000, seed=9), _rows(10, seed=10)
    codes = tmp_path / "c" / "index" / "codes"
    with _collection(tmp_path / "c", rows) as col:
        files = {name: (os.stat(codes / name).st_ino, (codes / name).read_bytes()) for name in ("codes.bin", "lists.bin")}
        fit = json.loads((codes / "index.json").read_text())["fit"]
        col.add_encoded(*_documents(3000, 3010), more)
        index = col._retrievers["dense"].index
        assert index.rows == 3010 and json.loads((codes / "index.json").read_text())["fit"] == fit
        for name, width in (("codes.bin", 16), ("lists.bin", 4)):
            inode, old = files[name]
            new = (codes / name).read_bytes()
            assert os.stat(codes / name).st_ino == inode  # appended in place, not rewritten
            assert len(new) == 3010 * width and new[: len(old)] == old
        assert np.array_equal(np.frombuffer((codes / "codes.bin").read_bytes()[3000 * 16 :], np.uint8).reshape(10, 16),
                              index.codec.encode(more))
        assert np.array_equal(np.frombuffer((codes / "lists.bin").read_bytes()[3000 * 4 :], np.int32),
                              (more @ index.centroids.T).argmax(axis=1))
        new_hit = _dense(col, more[3], 1)[1][0]
    with Collection.open(tmp_path / "c") as col:
        col.info()  # opens the retrievers
        assert col._retrievers["dense"].index.rows == 3010 and _dense(col, more[3], 1)[1][0] == new_hit == 3003


def test_compaction_after_deletes_keeps_ids_and_scores(tmp_path):
    rows, queries = _rows(3000, seed=11), [_rows(1, seed=s)[0] for s in range(20, 32)]
    with _collection(tmp_path / "c", rows) as col:
        col.delete([f"d{i}" for i in range(0, 3000, 3)])
        before = [[(h.id, h.score) for h in col.search_vectors(q[None], k=10)[0]] for q in queries]
        assert all(int(i[1:]) % 3 for hits in before for i, _ in hits)  # deleted documents never returned
        described = col.info()["indexes"]["dense"]
        assert col.compact()["compacted"]
        after = col.info()["indexes"]["dense"]
        assert (after["kind"], after["nlist"], after["nprobe"], after["rows"]) == \
            ("ivf", described["nlist"], described["nprobe"], 2000)
        assert [[(h.id, h.score) for h in col.search_vectors(q[None], k=10)[0]] for q in queries] == before
    with Collection.open(tmp_path / "c") as col:
        assert [[(h.id, h.score) for h in col.search_vectors(q[None], k=10)[0]] for q in queries] == before


def test_filters_return_only_allowed_rows_and_equal_exact_with_every_list_probed(tmp_path):
    rows, queries = _rows(3000, seed=13), _rows(10, seed=14)
    group = np.arange(3000) % 10 == 3
    with _collection(tmp_path / "c", rows, nprobe=16, oversample=100) as col:
        for q in queries:
            hits = col.search_vectors(q[None], k=10, filter={"group": 3})[0]
            allowed = np.flatnonzero(group)
            best = allowed[np.argsort(-(rows[allowed] @ q), kind="stable")[:10]]
            assert [h.id for h in hits] == [f"d{i}" for i in best]
    with _collection(tmp_path / "few", rows, nprobe=1) as col:  # one list a query: under the filter, ten
        found = [int(h.id[1:]) for q in queries for h in col.search_vectors(q[None], k=10, filter={"group": 3})[0]]
        assert len(found) == 100 and all(i % 10 == 3 for i in found)


def test_ram_counts_the_pq_codes_ids_and_tables(tmp_path):
    rows = _rows(3000, seed=15)
    with _collection(tmp_path / "c", rows) as col:
        index = col._retrievers["dense"].index
        tables = 16 * 256 * 4 * 4  # faiss's copy of the (16, 256, 4) centroids
        assert index.ram_bytes() == 3000 * (16 + 8) + index.centroids.nbytes + tables + index.codec.centroids.nbytes


def test_other_codecs_are_refused_by_name():
    rows = _rows(600, seed=16)
    from slimvec.codecs import make_codec

    codec = make_codec("int8")
    codec.fit(rows)
    with pytest.raises(ValueError, match="not 'int8'"):
        CodecIVFIndex(codec, DIM, nlist=4)
    with pytest.raises(ValueError, match="fitted on 64 dimensions, not 32"):
        CodecIVFIndex(_fitted_pq((16, 8), rows), 32, nlist=4)


def test_a_saved_binary_ivf_collection_still_loads(tmp_path):
    rows, queries = _rows(3000, seed=17), _rows(10, seed=18)
    prof = BUILTIN["binary-ivf-rescore"].model_copy(update={"nlist": 16})
    with Collection.create(tmp_path / "c", profile=prof, encoder=FakeEncoder(dim=DIM)) as col:
        col.add_encoded(*_documents(0, len(rows)), rows)
        before = [_dense(col, q, 10) for q in queries]
        described = col.info()["indexes"]["dense"]
    codes = tmp_path / "c" / "index" / "codes"
    meta = json.loads((codes / "index.json").read_text())
    assert (meta["kind"], meta["nlist"]) == ("ivf", 16) and json.loads((codes / "fit.json").read_text())["kind"] == "ivf"
    assert json.loads((codes / "codec" / "params.json").read_text())["codec"] == "binary"
    with Collection.open(tmp_path / "c") as col:
        assert col.info()["indexes"]["dense"] == described
        index = col._retrievers["dense"].index
        assert isinstance(index, CodecIVFIndex) and index.index.pq.M == DIM // 8
        for q, (scores, found) in zip(queries, before):
            again = _dense(col, q, 10)
            np.testing.assert_array_equal(again[0], scores)
            np.testing.assert_array_equal(again[1], found)
