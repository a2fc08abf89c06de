"""The layering contract (pyproject.toml [tool.importlinter]) and ruff, run as tests so `make test` checks them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          check=False)


def test_layers_and_no_cycles_hold():
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "2 kept, 0 broken" in res.stdout


def test_a_backward_import_breaks_the_contract(tmp_path):
    # A copy of the package where the store (a lower layer) imports the collection (a higher one).
    import shutil

    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "src" / "slimvec" / "store" / "backward.py"
    bad.write_text(textwrap.dedent('''
        from slimvec.collection import Collection  # a store module reaching up into the facade
    '''))
    env_path = f"{tmp_path / 'src'}"
    res = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                         check=False, env={"PYTHONPATH": env_path, "PATH": str(BIN)})
    assert res.returncode != 0
    assert "slimvec.store is not allowed to import slimvec.collection" in res.stdout


def test_ruff_finds_nothing():
    res = subprocess.run([str(BIN / "ruff"), "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout[-3000:]
