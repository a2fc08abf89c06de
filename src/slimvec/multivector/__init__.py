"""Late-interaction (multi-vector) retrieval: MaxSim, token pooling, token codes, MUVERA, the token file.

Verbs: `maxsim_scores` (exact MaxSim), `pool_tokens` (hierarchical Ward pooling), `muvera_documents` /
`muvera_queries` (fixed-dimensional encodings), `TokenStore` (row-aligned token file), `MultiVectorRetriever`
(first-stage candidates reranked by MaxSim over the token file).
"""

from slimvec.multivector.maxsim import maxsim_scores, maxsim_topk

__all__ = ["maxsim_scores", "maxsim_topk"]
