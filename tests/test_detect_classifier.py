"""The trainable detector: scikit-learn shape, save/load round trip, abstaining, embeddings."""

import numpy as np
import pytest
from conftest import tiny_samples

from guard.detect.calibrate import auroc
from guard.detect.classifier import COMPACT, MachineTextClassifier
from guard.detect.zeroshot import FEATURES, STATISTICS, ZeroShotScorer
from guard.errors import GuardError


class HashEmbedder:
    """A stand-in for ``guard.models.embedder.Embedder``: 4 numbers per text from its characters."""

    model_id = "hash-embedder"
    dim = 4

    def encode(self, texts):
        return np.array([[len(t), t.count(" "), t.count("e"), t.count(".")] for t in texts], dtype=np.float32)


@pytest.fixture(scope="module")
def texts(tiny_lm, stdlib_texts):
    human = [text[:300] for text in stdlib_texts if len(text) >= 200][:60]
    machine = tiny_samples(tiny_lm, [text[:25] for text in human], seed=2)
    return human, machine


def _fit(scorer, texts, embedder=None, **settings) -> MachineTextClassifier:
    human, machine = texts
    labels = [0] * 30 + [1] * 30
    return MachineTextClassifier(scorer, embedder, **settings).fit(human[:30] + machine[:30], labels)


def test_fit_predict_save_load(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    model = _fit(scorer, texts)
    assert model.feature_names_ == [*STATISTICS, "log1p_tokens_scored"]
    assert model.coef_.shape == model.model_.mean_.shape == (len(STATISTICS) + 1,) and model.n_train_ == (
        30,
        30,
    )
    human, machine = texts
    p_human, p_machine = model.predict_proba(human[30:])[:, 1], model.predict_proba(machine[30:])[:, 1]
    assert auroc(p_human, p_machine) > 0.95  # held-out texts
    proba = model.predict_proba(human[30:35])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict(machine[30:35]).tolist() == [1] * 5
    model.save(tmp_path / "clf")
    loaded = MachineTextClassifier.load(tmp_path / "clf", scorer)
    np.testing.assert_allclose(loaded.predict_proba(human[30:]), model.predict_proba(human[30:]), rtol=1e-12)
    assert loaded.C == model.C and loaded.n_train_ == model.n_train_


def test_too_short_texts_get_no_probability(tiny_lm, texts):
    model = _fit(ZeroShotScorer(tiny_lm, min_tokens=20), texts)
    proba = model.predict_proba(["short", texts[0][0]])
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1]).all()


