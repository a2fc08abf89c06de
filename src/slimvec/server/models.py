"""Request bodies of the JSON API (pydantic models) and the checks every client string or value passes.

JSON lets a client send what SQLite and UTF-8 cannot store (lone surrogates such as "\\ud800", NaN,
integers past 64 bits, nesting thousands of levels deep); these models reject them with a 422 naming the
field before anything reaches a collection.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from slimvec.documents import Document, has_content
from slimvec.ids import MAX_ID_CHARS, fits_int64, lone_surrogate
from slimvec.search.options import MAX_QUERY_CHARS, SearchOptions

MAX_TITLE_CHARS = 10_000
MAX_TEXT_CHARS = 2_000_000
MAX_METADATA_DEPTH = 16


def check_unicode(value: str, what: str) -> str:
    """`value` unchanged; ValueError if it cannot be stored as UTF-8 (a lone surrogate from a JSON escape)."""
    if lone_surrogate(value):
        raise ValueError(f"{what} contains invalid Unicode (a lone surrogate)")
    return value


def check_json_value(value: Any, depth: int = 0) -> None:
    """ValueError unless `value` is storable JSON: finite numbers, 64-bit integers, UTF-8 text, string keys,
    at most MAX_METADATA_DEPTH levels of nesting."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        check_unicode(value, "a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not fits_int64(value):
            raise ValueError(f"integer {value} is out of the 64-bit range")
    elif isinstance(value, list):
        for v in value:
            check_json_value(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("object keys must be strings")
            check_unicode(k, "a key")
            check_json_value(v, depth + 1)
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"unsupported value of type {type(value).__name__}")


def check_document(doc: Document) -> None:
    """ValueError naming the field when a Document read from an upload breaks the limits of DocumentIn that the
    ingest reader does not apply: title and text lengths, metadata depth. The reader (`slimvec.records`) already
    refuses, per line, an id past MAX_ID_CHARS, invalid Unicode in any field or key, non-finite numbers and integers
    past 64 bits, so the checks of those here could never fire and are not repeated."""
    if len(doc.title) > MAX_TITLE_CHARS:
        raise ValueError(f"title longer than {MAX_TITLE_CHARS} characters")
    if len(doc.text) > MAX_TEXT_CHARS:
        raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
    try:
        check_json_value(doc.metadata)
    except ValueError as e:
        raise ValueError(f"metadata: {e}") from None


class DocumentIn(BaseModel):
    """One document to add or upsert (POST /api/collections/{name}/documents takes a list of them)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Stable document id.")
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict, description="JSON object, filterable.")
    # As GET gives them back: a document fetched and posted again (to change its metadata) keeps its given sections,
    # where without them the upsert re-cut it into token windows (Collection.get keeps them since 57aab4c).
    sections: list[Any] | None = Field(None, description='Given sections: [{"_id", "start", "end", "path"}], '
                                                         "character spans of text (a JSONL record's sections).")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("id must not be blank")
        return check_unicode(v, "id")

    @field_validator("title", "text")
    @classmethod
    def _text(cls, v: str) -> str:
        return check_unicode(v, "text")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_json_value(v)
        return v

    def to_document(self) -> Document:
        from slimvec.ingest.tables import record_sections

        sections = record_sections(self.sections, self.text, f"document {self.id!r}")
        return Document(self.id, self.text, self.title, self.metadata, sections=sections)


class SearchIn(SearchOptions):
    """A search request (POST body): the query and the search options (slimvec.search.options.SearchOptions).

    GET takes the same fields as query parameters (filter as JSON text, fusion_weights comma-separated).
    """

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Query text.")

    @field_validator("rerank")
    @classmethod
    def _rerank(cls, v: str | None) -> str | None:
        from slimvec.errors import ConfigError
        from slimvec.search.rerank import parse_spec

        if v is not None:
            try:
                parse_spec(check_unicode(v, "rerank"))
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("q")
    @classmethod
    def _q(cls, v: str) -> str:
        if not has_content(v):
            raise ValueError("query must not be blank (whitespace and invisible characters only)")
        return check_unicode(v, "query")

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_json_value(v)
        return v

    def options(self) -> SearchOptions:
        """The search options of this request, without the query; fields the client left out stay unset."""
        return SearchOptions(**self.model_dump(exclude={"q"}, exclude_unset=True))


class DeleteIn(BaseModel):
    """The documents to delete (DELETE /api/collections/{name}/documents): by `ids`, or every one matching
    `filter` (`Collection.delete`; Qdrant's points or filter selector). One of the two."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] | None = Field(None, min_length=1)
    filter: dict[str, Any] | None = Field(None, description="Metadata filter (as search's); not empty.")

    @field_validator("ids")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        for i in v or []:
            check_unicode(i, "id")
        return v

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            if not v:
                raise ValueError("an empty filter matches every document; give a condition")
            check_json_value(v)
        return v

    @model_validator(mode="after")
    def _one(self) -> "DeleteIn":
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give ids or filter, not both" if self.ids is not None else "give ids or filter")
        return self


class FieldIndexIn(BaseModel):
    """Metadata fields to index, or with `drop` to stop indexing (POST /api/collections/{name}/field-indexes;
    `Collection.create_field_index`)."""

    model_config = ConfigDict(extra="forbid")

    fields: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(min_length=1, max_length=100)
    drop: StrictBool = False  # "yes" or 1 in a JSON body is a typo, not a flag

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[str]) -> list[str]:
        for f in v:
            check_unicode(f, "field")
        return v


class TuneIn(BaseModel):
    """Sample queries to calibrate the index on, or reset (POST /api/collections/{name}/tune; `Collection.tune`)."""

    model_config = ConfigDict(extra="forbid")

    queries: list[Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]] | None = Field(
        default=None, description="At least 10 distinct query texts, at most 1,000 (the server's batch "
        "limit: 413 above it).")
    reset: StrictBool = Field(default=False, description="Forget the stored queries: calibrate on the rows again.")
    recent: StrictBool = Field(default=False, description="Tune on the vectors of the collection's recent queries, "
                         "kept when the server runs with --keep-queries N.")

    @field_validator("queries")
    @classmethod
    def _queries(cls, v: list[str] | None) -> list[str] | None:
        for q in v or []:
            check_unicode(q, "query")
        return v
