"""Errors a user can act on; the CLI prints them as one line, without a traceback."""

import errno
from typing import Any

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk, a quota, a file size limit


class SlimvecError(Exception):
    """Base class for user-facing errors."""


class CollectionError(SlimvecError):
    """A collection is missing, incompatible or damaged."""


class NoRoomError(CollectionError):
    """A commit found no room (a full disk, a file size limit, a failing device) and was rolled back: the server's
    state, not the request, so the HTTP API answers 507 as for a derived file that could not be saved."""


class BusyError(CollectionError):
    """A write gave up waiting for a lock another process held; nothing was written and a retry may succeed (HTTP
    503)."""


class FilterError(SlimvecError):
    """A metadata filter is malformed."""


class IngestError(SlimvecError):
    """A source file or record cannot be read; the message names file, line and field."""


class StoredIdError(IngestError):
    """An add named an id that is already stored (upsert replaces it); nothing of the call was stored. The request
    conflicts with the collection's state, not its own shape: HTTP 409."""


class ExportError(SlimvecError):
    """An export target could not be written (a full disk, a file size limit); nothing of it was kept."""


class ConfigError(SlimvecError):
    """A model, profile or option is invalid."""


def no_room(e: OSError) -> str | None:
    """The one line a user gets when a write found no room (`NO_ROOM`: the file, the system's words, and what to
    do), or None for any other OS error. The CLI prints it; the server sends it with 507."""
    if e.errno not in NO_ROOM:
        return None
    where = f"{e.filename}: " if e.filename is not None else ""
    return f"{where}{e.strerror or e}; run `slimvec check` on the collection once there is room"


def validation_message(first: dict[str, Any]) -> str:
    """The message of one pydantic error (`ValidationError.errors()[0]`) as a user reads it: a validator's own
    words without pydantic's "Value error, " prefix (`mode: unknown search mode 'x'`), else pydantic's message."""
    ctx = first.get("ctx") or {}
    if first.get("type") == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(first["msg"])
