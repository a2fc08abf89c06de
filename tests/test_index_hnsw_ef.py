"""HNSW efSearch chosen from the collection's own rows (index.nprobe.calibrate_ef), as nprobe is for IVF."""

from __future__ import annotations

import json

import numpy as np
from test_retrievers_compressed import _clustered, _vector_collection

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.index.nprobe import EF_STEPS, probe_queries


def _hnsw_collection(path, rows, **profile):
    return _vector_collection(path, rows, base="hnsw-f32", **profile)


def _recall_at_10(col, rows, queries):
    """Mean Recall@10 of the graph searched for 10 rows, the depth `calibrate_ef` measures at (a k=10 collection
    search asks for 40, which faiss walks at least as wide: see index.nprobe.calibrate_ef), against brute force."""
    from slimvec.retrievers.base import Query

    retriever, everyone, total = col._retrievers["dense"], np.ones(len(rows), bool), 0
    for q in queries:
        exact = np.argsort(-(rows @ q), kind="stable")[:10].tolist()
        total += len(set(exact) & set(retriever.search(Query("", None, q), 10, everyone)[1].tolist()))
    return total / (10 * len(queries))


def test_calibrated_ef_reaches_its_target_and_is_the_smallest_step_that_does(tmp_path):
    rows = _clustered(6000, 64, seed=3, centres=40)
    probes = probe_queries(rows, len(rows))
    with _hnsw_collection(tmp_path / "c", rows, target_recall=0.97) as col:
        described = col.info()["indexes"]["dense"]
        cal = described["calibration"]
        assert described["kind"] == "hnsw" and cal["ef_search"] == described["ef_search"]
        assert cal["target_recall"] == 0.97 and cal["rows"] == 6000 and cal["queries"] == 256
        ef = cal["ef_search"]
        assert EF_STEPS[0] < ef < 128, ef  # the data needs more than the smallest step, less than the old fixed 128
        assert _recall_at_10(col, rows, probes) >= 0.97
        col._retrievers["dense"].index.ef_search = EF_STEPS[EF_STEPS.index(ef) - 1]
        assert _recall_at_10(col, rows, probes) < 0.97  # the step below misses
    with Collection.open(tmp_path / "c") as col:  # saved with the graph, not recomputed
        assert col.info()["indexes"]["dense"]["calibration"] == cal
        assert col._retrievers["dense"].index.ef_search == ef


def test_a_fixed_ef_is_kept_and_a_collection_from_before_the_field_keeps_128(tmp_path):
    rows = _clustered(1500, 32, seed=4, centres=30)
    with _hnsw_collection(tmp_path / "fixed", rows, ef_search=40) as col:
        described = col.info()["indexes"]["dense"]
        assert described["ef_search"] == 40 and "calibration" not in described
    with _hnsw_collection(tmp_path / "old", rows) as col:
        assert "calibration" in col.info()["indexes"]["dense"]
    manifest = tmp_path / "old" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["profile"]["ef_search"]  # as written by a slimvec before the field
    manifest.write_text(json.dumps(m))
    (tmp_path / "old" / "index" / "hnsw.faiss").unlink()  # the graph is rebuilt from the vectors on open
    with Collection.open(tmp_path / "old") as col:
        described = col.info()["indexes"]["dense"]
        assert described["ef_search"] == 128 and "calibration" not in described


def test_ef_is_recalibrated_when_the_rows_double(tmp_path):
    rows = _clustered(3000, 32, seed=5, centres=30)
    with _hnsw_collection(tmp_path / "c", rows[:1000]) as col:
        assert col.info()["indexes"]["dense"]["calibration"]["rows"] == 1000
        more = [Document(f"e{i}", f"row {i}") for i in range(1000, 1900)]
        col.add_encoded(more, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in more], rows[1000:1900])
        assert col.info()["indexes"]["dense"]["calibration"]["rows"] == 1000  # not yet doubled
        more = [Document(f"e{i}", f"row {i}") for i in range(1900, 3000)]
        col.add_encoded(more, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in more], rows[1900:3000])
        assert col.info()["indexes"]["dense"]["calibration"]["rows"] == 3000
