"""Chunks that know their document, through a real collection: chunk mode "late", given sections, the
contextual prefix (issue 13 wiring; the pooling itself is tested against sentence-transformers in test_late.py)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.documents import Section
from slimvec.encoders.registry import load_encoder
from slimvec.errors import ConfigError


@pytest.fixture(scope="module")
def docs(scifact_docs) -> list[Document]:
    return scifact_docs[:4]


def _profile(**kw):
    from slimvec.profiles import profile_from_dict

    return profile_from_dict({"name": "late-test", "model": "all-MiniLM-L6-v2", "chunk_tokens": 48, "chunk_overlap": 0,
                              **kw})


def _self_scores(col: Collection, vectors: np.ndarray) -> list[float]:
    """For each vector, the best score of a stored row against it (1.0 when it is stored exactly)."""
    return [col.search_vectors(v, k=1)[0][0].score for v in vectors]


def test_late_chunks_are_pooled_from_the_whole_document(tmp_path, docs):
    from slimvec.chunking import ChunkConfig, chunk_document
    from slimvec.late import LateConfig, late_chunk_vectors

    enc = load_encoder("all-MiniLM-L6-v2")
    # The default for token chunks: pure late chunking over the model's whole window (one pass).
    with Collection.create(tmp_path / "late", profile=_profile(chunk_mode="late")) as late, \
            Collection.create(tmp_path / "tok", profile=_profile(chunk_mode="tokens")) as tok:
        late.add(docs)
        tok.add(docs)
        assert late.info()["chunks"] == tok.info()["chunks"] > len(docs)  # same boundaries, several per document
        # The collection's cuts: token windows of 48 tokens less the title's (the title is encoded with each chunk).
        chunks = [chunk_document(d, enc, ChunkConfig(48 - len(enc.token_spans(d.title)) - 1, 0, "late")) for d in docs]
        pooled = late_chunk_vectors(docs, [[c for c in cs] for cs in chunks], enc,
                                    LateConfig(window=0, overlap=128, late_weight=1.0))
        alone = enc.encode_documents([f"{d.title} {c.text}" for d, cs in zip(docs, chunks) for c in cs])
        np.testing.assert_allclose(_self_scores(late, pooled), 1.0, atol=1e-5)  # stored rows are the late vectors
        assert max(_self_scores(late, alone)) < 0.9999  # ... not the chunks encoded alone,
        np.testing.assert_allclose(_self_scores(tok, alone), 1.0, atol=1e-5)  # which token mode stores


def test_late_needs_a_model_with_token_embeddings(tmp_path):
    with pytest.raises(ConfigError, match="chunk mode 'late' needs a transformer model"):
        Collection.create(tmp_path / "c", profile=_profile(chunk_mode="late"), encoder=FakeEncoder())


def test_given_sections_are_the_chunks_and_the_prefix_changes_what_is_encoded(tmp_path):
    text = "Berlin is the capital. It has 3.7 million people. The river Spree runs through it."
    sections = (Section("s0", 0, 22, ("Facts",)), Section("s1", 23, 49, ("Facts", "People")),
                Section("s2", 50, len(text), ("Geography",)))
    doc = Document("berlin", text, "Berlin", sections=sections)
    enc = load_encoder("all-MiniLM-L6-v2")
    with Collection.create(tmp_path / "c", profile=_profile(contextual_prefix=True)) as col:
        col.add([doc])
        assert col.info()["chunks"] == 3
        (hits,) = col.search_vectors(enc.encode_queries(["how many people live there"])[0], k=1)
        assert (hits[0].chunk_start, hits[0].chunk_end) in {(s.start, s.end) for s in sections}
        prefixed = enc.encode_documents(["Berlin > Facts > People\nIt has 3.7 million people."])
        plain = enc.encode_documents(["Berlin It has 3.7 million people."])
        assert _self_scores(col, prefixed)[0] == pytest.approx(1.0, abs=1e-5)
        assert _self_scores(col, plain)[0] < 0.9999


def test_late_defaults_follow_the_kind_of_chunks(tmp_path, docs):
    # One add with a sectioned record and plain documents: the sections get the mix (window 256, weight 0.3,
    # each unit also encoded alone), the plain documents pure late chunking at the model's window; a profile
    # that sets the fields applies them to both.
    from slimvec.chunking import ChunkConfig, chunk_document
    from slimvec.documents import Section
    from slimvec.late import LateConfig, late_chunk_vectors
    from slimvec.sections import section_chunks

    enc = load_encoder("all-MiniLM-L6-v2")
    text = "Marie Curie was a physicist. She won two Nobel prizes. Her daughter Irene won one too."
    sec = Document("curie", text, "Marie Curie",
                   sections=(Section("a", 0, 28), Section("b", 29, 54), Section("c", 55, len(text))))
    plain = list(docs[:2])
    with Collection.create(tmp_path / "d", profile=_profile(chunk_mode="late")) as col:
        col.add([sec, *plain])
        sec_chunks = section_chunks(sec, enc, ChunkConfig(48 - len(enc.token_spans(sec.title)) - 1, 0, "late"))
        mixed = late_chunk_vectors([sec], [sec_chunks], enc, LateConfig(window=256, overlap=128, late_weight=0.3),
                                   own_texts=[f"{sec.title} {c.text}" for c in sec_chunks])
        np.testing.assert_allclose(_self_scores(col, mixed), 1.0, atol=1e-5)
        pure = late_chunk_vectors([sec], [sec_chunks], enc, LateConfig(window=0, late_weight=1.0))
        assert max(_self_scores(col, pure)) < 0.9999  # the sections were not stored as pure late vectors
        chunks = [chunk_document(d, enc, ChunkConfig(48 - len(enc.token_spans(d.title)) - 1, 0, "late")) for d in plain]
        late = late_chunk_vectors(plain, chunks, enc, LateConfig(window=0, overlap=128, late_weight=1.0))
        np.testing.assert_allclose(_self_scores(col, late), 1.0, atol=1e-5)
    with Collection.create(tmp_path / "set", profile=_profile(chunk_mode="late", late_weight=1.0, late_window=256)) as col:
        col.add([sec])
        want = late_chunk_vectors([sec], [sec_chunks], enc, LateConfig(window=256, overlap=128, late_weight=1.0))
        np.testing.assert_allclose(_self_scores(col, want), 1.0, atol=1e-5)


def test_migrating_a_late_collection_fits_on_late_vectors_where_the_cut_differs(tmp_path, scifact_docs):
    """MiniLM cuts at 254 tokens, bge at 510: a stored MiniLM chunk the bge cut lacks is encoded once more for
    its fitting pair, and must be pooled late from the document's pass as the target stores chunks, not alone."""
    from slimvec.documents import Chunk
    from slimvec.late import default_config, late_chunk_vectors
    from slimvec.migrate.runner import _sample_into

    bge = load_encoder("bge-small-en-v1.5")
    long_docs = [d for d in scifact_docs if len(bge.token_spans(f"{d.title} {d.text}")) > 300][:10]  # >= 20 chunks: an adapter needs them
    assert len(long_docs) == 10
    fields = {"name": "late-migrate", "chunk_mode": "late", "chunk_overlap": 0, "chunk_tokens": None}
    with Collection.create(tmp_path / "old", profile=_profile(**fields)) as old, \
            Collection.create(tmp_path / "new", profile=_profile(**fields, model="bge-small-en-v1.5"), encoder=bge) as new:
        old.add(long_docs)
        x_new, y_old, _ = _sample_into(old, new, sample=10_000, seed=0)
        # Pairs come in the sample's (shuffled) document order: name each by the stored row its y_old is.
        at_row = {r: (d, s, e) for d in long_docs for r, s, e in old.store.chunks_of(d.id)}
        order = sorted(at_row)
        rows = np.asarray(old.store.vectors(), np.float32)[order]
        spans = [at_row[order[int(np.argmax(rows @ y))]] for y in y_old]
        assert len(x_new) == len({(d.id, s, e) for d, s, e in spans}) == len(at_row)  # every stored chunk, once
        cut = {(c.doc_id, c.start, c.end) for d in long_docs for c in new.chunk([d])[d.id]}
        lost = [i for i, (d, s, e) in enumerate(spans) if (d.id, s, e) not in cut]
        assert lost, "bge's longer window must cut these documents differently"
        config = default_config(False, new.manifest.get("late_sections"))
        for i in lost[:4]:  # each check runs a late pass of its own document
            d, s, e = spans[i]
            chunk = Chunk(d.id, 0, s, e, d.text[s:e])
            late = late_chunk_vectors([d], [[chunk]], bge, config)[0]
            alone = bge.encode_documents([f"{d.title} {chunk.text}"])[0]
            np.testing.assert_allclose(x_new[i], late, atol=1e-5)
            assert float(x_new[i] @ alone) < 0.999
