import numpy as np
import pytest

from guard.dedup.semdedup import SemDeDupResult, range_dedup, semdedup

D = 64


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(n_originals=400, n_copies=100, seed=0):
    """(embeddings, source): distinct random unit vectors followed by shuffled near-copies
    (cosine > 0.99) of distinct originals; source[i] is the original of copy i, -1 else."""
    rng = np.random.default_rng(seed)
    originals = unit(rng.standard_normal((n_originals, D)))
    sources = rng.choice(n_originals, n_copies, replace=False)
    copies = unit(originals[sources] + 0.05 / np.sqrt(D) * rng.standard_normal((n_copies, D)))
    assert (np.sum(copies * originals[sources], axis=1) > 0.99).all()
    source = np.concatenate([np.full(n_originals, -1), sources])
    return np.concatenate([originals, copies]), source


def assert_same(a: SemDeDupResult, b: SemDeDupResult):
    np.testing.assert_array_equal(a.duplicate_of, b.duplicate_of)
    np.testing.assert_array_equal(a.similarity, b.similarity)  # nan == nan here
    np.testing.assert_array_equal(a.cluster, b.cluster)


@pytest.mark.parametrize("block", [2048, 64, 7])
def test_range_dedup_finds_every_planted_copy_and_nothing_else(block):
    embeddings, source = planted()
    result = range_dedup(embeddings, threshold=0.95, block=block)
    np.testing.assert_array_equal(result.duplicate_of, source)
    copies = source >= 0
    assert (result.similarity[copies] > 0.99).all()
    assert np.isnan(result.similarity[~copies]).all()
    assert result.kept.sum() == 400 and (result.cluster == 0).all()
    assert result.duplicate_of.dtype == np.int64 and result.similarity.dtype == np.float32


def test_result_does_not_depend_on_the_block_size():
    embeddings, _ = planted(300, 200, seed=4)
    # add chains and exact repeats so the in-block resolution has work to do
    embeddings = np.concatenate([embeddings, embeddings[::3], embeddings[5:50]])
    reference = range_dedup(embeddings, threshold=0.9, block=10_000)
    for block in (5, 13, 64, 256):
        result = range_dedup(embeddings, threshold=0.9, block=block)
        np.testing.assert_array_equal(result.duplicate_of, reference.duplicate_of)
        # products of other shapes round differently in the last bit of float32
        np.testing.assert_allclose(result.similarity, reference.similarity, rtol=1e-6)


def test_distinct_random_vectors_are_never_flagged():
    embeddings = unit(np.random.default_rng(1).standard_normal((2000, D)))
    assert range_dedup(embeddings, threshold=0.8, block=300).kept.all()
    assert semdedup(embeddings, eps=0.2).kept.all()


def test_semdedup_with_one_cluster_equals_range_dedup():
    embeddings, _ = planted(seed=2)
    for eps in (0.01, 0.05, 0.2):
        assert_same(semdedup(embeddings, eps=eps, n_clusters=1), range_dedup(embeddings, 1 - eps))


def test_semdedup_reports_only_same_cluster_pairs_above_threshold():
    embeddings, source = planted(seed=3)
    result = semdedup(embeddings, eps=0.05, n_clusters=20)
    assert set(np.unique(result.cluster)) <= set(range(20))
    flagged = np.flatnonzero(~result.kept)
    partner = result.duplicate_of[flagged]
    assert (partner < flagged).all() and result.kept[partner].all()
    assert (result.cluster[flagged] == result.cluster[partner]).all()
    cosines = np.sum(embeddings[flagged] * embeddings[partner], axis=1)
    np.testing.assert_allclose(result.similarity[flagged], cosines, rtol=1e-5)
    assert (result.similarity[flagged] >= 0.95).all()
    # whatever it finds is a planted pair; it may miss copies split from their original
    np.testing.assert_array_equal(result.duplicate_of[flagged], source[flagged])
    missed = (source >= 0) & result.kept
    assert (result.cluster[missed] != result.cluster[source[missed]]).all()


