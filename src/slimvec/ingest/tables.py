"""Read record tables (.jsonl, .csv, .parquet) into Documents, one per record."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from slimvec import strictjson
from slimvec.documents import Document, Section, blank_section_problem, section_problem
from slimvec.errors import IngestError
from slimvec.ingest.arrowtime import ns_as_plain
from slimvec.ingest.fieldtypes import convert
from slimvec.ingest.kinds import refuse_other_kind

TABLE_EXTS = frozenset({"jsonl", "csv", "parquet"})
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class FieldMap:
    """Which record fields hold the id, title and text; `metadata_fields=None` keeps every other field."""

    id_field: str = "_id"
    title_field: str = "title"
    text_field: str = "text"
    metadata_fields: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.metadata_fields, str):  # one field name, never its characters
            object.__setattr__(self, "metadata_fields", [self.metadata_fields])


# (position, item): the 1-based line (JSONL, CSV) or 0-based row (Parquet); None for whole-file errors.
Item = tuple[int | None, Document | IngestError]


def locate(path: Path, pos: int | None) -> str:
    """`path:line`, `path:row N` for Parquet, or just `path` when there is no position."""
    if pos is None:
        return str(path)
    return f"{path}:row {pos}" if path.suffix.lower() == ".parquet" else f"{path}:{pos}"


def iter_table(path: Path, fields: FieldMap, field_types: Mapping[str, str] | None = None) -> Iterator[Item]:
    """Each record of a .jsonl/.csv/.parquet file as a Document, or the error that stops it from being one.

    CSV metadata columns get types (int, float, bool, str) inferred by pyarrow's CSV reader over the whole
    file, `field_types` ({column: type}) overriding; an empty cell is a missing field, not "".
    """
    ext = path.suffix[1:].lower()
    if ext in ("jsonl", "csv"):
        try:
            refuse_other_kind(path)
        except IngestError as e:
            return iter([(None, e)])
    if ext == "jsonl":
        return _iter_jsonl(path, fields)
    if ext == "csv":
        return _iter_csv(path, fields, dict(field_types or {}))
    if ext == "parquet":
        return _iter_parquet(path, fields)
    raise IngestError(f"{path}: not a table file (expected .jsonl, .csv or .parquet)")


def iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | IngestError]]:
    """Each non-blank line of a JSONL file as an object, or an error naming the line; one error for the whole file
    when it is indented JSON (its first line a lone `[` or `{`) rather than one object per line."""
    first = True
    for lineno, line in utf8_lines(path):
        if isinstance(line, IngestError):
            yield lineno, line
            continue
        if not line.strip():
            continue
        if first and line.strip() in ("[", "{"):
            # No JSON Lines record is a lone bracket: this is one JSON value spread over lines, and read line by
            # line every line of it was reported malformed (one error per line, none saying why).
            what, jq = ("array", "'.[]'") if line.strip() == "[" else ("object", ".")
            yield lineno, IngestError(f"{path}:{lineno}: not JSON Lines: the file is one indented JSON {what}; JSON "
                                      f"Lines holds one object per line (e.g. jq -c {jq} FILE > FILE.jsonl)")
            return
        first = False
        try:
            rec = strictjson.loads(line.rstrip("\r\n"))
        except strictjson.RepeatedKeyError as e:
            yield lineno, IngestError(f"{path}:{lineno}: {e}")
            continue
        except json.JSONDecodeError as e:
            yield lineno, IngestError(f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})")
            continue
        except RecursionError:  # json's decoder recurses once per level: one bad line, not the whole file
            yield lineno, IngestError(f"{path}:{lineno}: nested too deeply")
            continue
        if not isinstance(rec, dict):
            got = _JSON_TYPES.get(type(rec), "null")
            yield lineno, IngestError(f"{path}:{lineno}: expected a JSON object, got {got}")
            continue
        yield lineno, rec


# Names exports commonly give the id and text fields (Qdrant/LangChain/pandas exports, HF datasets): a record with
# one of them under another name than the one slimvec reads gets the flag that reads it named in its error.
_ID_NAMES = ("id", "_id", "doc_id", "docid", "document_id", "ID", "Id", "uuid")
_TEXT_NAMES = ("text", "body", "content", "contents", "passage", "page_content", "document")


def _other_name(rec: dict[str, Any], wanted: str, names: tuple[str, ...], flag: str) -> str:
    """"" or a hint naming a field of `rec` that likely holds what `wanted` names, and the option that reads it."""
    other = next((n for n in names if n != wanted and rec.get(n) is not None), None)
    return "" if other is None else f" (the record has {other!r}: read it with --{flag}-field {other})"


def record_to_document(rec: dict[str, Any], fields: FieldMap, where: str) -> Document:
    """Map one record to a Document; `where` ("path:line") prefixes any error."""
    doc_id = rec.get(fields.id_field)
    if doc_id is None:
        raise IngestError(f"{where}: {fields.id_field}: missing{_other_name(rec, fields.id_field, _ID_NAMES, 'id')}")
    # bool is an int subclass, but True as an id is surely a mapping mistake.
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise IngestError(f"{where}: {fields.id_field}: expected a string or integer, got {_type(doc_id)}")
    doc_id = str(doc_id)
    if not doc_id.strip():
        raise IngestError(f"{where}: {fields.id_field}: empty")
    text = rec.get(fields.text_field)
    if text is None:
        raise IngestError(f"{where}: {fields.text_field}: missing"
                          f"{_other_name(rec, fields.text_field, _TEXT_NAMES, 'text')}")
    if not isinstance(text, str):
        raise IngestError(f"{where}: {fields.text_field}: expected a string, got {_type(text)}")
    title = rec.get(fields.title_field)
    if title is None:
        title = ""
    elif isinstance(title, int) and not isinstance(title, bool):  # "title": 1984, taken as ids are
        title = str(title)
    elif not isinstance(title, str):
        raise IngestError(f"{where}: {fields.title_field}: expected a string or integer, got {_type(title)}")
    sections = record_sections(rec.get("sections"), text, where)
    metadata = _metadata(rec, fields, where)
    if sections is not None:
        metadata.pop("sections", None)
    try:
        return Document(id=doc_id, text=text, title=title, metadata=metadata, sections=sections)
    except ValueError as e:  # the id rule (slimvec.ids): name the field the id came from
        raise IngestError(f"{where}: {fields.id_field}: {str(e).partition(': ')[2] or e}") from None


def record_sections(value: Any, text: str, where: str) -> tuple[Section, ...] | None:
    """A record's `sections: [{"_id", "start", "end"}]` character spans into `text` (None when absent), each with
    its heading path when the item has one (`"path": ["Intro", "Setup"]`, as the HTTP API's document gives it).

    A string value is not sections but an ordinary field (a CSV cell is always a string): it stays metadata.

    Raises IngestError "`where`: sections: problem" for a value that is not such a list, or spans that are not
    inside the text, ordered and non-overlapping (see `documents.section_problem`), or a span of only whitespace.
    """
    if value is None or isinstance(value, str):
        return None
    if not isinstance(value, list):
        raise IngestError(f"{where}: sections: expected an array, got {_type(value)}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise IngestError(f"{where}: sections: item {i}: expected an object, got {_type(item)}")
        sid, start, end = item.get("_id"), item.get("start"), item.get("end")
        if isinstance(sid, int) and not isinstance(sid, bool):
            sid = str(sid)
        if not isinstance(sid, str) or not sid:
            raise IngestError(f"{where}: sections: item {i}: _id: expected a non-empty string")
        for key, v in (("start", start), ("end", end)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise IngestError(f"{where}: sections: item {i}: {key}: expected an integer, got {_type(v)}")
        path = item.get("path")
        if path is None:
            path = []
        if not isinstance(path, list) or not all(isinstance(h, str) for h in path):
            raise IngestError(f"{where}: sections: item {i}: path: expected an array of strings, got {_type(path)}")
        out.append(Section(sid, start, end, tuple(path)))
    sections = tuple(out)
    if problem := section_problem(text, sections) or blank_section_problem(text, sections):
        raise IngestError(f"{where}: sections: {problem}")
    return sections


def _metadata(rec: dict[str, Any], fields: FieldMap, where: str) -> dict[str, Any]:
    nested = rec.get("metadata")
    nested = nested if isinstance(nested, dict) else None
    skip = {fields.id_field, fields.title_field, fields.text_field}
    if nested is not None:
        skip.add("metadata")
    top = rec if fields.metadata_fields is None else {k: rec[k] for k in fields.metadata_fields if k in rec}
    if nested is not None:
        # BEIR-style records carry a `metadata` object, flattened so filters see `year`, not `metadata.year`: a key
        # both there and at the top level with another value would lose one of them without a word.
        clash = next((k for k in nested if k in top and k not in skip and not _same(top[k], nested[k])), None)
        if clash is not None:
            raise IngestError(f"{where}: metadata key {clash!r} is given twice with different values, at the top "
                              f"level ({top[clash]!r:.60}) and in metadata ({nested[clash]!r:.60}); keep one")
    if fields.metadata_fields is not None:
        return {k: top[k] if k in top else nested[k] for k in fields.metadata_fields
                if k in top or (nested is not None and k in nested)}
    out = dict(nested) if nested is not None else {}
    out.update((k, v) for k, v in rec.items() if k not in skip)
    return out


def _same(a: Any, b: Any) -> bool:
    """JSON equality: as Python's ==, but a boolean never equals a number (True == 1 in Python, not in JSON)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def utf8_lines(path: Path) -> Iterator[tuple[int, str | IngestError]]:
    """(1-based line number, decoded line with its newline) for a UTF-8 file; a leading BOM is dropped."""
    offset = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                byte, bad = offset + e.start, raw[e.start]
                yield lineno, IngestError(f"{path}:{lineno}: invalid UTF-8 at byte {byte} (0x{bad:02x})")
            else:
                yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line
            offset += len(raw)


def _open_error(path: Path, e: OSError) -> Item:
    return None, IngestError(f"{path}: cannot read: {e.strerror}")


def _iter_jsonl(path: Path, fields: FieldMap) -> Iterator[Item]:
    try:
        for lineno, rec in iter_json_records(path):
            if isinstance(rec, IngestError):
                yield lineno, rec
                continue
            try:
                yield lineno, record_to_document(rec, fields, f"{path}:{lineno}")
            except IngestError as e:
                yield lineno, e
    except OSError as e:
        yield _open_error(path, e)


def _separator(line: str, wanted: set[str]) -> str | None:
    """';', tab or '|' when CSV header `line` read with it as the separator has a column named in `wanted`."""
    for sep in ";\t|":
        try:
            cells = next(csv.reader(line.splitlines()[:1], delimiter=sep), [])  # a lone CR ends the header too
        except csv.Error:
            continue
        if len(cells) > 1 and wanted & {c.strip() for c in cells}:
            return sep
    return None


def _separator_hint(sep: str | None) -> str:
    return "" if sep is None else (f"; the header is separated by {sep!r}, not commas: save the file with commas "
                                   "between columns (slimvec reads comma-separated values)")


def _iter_csv(path: Path, fields: FieldMap, field_types: dict[str, str]) -> Iterator[Item]:
    # Long documents exceed csv's 128 KiB default field limit; raising it only ever accepts more input.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

    head: list[str] = []  # the header line as read, for the separator hint

    def text_lines() -> Iterator[str]:
        for _, line in utf8_lines(path):
            if isinstance(line, IngestError):
                raise line  # a quoted field may span lines, so the rest of the file cannot be trusted
            if not head:
                head.append(line)
            if "\r" in line.rstrip("\r\n"):
                # A lone CR ends a line too (Excel for Mac's "CSV (Macintosh)"), as pandas and pyarrow read it: the
                # csv module, fed the file split at LF only, refused such a file as one line ("new-line character
                # seen in unquoted field"). Within a quoted field the CR stays part of the value.
                yield from (part for part in _AFTER_LONE_CR.split(line) if part)
                continue
            yield line

    try:
        # The stdlib reader keeps each record's line number (pyarrow's does not), so it parses the rows;
        # pyarrow's CSV reader only infers the column types. strict: a quote opened and never closed made the
        # lenient reader take every later line as that one cell's text (the records there silently gone), and a
        # stray character after a closing quote was glued into the cell.
        reader = csv.reader(text_lines(), strict=True)
        try:
            header = next(reader, None)
        except csv.Error as e:
            # '"_id";"text"' (quoted cells, ';' between them) fails to parse with commas: name the separator here too
            sep = _separator(head[0] if head else "", {fields.id_field, fields.text_field, *_ID_NAMES, *_TEXT_NAMES})
            yield 1, IngestError(f"{path}:1: malformed CSV header: {e}{_separator_hint(sep)}")
            return
        if header is None:
            return
        seen: dict[str, int] = {}
        for i, name in enumerate(header, start=1):
            if (first := seen.setdefault(name, i)) != i:  # the later cell would silently replace the earlier
                yield 1, IngestError(f"{path}:1: column {name!r} appears twice (columns {first} and {i})")
                return
        for name in (fields.id_field, fields.text_field):
            if name not in header:
                # "id, text" (a space after each comma) names the column " text": say so, the list shows it poorly
                spaced = next((h for h in header if h.strip() == name), None)
                hint = f"; column {spaced!r} has spaces around its name" if spaced is not None else ""
                # Excel where the decimal mark is a comma writes ';' between columns ("_id;text" read as one column)
                # ("id;text" too: the separator is the first thing to fix, then the name)
                names, flag = (_ID_NAMES, "id") if name == fields.id_field else (_TEXT_NAMES, "text")
                sep = _separator(head[0], {name, *names})
                if sep is not None and not hint:
                    hint = _separator_hint(sep)
                if not hint:  # named as a JSONL record's field is (`_other_name`): `id,content` wants --id-field id
                    if (other := next((n for n in names if n != name and n in header), None)) is not None:
                        hint = f"; the file has column {other!r}: read it with --{flag}-field {other}"
                yield 1, IngestError(f"{path}:1: {name}: no such column (columns: {', '.join(header)}){hint}")
                return
        own = {fields.id_field, fields.title_field, fields.text_field}
        keep = fields.metadata_fields
        meta_cols = [n for n in dict.fromkeys(header) if n not in own and (keep is None or n in keep)]
        types = {**csv_column_types(path, meta_cols, field_types), **field_types}
        while True:
            start = reader.line_num + 1  # a record may span lines: name the line it starts on
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, IngestError(f"{path}:{start}: malformed CSV: {_csv_problem(e)}")
                return
            if not row:
                continue
            where = f"{path}:{start}"
            if len(row) != len(header):
                yield start, IngestError(f"{where}: row has {len(row)} fields, header has {len(header)}")
                continue
            try:
                yield start, record_to_document(_typed_row(header, row, own, types, where), fields, where)
            except IngestError as e:
                yield start, e
    except IngestError as e:
        yield None, e
    except OSError as e:
        yield _open_error(path, e)


_AFTER_LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # the place after a CR that no LF follows


def _csv_problem(e: csv.Error) -> str:
    """The stdlib reader's complaint about a record, in the terms of the file."""
    if str(e) == "unexpected end of data":
        return ('a quoted field opened in this record is never closed (an unbalanced \'"\'): the rest of the file '
                "would be read as its text")
    if str(e).endswith("expected after '\"'"):
        return (f"{e} (text after a closing quote; a quote inside a quoted field is written twice: \"\")")
    return str(e)


def _typed_row(header: list[str], row: list[str], own: set[str], types: dict[str, str], where: str) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if name in own:
            rec[name] = cell
        elif cell != "":  # an empty cell is a missing field, so `$exists` and type checks see the truth
            if not name.strip():  # a key "" (or " ") no filter can name: most likely a stray comma in the header
                raise IngestError(f"{where}: column {header.index(name) + 1} has no name in the header but holds "
                                  f"{cell!r:.60}; name the column")
            try:
                rec[name] = convert(cell, types.get(name, "str"))
            except ValueError as e:
                raise IngestError(f"{where}: {name}: {e}") from None
    return rec


# pyarrow types that JSON stores natively; any other inferred type (dates, times) keeps the cell's text.
_ARROW_TYPES = {"int64": "int", "double": "float", "bool": "bool"}
_LEADING_ZERO = r"^[+-]?0[0-9]"
_LONG_INT = r"^[+-]?[0-9]{16,}$"  # an integer float64 may not hold exactly (2**53 has 16 digits)


def csv_column_types(path: Path, columns: list[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """{column: "int" | "float" | "bool" | "str"} for `columns` of a CSV file, inferred by pyarrow's CSV reader
    over every row (empty cells count as missing). Number columns holding a leading zero (codes such as
    "02139") stay text, since the number would lose the zero, and so do number columns holding an integer that a
    float cannot hold exactly (past 2**53, or past 64 bits). A column pyarrow cannot read is text."""
    import pyarrow as pa  # deferred: a slow import that most runs never need
    import pyarrow.compute as pac
    import pyarrow.csv as pcsv

    overrides = overrides or {}
    todo = [c for c in columns if c not in overrides]
    if not todo:
        return {}

    def read(cols: list[str], as_text: bool = False) -> pa.Table:
        return pcsv.read_csv(
            path,
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda _: "skip"),
            convert_options=pcsv.ConvertOptions(
                include_columns=cols, null_values=[""], strings_can_be_null=True, check_utf8=False,
                true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
                column_types={c: pa.string() for c in cols} if as_text else None,
            ),
        )

    try:
        table = read(todo)
        found = {c: _ARROW_TYPES.get(str(table.schema.field(c).type), "str") for c in todo}
    except (pa.ArrowException, ValueError, KeyError):
        found = {}
        for c in todo:  # one column that pyarrow cannot read must not untype the others
            try:
                found[c] = _ARROW_TYPES.get(str(read([c]).schema.field(c).type), "str")
            except (pa.ArrowException, ValueError, KeyError):
                found[c] = "str"
    numbers = [c for c, t in found.items() if t in ("int", "float")]
    if numbers:  # read once more as text: a number would lose a leading zero, and a float column (pyarrow reads
        # integers past 64 bits as floats) the digits of an integer past 2**53
        try:
            texts = read(numbers, as_text=True)
            for c in numbers:
                lost = pac.any(pac.match_substring_regex(texts[c], _LEADING_ZERO)).as_py()
                if not lost and found[c] == "float":
                    long_ints = pac.filter(texts[c], pac.match_substring_regex(texts[c], _LONG_INT)).to_pylist()
                    lost = any(int(float(v)) != int(v) for v in long_ints)
                if lost:
                    found[c] = "str"
        except (pa.ArrowException, ValueError, KeyError):
            found.update((c, "str") for c in numbers)
    return found


def _iter_parquet(path: Path, fields: FieldMap) -> Iterator[Item]:
    import pyarrow as pa  # deferred: a slow import that most runs never need
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        if dup := next((n for i, n in enumerate(names) if n in names[:i]), None):  # one would silently replace the other
            yield None, IngestError(f"{path}: column {dup!r} appears twice")
            return
        for name in (fields.id_field, fields.text_field):
            if name not in names:
                yield None, IngestError(f"{path}: {name}: no such column (columns: {', '.join(names)})")
                return
        columns = None
        if fields.metadata_fields is not None:
            own = [fields.id_field, fields.title_field, fields.text_field, "metadata"]
            columns = [n for n in dict.fromkeys(own + fields.metadata_fields) if n in names]
        row = 0
        for batch in pf.iter_batches(batch_size=1024, columns=columns):
            for rec in _records(ns_as_plain(batch)):
                where = locate(path, row)
                try:
                    if isinstance(rec, KeyError):
                        raise IngestError(f"{where}: {' '.join(str(rec.args[0] if rec.args else rec).split())}")
                    if isinstance(rec.get(fields.id_field), uuid.UUID):  # Arrow's uuid type: the id is its text
                        rec[fields.id_field] = str(rec[fields.id_field])
                    doc = record_to_document(rec, fields, where)
                    yield row, Document(doc.id, doc.text, doc.title, _jsonable(doc.metadata, where), doc.sections)
                except IngestError as e:
                    yield row, e
                row += 1
    except OSError as e:
        yield _open_error(path, e)
    except (pa.ArrowException, ValueError) as e:
        yield None, IngestError(f"{path}: cannot read Parquet: {' '.join(str(e).split())}")


def _records(batch: Any) -> list[dict[str, Any] | KeyError]:
    """A batch's rows as dicts, map columns as objects (pyarrow's default, a list of (key, value) pairs, would
    store a map as an array no filter path reaches); a row whose map names a key twice is its KeyError."""
    try:
        return batch.to_pylist(maps_as_pydicts="strict")
    except KeyError:  # some row's map repeats a key: find it, keep the others
        out: list[dict[str, Any] | KeyError] = []
        for i in range(batch.num_rows):
            row = batch.slice(i, 1)
            try:
                out.append(row.to_pylist(maps_as_pydicts="strict")[0])
            except KeyError as e:
                name = next((n for n, col in zip(row.schema.names, row.columns) if not _strict_map(col)), "?")
                dup = re.search(r"duplicate key was (.+?)\)?\.?$", str(e.args[0] if e.args else e))
                out.append(KeyError(f"{name}: a map names the key {dup[1] if dup else ''} twice (JSON keeps one "
                                    "value per key: the other would be lost)"))
        return out


def _strict_map(column: Any) -> bool:
    """Whether a one-row column converts with its maps as dicts (no map in it names a key twice)."""
    try:
        column.to_pylist(maps_as_pydicts="strict")
    except KeyError:
        return False
    return True


def _jsonable(value: Any, where: str, key: str = "") -> Any:
    """Parquet values as JSON-ready metadata: dates and UUIDs as text, decimals as floats (a whole decimal a float
    cannot hold exactly as an integer)."""
    if isinstance(value, dict):  # a map's keys may be numbers: JSON names them as text
        return {str(k): _jsonable(v, where, f"{k}" if not key else f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where, key) for v in value]
    if isinstance(value, (dt.date, dt.time)):  # dt.datetime is a dt.date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and int(float(value)) != int(value):
            return int(value)  # a whole number a float cannot hold exactly (past 2**53): its digits, or refused past 64 bits
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        raise IngestError(f"{where}: {key}: binary values cannot be metadata")
    return value
