"""The names of the search modes: one per registered retriever, plus the fused ones (what each fuses).

Its own module so that both the request checks (`search.options`) and the plan (`search.plan`) read them.
"""

from __future__ import annotations

from slimvec import registry

# Modes that run several retrievers and fuse their document rankings. Every registered retriever is also
# a mode of its own name that runs it alone.
FUSED_MODES: dict[str, tuple[str, ...]] = {
    "hybrid": ("dense", "bm25"),
    "hybrid-sparse": ("dense", "sparse"),
    "hybrid-multivector": ("multivector", "bm25"),
}


def modes(available: list[str] | None = None) -> list[str]:
    """Search modes, "dense" first; with `available` retrievers, only the modes a collection keeping them can run."""
    every = {name: (name,) for name in registry.names("retriever")} | FUSED_MODES
    names = sorted(m for m, needs in every.items() if available is None or set(needs) <= set(available))
    return sorted(names, key=lambda m: m != "dense")
