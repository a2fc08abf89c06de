"""A collection on a read-only file system (a shared dataset, a read-only mount) opens and searches; writes are
one line, and the files stay as they were.

As root (CI here), permissions do not stop writes, so the directory is bind-mounted read-only inside a private
mount namespace (`unshare -m`) of the child process; otherwise it is made read-only with chmod."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.fakes import FakeEncoder

from slimvec import Collection, Document

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys
    from slimvec import Collection, Document
    from slimvec.errors import SlimvecError
    from tests.fakes import FakeEncoder

    col = Collection.open(sys.argv[1], encoder=FakeEncoder(32))
    print("hits", [h.id for h in col.search("cats purr", k=2)])
    print("check", col.check())
    print("info", col.info()["documents"])
    try:
        col.add([Document("new", "a new document about dogs")])
    except SlimvecError as e:
        print("add", str(e))
""")


def _run_read_only(path: Path, child: str = CHILD) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-c", child, str(path)]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.fail("running as root needs util-linux's unshare to make a read-only mount")
        p = str(path)
        script = f'mount --bind "{p}" "{p}" && mount -o remount,ro,bind "{p}" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, "sh", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    modes = {q: q.stat().st_mode for q in [path, *path.rglob("*")]}
    for q, m in modes.items():
        q.chmod(m & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    finally:
        for q, m in modes.items():
            q.chmod(m)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(q.relative_to(path)): q.read_bytes() for q in sorted(path.rglob("*")) if q.is_file()}


def test_a_read_only_collection_searches_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add([Document("cat", "cats purr and sleep"), Document("fish", "fish swim in the sea"),
                 Document("bird", "birds sing at dawn")])
        expected = [h.id for h in col.search("cats purr", k=2)]
    before = _tree(path)
    res = _run_read_only(path)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert lines["hits"] == repr(expected) and expected[0] == "cat"
    assert lines["check"] == "[]" and lines["info"] == "3"
    assert lines["add"].startswith(f"{path}: cannot write this collection (read-only file system") or \
        lines["add"].startswith(f"{path}: cannot write this collection (permission denied")
    assert _tree(path) == before


def test_a_damaged_probe_file_on_a_read_only_collection_gets_advice_that_can_be_followed(tmp_path: Path) -> None:
    # The advice "remove it with `slimvec tune DIR --reset`" cannot be followed where the directory is read-only.
    from slimvec.errors import CollectionError
    from slimvec.store import probes

    path = tmp_path / "c"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add([Document("cat", "cats purr and sleep")])
    (path / probes.FILE).write_bytes(b"not an npz file")
    with pytest.raises(CollectionError, match=r"--reset`$"):  # writable here: the plain advice
        probes.load(path, "fake", 32)
    child = textwrap.dedent("""
        import sys
        from pathlib import Path
        from slimvec.store import probes
        try:
            probes.load(Path(sys.argv[1]), "fake", 32)
        except Exception as e:
            print(e)
    """)
    res = _run_read_only(path, child)
    assert res.returncode == 0, res.stderr
    assert "probe query file is damaged" in res.stdout
    assert res.stdout.strip().endswith("--reset` where the collection is writable (this process cannot write to it)")
