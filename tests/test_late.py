"""Late chunking: macro windows, window choice, pooling against a sentence-transformers/transformers reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from slimvec.chunking import ChunkConfig, chunk_document, chunk_text
from slimvec.documents import Document
from slimvec.errors import ConfigError
from slimvec.late import LateConfig, best_window, late_chunk_vectors, macro_windows, mix

TEXT = (
    "The Treaty of Westphalia was signed in 1648. It ended the Thirty Years' War and the Eighty Years' War. "
    "Its negotiations took place in the cities of Osnabrück and Münster. They established the principle of "
    "state sovereignty. Historians still debate its importance. Many of them call it the birth of the modern "
    "state system, while others see it as the end of a religious era. The delegates arrived over several years. "
)


@pytest.fixture(scope="module")
def enc():
    from slimvec.encoders.registry import load_encoder

    return load_encoder("all-MiniLM-L6-v2")  # the parity tests compare with sentence-transformers MiniLM


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


# ---- macro windows --------------------------------------------------------------------------------------


def test_macro_windows_hand_computed() -> None:
    assert macro_windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # Step 3 would leave a short last window (6, 9): it is moved back to end at 9 with full width.
    assert macro_windows(9, 4, 1) == [(0, 4), (3, 7), (5, 9)]
    assert macro_windows(4, 4, 2) == [(0, 4)]
    assert macro_windows(0, 4, 2) == [(0, 0)]


@pytest.mark.parametrize("n", [1, 17, 64, 65, 200, 511, 1500])
@pytest.mark.parametrize(("window", "overlap"), [(64, 32), (510, 255), (128, 0), (32, 31)])
def test_macro_windows_cover_every_token_with_the_stated_overlap(n: int, window: int, overlap: int) -> None:
    wins = macro_windows(n, window, overlap)
    covered = np.zeros(n, bool)
    for s, e in wins:
        assert 0 <= s < e <= n and e - s == min(window, n)
        covered[s:e] = True
    assert covered.all()
    assert wins[0][0] == 0 and wins[-1][1] == n
    for (s1, e1), (s2, _) in itertools.pairwise(wins):
        assert s1 < s2 and e1 - s2 >= overlap  # consecutive windows share at least `overlap` tokens


def test_macro_windows_reject_overlap_not_below_window() -> None:
    with pytest.raises(ValueError, match="overlap"):
        macro_windows(100, 16, 16)


def test_best_window_maximises_the_smaller_side_of_context() -> None:
    wins = [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert best_window(3, 5, wins) == 1  # only (2, 6) holds it whole: 1 token each side
    assert best_window(0, 1, wins) == 0  # nothing lies left of token 0: every holding window scores 0; first wins
    assert best_window(9, 10, wins) == 3
    assert best_window(4, 5, [(0, 8), (3, 11)]) == 0  # min(4, 3) = 3 beats min(1, 6) = 1, though 6 is the most
    assert best_window(4, 5, [(0, 6), (2, 10)]) == 1  # min(4, 1) = 1 loses to min(2, 5) = 2
    assert best_window(5, 8, [(0, 6), (4, 12)]) == 1  # (0, 6) does not hold the span: it scores below


def test_late_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="late_weight"):
        LateConfig(late_weight=1.5)
    with pytest.raises(ConfigError, match="overlap"):
        LateConfig(window=64, overlap=64)
    with pytest.raises(ConfigError, match="window"):
        LateConfig(window=8)
    assert LateConfig(window=0).window_for(510) == (510, LateConfig().overlap)
    assert LateConfig(window=2048, overlap=256).window_for(510) == (510, 255)


def test_mix_is_the_normalised_weighted_sum() -> None:
    own = np.array([[1.0, 0.0]], np.float32)
    late = np.array([[0.0, 1.0]], np.float32)
    got = mix(own, late, 0.25)
    np.testing.assert_allclose(got, [[0.75 / np.hypot(0.75, 0.25), 0.25 / np.hypot(0.75, 0.25)]], rtol=1e-6)


# ---- the encoder's token output -------------------------------------------------------------------------


def test_max_positions_is_the_models_position_table_not_sentence_transformers_cut(enc) -> None:
    assert enc.max_tokens == 254  # sentence-transformers' max_seq_length 256, minus [CLS]/[SEP]
    assert enc.max_positions == 510  # BERT's 512 positions, minus [CLS]/[SEP]
    with pytest.raises(ValueError, match="510"):
        enc.token_embeddings([[1000] * 511])


def test_chunk_vectors_equal_pooled_rows_of_one_sentence_transformers_pass(enc) -> None:
    doc = Document("w", TEXT * 3, "Peace of Westphalia")
    chunks = chunk_document(doc, enc, ChunkConfig(48, 0))
    assert len(chunks) >= 4
    got = late_chunk_vectors([doc], [chunks], enc, LateConfig(window=0, late_weight=1.0))
    # Reference: sentence-transformers' own token embeddings of "title text" with the 512-position limit.
    model = enc.model
    full = chunk_text(doc.title, doc.text)
    old = model.max_seq_length
    model.max_seq_length = 512
    try:
        rows = model.encode([full], output_value="token_embeddings")[0].numpy()
    finally:
        model.max_seq_length = old
    offsets = model.tokenizer(full, return_offsets_mapping=True)["offset_mapping"]
    assert len(offsets) == rows.shape[0] <= 512  # one window: the whole document in one pass
    shift = len(doc.title) + 1
    for i, c in enumerate(chunks):
        own = [t for t, (s, e) in enumerate(offsets) if e > s and shift + c.start <= s < shift + c.end]
        ref = _unit(rows[own].mean(axis=0))
        np.testing.assert_allclose(got[i], ref, atol=2e-5)
    # Context matters: a late vector is not the chunk encoded alone.
    alone = enc.encode_documents([chunks[1].text])[0]
    assert float(alone @ got[1]) < 0.99


def test_long_document_chunk_is_pooled_from_the_window_with_most_context(enc) -> None:
    import torch

    doc = Document("long", TEXT * 2)
    chunks = chunk_document(doc, enc, ChunkConfig(16, 0))
    cfg = LateConfig(window=64, overlap=32, late_weight=1.0, title_context=False)
    got = late_chunk_vectors([doc], [chunks], enc, cfg)
    ids, offsets = enc.tokenize(doc.text)
    wins = macro_windows(len(ids), 64, 32)
    assert len(wins) >= 3
    starts = [s for s, _ in offsets]
    auto = enc.model[0].auto_model
    tok = enc.model.tokenizer

    def window_rows(ws: int, we: int) -> np.ndarray:
        # Reference forward pass straight through transformers' BertModel, [CLS] window [SEP].
        seq = torch.tensor([[tok.cls_token_id, *ids[ws:we], tok.sep_token_id]])
        with torch.inference_mode():
            return auto(input_ids=seq, attention_mask=torch.ones_like(seq)).last_hidden_state[0, 1:-1].numpy()

    checked = 0
    for i, c in enumerate(chunks):
        a = next(t for t, s in enumerate(starts) if s >= c.start)
        b = next((t for t, s in enumerate(starts) if s >= c.end), len(ids))
        holding = [w for w in wins if w[0] <= a and b <= w[1]]
        if len(holding) < 2:
            continue
        # The documented rule: the holding window with the most context on its poorer side.
        chosen = max(holding, key=lambda w: min(a - w[0], w[1] - b))
        other = next(w for w in holding if w != chosen)
        ref = _unit(window_rows(*chosen)[a - chosen[0] : b - chosen[0]].mean(axis=0))
        alt = _unit(window_rows(*other)[a - other[0] : b - other[0]].mean(axis=0))
        np.testing.assert_allclose(got[i], ref, atol=2e-5)
        assert np.abs(got[i] - alt).max() > 1e-3  # the windows really differ, so the choice was tested
        checked += 1
    assert checked >= 2


def test_weight_zero_gives_the_own_vectors_and_mix_uses_them(enc) -> None:
    doc = Document("w", TEXT, "Westphalia")
    chunks = chunk_document(doc, enc, ChunkConfig(32, 0))
    own_texts = [f"own {c.text}" for c in chunks]
    own = enc.encode_documents(own_texts)
    got0 = late_chunk_vectors([doc], [chunks], enc, LateConfig(late_weight=0.0), own_texts=own_texts)
    np.testing.assert_allclose(got0, own, atol=1e-5)
    late = late_chunk_vectors([doc], [chunks], enc, LateConfig(late_weight=1.0))
    half = late_chunk_vectors([doc], [chunks], enc, LateConfig(late_weight=0.5), own_texts=own_texts)
    np.testing.assert_allclose(half, mix(own, late, 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="own texts"):
        late_chunk_vectors([doc], [chunks], enc, LateConfig(late_weight=0.5), own_texts=own_texts[:-1])


def test_chunk_token_counts_are_each_spans_own_word_pieces(enc) -> None:
    from slimvec.documents import Section
    from slimvec.late import chunk_token_counts
    from slimvec.sections import section_chunks

    short, long_ = "It ended the war.", TEXT.strip()
    text = f"{short} {long_}"
    doc = Document("w", text, "Westphalia", sections=(Section("s", 0, len(short)),
                                                      Section("l", len(short) + 1, len(text))))
    chunks = section_chunks(doc, enc, ChunkConfig(256, 0, "late"))
    assert [c.text for c in chunks] == [short, long_]
    expected = [len(enc.token_spans(c.text)) for c in chunks]  # no [CLS]/[SEP], title not counted
    assert chunk_token_counts([doc], [chunks], enc).tolist() == expected and expected[0] < 10 < expected[1]
    assert chunk_token_counts([doc], [chunks], enc, title_context=False).tolist() == expected


def test_several_documents_keep_their_order_and_empty_documents_still_get_a_vector(enc) -> None:
    docs = [Document("a", TEXT), Document("b", "   "), Document("c", "Short note about Münster.")]
    chunks = [chunk_document(d, enc, ChunkConfig(40, 0)) for d in docs]
    together = late_chunk_vectors(docs, chunks, enc, LateConfig(late_weight=1.0), group_windows=1)
    apart = np.vstack([late_chunk_vectors([d], [c], enc, LateConfig(late_weight=1.0)) for d, c in zip(docs, chunks)])
    np.testing.assert_allclose(together, apart, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


# ---- the reference protocol's fixed token chunks (benchmarks/late_chunking.py, LATE_BOUNDARIES=fixed) ----------


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "late_chunking.py"
    spec = importlib.util.spec_from_file_location("late_chunking_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fixed_token_chunks_late_vectors_pool_exactly_the_reference_spans(enc) -> None:
    import torch

    doc = Document("w", TEXT * 2, "Peace of Westphalia")
    full, per_size = _bench().fixed_token_chunks(doc, enc, (16, 37))
    assert full.title == "" and full.text == f"{doc.title} {doc.text}"  # the title is text, as in the reference
    ids, _ = enc.tokenize(full.text)
    assert 37 * 3 < len(ids) <= 510  # several chunks, one forward pass
    tok = enc.model.tokenizer
    seq = torch.tensor([[tok.cls_token_id, *ids, tok.sep_token_id]])
    with torch.inference_mode():
        rows = enc.model[0].auto_model(input_ids=seq, attention_mask=torch.ones_like(seq)).last_hidden_state[0, 1:-1]
    pieces = tok.convert_ids_to_tokens(ids)
    for size, chunks in per_size.items():
        spans = [(a, min(a + size, len(ids))) for a in range(0, len(ids), size)]
        assert len(chunks) == -(-len(ids) // size)  # consecutive spans, the last one as short as what is left
        assert spans[-1][1] - spans[-1][0] == len(ids) - size * (len(ids) // size) or len(ids) % size == 0
        assert chunks[0].text.startswith(doc.title)
        got = late_chunk_vectors([full], [chunks], enc, LateConfig(window=0, late_weight=1.0, title_context=False))
        for (a, b), c, v in zip(spans, chunks, got):
            np.testing.assert_allclose(v, _unit(rows[a:b].numpy().mean(axis=0)), atol=2e-5)
            if not pieces[a].startswith("##"):  # naive's own text re-tokenises to the span's own pieces
                assert enc.tokenize(c.text)[0] == ids[a:b]
