"""Learned sparse (SPLADE-tiny) retrieval equals brute-force sparse dot products; deletes disappear."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.encoders.registry import load_encoder
from slimvec.encoders.sparse import SpladeEncoder
from slimvec.errors import ConfigError
from slimvec.retrievers.sparse import SparseRetriever

DOCS = [
    Document("s0", "Vitamin D deficiency increases the risk of bone fractures", "Vitamin D"),
    Document("s1", "Cats sleep for most of the day"),
    Document("s2", "Interest rates rose as inflation climbed", "Economy"),
    Document("s3", "Bone density in elderly patients"),
    Document("s4", "Protein folding and misfolding diseases", "Proteins"),
]
QUERIES = ["vitamin d and bones", "why do cats sleep", "inflation"]


def _text(d: Document) -> str:
    return f"{d.title} {d.text}" if d.title else d.text


@pytest.fixture(scope="module")
def splade() -> SpladeEncoder:
    enc = load_encoder("splade-tiny")
    assert isinstance(enc, SpladeEncoder) and enc.kind == "sparse" and enc.name == "splade-tiny"
    return enc


@pytest.fixture(scope="module")
def built(tmp_path_factory, splade):
    path = tmp_path_factory.mktemp("sparse") / "col"
    with Collection.create(path, encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "sparse"]) as c:
        c.add(DOCS[:3])
        c.add(DOCS[3:])  # two batches: the matrix is extended, not rebuilt
    return path


def _brute(splade: SpladeEncoder, docs: list[Document], query: str) -> dict[str, float]:
    """Dense numpy dot products of independently encoded vectors; doc id -> score for scores > 0."""
    m = splade.encode_documents([_text(d) for d in docs]).toarray().astype(np.float64)
    q = splade.encode_queries([query]).toarray().astype(np.float64)[0]
    scores = m @ q
    return {d.id: float(s) for d, s in zip(docs, scores) if s > 0}


def test_encoder_returns_csr(splade):
    m = splade.encode_documents(["hello world", "bone fractures"])
    assert sp.isspmatrix_csr(m) and m.shape == (2, splade.dim) and m.dtype == np.float32
    assert m.nnz > 0 and (m.data > 0).all()
    assert splade.encode_queries([]).shape == (0, splade.dim)


def test_matrix_equals_independent_encoding(built, splade):
    with Collection.open(built, encoder=FakeEncoder(max_tokens=256)) as c:
        expected = splade.encode_documents([_text(d) for d in DOCS]).toarray()
        described = c.info()["indexes"]["sparse"]
        assert described == {"kind": "sparse", "model": "splade-tiny", "rows": len(DOCS),
                              "vocabulary": described["vocabulary"], "nonzeros": int(np.count_nonzero(expected))}
        # the matrix the collection saved after its last write, read back through the public loader
        r = SparseRetriever.load(built / "index", lambda: splade, "splade-tiny")
        assert r is not None and r.rows == len(DOCS)
        np.testing.assert_allclose(r.matrix.toarray(), expected, rtol=1e-4, atol=1e-5)


def test_scores_equal_brute_force(built, splade):
    with Collection.open(built, encoder=FakeEncoder(max_tokens=256)) as c:
        for q in QUERIES:
            hits = c.search(q, k=len(DOCS), mode="sparse")
            brute = _brute(splade, DOCS, q)
            assert {h.id for h in hits} == set(brute)
            for h in hits:
                assert h.score == pytest.approx(brute[h.id], rel=1e-4)
            assert [h.id for h in hits] == sorted(brute, key=lambda d: -brute[d])
        assert c.search("vitamin d and bones", k=1, mode="sparse")[0].id == "s0"


def test_deletes_disappear_and_reload(built, tmp_path, splade):
    import shutil

    path = tmp_path / "col"
    shutil.copytree(built, path)
    with Collection.open(path, encoder=FakeEncoder(max_tokens=256)) as c:
        assert "s0" in {h.id for h in c.search("vitamin d and bones", k=5, mode="sparse")}
        c.delete(["s0"])
        hits = c.search("vitamin d and bones", k=5, mode="sparse")
        assert "s0" not in {h.id for h in hits}
        brute = _brute(splade, [d for d in DOCS if d.id != "s0"], "vitamin d and bones")
        assert {h.id for h in hits} == set(brute)
        c.upsert([Document("s5", "Fractures of the hip in old age", "Bones")])
        expected = {h.id: h.score for h in c.search("vitamin d and bones", k=5, mode="sparse")}
        assert "s5" in expected
    loaded = SparseRetriever.load(path / "index", lambda: splade, "splade-tiny")
    assert loaded is not None and loaded.rows == len(DOCS) + 1
    assert SparseRetriever.load(path / "index", lambda: splade, "another-model") is None
    with Collection.open(path, encoder=FakeEncoder(max_tokens=256)) as again:
        assert {h.id: h.score for h in again.search("vitamin d and bones", k=5, mode="sparse")} == expected


def test_hybrid_sparse_mode_fuses(built):
    with Collection.open(built, encoder=FakeEncoder(max_tokens=256)) as c:
        hits = c.search("vitamin d and bones", k=3, mode="hybrid-sparse", fusion="rrf")
        assert len(hits) == 3 and hits[0].score <= 2 / 61 + 1e-12
        # the default fusion (softmax) sums one probability per ranking: at most 2
        fused = c.search("vitamin d and bones", k=3, mode="hybrid-sparse")
        assert len(fused) == 3 and 0 < fused[-1].score <= fused[0].score <= 2


def test_batched_queries_equal_single_queries(built):
    with Collection.open(built, encoder=FakeEncoder(max_tokens=256)) as c:
        many = c.search_many(QUERIES, k=3, mode="sparse")  # queries encoded in one batch
    for q, hits in zip(QUERIES, many):
        with Collection.open(built, encoder=FakeEncoder(max_tokens=256)) as c:  # fresh query cache
            single = c.search(q, k=3, mode="sparse")
            assert [h.id for h in hits] == [h.id for h in single]
            assert [h.score for h in hits] == pytest.approx([h.score for h in single], rel=1e-4)


@pytest.fixture(scope="module")
def tiny_splade_dir(tmp_path_factory):
    """A randomly initialised 1-layer masked-LM with SPLADE-tiny's tokenizer: a 'local SPLADE model' to point at."""
    import shutil

    import torch
    from transformers import BertConfig, BertForMaskedLM

    from slimvec.encoders.sparse import bundled_splade_dir

    out = tmp_path_factory.mktemp("tiny-splade")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bundled_splade_dir() / f, out / f)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=128)).save_pretrained(out)
    return out


