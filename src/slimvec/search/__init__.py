"""Search: options, the plan of one call (`plan.py`), its execution (`run.py`), and the stages they use
(document ranking, fusion, reranking, calibrated relevance)."""

from slimvec.search.options import MAX_K, SearchOptions
from slimvec.search.plan import SearchPlan, make_plan, modes

__all__ = ["MAX_K", "SearchOptions", "SearchPlan", "make_plan", "modes"]
