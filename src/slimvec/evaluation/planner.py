"""`slimvec plan`: pick the best profile under a RAM budget, chosen on queries it will not report on.

Selection uses the dataset's dev split when it has one; otherwise the test queries are halved by a
hash of their ids (stable across runs) and the choice is made on one half and reported on the other.
The reported figure therefore never comes from the queries that picked the profile.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError
from slimvec.evaluation.datasets import load_dataset
from slimvec.evaluation.report import pareto_front
from slimvec.evaluation.runner import run_eval
from slimvec.profiles import BUILTIN, Profile

DEFAULT_CANDIDATES = ("exact-f32", "f16", "float8", "int8", "pca-half-float8", "int4", "binary", "binary-rescore",
                      "int8-rescore", "pq-rescore", "pq16-rescore", "pca-half-float8-rescore", "binary-ivf-rescore",
                      "pq16-ivf-rescore")


@dataclass(frozen=True)
class Plan:
    """The chosen profile, the evidence for it, and its score on the held-out queries."""

    profile: Profile
    budget: float
    selection: list[dict[str, Any]]  # one eval result per candidate, on the selection queries
    report: dict[str, Any]  # the chosen profile on the reporting queries
    reason: str


def held_out_halves(query_ids: list[str]) -> tuple[set[str], set[str]]:
    """Split query ids into (selection, reporting) halves by a stable hash of each id."""
    sel = {q for q in query_ids if hashlib.sha256(q.encode()).digest()[0] % 2 == 0}
    return sel, set(query_ids) - sel


def plan(
    dataset_dir: str | Path,
    max_ram_bytes_per_doc: float,
    candidates: list[Profile] | None = None,
    out: str | Path = "slimvec-eval",
    cache_dir: str | Path | None = None,
    report_split: str = "test",
    chunk_mode: str | None = None,
) -> Plan:
    """Evaluate candidates on selection queries, keep those within budget, choose the best nDCG@10 (then least RAM)."""
    # before any evaluation; infinity is no budget at all: it evaluated every candidate to pick the best nDCG@10
    # "within inf RAM bytes/doc", which `slimvec sweep` reports without pretending to plan
    if isinstance(max_ram_bytes_per_doc, bool) or not isinstance(max_ram_bytes_per_doc, (int, float)) or \
            not math.isfinite(max_ram_bytes_per_doc) or max_ram_bytes_per_doc <= 0:
        raise ConfigError(f"--max-ram-bytes-per-doc must be a finite number > 0, got {max_ram_bytes_per_doc} "
                          "(to compare every profile without a budget: slimvec sweep)")
    ds = load_dataset(dataset_dir)
    if isinstance(candidates, Profile):  # one profile, never its fields
        candidates = [candidates]
    profiles = candidates or [BUILTIN[n] for n in DEFAULT_CANDIDATES]
    if chunk_mode:
        profiles = [p.model_copy(update={"chunk_mode": chunk_mode}) for p in profiles]
    if ds.has_split("dev") and report_split != "dev":
        sel_split, sel_ids, rep_ids = "dev", None, None
    else:
        sel_ids, rep_ids = held_out_halves(list(ds.queries(report_split)))
        sel_split = report_split
        if not sel_ids or not rep_ids:  # checked before any profile is evaluated
            raise ConfigError(f"{ds.name}: the {len(sel_ids) + len(rep_ids)} judged {report_split} queries all fall "
                              "in one half of the held-out split (by a hash of their ids), leaving none to "
                              "choose or none to report on: add judged queries, or a dev split (qrels/dev.tsv)")
    selection = [run_eval(dataset_dir, p, sel_split, out, cache_dir, query_ids=sel_ids,
                          tag="" if sel_ids is None else "-select") for p in profiles]
    within = [(p, r) for p, r in zip(profiles, selection) if r["cost"]["ram_bytes_per_doc"] <= max_ram_bytes_per_doc]
    if not within:
        cheapest = min(r["cost"]["ram_bytes_per_doc"] for r in selection)
        raise ConfigError(f"no profile fits {max_ram_bytes_per_doc:,.0f} RAM bytes per document; "
                          f"the smallest needs {cheapest:,.0f}")
    best_p, best_r = max(within, key=lambda pr: (pr[1]["metrics"]["ndcg@10"], -pr[1]["cost"]["ram_bytes_per_doc"]))
    front = pareto_front([(r["metrics"]["ndcg@10"], r["cost"]["ram_bytes_per_doc"]) for r in selection])
    on_front = front[selection.index(best_r)]
    ref = next((r for p, r in zip(profiles, selection) if p.name == "exact-f32"), None)
    kept = f", {best_r['metrics']['ndcg@10'] / ref['metrics']['ndcg@10']:.1%} of exact-f32" if ref else ""
    where = f"{sel_split} split" if sel_ids is None else f"half of the {sel_split} queries ({len(sel_ids)})"
    reason = (f"{best_p.name}: best nDCG@10 on the {where} ({best_r['metrics']['ndcg@10']:.4f}{kept}) among "
              f"{len(within)} of {len(profiles)} profiles within {max_ram_bytes_per_doc:,.0f} RAM bytes/doc "
              f"(uses {best_r['cost']['ram_bytes_per_doc']:,.0f}); Pareto-optimal: {on_front}")
    report = run_eval(dataset_dir, best_p, report_split, out, cache_dir, query_ids=rep_ids,
                      tag="" if rep_ids is None else "-report")
    return Plan(best_p, max_ram_bytes_per_doc, selection, report, reason)


def write_profile(profile: Profile, path: str | Path) -> Path:
    """Save a profile as JSON, loadable with `slimvec index --profile-file`."""
    path = Path(path)
    path.write_text(json.dumps(profile.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return path
