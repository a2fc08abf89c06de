"""Resolving one search call: from the collection's profile and the call's options to a checked `SearchPlan`.

Everything a search decides is decided here, once per call, before any query is scored: the mode (the
profile's unless the call names one) and the retrievers it runs, how their rankings are fused, the reranker
and its depth, how deep each stage goes, and the relevance cut-off. `search.run` then executes the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slimvec import registry
from slimvec.errors import ConfigError
from slimvec.search.fusion import FUSION_DEPTH
from slimvec.search.modes import FUSED_MODES, modes
from slimvec.search.options import DEFAULT_RERANK_DEPTH, SearchOptions
from slimvec.search.rerank import Reranker, load_reranker


def retrievers_for(mode: str, available: list[str]) -> tuple[str, ...]:
    """The retrievers a search `mode` runs, checked against those the collection keeps.

    Raises ConfigError for an unknown mode, or one needing a retriever the collection does not keep.
    """
    needs = _needs(mode)
    if needs is None:
        raise ConfigError(f"unknown search mode {mode!r}: choose one of {', '.join(modes())}")
    missing = [r for r in needs if r not in available]
    if missing:
        raise ConfigError(f"mode {mode!r} needs the {', '.join(missing)} index, which this collection does not "
                          f"keep (it keeps: {', '.join(available)})")
    return needs


@dataclass(frozen=True)
class SearchPlan:
    """What one search call does, resolved and validated (see `make_plan`)."""

    mode: str
    retrievers: tuple[str, ...]  # run in this order; the first one's best chunk is the snippet of a fused hit
    k: int  # documents returned
    first_stage: int  # documents the first stage hands on: k, or max(k, rerank_depth) with a reranker
    depth: int  # documents each retriever's ranking holds before fusion (first_stage when not fusing)
    fusion: str | None  # registered fuser name when several retrievers run
    fusion_options: dict[str, Any] = field(default_factory=dict)
    reranker: Reranker | None = None
    rerank_depth: int = DEFAULT_RERANK_DEPTH
    min_relevance: float | str | None = None
    calibrate: bool = False  # attach calibrated relevance to hits (a calibrator for the mode exists or is asked for)
    filter: dict[str, Any] | None = None
    with_payload: bool = True
    unit: str = "document"  # "section": rank and return chunk rows grouped by given section, not by document

    @property
    def needs_query_vectors(self) -> bool:
        """Whether queries need the collection model's dense vectors (dense retrieval or a vector reranker)."""
        return "dense" in self.retrievers or (self.reranker is not None and self.reranker.needs_vectors)

    @property
    def needs_query_tokens(self) -> bool:
        """Whether queries need token vectors (MaxSim: the multivector retriever or the maxsim reranker)."""
        return "multivector" in self.retrievers or getattr(self.reranker, "needs_retriever", None) == "multivector"


def make_plan(profile: Mapping[str, Any], available: list[str], dim: int, options: SearchOptions,
              calibrated_modes: frozenset[str] | set[str] = frozenset(),
              reranker: Reranker | None = None, model_weight: float | None = None) -> SearchPlan:
    """The plan for one call: `options` where set, else the collection `profile` (its manifest entry).

    profile: the profile as stored in the manifest; available: the retrievers the collection keeps; dim: its
    dense dimension (0 when it keeps none); calibrated_modes: modes with a fitted calibrator; reranker: a
    Reranker object given by a Python caller, used instead of `options.rerank` and the profile's; model_weight:
    the weight the collection's model declares for its dense ranking (the manifest's "model_fusion_weight",
    see `model_fusion_weights`).
    Raises ConfigError for a mode the collection cannot run, an unknown fuser or reranker, weights that do not
    match the mode, a relevance cut-off combined with a fusion override or a reranker (calibrators are
    fitted on the profile's first-stage scores), or an option the call gave that this plan would not use (fusion
    settings for a mode of one retriever, a rerank depth where nothing reranks); the profile's own settings are
    never refused for not applying to the mode searched.
    """
    mode = options.mode or default_mode(profile, available)
    names = retrievers_for(mode, available)

    fusion, fusion_options = None, {}
    if len(names) > 1:
        fusion, fusion_options = _fusion(profile, names, options, model_weight)
    elif given := _given(options, "fusion", "fusion_weights", "fusion_temperature"):
        # A fusion option the call gave would change nothing: one ranking is not fused. The profile's fusion
        # settings are never checked here (they apply when the collection is searched in a fused mode).
        raise ConfigError(f"{given} applies to fused modes ({', '.join(FUSED_MODES)}); this search runs mode "
                          f"{mode!r}, one ranking ({names[0]}): leave {given} out or choose a fused mode")
    if options.min_relevance is not None and len(names) > 1 and (
            options.fusion is not None or options.fusion_weights is not None):
        raise ConfigError("min_relevance is calibrated on the profile's fusion; it cannot be combined with a "
                          "fusion override")

    if options.unit == "section" and options.min_relevance is not None:
        raise ConfigError("min_relevance is calibrated on document-level hits; it cannot be combined with "
                          "unit='section'")
    reranker, depth = _reranker(profile, options, dim, available, reranker)
    if reranker is None and options.rerank_depth is not None:  # the profile's depth is never checked here
        why = "rerank is 'none'" if options.rerank is not None else "the profile sets no reranker; give rerank too"
        raise ConfigError(f"rerank_depth applies to reranking, and this search reranks nothing ({why})")
    if reranker is not None and options.min_relevance is not None:
        raise ConfigError(f"min_relevance is calibrated on first-stage {mode!r} scores and cannot be combined "
                          f"with reranking ({reranker.name}); pass rerank='none' to use it")
    first = options.k if reranker is None else max(options.k, depth)
    return SearchPlan(
        mode=mode, retrievers=names, k=options.k, first_stage=first,
        depth=first if len(names) == 1 else max(first, FUSION_DEPTH),
        fusion=fusion, fusion_options=fusion_options, reranker=reranker, rerank_depth=depth,
        min_relevance=options.min_relevance,
        calibrate=reranker is None and options.unit == "document"
        and (options.min_relevance is not None or mode in calibrated_modes),
        filter=options.filter or None, with_payload=options.with_payload, unit=options.unit,
    )


