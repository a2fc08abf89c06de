"""Shards in Ray actors: one actor per shard holding the open collection (extra `ray`).

Each actor is restarted once by Ray if its process dies (`max_restarts=1`), and a read it was running is retried
once on the restarted actor (`max_task_retries=1`); writes are not retried (a write may have committed before the
process died). A call that still fails raises CollectionError naming the shard.

Calls are cheap by construction, because on a small node a query's time is mostly Ray's per-call cost: each call
travels as one bytes argument (the method and its arguments pickled once, however many shards it goes to) and
comes back as one bytes result, all shards' results are awaited in one `ray.get`, and a local instance runs its
workers at the driver's priority. (Ray Compiled Graphs were measured and not used: see docs/scale.md.)
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import slimvec
from slimvec.distributed.shards import ShardCore
from slimvec.errors import CollectionError
from slimvec.extras import require

_WRITES = ("write", "delete")
_PROTOCOL = 5  # pickle protocol 5: numpy arrays (query vectors, rerank rows) travel as raw buffers


def connect(address: str | None = None, num_cpus: int = 2) -> None:
    """Join the Ray cluster at `address`, or start a local instance on loopback (no dashboard, `num_cpus` CPUs)
    when none is running. Ray workers import the same slimvec as this process; a local instance runs them at
    this process's priority (Ray's default niceness 15 left the shard actors waiting for CPU behind any busy
    process, and a query waits for its slowest shard)."""
    ray = require("ray")
    if ray.is_initialized():
        return
    src = str(Path(slimvec.__file__).resolve().parents[1])
    if address is not None:
        ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": src}}, logging_level="ERROR")
        return
    key = "RAY_worker_niceness"  # read by the raylet this call starts, from this process's environment
    before = os.environ.get(key)
    if before is None:
        os.environ[key] = "0"
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 runtime_env={"env_vars": {"PYTHONPATH": src}}, logging_level="ERROR", log_to_driver=False)
    finally:
        if before is None:
            os.environ.pop(key, None)


class ShardActor(ShardCore):
    """The class each shard's actor runs: `ShardCore` plus `call`, which takes a packed call and packs its result."""

    def call(self, packed: bytes) -> bytes:
        """Run `ShardCore.<method>(*args)` for the pickled (method, args) and return the pickled result. A shard's
        own error is raised as itself (Ray hands it to the caller as the cause of a RayTaskError)."""
        method, args = pickle.loads(packed)
        return pickle.dumps(getattr(self, method)(*args), protocol=_PROTOCOL)


def pack(method: str, *args: Any) -> bytes:
    """One call to a shard as the bytes `ShardActor.call` takes; pickled once for every shard it goes to."""
    return pickle.dumps((method, args), protocol=_PROTOCOL)


class RayShard:
    """A shard held by a Ray actor: `submit(name, *args)` starts `ShardCore.name` there, `result` waits for it."""

    def __init__(self, index: int, path: Path) -> None:
        ray = require("ray")
        self.index, self.path = index, path
        remote = ray.remote(ShardActor).options(max_restarts=1, max_task_retries=1, num_cpus=0)
        self.actor = remote.remote(str(path))

    def submit(self, method: str, *args: Any, packed: bytes | None = None) -> Any:
        """The call's object reference (writes are sent with no retry). `packed`: the call already packed by
        `pack(method, *args)` (the router packs a call to every shard once)."""
        call = self.actor.call
        if method in _WRITES:
            call = call.options(max_task_retries=0)
        return call.remote(pack(method, *args) if packed is None else packed)

    def result(self, pending: Any) -> Any:
        """The call's result; a shard's own error is raised as itself, a dead actor as CollectionError."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return pickle.loads(ray.get(pending))
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise CollectionError(f"shard {self.index} ({self.path}): {e}") from None
        except RayActorError as e:
            raise CollectionError(f"shard {self.index} ({self.path}): its actor died and the call could not be "
                                  f"retried ({type(e).__name__})") from None

    def close(self) -> None:
        """End the actor (its collection is closed with the process)."""
        import ray

        ray.kill(self.actor, no_restart=True)


def gather(shards: Sequence[RayShard], method: str, *args: Any) -> list[Any]:
    """`method(*args)` on every shard: packed once, submitted to all before any result is awaited, the results
    awaited in one `ray.get` and returned in shard order. Errors as `RayShard.result` (the first shard's, in shard
    order, that failed)."""
    import ray
    from ray.exceptions import RayError

    packed = pack(method, *args)
    pending = [s.submit(method, packed=packed) for s in shards]
    try:
        return [pickle.loads(b) for b in ray.get(pending)]
    except RayError:  # which shard failed, and its error as `result` raises it
        return [s.result(p) for s, p in zip(shards, pending)]
