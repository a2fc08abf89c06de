"""JSONL uploads read with the ingest reader of `slimvec index`, so a file reads the same either way."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from fastapi import HTTPException

from slimvec.documents import Document
from slimvec.errors import IngestError, no_room
from slimvec.ingest import FieldMap, read_sources
from slimvec.ingest.kinds import other_kind
from slimvec.server.models import check_document

UPLOAD_NAME = "upload"  # how errors name the upload: "upload line 3: text: missing"


def read_jsonl_upload(raw: bytes, fields: FieldMap, max_batch: int) -> list[Document]:
    """Documents of an uploaded JSONL file (one record per line, blank lines skipped, a leading BOM dropped).

    Records map to documents exactly as `slimvec index FILE.jsonl` maps them (slimvec.ingest.read_sources
    with the same FieldMap). Any bad record rejects the whole upload with IngestError
    "upload line LINE: problem" (malformed JSON, invalid UTF-8, a missing or mistyped field, a duplicate id,
    or a value over the server's limits); HTTPException 413 past `max_batch` documents.
    """
    # The reader would name the temporary file's extension, and suggest renaming, which an upload cannot do.
    if (found := other_kind(raw[:1024], raw[-4:], "jsonl")) is not None:
        raise IngestError(f"{UPLOAD_NAME}: the file is {found[0]}, not JSON Lines (an upload is read as JSON Lines: "
                          "one object per line)")
    # The reader takes paths: the bytes go to a private temporary file, never inside a collection and
    # never under the client's file name.
    fd, tmp = tempfile.mkstemp(prefix="slimvec-upload-", suffix=".jsonl")
    path = Path(tmp)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
        except OSError as e:
            # The server's own copy, in its temporary folder: the errors' handler would say "File too large; run
            # `slimvec check` on the collection", naming no file, when the collection was never touched.
            if no_room(e) is None:
                raise
            raise HTTPException(507, f"{UPLOAD_NAME}: the server has no room for its temporary copy of the upload "
                                     f"({e.strerror}); nothing was stored") from None
        docs: list[Document] = []
        try:
            for doc in read_sources([path], fields=fields, strict=True):
                docs.append(doc)
                if len(docs) > max_batch:
                    raise HTTPException(413, f"upload holds more than {max_batch} documents, the limit per request")
                try:
                    check_document(doc)
                except ValueError as e:
                    raise IngestError(f"{path}:{_line_of(path, doc.id, fields)}: {e}") from None
        except IngestError as e:
            raise IngestError(_rename(str(e), path)) from None
        except RecursionError:
            raise IngestError(f"{UPLOAD_NAME}: a record is nested too deeply") from None
        return docs
    finally:
        path.unlink(missing_ok=True)


def _line_of(path: Path, doc_id: str, fields: FieldMap) -> str:
    """The line holding document `doc_id` (a rare error path: rescanning the file is cheaper than tracking)."""
    from slimvec.ingest.tables import iter_table

    for lineno, item in iter_table(path, fields):
        if isinstance(item, Document) and item.id == doc_id:
            return str(lineno)
    return "?"


def _rename(message: str, path: Path) -> str:
    """The reader's message about the temporary file, about "upload" instead ("PATH:3" -> "upload line 3")."""
    message = re.sub(re.escape(str(path)) + r":(\d+)", UPLOAD_NAME + r" line \1", message)
    return message.replace(str(path), UPLOAD_NAME)
