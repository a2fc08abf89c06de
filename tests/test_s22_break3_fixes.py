"""Faults found by session 22's third breaker, each with the behaviour it now has."""

from __future__ import annotations

import os
import threading

from slimvec.errors import IngestError
from slimvec.ingest.files import iter_folder


# ---- a named pipe in a folder: the walk opened it and waited for a writer, forever, without a word ----------------
def test_a_named_pipe_in_a_folder_is_reported_not_waited_on(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("plain words here")
    pipe = docs / "b.txt"
    os.mkfifo(pipe)
    # A writer feeding the pipe each time it is opened: reading it as a file then returns its text (the fault)
    # instead of hanging the test. The pipe is opened for reading below, after the walk, to let the writer go.
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            try:
                with pipe.open("w") as f:
                    f.write("text through a pipe")
            except OSError:  # the reader closed first
                pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        got = {p.name: d for p, d in iter_folder(docs, lambda _: None)}
    finally:
        stop.set()
        fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        writer.join()
        os.close(fd)
    assert got["a.txt"].text == "plain words here"
    assert isinstance(got["b.txt"], IngestError)
    assert str(got["b.txt"]) == f"{pipe}: a named pipe (FIFO), not a regular file: only files are read"