def refuse_unused_vectors(plan: SearchPlan, available: list[str], vectors: Any, encoded: bool) -> None:
    """ConfigError when a caller gave its own query `vectors` to a search that does not use them (a mode without
    the dense retriever and no dense reranker): they would be dropped and the texts searched, silently, as an
    option the plan would not use is refused (`make_plan`). Vectors that are the query texts `encoded` by the
    caller (a sharded collection's router, a migration, an evaluation run) say nothing the texts do not, and
    pass."""
    if vectors is None or encoded or plan.needs_query_vectors:
        return
    dense = [m for m in modes(available) if "dense" in (_needs(m) or ())]
    where = f"({', '.join(dense)}) or rerank 'dense'" if dense else "(this collection keeps no dense index)"
    raise ConfigError(f"vectors apply to modes that search by a dense vector {where}; this search runs mode "
                      f"{plan.mode!r}: leave vectors out or choose such a mode")


def _given(options: SearchOptions, *names: str) -> str | None:
    """The first of the option fields `names` the call set (None leaves it to the profile), else None."""
    return next((n for n in names if getattr(options, n) is not None), None)


def default_mode(profile: Mapping[str, Any], available: list[str]) -> str:
    """The mode a search that names none runs: the profile's, when the collection keeps what it needs; else
    (collections from before the profile recorded a mode, or a profile naming only its retrievers, which
    keeps the field's default "dense") "dense" when it is kept, else the first retriever."""
    mode = str(profile.get("mode") or "")
    needs = _needs(mode) if mode else None
    if needs is not None and set(needs) <= set(available):
        return mode
    return "dense" if "dense" in available else available[0]


def _needs(mode: str) -> tuple[str, ...] | None:
    """The retrievers search `mode` runs, None for an unknown mode."""
    return FUSED_MODES.get(mode) or ((mode,) if registry.has("retriever", mode) else None)


def stored_fusion(profile: Mapping[str, Any]) -> str:
    """The fuser a stored profile names; "rrf" for a manifest written before profiles recorded one (they fused so)."""
    return str(profile.get("fusion", "rrf"))


def model_fusion_weights(method: str, names: tuple[str, ...], model_weight: float | None) -> list[float] | None:
    """The fusion weights a model's declared `model_weight` gives a search that sets none: [model_weight, 1.0]
    for softmax fusion of dense + BM25, where the static models' weights were measured (BENCHMARKS.md "Static
    distillation"); None (equal weights) for any other fusion or retrievers (SPLADE was not measured)."""
    if model_weight is None or method != "softmax" or tuple(names) != ("dense", "bm25"):
        return None
    return [float(model_weight), 1.0]


def _fusion(profile: Mapping[str, Any], names: tuple[str, ...], options: SearchOptions,
            model_weight: float | None = None) -> tuple[str, dict[str, Any]]:
    method = options.fusion or stored_fusion(profile)
    if not registry.has("fuser", method):
        raise ConfigError(f"unknown fusion {method!r}: choose one of {', '.join(registry.names('fuser'))}")
    if options.fusion_temperature is not None and method != "softmax":
        raise ConfigError(f"fusion_temperature applies to fusion='softmax', not {method}")
    if method == "rrf":
        if options.fusion_weights:
            raise ConfigError("fusion weights apply to fusion='weighted' or 'softmax', not rrf")
        return method, {}
    weights = options.fusion_weights if options.fusion_weights is not None else profile.get("fusion_weights")
    if weights is None:  # neither the search nor the profile sets any: the model's own, if it declares one
        weights = model_fusion_weights(method, names, model_weight)
    if weights is not None and len(weights) != len(names):
        raise ConfigError(f"{len(weights)} fusion weights for the {len(names)} retrievers of this mode "
                          f"({', '.join(names)})")
    found = {"weights": None if weights is None else [float(w) for w in weights]}
    temperature = options.fusion_temperature
    if temperature is None and method == "softmax":  # a profile's applies only to its own fusion
        temperature = profile.get("fusion_temperature") if options.fusion is None or \
            options.fusion == stored_fusion(profile) else None
    return method, found if temperature is None else {**found, "temperature": float(temperature)}


def _reranker(profile: Mapping[str, Any], options: SearchOptions, dim: int, available: list[str],
              given: Reranker | None) -> tuple[Reranker | None, int]:
    spec = given if given is not None else profile.get("rerank") if options.rerank is None else options.rerank
    depth = options.rerank_depth or int(profile.get("rerank_depth", DEFAULT_RERANK_DEPTH))
    if spec is None:
        return None, depth
    reranker = load_reranker(spec) if isinstance(spec, str) else spec
    needs = getattr(reranker, "needs_retriever", None)
    if needs is not None and needs not in available:
        raise ConfigError(f"reranker {reranker.name!r} needs the {needs} index, which this collection does not keep "
                          f"(it keeps: {', '.join(available)})")
    if reranker is not None and reranker.needs_vectors and not dim:
        raise ConfigError(f"reranker {reranker.name!r} needs dense vectors; this collection keeps none "
                          f"(retrievers: {', '.join(available)})")
    return reranker, depth
