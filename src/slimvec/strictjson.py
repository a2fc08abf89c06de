"""JSON text whose objects name each key once: `json.loads` keeps the last value of a repeated key without a
word, so a document's text, a profile's codec, a filter's condition or a search's k would be lost silently. Every
reader of user JSON (JSONL tables, profile files, filters, HTTP bodies) parses through `loads` and turns
`RepeatedKeyError` into its own one-line error."""

from __future__ import annotations

import json
from typing import Any


class RepeatedKeyError(ValueError):
    """A JSON object names `key` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} appears twice in one object (JSON keeps only the last: the first would be lost)")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKeyError(key)
            seen.add(key)
    return out


def loads(text: str | bytes) -> Any:
    """`json.loads(text)`, but an object naming one key twice raises RepeatedKeyError (a ValueError, not a
    json.JSONDecodeError: callers that catch the latter still see malformed JSON as before)."""
    return json.loads(text, object_pairs_hook=_unique)
