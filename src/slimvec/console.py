"""What a CLI user's terminal shows: slimvec's own one-line messages, not the warnings and log chatter
of its dependencies (numpy RuntimeWarnings from bm25s, transformers and huggingface_hub notices, ...).

`quiet_libraries(verbose=False)` hides warnings raised outside slimvec and lowers dependency loggers to
ERROR; slimvec's own warnings (a damaged embedding cache, a PQ codec fitted on too few rows) still
show. `verbose=True` (`slimvec --verbose ...`) shows everything, with warnings once per location.
"""

from __future__ import annotations

import logging
import os
import warnings

# Loggers of dependencies that write to the terminal during normal runs.
LIBRARY_LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "bm25s", "faiss", "torch",
                   "urllib3", "httpx", "pypdf", "matplotlib", "numba", "wordllama")


def quiet_libraries(verbose: bool = False) -> None:
    """Hide (or, with `verbose`, show) dependency warnings and log messages for the rest of the process."""
    if verbose:
        warnings.simplefilter("default")
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    warnings.filterwarnings("ignore")
    # Filters are searched newest first: this one lets slimvec's own warnings through.
    warnings.filterwarnings("default", module=r"slimvec(\.|$)")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
