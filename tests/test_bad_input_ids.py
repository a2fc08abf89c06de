"""Bad input, kind 5: ids every output can carry, and eval/sweep inputs checked before any encoding.

Generated ids either pass the one id rule (`slimvec.ids`) and then survive a TREC run file round trip
(spaces, tabs, `#`, `%` and any other printable character), or are refused with the reason by
`check_id` and by every reader. Generated BEIR datasets with one fault (a bad corpus record, a query
without text, a judged id that breaks the rule) make `run_eval` and `run_sweep` fail in one line
before any model is loaded or any collection folder is made.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from _bad_input import tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec.errors import IngestError
from slimvec.evaluation.metrics import read_trec_run, write_trec_run
from slimvec.evaluation.runner import run_eval, run_sweep
from slimvec.ids import MAX_ID_CHARS, check_id, id_problem, trec_escape, trec_unescape
from slimvec.ingest import read_sources
from slimvec.profiles import load_profile

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_any_text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["doc 1", "a\tb", "#frag", "100%", " lead", "trail ", "x\ny", "\x00", "", "\ud83d", "q" * (MAX_ID_CHARS + 1)]
)
_valid_ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from([" ", "\t", "#", "%"]),
                     min_size=1, max_size=30).filter(lambda s: s == s.strip() and s)


def _expected_valid(s: str) -> bool:
    """The rule written out from its documentation, independently of the code."""
    if not 1 <= len(s) <= MAX_ID_CHARS or s != s.strip():
        return False
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return False
    return not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in s)


@SETTINGS
@given(value=_any_text)
def test_one_id_rule_for_documents_and_readers(value: str) -> None:
    valid = _expected_valid(value)
    assert (id_problem(value) is None) == valid
    if valid:
        assert check_id(value) == value
    else:
        with pytest.raises(ValueError, match=r"^document id .*: "):
            check_id(value, "document id")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.jsonl"
            path.write_text(json.dumps({"_id": value, "text": "ok"}) + "\n", encoding="ascii")
            errors: list[IngestError] = []
            assert list(read_sources(path, on_error=errors.append)) == []
            assert len(errors) == 1 and str(errors[0]).startswith(f"{path}:1: _id: ")
    tally("5: ids checked by the one rule", 1, int(not valid))


@SETTINGS
@given(run=st.dictionaries(_valid_ids, st.dictionaries(_valid_ids, st.floats(-1e6, 1e6, allow_nan=False),
                                                       min_size=1, max_size=5), min_size=1, max_size=4))
def test_trec_run_files_carry_any_valid_id(run) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_trec_run(run, Path(tmp) / "r.trec", tag="slimvec-x")
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == sum(len(d) for d in run.values())
        assert all(len(line.split()) == 6 for line in lines)  # whitespace in ids is escaped
        back = read_trec_run(path)
    assert back == {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}
    for q in run:
        assert trec_unescape(trec_escape(q)) == q
    tally("5: TREC run files with spaces, tabs, # and % in ids", len(run), 0)


# --- eval / sweep: inputs checked before any encoding --------------------------------------------------

_FAULTS = ["corpus_nul", "corpus_surrogate", "corpus_empty", "corpus_nan", "corpus_dup", "corpus_long_id",
           "query_empty", "query_missing", "qrels_bad_doc_id"]


def _dataset(root: Path, fault: str, line: int, n: int) -> str:
    """Write a small BEIR folder with one `fault`; returns the phrase its error must hold."""
    root.mkdir()
    corpus = [{"_id": f"doc {i}", "title": f"T{i}", "text": f"text number {i}"} for i in range(n)]
    queries = [{"_id": "q1", "text": "number one"}, {"_id": "q2", "text": "number two"}]
    qrels = ["query-id\tcorpus-id\tscore", "q1\tdoc 1\t1", "q2\tdoc 0\t1"]
    i = line - 1
    phrase = {
        "corpus_nul": "NUL", "corpus_surrogate": "lone surrogate", "corpus_empty": "empty",
        "corpus_nan": "non-finite", "corpus_dup": "duplicate id", "corpus_long_id": "longer than",
        "query_empty": "text: empty", "query_missing": "missing", "qrels_bad_doc_id": "corpus-id",
    }[fault]
    if fault == "corpus_nul":
        corpus[i]["text"] += "\x00"
    elif fault == "corpus_surrogate":
        corpus[i]["title"] = "\udc80"
    elif fault == "corpus_empty":
        corpus[i] = {"_id": corpus[i]["_id"], "title": "", "text": " "}
    elif fault == "corpus_nan":
        corpus[i]["metadata"] = {"score": math.inf}
    elif fault == "corpus_dup":
        corpus[i]["_id"] = "doc 0" if i else "doc 1"
        phrase = "duplicate id"
    elif fault == "corpus_long_id":
        corpus[i]["_id"] = "d" * (MAX_ID_CHARS + 1)
    elif fault == "query_empty":
        queries[1]["text"] = " "
    elif fault == "query_missing":
        queries.pop()
    elif fault == "qrels_bad_doc_id":
        qrels[2] = "q2\tdoc\x0b0\t1"
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return phrase


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(fault=st.sampled_from(_FAULTS), n=st.integers(3, 30), data=st.data(), sweep=st.booleans())
def test_eval_and_sweep_refuse_bad_inputs_before_any_encoding(fault, n, data, sweep, monkeypatch) -> None:
    line = data.draw(st.integers(1, n))
    loaded: list[str] = []
    from slimvec.evaluation import runner

    monkeypatch.setattr(runner, "load_encoder", lambda name: loaded.append(name))  # must never be reached
    with tempfile.TemporaryDirectory() as tmp:
        ds, out = Path(tmp) / "ds", Path(tmp) / "out"
        phrase = _dataset(ds, fault, line, n)
        with pytest.raises(IngestError) as e:
            if sweep:
                run_sweep(ds, [load_profile("exact-f32"), load_profile("int8")], out=out)
            else:
                run_eval(ds, load_profile("exact-f32"), out=out)
        msg = str(e.value)
        assert phrase in msg and "\n" not in msg, msg
        if fault.startswith("corpus") and fault != "corpus_dup":
            assert msg.startswith(f"{ds / 'corpus.jsonl'}:{line}: "), msg
        assert loaded == [] and not (out / "collections").exists()
    tally("5: eval/sweep datasets with one bad input (refused before encoding)", 1, 1)
