"""Search options, declared once: the Python API, the CLI and the HTTP schema all take this model.

A field left as None means "the collection's profile decides" (mode, reranker, rerank depth, fusion).
Every limit is one constant here; the CLI's help texts and the HTTP schema's descriptions are read from
the field descriptions below.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, field_validator

from slimvec.errors import ConfigError, validation_message
from slimvec.records import plain_value

MAX_K = 1000  # documents one search returns (TREC runs go 1,000 deep)
MAX_RERANK_DEPTH = 1000  # first-stage documents a reranker rescores
MAX_QUERY_CHARS = 4000
MAX_FUSION_WEIGHTS = 8
DEFAULT_RERANK_DEPTH = 50
NAME_PATTERN = r"^[a-z0-9_\-]+$"
UNITS = ("document", "section")  # what one hit is: a document (its best chunk), or a section (chunk) of one


class SearchOptions(BaseModel):
    """How one search call runs; None means the collection profile's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: StrictInt = Field(10, ge=1, le=MAX_K, description="Number of documents to return.")
    filter: dict[str, Any] | None = Field(
        None, description='Metadata filter, e.g. {"year": {"$gte": 2020}} (see docs: filters).')
    mode: str | None = Field(
        None, min_length=1, max_length=32, pattern=NAME_PATTERN,
        description="Search mode: dense | bm25 | sparse | multivector | hybrid | hybrid-sparse | hybrid-multivector "
                    "(default: the profile's; a collection runs those its indexes allow).")
    min_relevance: float | str | None = Field(
        None, description="Drop hits whose calibrated relevance is below this probability, or 'auto' for the "
                          "cut-off chosen when calibrating (needs a fitted calibration).")
    rerank: str | None = Field(
        None, min_length=1, max_length=1000,
        description="Rerank the first stage: none | dense | bi-encoder:MODEL | cross-encoder:PATH "
                    "(default: the profile's).")
    rerank_depth: StrictInt | None = Field(
        None, ge=1, le=MAX_RERANK_DEPTH,
        description=f"First-stage documents to rerank (default: the profile's, {DEFAULT_RERANK_DEPTH}).")
    fusion: str | None = Field(
        None, min_length=1, max_length=32, pattern=NAME_PATTERN,
        description="How a hybrid mode merges rankings: softmax (summed per-query softmax of standardised "
                    "scores) | rrf | weighted (default: the profile's).")
    fusion_weights: tuple[StrictFloat, ...] | None = Field(
        None, min_length=1, max_length=MAX_FUSION_WEIGHTS,
        description="Weighted or softmax fusion: one weight >= 0 per retriever of the mode, in order (e.g. dense, "
                    "bm25).")
    fusion_temperature: StrictFloat | None = Field(
        None, gt=0.0, le=100.0, allow_inf_nan=False,
        description="Softmax fusion: temperature in standard deviations of each ranking's head scores; lower trusts "
                    "each ranking's top more (default: the profile's, else 2).")
    with_payload: StrictBool = Field(
        True, description="False: ids and scores only, skipping the document look-up (HTTP hits then carry no "
                          "title, snippet, metadata or span fields).")
    unit: Literal["document", "section"] = Field(
        "document", description="What a hit is: document (scored by its best chunk) | section (one hit per given "
                                "section, or per chunk where a document has none, with its section id and span).")

    @field_validator("k", "rerank_depth", mode="before")
    @classmethod
    def _numpy_int(cls, v: Any) -> Any:
        # np.int64 from numpy or pandas code is an integer; StrictInt refuses it, as it should "3", 3.0 or True.
        item = plain_value(v)
        return item if isinstance(item, int) and not isinstance(item, bool) else v

    @field_validator("fusion_weights", "fusion_temperature", "with_payload", mode="before")
    @classmethod
    def _numpy_scalars(cls, v: Any) -> Any:
        # Strict: a JSON body's "no" or 0 was read as with_payload false, "0.3" or true as a weight; numpy scalars
        # (np.float32 from numpy code) are the numbers they hold.
        if isinstance(v, (list, tuple)):
            return [plain_value(w) for w in v]
        return plain_value(v)

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, v: str | None) -> str | None:
        # As an unknown fusion: a mode no collection has is the request's fault (HTTP 422, as a misspelt fusion),
        # apart from one this collection cannot run (400, decided by the plan).
        from slimvec.search.modes import modes

        if v is not None and v not in modes():
            raise ValueError(f"unknown search mode {v!r}: choose one of {', '.join(modes())}")
        return v

    @field_validator("min_relevance", mode="before")
    @classmethod
    def _probability(cls, v: Any) -> float | str | None:
        # Strict, as k and the fusion fields: a JSON body's "0.5" was read as 0.5 (and "1e-1", " .5 " alike), so a
        # client's quoting bug passed unseen. Text is for the CLI flag and GET parameter, which convert it first
        # (`min_relevance_from_text`); here a string is only "auto".
        v = plain_value(v)
        if v is None:
            return None
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0:
            return float(v)
        if isinstance(v, str) and _spells_number(v):  # a JSON body's quoted number: a client's quoting bug
            raise ValueError(f"must be a number between 0 and 1 or 'auto', got the string {v!r} (send the number "
                             "itself, not quoted)")
        # anything else, 'abc' from a CLI flag or a GET parameter included: no quotes to drop, so no hint
        raise ValueError(f"must be a number between 0 and 1 or 'auto', got {v!r}")

    @field_validator("fusion")
    @classmethod
    def _fuser(cls, v: str | None) -> str | None:
        from slimvec import registry

        if v is not None and not registry.has("fuser", v):
            raise ValueError(f"unknown fusion {v!r}: choose one of {', '.join(registry.names('fuser'))}")
        return v

    @field_validator("fusion_weights")
    @classmethod
    def _weights(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and any(not math.isfinite(w) or w < 0 for w in v):
            raise ValueError("weights must be finite numbers >= 0")
        if v is not None and not any(v):
            raise ValueError("at least one weight must be > 0 (all zero scores every document 0)")
        return v

    @classmethod
    def of(cls, options: "SearchOptions | None" = None, **fields: Any) -> "SearchOptions":
        """`options` (or the defaults) with `fields` replaced, validated.

        Raises ConfigError naming the first bad field, e.g. "k: Input should be less than or equal to 1000, got 5000".
        """
        base = {} if options is None else options.model_dump(exclude_unset=True)
        try:
            return cls(**{**base, **fields})
        except ValidationError as e:
            raise ConfigError(one_line(e, "search option")) from None


def _spells_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def min_relevance_from_text(text: str) -> float | str:
    """A `--min-relevance` flag's or GET parameter's text as the option takes it: the number it spells, else the
    text unchanged ("auto", or something the option then refuses naming the field)."""
    try:
        return float(text)
    except ValueError:
        return text


def one_line(error: ValidationError, what: str) -> str:
    """The first problem of a pydantic ValidationError as "field: message" (for CLI and API errors)."""
    first = error.errors()[0]
    field = ".".join(str(x) for x in first["loc"]) or what
    if first["type"] == "extra_forbidden":
        return f"unknown {what} {field!r}"
    # pydantic's own messages ("Input should be a valid boolean") do not say what was given; ours do
    got = f", got {first['input']!r}" if first["loc"] and first["type"] != "value_error" else ""
    return f"{field}: {validation_message(first)}{got}"
