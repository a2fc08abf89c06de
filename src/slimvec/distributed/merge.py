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
    keyed = [(-h.score, ordinals.get(h.id, _UNKNOWN), s, i, h)
             for s, hits in enumerate(per_shard) for i, h in enumerate(hits)]
    keyed.sort(key=lambda t: t[:4])
    return [t[4] for t in keyed[:k]]


def merge_rows(per_shard: Sequence[Sequence[tuple[str, float, int]]], k: int,
               ordinals: Mapping[str, int]) -> list[tuple[int, str, float, int]]:
    """`merge_hits` for hits given as (document id, score, best-chunk row): the top `k` as (shard, id, score,
    row), by score, then commit ordinal (the same order `merge_hits` gives)."""
    keyed = [(-score, ordinals.get(doc_id, _UNKNOWN), s, i, doc_id, score, row)
             for s, hits in enumerate(per_shard) for i, (doc_id, score, row) in enumerate(hits)]
    keyed.sort(key=lambda t: t[:4])
    return [(t[2], t[4], t[5], t[6]) for t in keyed[:k]]
