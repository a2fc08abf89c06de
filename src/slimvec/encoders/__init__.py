"""Encoders: text to vectors."""

from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder, register_encoder

__all__ = ["DEFAULT_MODEL", "Encoder", "load_encoder", "register_encoder"]