def test_a_local_splade_directory_is_used_and_recorded(tmp_path, tiny_splade_dir):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(DOCS)
        c.enable("sparse", sparse_model=str(tiny_splade_dir))
        assert c.manifest["sparse_model"] == str(tiny_splade_dir.resolve())
        hits = c.search("vitamin d and bones", k=len(DOCS), mode="sparse")
    local = SpladeEncoder(tiny_splade_dir)
    brute = _brute(local, DOCS, "vitamin d and bones")
    assert brute and {h.id for h in hits} == set(brute)
    for h in hits:
        assert h.score == pytest.approx(brute[h.id], rel=1e-4)
    with Collection.open(tmp_path / "c", encoder=FakeEncoder(max_tokens=256)) as again:
        assert [h.id for h in again.search("vitamin d and bones", k=len(DOCS), mode="sparse")] == [h.id for h in hits]
        with pytest.raises(ConfigError, match="one sparse model"):
            again.enable("sparse", sparse_model="splade-tiny")


def test_a_bad_splade_directory_is_refused_before_anything_is_written(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(DOCS)
        before = dict(c.manifest)
        with pytest.raises(ConfigError, match="no such directory"):
            c.enable("sparse", sparse_model=str(tmp_path / "missing"))
        (tmp_path / "empty").mkdir()
        with pytest.raises(ConfigError, match="no config.json"):
            c.enable("sparse", sparse_model=str(tmp_path / "empty"))
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "config.json").write_text("{}")
        with pytest.raises(ConfigError, match="could not load a SPLADE model"):
            c.enable("sparse", sparse_model=str(tmp_path / "broken"))
        assert c.manifest == before and c.search("bones", k=2)


def test_loading_splade_prints_no_weight_loading_bar():
    # transformers draws "Loading weights: 100%|...|" on stderr at every load: each sparse CLI search showed it.
    import subprocess
    import sys

    loader = "from slimvec.encoders.sparse import SpladeEncoder; SpladeEncoder()"
    r = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True, check=True)
    assert "Loading weights" not in r.stderr and "it/s]" not in r.stderr, r.stderr[-300:]


