"""Start the server: open collections, check the bind address and key, run uvicorn (or a test thread)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; any other address is reachable from outside."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_key(path: str | Path | None) -> str | None:
    """The API key held in `path` (surrounding whitespace stripped), or None without a file."""
    if path is None:
        return None
    p = Path(path)
    try:
        key = p.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{p}: API key file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read API key file ({e})") from None
    if len(key) < 16:
        raise ConfigError(f"{p}: API key must be at least 16 characters")
    return key


def load_collections(dirs: list[str | Path]) -> dict[str, Any]:
    """Open each directory as a collection named after the directory."""
    from slimvec.collection import Collection

    out: dict[str, Any] = {}
    for d in dirs:
        p = Path(d).resolve()
        name = p.name
        if name in out and Path(out[name].path).resolve() == p:
            raise ConfigError(f"collection {str(p)!r} is given twice")
        if name in out:
            raise ConfigError(f"two collections are named {name!r} ({out[name].path} and {p}); rename one directory")
        out[name] = Collection.open(p)
    if not out:
        raise ConfigError("give at least one collection directory")
    return out


def serve(dirs: list[str | Path], host: str = "127.0.0.1", port: int = 8000,
          api_key_file: str | Path | None = None, keep_queries: int = 0) -> None:
    """Open the collections and serve them until interrupted. keep_queries: each collection keeps the vectors
    of its last N queries in RAM to tune on (`Collection.keep_queries`; `POST .../tune {"recent": true}`)."""
    import uvicorn

    from slimvec.server.app import create_app

    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:  # before any collection opens
        raise ConfigError(f"port must be a whole number from 1 to 65535, got {port!r}")
    key = read_api_key(api_key_file)
    if key is None and not is_loopback(host):
        raise ConfigError(f"refusing to listen on non-loopback host {host!r} without --api-key-file")
    cols = load_collections(dirs)
    try:
        for c in cols.values():
            c.keep_queries(keep_queries)
            # Load each model now: one that cannot load (a moved model directory) is then a one-line error, not
            # a traceback from uvicorn's start-up (the app's warm-up finds them loaded).
            c.encoder  # noqa: B018 - the property loads the model
        check_listen(host, port)
        app = create_app(cols, api_key=key)
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        for c in cols.values():
            c.close()


def check_listen(host: str, port: int) -> None:
    """ConfigError when `host`:`port` cannot be listened on (a port in use, an unknown host, a port the user may
    not bind): uvicorn said it in log lines after its start-up, with exit status 3, not the one line of a user
    error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ConfigError(f"cannot listen on host {host!r}: {e.strerror}") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
        try:
            s.bind(address)
        except OSError as e:
            hint = " (another server?): choose another --port" if e.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def server_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run `app` under a real uvicorn server in a thread on loopback; yields its base URL."""
    import uvicorn

    if not is_loopback(host):
        raise ConfigError("test servers listen on loopback only")
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="slimvec-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
