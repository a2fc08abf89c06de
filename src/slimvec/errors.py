"""Errors a user can act on; the CLI prints them as one line, without a traceback."""


class SlimvecError(Exception):
    """Base class for user-facing errors."""


class CollectionError(SlimvecError):
    """A collection is missing, incompatible or damaged."""


class FilterError(SlimvecError):
    """A metadata filter is malformed."""


class IngestError(SlimvecError):
    """A source file or record cannot be read; the message names file, line and field."""


class ConfigError(SlimvecError):
    """A model, profile or option is invalid."""