def test_a_served_index_appends_each_commits_postings_and_scores_as_the_whole_matrix(tmp_path, scifact_docs):
    """Each commit appends its rows as a part and a segment of posting lists (O(new rows)); before, it copied the
    whole matrix to append and the next search transposed it whole. Scores equal q @ M.T of the whole matrix, a
    reopened handle's and a compacted collection's."""
    import math

    from slimvec.retrievers.postings import MERGE_RATIO

    queries = ["vitamin d deficiency", "cancer cells in mice", "protein expression"]
    path = tmp_path / "c"
    with Collection.create(path, encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "sparse"]) as writer, \
            Collection.open(path, encoder=FakeEncoder(max_tokens=256)) as server:
        # 12 commits of 2 abstracts: the parts and the merged segments depend on how many commits, not on their
        # size (MERGE_RATIO compares segments with each other), and SPLADE encodes each text twice (writer, server)
        for start in range(0, 24, 2):
            writer.add(scifact_docs[start : start + 2])
            served = {q: [(h.id, h.score) for h in server.search(q, k=10, mode="sparse")] for q in queries}
        r = server._retrievers["sparse"]
        assert r._segments is not None and len(r._parts) == 12  # appended, never stacked nor transposed whole
        entries = sum(s.entries for s in r._segments)
        assert len(r._segments) <= 1 + math.log(entries, MERGE_RATIO)
        for q in queries:
            v = r.query_vector(q)
            got = r.scores(v)
            want = np.asarray((v @ r.matrix.T).todense(), dtype=np.float32).ravel()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    with Collection.open(path, encoder=FakeEncoder(max_tokens=256)) as again:
        assert {q: [(h.id, h.score) for h in again.search(q, k=10, mode="sparse")] for q in queries} == served
        again.delete([scifact_docs[0].id])
        deleted = {q: [(h.id, h.score) for h in again.search(q, k=10, mode="sparse")] for q in queries}
        again.compact()
        assert {q: [(h.id, h.score) for h in again.search(q, k=10, mode="sparse")] for q in queries} == deleted


def test_a_second_handle_reads_the_rows_the_writer_saved_instead_of_encoding_them_again(tmp_path, scifact_docs):
    """A server's handle used to run SPLADE again over every row another handle committed (the writer had encoded
    and saved them already): the serving process paid each write's sparse encoding a second time. It now reads the
    writer's saved rows, and encodes only rows no saved file holds yet; answers equal the writer's own."""
    queries = ["vitamin d deficiency", "cancer cells in mice"]
    path = tmp_path / "c"
    with Collection.create(path, encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "sparse"]) as writer, \
            Collection.open(path, encoder=FakeEncoder(max_tokens=256)) as server:
        writer.add(scifact_docs[:4])
        server.search(queries[0], k=5, mode="sparse")  # loads the server's retriever and its model
        r = server._retrievers["sparse"]
        encoded = []

        class Counted:  # the server's own view of the (process-wide, shared) SPLADE model, counting its documents
            def __init__(self, model):
                self.model = model

            def __getattr__(self, name):
                return getattr(self.model, name)

            def encode_documents(self, texts, *a, **kw):
                encoded.append(len(texts))
                return self.model.encode_documents(texts, *a, **kw)

        r._encoder = Counted(r.encoder)
        for start in range(4, 16, 4):
            writer.add(scifact_docs[start : start + 4])
            for q in queries:
                assert [(h.id, h.score) for h in server.search(q, k=10, mode="sparse")] == \
                    [(h.id, h.score) for h in writer.search(q, k=10, mode="sparse")]
        assert encoded == [] and r.rows == writer._retrievers["sparse"].rows
        np.testing.assert_array_equal(r.matrix.toarray(), writer._retrievers["sparse"].matrix.toarray())
        # rows no saved file holds (a save that failed, a bulk load before its end) are encoded, as before
        writer._save_after_commit = lambda: None
        writer.add(scifact_docs[16:18])
        for q in queries:
            assert [(h.id, h.score) for h in server.search(q, k=10, mode="sparse")] == \
                [(h.id, h.score) for h in writer.search(q, k=10, mode="sparse")]
        assert sum(encoded) >= 2 and r.rows == writer._retrievers["sparse"].rows
