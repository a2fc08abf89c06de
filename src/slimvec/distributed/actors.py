"""Shards in Ray actors: one actor per shard holding the open collection (extra `ray`).

Each actor is restarted once by Ray if its process dies (`max_restarts=1`); a read it was running is retried on
the restarted actor (`max_task_retries=1`); writes are not retried (a write may have committed before the process
died). A call that still fails raises CollectionError naming the shard.

Reads take a shorter road when the actor runs on this node: an empty Ray actor call measured 0.75 ms round trip
and four in parallel 2.0 ms on the 2-core box, so a query's scatter-gather cost several times the shards' own
work (docs/scale.md). So each actor also answers on a local socket (`multiprocessing.connection`, Unix abstract
address, HMAC handshake with a per-actor random key, served by a thread of the actor): a read is one message each
way, about 10 microseconds per shard. A read whose socket breaks (the actor died) is sent again through Ray,
which waits for the restarted actor; writes always go through Ray. Ray Compiled Graphs, Ray's own low-latency
path, were measured and not used: their idle actors spin on the channel (about a quarter of a core each) and a
query got slower beside them on the 2-core box.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import slimvec
from slimvec.distributed.shards import ShardCore
from slimvec.errors import CollectionError, ConfigError
from slimvec.extras import require

_WRITES = ("write", "delete", "delete_matching", "field_index")
# Reads sent over the local socket when there is one (the calls a query, and the checks before a write, make).
_SOCKET_CALLS = frozenset({"search_many", "search_rows", "payloads", "bm25_state", "bm25_stats", "bm25_use", "rerank_rows", "get", "stored", "unchanged",
                           "count", "scroll", "field_indexes", "counts", "info", "ready"})
_PROTOCOL = 5  # pickle protocol 5: numpy arrays (query vectors, rerank rows) travel as raw buffers
_OK, _ERROR = b"\x00", b"\x01"


def connect(address: str | None = None, num_cpus: int = 2) -> None:
    """Join the Ray cluster at `address`, or start a local instance on loopback (no dashboard, `num_cpus` CPUs)
    when none is running. Ray workers import the same slimvec as this process; a local instance runs them at
    this process's priority (Ray's default niceness 15 leaves the shard actors waiting for CPU behind any busy
    process, and a query waits for its slowest shard)."""
    ray = require("ray")
    if address is not None and not address.strip():
        raise ConfigError("--address is empty: give a Ray cluster address (host:port or ray://host:port)")
    if ray.is_initialized():
        joined = ray.get_runtime_context().gcs_address
        if address is not None and address not in (joined, "auto"):
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: this process is already connected to "
                              f"the one at {joined}")
        return
    src = str(Path(slimvec.__file__).resolve().parents[1])
    if address is not None:
        try:
            ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": src}}, logging_level="ERROR")
        except (ValueError, ConnectionError, TimeoutError) as e:
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
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


def pack(method: str, *args: Any) -> bytes:
    """One call to a shard, `ShardCore.<method>(*args)`, as bytes; pickled once for every shard it goes to."""
    return pickle.dumps((method, args), protocol=_PROTOCOL)


class ShardActor(ShardCore):
    """The class each shard's actor runs: `ShardCore` plus `call` (a packed call through Ray) and `listen` (the
    same calls over a local socket)."""

    _endpoint: tuple[bytes, bytes] | None = None

    def call(self, packed: bytes) -> bytes:
        """Run the packed call and return its pickled result. A shard's own error is raised as itself (Ray hands
        it to the caller as the cause of a RayTaskError)."""
        method, args = pickle.loads(packed)
        return pickle.dumps(getattr(self, method)(*args), protocol=_PROTOCOL)

    def listen(self, node_id: str) -> tuple[bytes, bytes] | None:
        """(socket address, key) of this actor's local socket, opened on first use; None when the caller runs on
        another node (the socket is a Unix one)."""
        import ray

        if ray.get_runtime_context().get_node_id() != node_id:
            return None
        if self._endpoint is None:
            key = os.urandom(32)
            # The address names the process (for whoever debugs a shard); the key is what guards it.
            listener = Listener(f"\0slimvec-shard-{os.getpid()}-{os.urandom(8).hex()}", "AF_UNIX", authkey=key)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
            self._endpoint = (listener.address.encode() if isinstance(listener.address, str) else listener.address,
                              key)
        return self._endpoint

    def _accept(self, listener: Listener) -> None:
        while True:  # one thread per connection: each router thread has its own
            try:
                conn = listener.accept()
            except (OSError, EOFError):  # a failed handshake (wrong key) or a client gone mid-handshake
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    packed = conn.recv_bytes()
                except (EOFError, OSError):  # the router closed it
                    return
                try:
                    reply = _OK + self.call(packed)
                except Exception as e:  # noqa: BLE001 - every shard error goes back to the router, raised there
                    reply = _ERROR + _pickled_error(e)
                conn.send_bytes(reply)


def _pickled_error(e: Exception) -> bytes:
    try:
        return pickle.dumps(e, protocol=_PROTOCOL)
    except Exception:  # noqa: BLE001 - an error that does not pickle is sent as its message
        return pickle.dumps(CollectionError(f"{type(e).__name__}: {e}"), protocol=_PROTOCOL)


class _Channel:
    """One router thread's socket to one actor. Replies come in request order; each is kept under its request's
    number until read, so a call whose result is never read (an error elsewhere) cannot answer a later one."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.sent, self.received = conn, 0, 0
        self.replies: dict[int, bytes] = {}

    def send(self, packed: bytes) -> int:
        self.conn.send_bytes(packed)
        self.sent += 1
        return self.sent

    def receive(self, number: int) -> bytes:
        while number not in self.replies:
            self.received += 1
            self.replies[self.received] = self.conn.recv_bytes()
        return self.replies.pop(number)


