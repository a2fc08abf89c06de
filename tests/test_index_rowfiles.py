"""Codes and inverted lists saved append-only: a commit writes its new rows, and the files equal a full rebuild."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from slimvec import Collection, Document
from slimvec.codecs import make_codec
from slimvec.index import rowfiles
from slimvec.index.compressed import CodecIndex, CodecIVFIndex

D = 384


def _fitted(spec, docs):
    codec = make_codec(spec)
    codec.fit(docs)
    return codec


def _files(directory):
    """{name: bytes} of the row files (and centroids) under a saved index folder."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in (".bin", ".npy")}


@pytest.mark.parametrize("spec", ["binary", "int8", "float16", "pq:48x8"])
def test_incremental_saves_equal_one_full_save(spec, unit, tmp_path):
    codec = _fitted(spec, unit)
    grown = CodecIndex(codec, D)
    for part in np.array_split(unit, 5):  # a commit, then a save, five times
        grown.add(part)
        grown.save(tmp_path / "grown")
    once = CodecIndex(codec, D)
    once.add(unit)
    once.save(tmp_path / "once")
    assert _files(tmp_path / "grown") == _files(tmp_path / "once")
    assert json.loads((tmp_path / "grown" / "index.json").read_text())["rows"] == len(unit)
    again = CodecIndex.load(tmp_path / "grown")
    np.testing.assert_array_equal(again.codes, once.codes)


def test_ivf_incremental_saves_equal_one_full_save(unit, tmp_path):
    codec = _fitted("binary", unit)
    grown = CodecIVFIndex(codec, D, nlist=16, nprobe=4)
    grown.train(unit)
    for part in np.array_split(unit, 4):
        grown.add(part)
        grown.save(tmp_path / "grown")
    once = CodecIVFIndex(codec, D, nlist=16, nprobe=4)
    once._build(grown.centroids)  # the same trained lists
    once.add(unit)
    once.save(tmp_path / "once")
    assert _files(tmp_path / "grown") == _files(tmp_path / "once")
    lists = np.fromfile(tmp_path / "grown" / "lists.bin", np.int32)
    np.testing.assert_array_equal(lists, (unit @ grown.centroids.T).argmax(axis=1))  # each row's nearest list
    again = CodecIVFIndex.load(tmp_path / "grown")
    q = unit[:20]
    for got, want in zip(again.search(q, 10), once.search(q, 10)):
        np.testing.assert_array_equal(got, want)


def test_a_save_after_a_bulk_add_reads_the_new_rows_back_from_the_lists(unit, tmp_path, monkeypatch):
    import slimvec.index.compressed as compressed

    monkeypatch.setattr(compressed, "_PENDING_ROWS", 100)  # smaller than one add below
    codec = _fitted("binary", unit)
    index = CodecIVFIndex(codec, D, nlist=16, nprobe=4)
    index.train(unit)
    index.add(unit[:500])
    index.save(tmp_path / "ivf")
    index.add(unit[500:1500])  # more than _PENDING_ROWS: not kept aside
    index.add(unit[1500:])
    index.save(tmp_path / "ivf")
    assert np.fromfile(tmp_path / "ivf" / "lists.bin", np.int32).tolist() == \
        (unit @ index.centroids.T).argmax(axis=1).tolist()
    assert np.array_equal(np.fromfile(tmp_path / "ivf" / "codes.bin", np.uint8).reshape(len(unit), -1),
                          codec.encode(unit))


def test_a_save_appends_in_place_and_a_new_fit_rewrites(unit, tmp_path):
    codec = _fitted("binary", unit)
    index = CodecIndex(codec, D)
    index.add(unit[:1000])
    index.save(tmp_path / "c")
    inode = os.stat(tmp_path / "c" / "codes.bin").st_ino
    index.add(unit[1000:1010])
    index.save(tmp_path / "c")
    assert os.stat(tmp_path / "c" / "codes.bin").st_ino == inode  # appended, not rewritten
    assert os.path.getsize(tmp_path / "c" / "codes.bin") == 1010 * 48
    refit = CodecIndex(_fitted("binary", unit[:500]), D)  # another fit: the folder is replaced whole
    refit.add(unit[:1010])
    refit.save(tmp_path / "c")
    assert os.stat(tmp_path / "c" / "codes.bin").st_ino != inode
    loaded = CodecIndex.load(tmp_path / "c")  # held: .codes is a view into the index's faiss buffer
    np.testing.assert_array_equal(loaded.codes, refit.codes)


def test_bytes_of_a_killed_save_are_ignored_then_cut(unit, tmp_path):
    codec = _fitted("int8", unit)
    index = CodecIndex(codec, D)
    index.add(unit[:300])
    index.save(tmp_path / "c")
    with open(tmp_path / "c" / "codes.bin", "ab") as f:  # appended, then killed before index.json moved
        f.write(b"\x7f" * (D * 7 + 3))
    loaded = CodecIndex.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded.codes, index.codes)
    loaded.add(unit[300:310])
    loaded.save(tmp_path / "c")
    assert os.path.getsize(tmp_path / "c" / "codes.bin") == 310 * D
    reloaded = CodecIndex.load(tmp_path / "c")
    np.testing.assert_array_equal(reloaded.codes, codec.encode(unit[:310]))


def test_a_row_file_shorter_than_its_rows_is_refused(unit, tmp_path):
    index = CodecIndex(_fitted("binary", unit), D)
    index.add(unit[:100])
    index.save(tmp_path / "c")
    with open(tmp_path / "c" / "codes.bin", "r+b") as f:
        f.truncate(99 * 48)
    with pytest.raises(ValueError, match="shorter than its 100 committed rows"):
        CodecIndex.load(tmp_path / "c")
    assert rowfiles.read_meta(tmp_path / "c")["rows"] == 100


def test_codes_saved_before_row_files_load_and_are_rewritten(unit, tmp_path):
    from slimvec.codecs.base import save as save_codec

    codec = _fitted("int8", unit)
    old = tmp_path / "c"
    save_codec(codec, old / "codec")
    np.save(old / "codes.npy", codec.encode(unit[:200]))
    (old / "index.json").write_text(json.dumps({"dim": D, "rows": 200, "hamming": False}))
    loaded = CodecIndex.load(old)
    np.testing.assert_array_equal(loaded.codes, codec.encode(unit[:200]))
    loaded.add(unit[200:210])
    loaded.save(old)
    assert not (old / "codes.npy").exists() and rowfiles.read_meta(old)["rows"] == 210


def test_small_commits_into_a_collection_append_to_its_code_file(tmp_path):
    from fakes import FakeEncoder

    with Collection.create(tmp_path / "c", profile="binary-rescore", encoder=FakeEncoder()) as col:
        col.add([Document(f"a{i}", f"alpha {i} beta {i % 7}") for i in range(400)])
        codes = tmp_path / "c" / "index" / "codes" / "codes.bin"
        inode = os.stat(codes).st_ino
        for j in range(3):
            col.add([Document(f"b{j}-{i}", f"gamma {i} delta {j}") for i in range(10)])
        assert os.stat(codes).st_ino == inode and os.path.getsize(codes) == 430 * 4  # 32-d: 4 bytes a row
        hits = [h.id for h in col.search("gamma 3 delta 2", k=3)]
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert col.check() == [] and [h.id for h in col.search("gamma 3 delta 2", k=3)] == hits
