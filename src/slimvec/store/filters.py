"""The metadata filter language, compiled to parameterised SQLite over the documents table.

Operators: $eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not; dotted field paths, where a key in double
quotes is taken whole (`"a.b"` is the one key a.b, `meta."v1.2"` the key v1.2 inside meta), as in Qdrant's key paths.
`{"year": 2020}` means `{"year": {"$eq": 2020}}`; several keys in one object are AND-ed.
An array-valued field matches $eq/$in when any element matches. The field `_id` is the document id.
SQL text is built only from fixed fragments; every user value, paths included, is a bound parameter.

Comparisons are typed (a number never equals the text "2020"). When a filter matches nothing,
`filter_type_mismatch` explains it if some comparison's value type is not among the types the field is
stored with (`Store.metadata_types`), so a user reads one line instead of an empty result.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slimvec import strictjson
from slimvec.errors import FilterError
from slimvec.ids import fits_int64, lone_surrogate
from slimvec.records import plain_value

# A dotted path of metadata keys: any key text (spaces, accents, CJK) but dots, double quotes, backslashes and
# controls; a key in double quotes may hold dots. SQLite's JSON path cannot carry a double quote or backslash
# inside a quoted label at all. "$" first is an operator (a quoted key may start with "$").
_PLAIN = r'[^."\\\x00-\x1f]+'
_INSIDE_QUOTES = r'[^"\\\x00-\x1f]+'
_QUOTED = rf'"{_INSIDE_QUOTES}"'
_FIELD = re.compile(rf"(?!\$)(?:{_QUOTED}|{_PLAIN})(?:\.(?:{_QUOTED}|{_PLAIN}))*")  # fullmatch: "$" takes a final newline
_SEGMENT = re.compile(rf'"({_INSIDE_QUOTES})"|({_PLAIN})')
_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MAX_DEPTH = 32
_MAX_IN = 10_000

Scalar = str | int | float | bool | None


def parse_filter(text: str) -> dict[str, Any]:
    """Parse a filter given as JSON text (e.g. on the command line)."""
    try:
        value = strictjson.loads(text)
    except strictjson.RepeatedKeyError as e:  # json.loads would keep the last condition on the key, drop the first
        raise FilterError(f"filter names {e.key!r} twice in one object; combine the conditions (or use $and)") from None
    except json.JSONDecodeError as e:
        raise FilterError(f"filter is not valid JSON: {e.msg} at position {e.pos}") from None
    except RecursionError:
        raise FilterError(f"filter nested deeper than {_MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise FilterError("filter must be a JSON object, e.g. {\"year\": {\"$gte\": 2020}}")
    return value


def compile_filter(flt: dict[str, Any], column: str = "d.metadata", id_column: str = "d.id",
                   indexed: frozenset[str] = frozenset(),
                   estimate: Callable[[str, list[Any], int], int] | None = None,
                   exists_indexed: frozenset[str] = frozenset()) -> tuple[str, list[Any]]:
    """SQL boolean expression and its parameters for `flt`, over JSON `column`.

    indexed: JSON paths (`field_path`) with a field index (`Store.create_field_index`). Each AND level (an object,
    with the items of its `$and`) lets one list of documents read from the index's `field_terms` rows drive, and
    checks its other conditions on those documents only: an indexed $eq/$in/$gt/$gte/$lt/$lte, or an `$or` whose
    every branch has such a list (the union of the branches' lists). Reading a second list whole, only to test
    membership, cost more than the scan it replaced when it held most documents, so every other condition is
    checked on the driver's documents' JSON. Matches are the scan's (an array matches $eq/$in through any element;
    comparisons take scalars only; types kept apart).

    estimate: `estimate(select, params, cap)`, how many rows `select` (a `SELECT 1 FROM field_terms ...` that reads
    only the index) returns, counted up to `cap` (`Store`: a `count(*)` under `LIMIT`); with it the narrowest drives,
    whatever its operator or place in the filter. Without it an equality or $in drives first, then an $or, then a
    range (the old order).

    exists_indexed: the indexed paths whose marker rows (one per document holding the key, whatever its value) are
    complete, so `$exists: true` on them can drive as well."""
    if not isinstance(flt, dict):
        raise FilterError("filter must be a JSON object")
    params = _Params()
    params.indexed = indexed
    params.exists_indexed = exists_indexed
    params.estimate = estimate
    drive = None
    if indexed:
        try:
            drive = _plan(flt, params, 0)
        except FilterError:  # a malformed filter: `_object` refuses it, with its own message, in filter order
            drive = None
    sql = _object(flt, params, column, id_column, 0, drive)
    return sql, list(params)


class _Params(list):  # type: ignore[type-arg]
    """The bound parameters, carrying the indexed paths and the estimator down the compiler."""

    indexed: frozenset[str] = frozenset()
    exists_indexed: frozenset[str] = frozenset()
    estimate: Callable[[str, list[Any], int], int] | None = None


def path_field(path: str) -> str:
    """The filter field naming JSON path `path` (`field_path`'s inverse): `$."a"."b"` -> `a.b`, a key holding a dot
    in double quotes."""
    return ".".join(quote_key(k) for k in json.loads("[" + path[2:].replace('"."', '","') + "]"))


def field_path(name: str) -> str:
    """The JSON path of filter field `name` (`year` -> `$."year"`, `a.b` -> `$."a"."b"`); FilterError for a name
    the filter language cannot name, or for `_id` (the document id, which is not metadata)."""
    if name == "_id":
        raise FilterError("_id is the document id, which is always indexed; a field index is for metadata fields")
    return _path(name)


def _object(obj: dict[str, Any], params: list[Any], col: str, idcol: str, depth: int,
            drive: _Drive | None = None) -> str:
    """`drive`: the list that drives this AND level (`_plan`), at this level, in one of its `$and` items, or None;
    every other indexed comparison here is checked on the JSON."""
    if depth > _MAX_DEPTH:
        raise FilterError(f"filter nested deeper than {_MAX_DEPTH} levels")
    if not obj:
        return "1"
    for key, value in obj.items():  # before `_field`, which reads keys as text
        _text_key(key, "a field name or operator")
        if isinstance(value, dict) and not key.startswith("$"):
            for op in value:
                _text_key(op, f"{key!r}: an operator")
    parts = []
    here = drive if drive is not None and drive.level is obj else None  # the driver is a condition of this object
    for key, value in obj.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of filters")
            for sub in value:
                if not isinstance(sub, dict):
                    raise FilterError(f"{key} items must be objects, got {json.dumps(sub)[:60]}")
            if key == "$or" and here is not None and here.key == "$or":
                params.extend(here.params)
                union = f"({idcol} IN ({here.sql}))"
                if all(b.whole for b in here.branches):
                    parts.append(union)  # each branch is its list: the union is the $or's matches
                    continue
                subs = [_object(sub, params, col, idcol, depth + 1) for sub in value]
                parts.append(f"({union} AND {_joined(subs, 'OR')})")
                continue
            inner = drive if key == "$and" else None  # an $and item is part of this AND level
            subs = [_object(sub, params, col, idcol, depth + 1, inner) for sub in value]
            parts.append(_joined(subs, "AND" if key == "$and" else "OR"))
        elif key == "$not":
            if not isinstance(value, dict):
                raise FilterError("$not takes a filter object")
            parts.append("(NOT " + _object(value, params, col, idcol, depth + 1) + ")")
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r} at top level (fields go first: {{\"field\": {{\"{key}\": ...}}}})")
        else:
            parts.append(_field(key, value, params, col, idcol, here if here is not None and here.key == key else None))
    return "(" + " AND ".join(parts) + ")"


def _joined(parts: list[str], op: str) -> str:
    """`parts` joined by AND or OR as a balanced tree: SQLite refuses an expression deeper than 1,000 levels, and
    a flat chain of n terms is n deep (an $in of the 10,000 values allowed, or ids to delete by filter, failed
    from 999 on); halves nest log2(n) deep. Order is kept, so parameters stay in place."""
    if len(parts) == 1:
        return parts[0]
    half = len(parts) // 2
    return f"({_joined(parts[:half], op)} {op} {_joined(parts[half:], op)})"


def _text_key(key: Any, what: str) -> None:
    # A Python caller's dict may hold any hashable key (1, None, a tuple); JSON text never does.
    if not isinstance(key, str):
        raise FilterError(f"filter keys are text: {what} expected, got {type(key).__name__} {key!r}")


_INDEX_OPS = ("$eq", "$in", "$gt", "$gte", "$lt", "$lte")
_RANK = {"$eq": 0, "$in": 0, "$or": 1, "$exists": 3}  # without estimates: an equality, an $or, a range, $exists
_MAX_UNION = 400  # selects in one union: SQLite refuses a compound SELECT of more than 500
_FIRST_CAP = 256  # rows each candidate's first count reads at most


@dataclass(eq=False)
class _Drive:
    """A list of documents read from `field_terms` that holds every document matching AND level `level`: the
    comparison `key` `op` there, or its `$or` (key and op "$or") as the union of its `branches`' lists.

    sql: the `SELECT doc_id FROM field_terms ...` (a UNION ALL of them), with `params`. whole: the list is exactly
    the level's matches (the level is this one comparison, or an $or of whole branches), so an $or holding it as a
    branch needs no check of its JSON."""

    level: dict[str, Any]
    key: str
    op: str
    sql: str
    params: list[Any]
    whole: bool
    branches: list[_Drive] = field(default_factory=list)


def _plan(obj: dict[str, Any], params: _Params, depth: int) -> _Drive | None:
    """The narrowest list (`_Drive`) that can drive AND level `obj`, or None when no condition there can."""
    found = _candidates(obj, params, depth)
    if len(found) <= 1 or params.estimate is None:  # nothing to compare: no count is read
        return min(found, key=lambda d: _RANK.get(d.op, 2), default=None)
    # Counted together under a cap that grows eightfold until one list ends below it: what the counts read stays
    # within a small multiple of the narrowest list (each list a count(*) through the index's b-tree), so a range
    # holding most documents is never counted whole beside a narrow equality.
    cap = _FIRST_CAP
    while True:
        sizes = [(params.estimate(_counted(d.sql), d.params, cap), _RANK.get(d.op, 2), i) for i, d in enumerate(found)]
        if (best := min(sizes))[0] < cap:
            return found[best[2]]
        cap *= 8


def _counted(select: str) -> str:
    """`select` reading only the index `field_terms_value` (path, kind, value), for its count: a scalar's `elem = 0`
    and the `doc_id` each cost a table row per term (7 ms to count 3,500 terms at 20,000 documents, more than the
    filter's own query), and arrays change a count only a little."""
    return select.replace("SELECT doc_id ", "SELECT 1 ").replace("elem = 0 AND ", "")


def _candidates(obj: dict[str, Any], params: _Params, depth: int) -> list[_Drive]:
    if depth > _MAX_DEPTH:
        return []
    out: list[_Drive] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            return []  # refused by `_object`
        if key == "$and" and isinstance(value, list):
            for sub in value:  # the items of an $and are conditions of this same level
                if isinstance(sub, dict):
                    out += [dataclasses.replace(d, whole=False) for d in _candidates(sub, params, depth + 1)]
        elif (key == "$or" and isinstance(value, list) and 0 < len(value) <= _MAX_UNION
              and all(isinstance(s, dict) for s in value)):  # more branches than a union holds: none is counted
            chosen = []
            for sub in value:
                if (b := _plan(sub, params, depth + 1)) is None:
                    break  # a branch no list holds: the $or cannot drive, and no later branch is counted
                chosen.append(b)
            else:
                if sum(b.sql.count(" UNION ALL ") + 1 for b in chosen) <= _MAX_UNION:
                    out.append(_Drive(obj, "$or", "$or", " UNION ALL ".join(b.sql for b in chosen),
                                      [p for b in chosen for p in b.params],
                                      len(obj) == 1 and all(b.whole for b in chosen), chosen))
        elif (not key.startswith("$") and key != "_id" and _FIELD.fullmatch(key) and not lone_surrogate(key)
              and _path(key) in params.indexed):
            bare = not isinstance(value, dict) or not any(isinstance(k, str) and k.startswith("$") for k in value)
            cond = {"$eq": value} if bare else value
            for op, v in cond.items():
                if op == "$exists" and v is True and _path(key) in params.exists_indexed:
                    terms: tuple[str, list[Any]] | None = (
                        "SELECT doc_id FROM field_terms WHERE path = ? AND kind = 'exists'", [_path(key)])
                else:
                    terms = _terms(key, _path(key), op, v)
                if terms is not None:
                    out.append(_Drive(obj, key, op, *terms, whole=len(obj) == 1 and len(cond) == 1))
    return out


def _kinds(v: Scalar) -> str:
    """The json_type names a comparison with `v` (not None) can match."""
    return "('true','false')" if isinstance(v, bool) else ("('text')" if isinstance(v, str) else "('integer','real')")


def _terms(name: str, path: str, op: Any, value: Any) -> tuple[str, list[Any]] | None:
    """The `field_terms` rows of the documents `name` `op` `value` matches, as (SELECT doc_id ..., params), with
    the scan's matches: an array matches $eq/$in through any element (a term row each), null only as a scalar,
    ranges compare scalars only (elem 0); None for a comparison the index does not serve (or a malformed one,
    which `_field` refuses)."""
    pick = "SELECT doc_id FROM field_terms WHERE path = ? AND "
    if op == "$in":
        if not isinstance(value, list) or not value or len(value) > _MAX_IN:
            return None
        groups: dict[str, list[Any]] = {}
        for x in value:
            v = _scalar(name, x)
            groups.setdefault("null" if v is None else _kinds(v), []).append(int(v) if isinstance(v, bool) else v)
        selects, out = [], []
        for typ, vals in groups.items():
            if typ == "null":
                selects.append(pick + "elem = 0 AND kind = 'null'")
                out.append(path)
            else:
                selects.append(pick + f"kind IN {typ} AND value IN ({','.join('?' * len(vals))})")
                out += [path, *vals]
        return " UNION ALL ".join(selects), out
    if op not in _INDEX_OPS:
        return None
    v = _scalar(name, value)
    if op == "$eq":
        if v is None:
            return pick + "elem = 0 AND kind = 'null'", [path]
        return pick + f"kind IN {_kinds(v)} AND value = ?", [path, int(v) if isinstance(v, bool) else v]
    if isinstance(v, bool) or v is None:
        return None
    return pick + f"elem = 0 AND kind IN {_kinds(v)} AND value {_COMPARE[op]} ?", [path, v]


def _field(name: str, cond: Any, params: list[Any], col: str, idcol: str, drive: _Drive | None = None) -> str:
    """`drive`: the list (`_plan`) that drives this AND level, when it is one of this field's comparisons."""
    path = _path(name)  # once per field, not per value of an $in list; refuses a path it cannot name
    if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
        cond = {"$eq": cond}
    parts = []
    for op, value in cond.items():
        if drive is not None and op == drive.op:  # its comparison, read from the index
            params.extend(drive.params)
            parts.append(f"({idcol} IN ({drive.sql}))")
        elif op == "$eq":
            parts.append(_eq(name, path, value, params, col, idcol))
        elif op == "$ne":
            parts.append("(NOT " + _eq(name, path, value, params, col, idcol) + ")")
        elif op in ("$in", "$nin"):
            if not isinstance(value, list):
                raise FilterError(f"{name}: {op} takes a list of values")
            if len(value) > _MAX_IN:
                raise FilterError(f"{name}: {op} list longer than {_MAX_IN}")
            anyof = _any_of(name, path, value, params, col, idcol) if value else "0"
            parts.append(anyof if op == "$in" else f"(NOT {anyof})")
        elif op in _COMPARE:
            parts.append(_compare(name, path, op, value, params, col, idcol))
        elif op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"{name}: $exists takes true or false")
            if name == "_id":
                parts.append("1" if value else "0")
            else:
                params.append(path)
                parts.append(f"(json_type({col}, ?) IS {'NOT ' if value else ''}NULL)")
        else:
            raise FilterError(f"{name}: unknown operator {op!r}")
    return "(" + " AND ".join(parts) + ")"


def field_keys(name: str) -> list[str]:
    """The metadata keys a field path names, outermost first: `a.b` -> [a, b], `"a.b".c` -> [a.b, c]. Raises
    FilterError for a path the filter language cannot name."""
    if not _FIELD.fullmatch(name) or lone_surrogate(name):
        raise FilterError(f"invalid field name {name!r}: give metadata keys separated by dots, a key holding a dot "
                          "in double quotes (a key cannot be empty or hold a double quote, backslash or control "
                          "character)")
    return [quoted or plain for quoted, plain in _SEGMENT.findall(name)]


def quote_key(key: str) -> str:
    """The field path naming the one metadata key `key` (quoted when it holds a dot, is `_id`, which unquoted is the
    document id, or starts with `$`, which unquoted is an operator): for flat-metadata callers such as LlamaIndex,
    whose filter keys are never paths."""
    return f'"{key}"' if "." in key or key == "_id" or key.startswith("$") else key


def _path(name: str) -> str:
    return "$." + ".".join(f'"{k}"' for k in field_keys(name))


def _scalar(name: str, value: Any) -> Scalar:
    value = plain_value(value)  # np.int64(2020): the number it holds, not a TypeError from json.dumps below
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        if isinstance(value, float) and value != value:
            raise FilterError(f"{name}: NaN is not a valid value")
        if isinstance(value, int) and not isinstance(value, bool) and not fits_int64(value):
            raise FilterError(f"{name}: integer {value} out of range")
        if isinstance(value, str) and lone_surrogate(value):  # from a JSON escape ("\ud800"): no stored text holds one
            raise FilterError(f"{name}: value {value!r} contains invalid Unicode (a lone surrogate)")
        if isinstance(value, str) and "\x00" in value:  # refused in stored text too (records.text_problem)
            raise FilterError(f"{name}: value {value!r} contains a NUL character, which no stored value holds")
        return value
    shown = json.dumps(value, default=lambda v: f"<{type(v).__name__}>")[:60]  # bytes, sets...: named, not raised on
    raise FilterError(f"{name}: values must be strings, numbers, booleans or null, got {shown}")


def _eq(name: str, path: str, value: Any, params: list[Any], col: str, idcol: str) -> str:
    v = _scalar(name, value)
    if name == "_id":
        if not isinstance(v, str):
            return "0"  # ids are strings; SQLite's text affinity would make 7 equal "7", and true equal "1"
        params.append(v)
        return f"({idcol} IS ?)"
    if v is None:
        params.append(path)
        return f"(json_type({col}, ?) IS 'null')"
    # JSON true/false come back from json_extract as 1/0; type checks keep bools, numbers and text apart.
    typ = _kinds(v)
    bound = int(v) if isinstance(v, bool) else v
    params.extend([path, path, bound, path, path, bound])
    return (
        f"(CASE json_type({col}, ?) WHEN 'array' THEN EXISTS(SELECT 1 FROM json_each({col}, ?) AS je "
        f"WHERE je.type IN {typ} AND je.value = ?) "
        f"ELSE COALESCE((CASE WHEN json_type({col}, ?) IN {typ} THEN json_extract({col}, ?) END) = ?, 0) END)"
    )


def _any_of(name: str, path: str, values: list[Any], params: list[Any], col: str, idcol: str) -> str:
    """$in: `_eq` of any of `values`, with the values of one type in one SQL `IN (?, ...)` list. One `_eq` per
    value made an expression of 10,000 terms for the 10,000 values allowed: SQLite refused it past 1,000 levels
    deep, and took seconds to plan it when nested shallow (quadratic in the terms). `IN` compares as `=` does
    here (neither side has a column affinity), so the matches are `_eq`'s."""
    groups: dict[str, list[Any]] = {}
    parts = []
    for value in values:
        v = _scalar(name, value)
        if name == "_id":
            if isinstance(v, str):  # ids are strings: any other value matches nothing, as in `_eq`
                groups.setdefault("", []).append(v)
        elif v is None:
            if "null" not in groups:
                groups["null"] = []
                parts.append(_eq(name, path, None, params, col, idcol))
        else:
            groups.setdefault(_kinds(v), []).append(int(v) if isinstance(v, bool) else v)
    for typ, vals in groups.items():
        if typ == "null":
            continue
        marks = "(" + ",".join("?" * len(vals)) + ")"
        if name == "_id":
            params.extend(vals)
            parts.append(f"({idcol} IN {marks})")
        else:
            params.extend([path, path, *vals, path, path, *vals])
            parts.append(
                f"(CASE json_type({col}, ?) WHEN 'array' THEN EXISTS(SELECT 1 FROM json_each({col}, ?) AS je "
                f"WHERE je.type IN {typ} AND je.value IN {marks}) "
                f"ELSE COALESCE((CASE WHEN json_type({col}, ?) IN {typ} THEN json_extract({col}, ?) END) IN {marks}, 0) "
                "END)")
    return _joined(parts, "OR") if parts else "0"


def _compare(name: str, path: str, op: str, value: Any, params: list[Any], col: str, idcol: str) -> str:
    v = _scalar(name, value)
    if isinstance(v, bool) or v is None:
        raise FilterError(f"{name}: {op} takes a number or a string")
    sym = _COMPARE[op]
    if name == "_id":
        if not isinstance(v, str):
            return "0"  # ids are strings; like any field, a type mismatch matches nothing
        params.append(v)
        return f"({idcol} {sym} ?)"
    typ = _kinds(v)
    params.extend([path, path, v])
    return f"COALESCE((CASE WHEN json_type({col}, ?) IN {typ} THEN json_extract({col}, ?) END) {sym} ?, 0)"


# json_type names a comparison with a value of each kind can match.
_MATCHES = {"boolean": {"true", "false"}, "text": {"text"}, "number": {"integer", "real"}, "null": {"null"}}
_STORED_AS = {"integer": "number", "real": "number", "true": "boolean", "false": "boolean", "text": "text",
              "null": "null", "object": "object", "array": "array"}


_ARTICLE = {"number": "a ", "boolean": "a ", "text": "", "null": ""}


def _kind(value: Any) -> str | None:
    if isinstance(value, list):  # an $in list: one kind for all, else it may match through any of them
        kinds = {_kind(v) for v in value}
        return kinds.pop() if len(kinds) == 1 else None
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float)):
        return "number"
    return None


