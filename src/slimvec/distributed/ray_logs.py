"""Keep Ray's own log lines off the terminal of a run that started its own local Ray instance.

`ray.init(logging_level=..., log_to_driver=False)` quiets Ray's Python loggers and the workers' output, but the
driver's C++ core worker writes its warnings and errors straight to file descriptor 2 (for example
`core_worker.cc: Actor with class name: 'MapWorker(MapBatches(ChunkEncoder))' ... has constructor arguments in
the object store and max_restarts > 0`, which every Ray Data actor pool gives), and Ray has no setting that
sends those to its log files only (RAY_BACKEND_LOG_LEVEL hides them but prints a line of its own). So, for the
duration of the run, descriptor 2 becomes a pipe read by a thread that moves lines in Ray's C++ log format
(`[2026-11-30 07:36:30,157 E 21333 21333] file.cc:123: ...`) to a log file and passes everything else through;
`sys.stderr` writes to the terminal directly meanwhile, so progress bars still see it.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# One line of Ray's C++ logging (spdlog pattern "[%Y-%m-%d %H:%M:%S,%e %L %P %t] "), severity D/I/W/E/F.
RAY_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEF] \d+ \d+\] [^\n]*(?:\n|$)", re.M)


def log_path() -> Path:
    """Where the lines taken off the terminal go: slimvec-ray-PID.log in the system's temporary directory."""
    return Path(tempfile.gettempdir()) / f"slimvec-ray-{os.getpid()}.log"


def split_ray_lines(data: bytes) -> tuple[bytes, bytes]:
    """(everything else, Ray's C++ log lines) of a chunk of stderr output."""
    ray = b"".join(m.group(0) for m in RAY_LINE.finditer(data))
    return (RAY_LINE.sub(b"", data), ray) if ray else (data, b"")


@contextmanager
def ray_lines_to_log(target: Path | None = None) -> Iterator[Path]:
    """Move Ray's C++ log lines written to this process's stderr to `target` (default `log_path()`, made only
    when there is a line) while the block runs; yields the log's path. Everything else written to descriptor 2
    still reaches it, a little later, through the pipe."""
    target = log_path() if target is None else target
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr (closed, or replaced by an object without fd 2)
        yield target
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    before = sys.stderr
    # Python's own writes go to the real descriptor: a terminal stays a terminal for rich's progress bars.
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(real), "w"), encoding=getattr(before, "encoding", None) or "utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    # The thread writes to a copy of its own: one left running (a child process holds the pipe) never writes
    # to a descriptor number reused after this block.
    pump = threading.Thread(target=_pump, args=(read_end, os.dup(real), target), name="slimvec-ray-stderr",
                            daemon=True)
    pump.start()
    try:
        yield target
    finally:
        try:
            sys.stderr.flush()
        finally:
            swapped, sys.stderr = sys.stderr, before
            swapped.close()
            os.dup2(real, 2)  # the pipe's last write end closes: the thread reads what is left, then stops
            pump.join(timeout=5)
            os.close(real)


def _pump(read_end: int, real: int, target: Path) -> None:
    log = None
    try:
        while chunk := os.read(read_end, 65536):  # one log line is one write of < PIPE_BUF bytes: never split
            rest, ray = split_ray_lines(chunk)
            if rest:
                os.write(real, rest)
            if ray:
                log = log or open(target, "ab")  # noqa: SIM115 - held across chunks, closed below
                log.write(ray)
                log.flush()
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(real)
        if log is not None:
            log.close()
