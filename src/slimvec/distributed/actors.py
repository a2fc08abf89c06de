"""Shards in Ray actors: one actor per shard holding the open collection (extra `ray`).

Each actor is restarted once by Ray if its process dies (`max_restarts=1`), and a read it was running is retried
once on the restarted actor (`max_task_retries=1`); writes are not retried (a write may have committed before the
process died). A call that still fails raises CollectionError naming the shard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import slimvec
from slimvec.distributed.shards import ShardCore
from slimvec.errors import CollectionError
from slimvec.extras import require

_WRITES = ("write", "delete")


def connect(address: str | None = None, num_cpus: int = 2) -> None:
    """Join the Ray cluster at `address`, or start a local instance on loopback (no dashboard, `num_cpus` CPUs)
    when none is running. Ray workers import the same slimvec as this process."""
    ray = require("ray")
    if ray.is_initialized():
        return
    src = str(Path(slimvec.__file__).resolve().parents[1])
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 runtime_env={"env_vars": {"PYTHONPATH": src}}, logging_level="ERROR", log_to_driver=False)
    else:
        ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": src}}, logging_level="ERROR")


class RayShard:
    """A shard held by a Ray actor: `submit(name, *args)` starts `ShardCore.name` there, `result` waits for it."""

    def __init__(self, index: int, path: Path) -> None:
        ray = require("ray")
        self.index, self.path = index, path
        remote = ray.remote(ShardCore).options(max_restarts=1, max_task_retries=1, num_cpus=0)
        self.actor = remote.remote(str(path))

    def submit(self, method: str, *args: Any) -> Any:
        """The call's object reference (writes are sent with no retry)."""
        m = getattr(self.actor, method)
        if method in _WRITES:
            m = m.options(max_task_retries=0)
        return m.remote(*args)

    def result(self, pending: Any) -> Any:
        """The call's result; a shard's own error is raised as itself, a dead actor as CollectionError."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return ray.get(pending)
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