class _Sent:
    """A read sent over a channel: what `RayShard.result` waits for (or sends again through Ray)."""

    def __init__(self, channel: _Channel, number: int, packed: bytes) -> None:
        self.channel, self.number, self.packed = channel, number, packed


class RayShard:
    """A shard held by a Ray actor: `submit(name, *args)` starts `ShardCore.name` there, `result` waits for it."""

    def __init__(self, index: int, path: Path) -> None:
        ray = require("ray")
        self.index, self.path = index, path
        remote = ray.remote(ShardActor).options(max_restarts=1, max_task_retries=1, num_cpus=0)
        self.actor = remote.remote(str(path))
        self._endpoint: tuple[bytes, bytes] | None | bool = False  # False: not asked yet; None: no socket
        self._local = threading.local()  # this thread's _Channel

    def submit(self, method: str, *args: Any, packed: bytes | None = None) -> Any:
        """Start the call: over the local socket for a read when the actor has one, else through Ray (writes are
        sent with no retry). `packed`: the call already packed by `pack(method, *args)`."""
        packed = pack(method, *args) if packed is None else packed
        if method in _SOCKET_CALLS:
            channel = self._channel()
            if channel is not None:
                try:
                    return _Sent(channel, channel.send(packed), packed)
                except OSError:  # the actor is gone: through Ray, which knows whether it comes back
                    self._drop(channel)
        call = self.actor.call
        if method in _WRITES:
            call = call.options(max_task_retries=0)
        return call.remote(packed)

    def result(self, pending: Any) -> Any:
        """The call's result; a shard's own error is raised as itself, a dead actor as CollectionError."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        if isinstance(pending, _Sent):
            try:
                reply = pending.channel.receive(pending.number)
            except (EOFError, OSError):  # the actor died with the read: once more through Ray (it may restart)
                self._drop(pending.channel)
                pending = self.actor.call.remote(pending.packed)
            else:
                if reply[:1] == _OK:
                    return pickle.loads(reply[1:])
                raise pickle.loads(reply[1:])
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

    def _channel(self) -> _Channel | None:
        """This thread's socket to the actor, opened on first use; None when the actor has none or cannot be
        reached now (the call then goes through Ray, which reports why)."""
        channel = getattr(self._local, "channel", None)
        if channel is not None:
            return channel
        fresh = self._endpoint is False
        try:
            if fresh:
                import ray

                node = ray.get_runtime_context().get_node_id()
                self._endpoint = self.result(self.actor.call.remote(pack("listen", node)))
            if self._endpoint is None:
                return None
            address, key = self._endpoint  # type: ignore[misc]
            self._local.channel = _Channel(Client(address, "AF_UNIX", authkey=key))
        except CollectionError:  # the actor is down: ask again next time (a restarted actor opens a new socket)
            self._endpoint = False
            return None
        except (OSError, EOFError):
            # An address the actor has just given that cannot be reached: this process is not on its host (a Ray
            # client); an older one: the actor has restarted since.
            self._endpoint = None if fresh else False
            return None
        return self._local.channel

    def _drop(self, channel: _Channel) -> None:
        channel.conn.close()
        if getattr(self._local, "channel", None) is channel:
            self._local.channel = None
        self._endpoint = False

    def close(self) -> None:
        """End the actor (its collection is closed with the process)."""
        import ray

        channel = getattr(self._local, "channel", None)
        if channel is not None:
            channel.conn.close()
        ray.kill(self.actor, no_restart=True)


def gather(shards: Sequence[RayShard], method: str, *args: Any) -> list[Any]:
    """`method(*args)` on every shard: packed once, sent to all before any result is awaited, every result
    awaited, returned in shard order. Raises the first shard's error (in shard order) as `RayShard.result`."""
    packed = pack(method, *args)
    return _awaited(shards, [s.submit(method, packed=packed) for s in shards])


def scatter(calls: Sequence[tuple[RayShard, str, tuple[Any, ...]]]) -> list[Any]:
    """One call per (shard, method, args), each shard its own arguments: all sent before any result is awaited;
    results in the order given. Raises as `gather`."""
    return _awaited([s for s, _, _ in calls], [s.submit(method, *args) for s, method, args in calls])


def _awaited(shards: Sequence[RayShard], pending: list[Any]) -> list[Any]:
    results, error = [], None
    for s, p in zip(shards, pending):
        try:
            results.append(s.result(p))
        except Exception as e:  # noqa: BLE001 - raised below, once every shard has answered
            error = error or e
    if error is not None:
        raise error
    return results
