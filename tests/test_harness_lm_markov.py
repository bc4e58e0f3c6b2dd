"""The Zipfian Markov language with known truth and the exact comparisons with it."""

import numpy as np
import pytest

from guard.harness.families._markov import MarkovLanguage, compare_with_truth

VOCAB, BRANCHING, EXPONENT, SEQ_LEN = 12, 4, 1.1, 10


@pytest.fixture(scope="module")
def language() -> MarkovLanguage:
    return MarkovLanguage(VOCAB, BRANCHING, EXPONENT, SEQ_LEN, seed=3)


def test_each_state_has_branching_zipf_successors(language):
    assert np.allclose(language.transition.sum(axis=1), 1.0)
    assert ((language.transition > 0).sum(axis=1) == BRANCHING).all()
    weights = np.arange(1, BRANCHING + 1) ** -EXPONENT
    for row in language.transition:
        assert np.allclose(np.sort(row[row > 0])[::-1], weights / weights.sum())
    # the rare transitions are the bottom half of each state's successors
    assert (language.rare.sum(axis=1) == BRANCHING - BRANCHING // 2).all()
    frequent = (language.transition > 0) & ~language.rare
    assert language.transition[language.rare].max() < language.transition[frequent].min()
    assert language.rare_share == pytest.approx((weights[BRANCHING // 2 :] / weights.sum()).sum())


def test_samples_follow_the_truth(language):
    tokens = language.sample(20_000, np.random.default_rng(0))
    assert tokens.shape == (20_000, SEQ_LEN) and not language.impossible(tokens).any()
    first = np.bincount(tokens[:, 0], minlength=VOCAB) / len(tokens)
    assert np.abs(first - language.start).max() < 0.015
    pairs = np.zeros((VOCAB, VOCAB))
    np.add.at(pairs, (tokens[:, :-1].ravel(), tokens[:, 1:].ravel()), 1)
    visited = pairs.sum(axis=1) > 2000
    empirical = pairs[visited] / pairs[visited].sum(axis=1, keepdims=True)
    assert np.abs(empirical - language.transition[visited]).max() < 0.03
    assert np.isfinite(language.token_log_probabilities(tokens)).all()


def test_an_impossible_transition_is_found_and_has_zero_probability(language):
    tokens = language.sample(3, np.random.default_rng(1))
    impossible_next = int(np.flatnonzero(language.transition[tokens[1, 4]] == 0)[0])
    tokens[1, 5] = impossible_next
    assert language.impossible(tokens).tolist() == [False, True, False]
    log_p = language.token_log_probabilities(tokens)
    assert log_p[1, 5] == -np.inf and np.isfinite(np.delete(log_p[1], 5)).all()


def test_the_truth_itself_is_at_distance_zero(language):
    contexts = language.sample(200, np.random.default_rng(2))
    with np.errstate(divide="ignore"):
        exact = np.log(language.next_token_probabilities(contexts))
    values = compare_with_truth(language, contexts, exact)
    assert values["kl_to_truth"] == pytest.approx(0.0, abs=1e-12)
    assert values["tail_mass"] == pytest.approx(1.0)
    assert values["invalid_mass"] == pytest.approx(0.0, abs=1e-12)


def test_a_uniform_model_matches_the_closed_forms(language):
    contexts = language.sample(200, np.random.default_rng(4))
    uniform = np.full((200, SEQ_LEN, VOCAB), -np.log(VOCAB))
    values = compare_with_truth(language, contexts, uniform)
    # KL(p || uniform) = log V - H(p): H(start) at position 0, H(successor weights) after
    entropy = lambda p: -(p[p > 0] * np.log(p[p > 0])).sum()  # noqa: E731
    expected_kl = (
        np.log(VOCAB) - (entropy(language.start) + (SEQ_LEN - 1) * entropy(language.transition[0])) / SEQ_LEN
    )
    assert values["kl_to_truth"] == pytest.approx(expected_kl)
    assert values["invalid_mass"] == pytest.approx((VOCAB - BRANCHING) / VOCAB)
    rare_per_state = BRANCHING - BRANCHING // 2
    assert values["tail_mass"] == pytest.approx(rare_per_state / VOCAB / language.rare_share)
