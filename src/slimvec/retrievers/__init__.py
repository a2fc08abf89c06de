"""Retrievers: ways of scoring a collection's chunk rows (dense, compressed dense, BM25, learned sparse).

Each is registered by name in `slimvec.registry` (kind "retriever"); see `retrievers.base` for the protocol.
"""

from slimvec.retrievers.base import Query, Retriever

__all__ = ["Query", "Retriever"]