def test_semdedup_misses_a_pair_split_across_clusters():
    """Two well-separated groups around u and v; a and b sit either side of the midpoint of
    u and v, with cosine ~0.98: range search pairs them, two clusters split them."""
    rng = np.random.default_rng(5)
    u, v = np.eye(D, dtype=np.float32)[:2]
    group_u = unit(u + rng.standard_normal((200, D)) / np.sqrt(D))
    group_v = unit(v + rng.standard_normal((200, D)) / np.sqrt(D))
    middle, across = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
    a, b = unit(middle + 0.1 * across), unit(middle - 0.1 * across)
    embeddings = np.concatenate([group_u, group_v, [a, b]])
    ia, ib = 400, 401
    assert float(a @ b) > 0.97
    everywhere = range_dedup(embeddings, threshold=0.95)
    assert everywhere.duplicate_of[ib] == ia and everywhere.kept[:400].all()
    clustered = semdedup(embeddings, eps=0.05, n_clusters=2, seed=0)
    assert clustered.cluster[ia] == clustered.cluster[0] != clustered.cluster[ib] == clustered.cluster[200]
    assert clustered.kept.all()


def test_semdedup_is_deterministic_for_a_seed():
    embeddings, _ = planted(seed=6)
    assert_same(semdedup(embeddings, n_clusters=15, seed=3), semdedup(embeddings, n_clusters=15, seed=3))
    default = semdedup(embeddings)
    assert len(np.unique(default.cluster)) <= round(np.sqrt(len(embeddings) / 2))


def test_chain_compares_only_with_kept_items():
    e0, e1 = np.eye(D, dtype=np.float32)[:2]
    a, b, c = e0, unit(e0 + 0.25 * e1), unit(e0 + 0.5 * e1)
    assert a @ b >= 0.95 and b @ c >= 0.95 and a @ c < 0.95
    for result in (range_dedup(np.stack([a, b, c]), 0.95), semdedup(np.stack([a, b, c]), 0.05, n_clusters=1)):
        np.testing.assert_array_equal(result.duplicate_of, [-1, 0, -1])
    # first seen wins: with the order reversed the middle one is dropped in favour of c
    np.testing.assert_array_equal(range_dedup(np.stack([c, b, a]), 0.95).duplicate_of, [-1, 0, -1])


def test_most_similar_kept_item_wins_ties_go_to_the_earliest():
    e = np.eye(D, dtype=np.float32)
    near_second = unit(e[0] + 1.2 * e[1])
    both = unit(e[0] + e[1])
    result = range_dedup(np.stack([e[0], e[1], near_second, both]), threshold=0.7)
    np.testing.assert_array_equal(result.duplicate_of, [-1, -1, 1, 0])


def test_empty_and_single_inputs():
    for n in (0, 1):
        embeddings = unit(np.ones((n, D))) if n else np.zeros((0, D), dtype=np.float32)
        for result in (range_dedup(embeddings, 0.9), semdedup(embeddings)):
            assert result.duplicate_of.shape == (n,) and result.kept.all()
    with pytest.raises(ValueError):
        range_dedup(np.ones(D, dtype=np.float32), 0.9)


def test_range_dedup_asks_the_pair_rule_only_below_the_threshold():
    """Cosines 0.95 (a-b) and 0.8 (a-c, b-c); the rule sees only the 0.8 pairs and decides them."""
    axis = np.eye(3, dtype=np.float32)
    a, b = axis[0], 0.95 * axis[0] + np.sqrt(1 - 0.95**2) * axis[1]
    c = 0.8 * axis[0] + 0.6 * axis[2]
    asked = []

    class Rule:
        low = 0.7

        def __call__(self, rows, cols):
            asked.extend(zip(rows.tolist(), cols.tolist()))
            return np.ones(len(rows), dtype=bool)

    result = range_dedup(np.stack([a, b, c]), threshold=0.9, confirm=Rule())
    np.testing.assert_array_equal(result.duplicate_of, [-1, 0, 0])
    assert (2, 0) in asked and (1, 0) not in asked
    assert range_dedup(np.stack([a, b, c]), threshold=0.9).duplicate_of.tolist() == [-1, 0, -1]