def test_embedding_features_are_appended_and_must_match_on_load(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    model = _fit(scorer, texts, HashEmbedder(), embedding_vectors=True)
    assert model.coef_.shape == (len(STATISTICS) + 1 + 4,) and model.feature_names_[-1] == "embedding_3"
    model.save(tmp_path / "clf")
    loaded = MachineTextClassifier.load(tmp_path / "clf", scorer, HashEmbedder())
    np.testing.assert_allclose(loaded.predict_proba(texts[0][:5]), model.predict_proba(texts[0][:5]))
    other = HashEmbedder()
    other.model_id = "another"
    with pytest.raises(GuardError, match="trained with the embedder hash-embedder"):
        MachineTextClassifier.load(tmp_path / "clf", scorer, other)


def test_errors(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    with pytest.raises(GuardError, match="not fitted"):
        MachineTextClassifier(scorer).predict_proba(["text"])
    with pytest.raises(GuardError, match="one label per text"):
        MachineTextClassifier(scorer).fit(texts[0][:3], [0, 1])
    with pytest.raises(GuardError, match="human and machine texts"):
        MachineTextClassifier(scorer).fit(texts[0][:3], [0, 0, 0])
    with pytest.raises(GuardError, match="no such file"):
        MachineTextClassifier.load(tmp_path / "nothing", scorer)
    _fit(scorer, texts).save(tmp_path / "clf")
    with pytest.raises(GuardError, match="max_tokens"):
        MachineTextClassifier.load(tmp_path / "clf", ZeroShotScorer(tiny_lm, max_tokens=64))


def test_the_mlp_head_flags_both_tails_where_logistic_cannot(tiny_lm):
    """Machine texts sit on both sides of the human band of one feature (too predictable and
    too surprising): no single direction separates them, one hidden layer does."""
    rng = np.random.default_rng(0)
    n = 400
    human = rng.normal(0.0, 1.0, n)
    machine = np.concatenate([rng.normal(-4.0, 1.0, n // 2), rng.normal(4.0, 1.0, n // 2)])
    table = np.zeros((2 * n, len(COMPACT)))
    table[:, 0] = np.concatenate([human, machine])
    table[:, 1:] = rng.normal(size=(2 * n, len(COMPACT) - 1))  # noise features
    labels = np.array([0] * n + [1] * n)
    train, test = np.arange(2 * n) % 2 == 0, np.arange(2 * n) % 2 == 1
    figures = {}
    for head in ("logistic", "mlp"):
        model = MachineTextClassifier(ZeroShotScorer(tiny_lm), features="compact", head=head)
        scores = model.fit_features(table[train], labels[train]).decision_from_features(table[test])
        figures[head] = auroc(scores[labels[test] == 0], scores[labels[test] == 1])
    assert figures["mlp"] > 0.97 and figures["logistic"] < 0.65


def test_mlp_round_trip_keeps_the_threshold(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    human, machine = texts
    model = MachineTextClassifier(scorer, features="profile", head="mlp", hidden=8)
    model.fit(human[:30] + machine[:30], [0] * 30 + [1] * 30)
    assert model.feature_names_ == list(FEATURES) and model.threshold_ == 0.0
    model.threshold_ = 1.25
    model.save(tmp_path / "mlp")
    loaded = MachineTextClassifier.load(tmp_path / "mlp", scorer)
    np.testing.assert_allclose(
        loaded.decision_function(human[30:]), model.decision_function(human[30:]), rtol=1e-12
    )
    assert loaded.threshold_ == 1.25 and loaded.head == "mlp"
    log_odds = loaded.decision_function(machine[30:])
    assert loaded.predict(machine[30:]).tolist() == (log_odds > 1.25).astype(int).tolist()


def test_a_version_1_file_still_loads(tiny_lm, texts, tmp_path):
    """Classifiers saved before the profile features (logistic regression on the statistics,
    keys coef/intercept) give the same log-odds when loaded now."""
    import json

    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    model = _fit(scorer, texts)
    model.save(tmp_path / "v2")
    state = json.loads((tmp_path / "v2" / "classifier.json").read_text())
    old = {
        key: state[key]
        for key in ("C", "max_iter", "scorer", "embedding_model", "feature_names", "mean", "scale")
    }
    old.update(version=1, coef=[row[0] for row in state["weights"][0]], intercept=state["biases"][0][0])
    old["n_train"] = state["n_train"]
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "classifier.json").write_text(json.dumps(old))
    loaded = MachineTextClassifier.load(tmp_path / "v1", scorer)
    np.testing.assert_allclose(loaded.decision_function(texts[0][:5]), model.decision_function(texts[0][:5]))


def test_sample_weights_change_the_fit(tiny_lm):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(200, len(FEATURES)))
    labels = (table[:, 0] + rng.normal(size=200) > 0).astype(int)
    weights = np.where(table[:, 1] > 0, 10.0, 0.1)
    plain = MachineTextClassifier(ZeroShotScorer(tiny_lm), features="profile").fit_features(table, labels)
    weighted = MachineTextClassifier(ZeroShotScorer(tiny_lm), features="profile").fit_features(
        table, labels, weights
    )
    assert not np.allclose(plain.coef_, weighted.coef_)


class TopicEmbedder:
    """A stand-in embedder whose vector counts topic words: 'lobster' and 'cathedral' texts
    point in orthogonal directions, so a text that changes topic midway has coherence 0."""

    model_id = "topic-embedder"
    dim = 2

    def encode(self, texts):
        rows = np.array([[t.count("lobster"), t.count("cathedral")] for t in texts], dtype=np.float32) + 1e-3
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_semantic_coherence_compares_the_two_halves():
    from guard.detect.coherence import parts, semantic_coherence

    assert parts("a b c d e", 2) == ["a b", "c d e"]
    on_topic = "the lobster hides . the lobster eats . a lobster grows . the lobster moults"
    derails = "the lobster hides . the lobster eats . the cathedral spire . a cathedral nave"
    coherence = semantic_coherence(TopicEmbedder(), [on_topic, derails, "one"])
    assert coherence[0] == pytest.approx(1.0, abs=1e-4) and coherence[1] == pytest.approx(0.0, abs=1e-2)
    assert np.isnan(coherence[2])


def test_semantic_feature_sets_need_an_embedder_and_save_its_name(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    with pytest.raises(GuardError, match="coherent_semantic features need an embedder"):
        MachineTextClassifier(scorer, features="coherent_semantic")
    model = _fit(scorer, texts, TopicEmbedder(), features="coherent_semantic", head="mlp", hidden=4)
    assert model.feature_names_[-1] == "semantic_coherence" and len(model.model_.mean_) == len(
        model.feature_names_
    )
    model.save(tmp_path / "clf")
    loaded = MachineTextClassifier.load(tmp_path / "clf", scorer, TopicEmbedder())
    assert not loaded.embedding_vectors
    np.testing.assert_allclose(loaded.decision_function(texts[1][:5]), model.decision_function(texts[1][:5]))
    plain = _fit(scorer, texts, TopicEmbedder())  # an embedder given but not used is not recorded
    plain.save(tmp_path / "plain")
    assert MachineTextClassifier.load(tmp_path / "plain", scorer).embedder is None


def test_two_sided_head_with_the_quarters_feature_round_trips(tiny_lm, texts, tmp_path):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=20)
    model = _fit(scorer, texts, TopicEmbedder(), features="drift", head="two_sided", hidden=4)
    assert model.feature_names_[-1] == "semantic_coherence_quarters"
    model.save(tmp_path / "clf")
    loaded = MachineTextClassifier.load(tmp_path / "clf", scorer, TopicEmbedder())
    assert loaded.head == "two_sided" and loaded.n_train_ == model.n_train_ and model.n_train_[0] == 30
    probe = texts[0][30:35] + texts[1][30:35]
    np.testing.assert_allclose(loaded.decision_function(probe), model.decision_function(probe), rtol=1e-12)