def filter_type_mismatch(flt: dict[str, Any], stored_types: Callable[[str], set[str]]) -> str | None:
    """One line naming the first comparison in `flt` that can never match, because its value's type
    (number, text, boolean, null) is not among the field's stored types, or because no stored document has
    the field at all (most often a misspelt name; Qdrant and Chroma return nothing, silently); None when
    there is none.

    `stored_types(json_path)` gives the SQLite json_type names of a field's stored values (and of their
    array elements), e.g. `Store.metadata_types`. Comparisons under `$not`, `$ne` and `$nin` are skipped
    (a mismatch there excludes nothing). Meant for a filter that matched nothing in a collection holding
    documents: `if not rows and (msg := filter_type_mismatch(flt, store.metadata_types)): raise FilterError(msg)`.
    """
    for name, op, value in _positive_comparisons(flt, 0):
        kind = _kind(value)
        if kind is None:
            continue
        if name == "_id":
            stored = {"text"}
        else:
            stored = stored_types(_path(name)) - {"array"}
        if not stored:
            whole = f'"{name}"'
            if "." in name and '"' not in name and stored_types(_path(whole)):  # a flat key holding dots
                return (f"filter {name!r}: the dots make it a path of nested keys, and no document has one; the "
                        f"one key {name!r} is written {whole} (its dots in double quotes)")
            return (f"filter {name!r}: no document in this collection has the metadata field {name!r}, so "
                    f"{op} {json.dumps(value)} can never match (a misspelt field name?)")
        if stored & _MATCHES[kind]:
            continue
        kinds = sorted({_STORED_AS.get(t, t) for t in stored})
        return (
            f"filter {name!r}: {op} {json.dumps(value)} is {_ARTICLE[kind]}{kind}, but {name!r} is stored as "
            f"{' and '.join(kinds)} in this collection, so it can never match"
        )
    return None


def _positive_comparisons(obj: Any, depth: int) -> list[tuple[str, str, Any]]:
    """(field, operator, value) of every $eq/$in/$gt/$gte/$lt/$lte leaf not under a negation."""
    out: list[tuple[str, str, Any]] = []
    if not isinstance(obj, dict) or depth > _MAX_DEPTH:
        return out
    for key, value in obj.items():
        if key in ("$and", "$or") and isinstance(value, list):
            for sub in value:
                out.extend(_positive_comparisons(sub, depth + 1))
        elif key.startswith("$"):
            continue  # $not and unknown operators: nothing that must match
        else:
            cond = value if isinstance(value, dict) and any(k.startswith("$") for k in value) else {"$eq": value}
            for op, v in cond.items():
                if op in ("$eq", *_COMPARE):
                    out.append((key, op, v))
                elif op == "$in" and isinstance(v, list) and v:
                    out.append((key, op, v))
    return out
