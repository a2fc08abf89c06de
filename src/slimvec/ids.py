"""The one document id rule, for ingest (every reader applies it), the Python API and the HTTP API
(`check_id`), and every output (TREC runs, CSV, URLs).

An id is valid when it is a non-empty `str` of at most `MAX_ID_CHARS` characters, with no leading or
trailing whitespace (the qrels and CSV readers strip fields, so such an id could never be matched), no
lone UTF-16 surrogate (it cannot be encoded as UTF-8, so no file, database or URL can hold it) and no
control character other than tab (NUL ends C strings; a newline splits every line-based format).
Spaces, tabs, `#`, `%`, `/` and any other printable character are valid: outputs that cannot hold one
escape it (`trec_escape`), URLs percent-encode it.
"""

from __future__ import annotations

import re
from typing import Any

MAX_ID_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a TREC run line (whitespace-separated fields) cannot hold, plus the escape character itself.
_TREC_UNSAFE = re.compile(r"[\s%]")
_TREC_ESCAPE = re.compile(r"%([0-9A-F]{2}|u[0-9A-F]{4}|U[0-9A-F]{8})")


def fits_int64(value: int) -> bool:
    """Whether SQLite (and JSON metadata stored there) can hold the integer: -2**63 <= value < 2**63."""
    return -(2**63) <= value < 2**63


def lone_surrogate(text: str) -> re.Match[str] | None:
    """The first lone UTF-16 surrogate in `text`, or None: exactly what makes `text.encode("utf-8")` fail, so no
    file, database (SQLite) or URL can hold the text."""
    return _SURROGATE.search(text)


def id_problem(value: Any) -> str | None:
    """Why `value` is not a valid document id (one short phrase), or None when it is valid."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "empty"
    if len(value) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters ({len(value)})"
    if not value.strip():
        return "only whitespace"
    if value != value.strip():
        return "leading or trailing whitespace"
    if m := lone_surrogate(value):
        return f"invalid Unicode: lone surrogate U+{ord(m[0]):04X} at character {m.start()}"
    if m := _CONTROL.search(value):
        name = "NUL" if m[0] == "\x00" else f"control character U+{ord(m[0]):04X}"
        return f"{name} at character {m.start()}"
    return None


def check_id(value: Any, what: str = "id") -> str:
    """`value` unchanged if it is a valid id; ValueError naming `what` and the problem otherwise."""
    problem = id_problem(value)
    if problem is not None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60]) + "..."
        raise ValueError(f"{what} {shown}: {problem}")
    return value


def trec_escape(value: str) -> str:
    """`value` as one TREC run field: whitespace and `%` percent-encoded (`doc 1` -> `doc%201`), else as is.

    Reversible with `trec_unescape`; ids without whitespace or `%` are written unchanged, so runs of
    ordinary datasets stay byte-identical to what trec_eval tools expect.
    """
    return _TREC_UNSAFE.sub(_escape_char, value)


def trec_unescape(field: str) -> str:
    """The id that `trec_escape` turned into `field`."""
    return _TREC_ESCAPE.sub(lambda m: chr(int(m[1].lstrip("uU"), 16)), field)


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"%{code:02X}" if code < 0x100 else (f"%u{code:04X}" if code < 0x10000 else f"%U{code:08X}")
