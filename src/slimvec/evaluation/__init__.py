"""Evaluation harness: BEIR datasets, retrieval metrics, TREC run files and quality-vs-RAM reports.

ranx (numba) and matplotlib are imported only when a metric or plot is computed, so importing this
package stays cheap for the CLI.
"""

from slimvec.evaluation.datasets import BeirDataset, load_dataset
from slimvec.evaluation.metrics import (
    DEFAULT_METRICS,
    check_metrics,
    evaluate,
    evaluate_per_query,
    read_trec_run,
    top_k,
    write_trec_run,
)
from slimvec.evaluation.report import (
    pareto_flags,
    pareto_front,
    plot_pareto,
    write_csv,
    write_html,
    write_markdown,
    write_report,
)

__all__ = [
    "DEFAULT_METRICS",
    "BeirDataset",
    "check_metrics",
    "evaluate",
    "evaluate_per_query",
    "load_dataset",
    "pareto_flags",
    "pareto_front",
    "plot_pareto",
    "read_trec_run",
    "top_k",
    "write_csv",
    "write_html",
    "write_markdown",
    "write_report",
    "write_trec_run",
]
