"""Child process for benchmarks/load.py: serve one collection on 127.0.0.1:PORT until killed.

usage: python _serve.py COLLECTION PORT KEY [--real-model]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import uvicorn  # noqa: E402

from slimvec import Collection  # noqa: E402
from slimvec.server import create_app  # noqa: E402


def main() -> None:
    path, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if "--real-model" in sys.argv:
        col = Collection.open(path)
    else:
        from fakes import FakeEncoder

        col = Collection.open(path, encoder=FakeEncoder(dim=384))
    uvicorn.run(create_app({"col": col}, api_key=key), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
