"""Faults found by trying slimvec as a newcomer would (session 7), each with the input that showed it.

Plumbing checks (a fake encoder, except where the fault is the real default model's): bad input is refused in
one line whatever a handle did before, and an export of a default-model collection imports back.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.errors import ConfigError

DIM = 16


def _unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def col(tmp_path):
    c = Collection.create(tmp_path / "c", profile="exact-f32", encoder=FakeEncoder(dim=DIM))
    ids = [f"d{i}" for i in range(30)]
    c.add_encoded([Document(i, f"row {i}") for i in ids], [Chunk(i, 0, 0, len(f"row {i}"), f"row {i}") for i in ids],
                  _unit_rows(30, 1))
    yield c
    c.close()


@pytest.mark.parametrize("good, bad", [({"k": 1}, {"k": True}), ({"k": 2}, {"k": 2.0}), ({"k": 3}, {"k": 3 + 0j}),
                                       ({"rerank": "dense", "rerank_depth": 1},
                                        {"rerank": "dense", "rerank_depth": True})])
def test_an_option_refused_on_a_fresh_handle_is_refused_after_an_equal_valid_one(col, good, bad):
    # 1 == True == 1.0 == 1+0j as dict keys: a plan kept for the valid value must not answer the invalid one.
    with pytest.raises(ConfigError):
        col.search("row", **bad)
    col.search("row", **good)
    with pytest.raises(ConfigError):
        col.search("row", **bad)


@pytest.mark.parametrize("vectors, words", [
    (np.ones((1, 8), np.float32), "dimension"),
    (np.ones((2, DIM), np.float32) / 4, "2 query vectors for 1 quer"),
    (np.ones(DIM, np.float32) / 4, "shape"),
    (np.full((1, DIM), np.nan, np.float32), "finite"),
    (np.full((1, DIM), np.inf, np.float32), "finite"),
])
def test_given_query_vectors_of_the_wrong_shape_or_not_finite_are_refused_in_one_line(col, vectors, words):
    with pytest.raises(ConfigError, match=words):
        col.search_many(["q"], vectors=vectors)
    assert [h.id for h in col.search_many(["q"], vectors=_unit_rows(1, 1))[0]][0] == "d0"  # nothing changed


def test_delete_refuses_none_among_the_ids(col):
    with pytest.raises(TypeError, match="NoneType"):
        col.delete(["d1", None])
    assert col.get("d1") is not None  # applied whole or not at all


def test_an_export_of_a_default_model_collection_imports_back(tmp_path):
    from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
    from slimvec.interop.rows import export_collection, import_records

    enc = load_encoder(DEFAULT_MODEL)  # installed by `make test` (pyarrow is a core dependency): never skipped
    # The default (ONNX) encoder records its empty prompts in the manifest but has no `with_prompts`.
    src = Collection.create(tmp_path / "src", encoder=enc)
    assert src.manifest["prompts"] == {"query": "", "document": ""}
    rows = np.random.default_rng(0).standard_normal((3, int(enc.dim))).astype(np.float32)
    docs = [Document(f"p{i}", f"text {i}") for i in range(3)]
    src.add_encoded(docs, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs], rows, normalize=True)
    export_collection(src, f"parquet:{tmp_path / 'x.parquet'}")
    back = import_records(f"parquet:{tmp_path / 'x.parquet'}", tmp_path / "back")
    assert back.manifest["model"] == DEFAULT_MODEL and back.manifest["prompts"] == src.manifest["prompts"]
    q = rows[1] / np.linalg.norm(rows[1])
    assert [(h.id, h.score) for h in back.search_vectors(q)[0]] == [(h.id, h.score) for h in src.search_vectors(q)[0]]
    src.close()
    back.close()


def test_prompts_other_than_the_models_own_are_still_refused_for_a_model_without_prompts(tmp_path):
    class NoPrompts(FakeEncoder):
        query_prompt = document_prompt = ""

    with pytest.raises(ConfigError, match="takes no prompts"):
        Collection.create(tmp_path / "c", encoder=NoPrompts(dim=DIM), query_prompt="query: ")
    Collection.create(tmp_path / "ok", encoder=NoPrompts(dim=DIM), query_prompt="", document_prompt="").close()


@pytest.mark.parametrize("profile", ["exact-f32", "hnsw-f32", "f16", "int8", "binary-rescore"])
def test_documents_with_identical_vectors_come_back_in_commit_order_on_every_path(tmp_path, profile):
    # Tie rule (slimvec.scoring): equal scores go to the lower row. faiss's HNSW and flat scans returned them
    # highest row first.
    rng = np.random.default_rng(3)
    directions = _unit_rows(40, 2)
    which = rng.permutation(400) % 40  # ten documents on each direction, scattered over the rows
    ids = [f"d{i:03d}" for i in range(400)]
    col = Collection.create(tmp_path / "c", profile=profile, encoder=FakeEncoder(dim=DIM))
    col.add_encoded([Document(i, f"row {i}") for i in ids], [Chunk(i, 0, 0, len(f"row {i}"), f"row {i}") for i in ids],
                    directions[which])
    q = directions[5] + 0.01 * rng.standard_normal(DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    twins = [ids[r] for r in np.flatnonzero(which == 5)]  # row order = commit order
    for k in (3, 10):
        assert [h.id for h in col.search_many(["q"], vectors=q[None], k=k)[0]] == twins[:k]
    col.close()


def test_a_document_deleted_by_another_handle_during_a_search_is_left_out_not_a_key_error(col):
    # Seen with threads searching one handle while another handle deleted (a server and `slimvec delete`): the
    # ranking is made on the rows this handle synced, the payload read from SQLite after the other commit.
    other = Collection.open(col.path, encoder=FakeEncoder(dim=DIM))
    q = _unit_rows(1, 1)
    top = [h.id for h in col.search_many(["q"], vectors=q, k=3)[0]]
    read = col.store.chunks_for_rows

    def delete_first(rows):
        other.delete([top[0]])  # commits between this handle's sync and its payload read
        return read(rows)

    col.store.chunks_for_rows = delete_first
    try:
        # Session 16: a search ranks and reads its hits in one snapshot, so it answers whole from the state before
        # the delete (k hits, not k - 1); the next search no longer finds the document.
        assert [h.id for h in col.search_many(["q"], vectors=q, k=3)[0]] == top
    finally:
        col.store.chunks_for_rows = read
        other.close()
    assert top[0] not in [h.id for h in col.search_many(["q"], vectors=q, k=3)[0]]


@pytest.mark.parametrize("query, words", [("vitamin \ud83d D", "not valid Unicode"), ("a \udcff", "not valid Unicode"),
                                          (b"apple", "must be a string, not bytes"), ("  ", "empty")])
def test_a_query_that_is_not_text_is_refused_in_one_line(col, query, words):
    # The real tokenizers raised a bare TypeError on a lone surrogate (also what non-UTF-8 CLI bytes become).
    with pytest.raises(ConfigError, match=words):
        col.search(query)
