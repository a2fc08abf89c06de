"""Create-or-open for the framework stores, refusing create options that disagree with a stored collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimvec.collection import Collection
from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError


def open_or_create(path: str | Path, encoder: Encoder | None, options: dict[str, Any],
                   defaults: dict[str, Any] | None = None) -> Collection:
    """Open the collection at `path` (with `encoder`, or its own model when None), or create it with `options`
    over `defaults` (keywords of `Collection.create`; an `encoder` among them is the encoder to open or create with).

    Raises ConfigError for a sharded collection (or anything but a directory). Reopening checks every option against what the collection recorded, so one script can create on its first
    run and reopen on the next; raises ConfigError naming an option that differs (e.g. profile="hybrid" for a
    dense collection), which would otherwise be silently ignored, and CollectionError for another model.
    """
    if not isinstance(path, (str, Path)):  # e.g. an open ShardedCollection, which is not a `Collection`
        raise ConfigError(f"collection must be a directory or an open plain Collection, not {type(path).__name__}")
    if "encoder" in options:
        # A keyword of Collection.create like the other options, but it met the `encoder` passed beside it there (a
        # TypeError, "got multiple values for keyword argument 'encoder'"), and an open refused it as an option it
        # cannot check: it is the encoder to open or create with.
        if encoder is not None:
            raise ConfigError("encoder= is given twice: once as an option and once by the store (its embedding model); "
                              "give one")
        options = dict(options)
        encoder = options.pop("encoder")
    path = Path(path)
    if (path / "shards.json").is_file():  # would read as "not empty and holds no collection"
        raise ConfigError(f"{path}: holds a sharded collection; the LangChain and LlamaIndex stores work on a plain "
                          "collection directory")
    if (path / "manifest.json").exists():
        col = Collection.open(path, encoder=encoder)
        try:
            _check_recorded(col, options)
        except ConfigError:
            col.close()
            raise
        return col
    return Collection.create(path, encoder=encoder, **{**(defaults or {}), **options})


def _check_recorded(col: Collection, options: dict[str, Any]) -> None:
    manifest = col.manifest
    profile = manifest.get("profile") or {}
    for key, given in options.items():
        if key == "profile":
            stored = profile.get("name")
            given = given if isinstance(given, str) else getattr(given, "name", given)
        elif key == "model":
            stored = manifest.get("model")
        elif key in profile:
            stored = profile[key]
            given = list(given) if isinstance(given, (tuple, list)) else given
        else:
            raise ConfigError(f"{col.path}: option {key!r} cannot be checked against the stored collection; "
                              "options only apply when creating one")
        if given != stored:
            raise ConfigError(f"{col.path}: collection was created with {key}={stored!r}, not {given!r}; "
                              "options only apply when creating a collection")
