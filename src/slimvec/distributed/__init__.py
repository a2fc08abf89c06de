"""Sharded collections: a router manifest over N ordinary collections, searched by scatter-gather.

`create_sharded(path, shards=N, profile=..., model=...)` makes one; `Collection.open(path)` (or `open_sharded`)
opens it with the Collection API. `ray=True` runs one Ray actor per shard (extra `ray`); see docs/scale.md.
"""

from slimvec.distributed.router import is_sharded, shard_of
from slimvec.distributed.sharded import ShardedCollection, create_sharded, open_sharded

__all__ = ["ShardedCollection", "create_sharded", "is_sharded", "open_sharded", "shard_of"]
