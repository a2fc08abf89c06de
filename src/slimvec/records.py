"""Checks every record gets where it is read: text a tokenizer, SQLite and JSON can all hold.

A Document is refused (with the field and the problem) when its id breaks the id rule (`slimvec.ids`),
when its title, text, metadata keys or metadata strings hold a lone UTF-16 surrogate (valid JSON escapes
such as `\\ud83d`, not encodable as UTF-8) or a NUL character, when a metadata number is NaN or infinite
(JSON has no such numbers and every comparison with them is false), and when its text is empty or only
whitespace (a scanned PDF, an empty file: such a record would be indexed on its title alone).
"""

from __future__ import annotations

import math
import re
from typing import Any

from slimvec.documents import Document, has_content
from slimvec.errors import IngestError
from slimvec.ids import fits_int64, id_problem, lone_surrogate

MAX_METADATA_DEPTH = 32
_PLAIN = frozenset({str, int, float, bool})
_CONTROL = re.compile(r"[\x00-\x1f]")


def plain_value(value: Any) -> Any:
    """The Python value a 0-d numpy value holds (np.int64(2020) from numpy or pandas code: 2020), else `value`."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def plain_metadata(value: Any, depth: int = 0) -> Any:
    """`value` with every 0-d numpy value in it (np.int64, np.float32, np.bool_ from pandas code) turned into the
    Python value it holds, so it is then held to that value's rules (`metadata_problem`: a NaN is still refused)
    and stored as JSON; the very object given when it holds none. Arrays are left as they are (refused there)."""
    if type(value) in _PLAIN or value is None:  # the common case first (an np.float64 is a float, not plain)
        return value
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:  # refused by metadata_problem; a loop must not recurse forever
            return value
        items = {k: plain_metadata(v, depth + 1) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, (list, tuple)):
        if depth > MAX_METADATA_DEPTH:
            return value
        out = [plain_metadata(v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(out, value)) else type(value)(out)
    return plain_value(value)


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (lone surrogate, NUL), or None."""
    if value.isascii():
        return "NUL character at position {}".format(value.index("\x00")) if "\x00" in value else None
    if m := lone_surrogate(value):
        return f"invalid Unicode: lone surrogate U+{ord(m[0]):04X} at position {m.start()}"
    if "\x00" in value:
        return f"NUL character at position {value.index(chr(0))}"
    return None


def key_problem(key: str) -> str | None:
    """Why a metadata key (a text one) is one no filter could name, or None. The filter language
    (`store.filters`) names a key by a dotted path, a key holding a dot or starting with "$" in double quotes
    (`"a.b"`, `"$x"`): so those are fine, but an empty key, and one holding a double quote, a backslash or a control
    character (which SQLite's JSON paths cannot carry), could be stored and never filtered on, nor told apart."""
    if not key:
        return "empty, which no filter can name"
    if '"' in key or "\\" in key:
        return "holds a double quote or backslash, which no filter can name"
    if m := _CONTROL.search(key):
        return f"holds the control character U+{ord(m[0]):04X} at position {m.start()}, which no filter can name"
    return None


def query_problem(query: str) -> str | None:
    """Why a query text cannot be searched or tuned on, or None: empty, only whitespace and invisible characters
    (a zero-width space), or a lone surrogate (a JSON escape such as `\\ud800`, command-line bytes that are not
    UTF-8). The one check behind `Collection.search_many`, `Collection.tune` and the query files of `slimvec tune`."""
    if not query.strip():
        return "query is empty"
    if not has_content(query):
        return f"query {query[:40]!r} is empty: it holds only whitespace and invisible characters"
    if not query.isascii() and (bad := lone_surrogate(query)):
        return (f"query is not valid Unicode: {bad.group()!r} at character {bad.start()} (a lone surrogate: a JSON "
                "escape, or command-line bytes that are not UTF-8: is the terminal's encoding UTF-8?)")
    return None


def metadata_problem(value: Any, key: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(dotted key, problem) for the first value JSON metadata cannot hold, or None."""
    if depth > MAX_METADATA_DEPTH:
        return key, f"nested deeper than {MAX_METADATA_DEPTH} levels"
    if isinstance(value, str):
        problem = text_problem(value)
        return (key, problem) if problem else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (key, f"non-finite number ({value!r})")
    if isinstance(value, int):
        return None if fits_int64(value) else (key, f"integer {value} outside the 64-bit range")
    if isinstance(value, (list, tuple)):
        for v in value:
            if found := metadata_problem(v, key, depth + 1):
                return found
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return key, f"object key {k!r} is not a string"
            path = f"{key}.{k}" if key else k
            if problem := text_problem(k):  # shown escaped: the key itself cannot be printed or stored
                return (f"{key}.{ascii(k)}" if key else ascii(k)), f"key: {problem}"
            if problem := key_problem(k):
                return (f"{key}.{k!r}" if key else repr(k)), f"key: {problem}"
            if found := metadata_problem(v, path, depth + 1):
                return found
        return None
    return key, (f"unsupported value of type {_type_name(value)} (metadata holds JSON values: strings, numbers, "
                 "booleans, null, lists and objects; convert it first)")


def _type_name(value: Any) -> str:
    """The type of `value` as a user knows it: a library's qualified (numpy's `bool_` is named plain "bool" since
    numpy 2, which read as if Python's bool were refused), a builtin's bare."""
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.partition('.')[0]}.{t.__name__}"


def record_problem(
    doc: Document, id_field: str = "id", title_field: str = "title", text_field: str = "text",
    empty_text: str = "empty",
) -> tuple[str, str] | None:
    """(field, problem) for the first thing wrong with `doc` as a record to index, or None when it is fine.

    `empty_text` is the problem reported for a text that is empty or only whitespace or invisible characters
    (readers say why, e.g. "no text extracted" for a PDF); pass "" to accept title-only records (BEIR corpora).
    """
    if problem := id_problem(doc.id):
        return id_field, problem
    for field, value in ((title_field, doc.title), (text_field, doc.text)):
        if problem := text_problem(value):
            return field, problem
    if found := metadata_problem(doc.metadata):
        return found
    if empty_text and not has_content(doc.text):  # only NULs, U+200B or BOMs is as empty as whitespace
        return text_field, empty_text
    return None


def check_record(doc: Document, where: str, **fields: str) -> Document:
    """`doc` unchanged, or IngestError `where: field: problem` (`fields` as for `record_problem`)."""
    found = record_problem(doc, **fields)
    if found is not None:
        field, problem = found
        raise IngestError(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")
    return doc
