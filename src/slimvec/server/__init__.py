"""HTTP service: a JSON API over one or more collections, plus a small search page."""

from slimvec.server.app import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, create_app
from slimvec.server.runner import is_loopback, load_collections, read_api_key, serve

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BODY_BYTES",
    "create_app",
    "is_loopback",
    "load_collections",
    "read_api_key",
    "serve",
]
