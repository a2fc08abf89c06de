"""Fuzzing the ingest readers: any bytes in any supported file give Documents or located IngestErrors, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec.documents import Document
from slimvec.errors import IngestError
from slimvec.ingest import read_sources

_json_lines = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(["_id", "title", "text", "metadata", "x"]),
                        st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans(),
                                  st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
                        max_size=5).map(lambda d: __import__("json").dumps(d)),
        st.text(max_size=40),
    ),
    max_size=8,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))

_payload = st.one_of(st.binary(max_size=300), _json_lines, st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from(["jsonl", "csv", "md", "txt", "html", "pdf"]), payload=_payload)
def test_any_bytes_give_documents_or_located_errors(ext, payload):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input.{ext}"
        path.write_bytes(payload)
        errors: list[IngestError] = []
        docs = list(read_sources([path], on_error=errors.append))
        assert all(isinstance(d, Document) for d in docs)
        for e in errors:
            assert str(path) in str(e) and "\n" not in str(e).strip()
