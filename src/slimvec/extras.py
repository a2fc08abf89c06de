"""Optional dependencies ("extras"): import one, or say in one line which extra to install.

`pip install slimvec` brings what indexing and search need; the rest comes with an extra:
`slimvec[server]` (FastAPI, uvicorn), `slimvec[eval]` (ranx, pytrec_eval, matplotlib, scikit-learn),
`slimvec[pdf]` (pypdf), `slimvec[static]` (model2vec: static models), `slimvec[distill]` (model2vec and
skeletoken: `slimvec distill`). `make demo` and `make test` install them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from slimvec.errors import ConfigError

# module -> (extra, what needs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "fastapi": ("server", "slimvec serve"),
    "uvicorn": ("server", "slimvec serve"),
    "multipart": ("server", "file uploads to the server"),
    "ranx": ("eval", "evaluation metrics"),
    "pytrec_eval": ("eval", "evaluation metrics"),
    "matplotlib": ("eval", "evaluation reports"),
    "sklearn": ("eval", "relevance calibration"),
    "pypdf": ("pdf", "reading PDF files"),
    "qdrant_client": ("interop", "Qdrant export and import"),
    "lancedb": ("interop", "LanceDB export and import"),
    "langchain_core": ("langchain", "the LangChain vector store"),
    "llama_index": ("llama-index", "the LlamaIndex vector store"),
    "model2vec": ("static", "model2vec static models"),
    "skeletoken": ("distill", "slimvec distill"),
    "ray": ("ray", "shard actors of a sharded collection"),
}


def require(module: str) -> ModuleType:
    """Import `module`, or raise ConfigError naming the extra that installs it.

    E.g. "ranx is not installed (needed for evaluation metrics): pip install 'slimvec[eval]'".
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra, what = EXTRAS.get(top, (None, None))
        if extra is None:
            raise
        raise ConfigError(f"{top} is not installed (needed for {what}): pip install 'slimvec[{extra}]'") from None
