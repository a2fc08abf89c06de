"""Bad input, kind 8: nothing but the one line.

Warnings raised inside dependencies (numpy RuntimeWarnings from bm25s, FutureWarnings from transformers,
...) must not reach a CLI user's terminal, while slimvec's own warnings do; `slimvec --verbose` shows
them all. Checked on generated warnings of every category from every listed library, and through the
real CLI (typer) on a real collection.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from _bad_input import tally
from fakes import FakeEncoder
from hypothesis import given, settings
from hypothesis import strategies as st

from slimvec import Collection, Document
from slimvec.console import LIBRARY_LOGGERS, quiet_libraries


@pytest.fixture(autouse=True)
def _restore_logging():
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _library_function(module: str) -> types.FunctionType:
    """A function whose warnings are attributed to `module`, as numpy attributes them to its caller."""
    mod = types.ModuleType(module)
    exec("import numpy as np\ndef run():\n    return np.log(np.zeros(1))\n", mod.__dict__)  # noqa: S102 - divide by zero
    return mod.run


@settings(max_examples=60, deadline=None)
@given(
    module=st.sampled_from([*LIBRARY_LOGGERS, "numpy", "scipy.sparse", "sklearn.utils"]).map(lambda m: f"{m}.inner"),
    category=st.sampled_from([RuntimeWarning, UserWarning, DeprecationWarning, FutureWarning]),
    verbose=st.booleans(),
)
def test_library_warnings_are_hidden_unless_verbose_and_ours_always_show(module, category, verbose) -> None:
    with warnings.catch_warnings(record=True) as seen:
        quiet_libraries(verbose)
        warnings.warn_explicit("library noise", category, "lib.py", 1, module=module)
        warnings.warn_explicit("slimvec note", UserWarning, "cache.py", 1, module="slimvec.encoders.cache")
        with np.errstate(divide="warn"):
            _library_function(module)()
    messages = [str(w.message) for w in seen]
    assert "slimvec note" in messages
    assert ("library noise" in messages) == verbose
    assert any("divide by zero" in m for m in messages) == verbose
    tally("8: library warnings (hidden unless --verbose)", 1, 0)


_CLI = """
import sys, types
import numpy as np
from slimvec import Collection
from slimvec.cli import app

mod = types.ModuleType("bm25s.scoring")  # a dependency that warns while the command runs
exec("import numpy as np\\ndef run():\\n    return np.log(np.zeros(1))\\n", mod.__dict__)
original = Collection.info
def info(self):
    with np.errstate(divide="warn"):
        mod.run()
    return original(self)
Collection.info = info
sys.argv = ["slimvec", *sys.argv[1:]]
app()
"""


def test_cli_shows_only_its_own_lines_and_verbose_shows_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder()) as col:
        col.add([Document("a", "protein folding"), Document("b", "sleep and memory")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONWARNINGS": "default"}
    run = lambda *args: subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True,
                                       env=env, check=False)
    quiet, loud = run("info", str(path), "--json"), run("--verbose", "info", str(path), "--json")
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert json.loads(quiet.stdout)["documents"] == 2
    assert quiet.stderr == ""
    assert "RuntimeWarning: divide by zero encountered in log" in loud.stderr
