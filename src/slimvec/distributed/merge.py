"""Merging per-shard hit lists into the hits one collection would return.

Within a shard hits come best first, equal scores in row order. Across shards, equal scores go to the document
with the lower commit ordinal (`slimvec.store.ordinals`), which is the order of their rows had every write gone to
one collection; hits of one document (unit "section") keep their shard's order. Scores are compared as the
shards report them: exact profiles score with `slimvec.scoring.inner_products`, bitwise the same in any shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slimvec.documents import Hit

_UNKNOWN = 2**62  # a document with no ordinal (written to a shard directly) loses every tie


def merge_hits(per_shard: Sequence[Sequence[Hit]], k: int, ordinals: Mapping[str, int]) -> list[Hit]:
    """The top `k` of several shards' hit lists (each best first) by score, then commit ordinal."""
    pairs = [[(h.id, h.score) for h in hits] for hits in per_shard]
    return [per_shard[s][i] for s, i in _top(pairs, k, ordinals)]


def merge_rows(per_shard: Sequence[Sequence[tuple[str, float, int]]], k: int,
               ordinals: Mapping[str, int]) -> list[tuple[int, str, float, int]]:
    """`merge_hits` for hits given as (document id, score, best-chunk row): the top `k` as (shard, id, score,
    row), by score, then commit ordinal (the same order `merge_hits` gives)."""
    pairs = [[(doc_id, score) for doc_id, score, _ in hits] for hits in per_shard]
    return [(s, *per_shard[s][i]) for s, i in _top(pairs, k, ordinals)]


def _top(per_shard: list[list[tuple[str, float]]], k: int, ordinals: Mapping[str, int]) -> list[tuple[int, int]]:
    """(shard, position) of the top `k` (id, score) pairs by score, then commit ordinal, shard and position."""
    keyed = [(-score, ordinals.get(doc_id, _UNKNOWN), s, i)
             for s, hits in enumerate(per_shard) for i, (doc_id, score) in enumerate(hits)]
    keyed.sort()
    return [(s, i) for _, _, s, i in keyed[:k]]
