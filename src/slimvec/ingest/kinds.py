"""What a file is by its first bytes: a file of another format than its extension names (a PDF saved as .txt, a
.docx or .xlsx renamed .md, .pdf or .csv, a gzipped export) is refused naming that format, where reading it as its
extension says reported only a symptom ("invalid UTF-8 at byte 10", "NUL character", "Stream has ended
unexpectedly", a CSV header of binary "columns")."""

from __future__ import annotations

import re
from pathlib import Path

from slimvec.errors import IngestError

# (pattern at the start of the file, what a user calls the format, what to do). The patterns of ASCII letters are
# whole signatures, so no text file opening with the same letters is taken for one; Parquet also ends "PAR1".
_KINDS = ((rb"%PDF-", "a PDF document", "name it .pdf to read its text"),
          (rb"PK\x03\x04", "a ZIP archive (a .docx, .xlsx, .odt, .epub or .zip)",
           "export it as .txt, .html, .pdf, .csv or .jsonl"),
          (rb"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (.doc, .xls, .ppt)",
           "export it as .txt, .html, .pdf, .csv or .jsonl"),
          (rb"\x89PNG\r\n\x1a\n", "a PNG image", ""), (rb"\xff\xd8\xff", "a JPEG image", ""),
          (rb"GIF8[79]a", "a GIF image", ""), (rb"\x1f\x8b\x08", "gzip-compressed data", "decompress it first"),
          (rb"BZh[1-9]1AY&SY", "bzip2-compressed data", "decompress it first"),
          (rb"\xfd7zXZ\x00", "xz-compressed data", "decompress it first"),
          (rb"PAR1", "a Parquet file", "name it .parquet to read its records"),
          (rb"SQLite format 3\x00", "an SQLite database", ""), (rb"\x7fELF", "an executable", ""))
_HEAD = 1024  # a PDF's header may follow up to 1,024 bytes of other data (ISO 32000-1, annex H)
_WHAT = {"pdf": "a PDF", "csv": "CSV text", "jsonl": "JSON Lines text"}


def other_kind(head: bytes, tail: bytes, ext: str) -> tuple[str, str] | None:
    """(what the format is called, what to do) when a file's first bytes `head` (and last 4, `tail`) show another
    format than extension `ext` names; None when they show none."""
    if ext == "pdf" and b"%PDF-" in head[:_HEAD]:
        return None
    for pattern, kind, hint in _KINDS:
        if re.match(pattern, head) and (pattern != rb"PAR1" or tail[-4:] == b"PAR1"):
            return kind, hint
    return None


def refuse_other_kind(path: Path) -> None:
    """IngestError when the first bytes of `path` show another format than its extension (.txt .md .html .htm
    .pdf .csv .jsonl) names; nothing when they show none (the reader then reports what it finds) or the file
    cannot be read (the reader reports that)."""
    ext = path.suffix[1:].lower()
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD)
            f.seek(max(0, f.seek(0, 2) - 4))
            tail = f.read(4)
    except OSError:
        return
    if (found := other_kind(head, tail, ext)) is not None:
        kind, hint = found
        raise IngestError(f"{path}: the file is {kind}, not {_WHAT.get(ext, 'text')} as its extension '.{ext}' "
                          "says" + (f"; {hint}" if hint else ""))
