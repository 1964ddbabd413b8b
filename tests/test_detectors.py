"""Every detector through the same checks: the protocol, determinism, and real detection."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from services.scorer.detectors import ALL_DETECTORS, Detector


def planted_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated normal data to train on; a test set where 5% of rows are planted outliers."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(6, 6))
    train = rng.normal(size=(3000, 6)) @ mixing
    normal = rng.normal(size=(950, 6)) @ mixing
    outliers = rng.normal(size=(50, 6)) @ mixing + rng.choice([-1, 1], size=(50, 6)) * 6.0
    test = np.vstack([normal, outliers])
    labels = np.r_[np.zeros(950), np.ones(50)]
    return train, test, labels


# The autoencoder trains for seconds per check: its checks are in the slow tier (`make test`).
@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name == "autoencoder" else name
        for name in sorted(ALL_DETECTORS)
    ],
    ids=str,
)
def detector_cls(request: pytest.FixtureRequest) -> type[Detector]:
    return ALL_DETECTORS[request.param]


def test_follows_the_protocol(detector_cls: type[Detector]) -> None:
    detector = detector_cls(seed=1)
    assert isinstance(detector, Detector)
    assert detector.name in ALL_DETECTORS


def test_same_seed_same_scores(detector_cls: type[Detector]) -> None:
    train, test, _ = planted_outliers()
    first = detector_cls(seed=7).fit(train).score(test)
    second = detector_cls(seed=7).fit(train).score(test)
    np.testing.assert_allclose(first, second)
    assert first.shape == (len(test),) and np.isfinite(first).all()


def test_finds_planted_outliers(detector_cls: type[Detector]) -> None:
    train, test, labels = planted_outliers()
    scores = detector_cls(seed=3).fit(train).score(test)
    assert roc_auc_score(labels, scores) > 0.9


def test_learn_one_keeps_online_detectors_learning(detector_cls: type[Detector]) -> None:
    train, test, _ = planted_outliers()
    detector = detector_cls(seed=0).fit(train)
    before = detector.score(test[:5])
    for row in test[:600]:  # more than a Half-Space Trees window
        detector.learn_one(row)
    after = detector.score(test[:5])
    if detector_cls.name == "hst":
        assert not np.allclose(before, after), "an online detector changes as it learns"
    else:
        np.testing.assert_allclose(before, after)  # batch models learn only in fit


def test_half_space_trees_match_rivers_own_score_then_learn() -> None:
    from river import anomaly

    from services.scorer.detectors.hst import _Forest, feature_names

    rng = np.random.default_rng(3)
    X = rng.random(size=(1234, 5))
    reference = anomaly.HalfSpaceTrees(n_trees=5, height=6, window_size=100, seed=7)
    expected = []
    for row in X:  # twelve window pivots, and a batch that ends mid-window
        x = dict(zip(feature_names(5), row.tolist(), strict=True))
        expected.append(reference.score_one(x))
        reference.learn_one(x)
    forest = _Forest.from_river(
        anomaly.HalfSpaceTrees(n_trees=5, height=6, window_size=100, seed=7), 5
    )
    got = np.concatenate([forest.score_then_learn(X[i : i + 333]) for i in range(0, len(X), 333)])
    assert got == pytest.approx(expected, abs=1e-12)
    assert len(set(np.round(got, 6))) > 100  # real scores, not a constant
