"""Metadata field types for untyped sources: the names a user gives (`--field-type year=int`) and the
conversion of a cell's text (or a mistyped value) to the stored JSON type.

The types are JSON's: `int` and `float` (numbers), `bool`, `str`. CSV columns get them inferred by
pyarrow's CSV reader (`tables.py`); a field-type map overrides the inference and also converts values
of typed sources (JSONL, Parquet, front matter) that arrive as text, e.g. `"year": "2020"`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from slimvec.errors import ConfigError

FIELD_TYPES = ("int", "float", "bool", "str")
_ALIASES = {"integer": "int", "number": "float", "double": "float", "boolean": "bool", "string": "str",
            "text": "str"}
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def field_type_name(name: str) -> str:
    """The canonical type name for `name` (aliases: integer, number, boolean, string, text); ConfigError if unknown."""
    canon = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if canon not in FIELD_TYPES:
        raise ConfigError(f"unknown field type {name!r} (known: {', '.join(FIELD_TYPES)})")
    return canon


def parse_field_types(specs: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """{field: type} from `["year=int", "open=bool"]` (the CLI form) or a mapping; ConfigError on a bad entry."""
    if specs is None:
        return {}
    if isinstance(specs, str):
        raise ConfigError(f"field types must be a list of FIELD=TYPE or a mapping, got the string {specs!r}")
    if isinstance(specs, Mapping):
        items = list(specs.items())
    else:
        items = []
        for spec in specs:
            field, sep, typ = str(spec).partition("=")
            if not sep or not field.strip():
                raise ConfigError(f"field type {spec!r}: expected FIELD=TYPE, e.g. year=int")
            items.append((field, typ))
    out: dict[str, str] = {}
    for field, typ in items:
        if not isinstance(field, str) or not field.strip():
            raise ConfigError(f"field type for {field!r}: the field name is empty")
        out[field.strip()] = field_type_name(str(typ))
    return out


def convert(value: Any, typ: str) -> Any:
    """`value` as type `typ`; ValueError (phrase: "expected int, got 'abc'") when it cannot be."""
    if value is None:
        return None
    if typ == "str":
        return value if isinstance(value, str) else _text(value)
    if typ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif typ == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value)
    elif typ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    raise ValueError(f"expected {typ}, got {value!r}"[:120])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    raise ValueError(f"expected str, got {type(value).__name__}")
