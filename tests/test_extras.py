"""Light core, heavy extras: what `import slimvec` and `slimvec --help` load, and the one-line missing-extra error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "sentence_transformers", "fastapi", "uvicorn", "matplotlib", "sklearn", "ranx", "pypdf")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("stmt", ["import slimvec", "from slimvec.cli import app"])
def test_core_imports_leave_heavy_libraries_alone(stmt):
    res = _python(f"import sys, json\n{stmt}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


def test_help_imports_no_heavy_library():
    code = ("import sys, json\nsys.argv = ['slimvec', '--help']\nfrom slimvec.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
    res = _python(code)
    assert "Usage" in res.stdout and json.loads(res.stderr.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("module,extra", [("ranx", "eval"), ("fastapi", "server"), ("pypdf", "pdf"),
                                          ("sklearn.linear_model", "eval")])
def test_a_missing_extra_is_named_in_one_line(module, extra):
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    top = module.split(".")[0]
    code = (f"import sys\nsys.modules[{top!r}] = None\nfrom slimvec.extras import require\n"
            f"from slimvec.errors import ConfigError\ntry:\n    require({module!r})\n"
            "except ConfigError as e:\n    print(e)\n")
    res = _python(code)
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert "\n" not in line and line.endswith(f"pip install 'slimvec[{extra}]'") and line.startswith(f"{top} ")


def test_cli_eval_without_the_eval_extra_says_which_to_install(tmp_path):
    from conftest import SCIFACT

    code = ("import sys\nsys.modules['ranx'] = None\nsys.argv = ['slimvec', 'eval', sys.argv[1], '--out', sys.argv[2],"
            " '--max-queries', '1', '--profile', 'bm25']\nfrom slimvec.cli import app\napp()")
    res = subprocess.run([sys.executable, "-c", code, str(SCIFACT), str(tmp_path / "out")], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 2
    assert "pip install 'slimvec[eval]'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
