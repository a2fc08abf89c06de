"""Faults found in the catch-up from saved codes (retrievers/compressed.py `_take_saved`, `load_saved`)."""

from __future__ import annotations

from test_catch_up import DIM, _add, _ids
from test_retrievers_compressed import _clustered, _vector_collection

import slimvec.index.compressed as compressed_index
from slimvec import Collection, Document
from slimvec.documents import Chunk


def test_codes_swapped_by_another_save_mid_load_are_not_mixed_with_the_new_codec(tmp_path, monkeypatch):
    """A handle reading the saved codes while another handle's save replaces the folder with another fit must
    not pair the old fit's codes with the new fit's codec (check() clean, a fresh handle's answers)."""
    path = tmp_path / "c"
    _vector_collection(path, _clustered(3000, DIM, seed=1, centres=40), base="pq16-rescore").close()
    queries = _clustered(15, DIM, seed=9, centres=40)
    with Collection.open(path) as reader, Collection.open(path) as server, Collection.open(path) as loader:
        reader.search_many(["q"], vectors=queries[:1], k=5, with_payload=False)
        server.search_many(["q"], vectors=queries[:1], k=5, with_payload=False)
        # a bulk load that saves only at its end: its refit at 6,000 rows is not on disk yet
        for start, n in ((0, 3000), (3000, 1000)):
            ids = [f"n{i}" for i in range(start, start + n)]
            loader.add_encoded([Document(i, f"row {i}") for i in ids], [Chunk(i, 0, 0, 3, "row") for i in ids],
                               _clustered(n, DIM, seed=2 + start, centres=40), save=False)
        server.search_many(["q"], vectors=queries[:1], k=5, with_payload=False)  # fits its own codes, at 7,000
        assert server._retrievers["dense"].fitted_rows == 7000
        _add(loader, 4000, _clustered(1000, DIM, seed=5, centres=40))  # saves its fit of 6,000 rows, at 8,000
        assert loader._retrievers["dense"].fitted_rows == 6000

        original, stalled = compressed_index.load_codec, []

        def stall(folder):  # the reader has read the saved codes; the server's save lands before the codec is read
            if not stalled:
                stalled.append(folder)
                _add(server, 9000, _clustered(100, DIM, seed=6, centres=40))
            return original(folder)

        monkeypatch.setattr(compressed_index, "load_codec", stall)
        reader.search_many(["q"], vectors=queries[:1], k=5, with_payload=False)
        monkeypatch.setattr(compressed_index, "load_codec", original)
        assert stalled
        assert reader.check() == []
        got = _ids(reader, queries)
    with Collection.open(path) as fresh:
        assert _ids(fresh, queries) == got
