import numpy as np
import pytest

from models.bayesian_logistic import BayesianLogisticRegression, sigmoid


def _dense_laplace_step(
    prior_variance: np.ndarray, x: np.ndarray, y: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One Newton step from a zero-mean Gaussian prior with this (diagonal) covariance, the
    posterior's covariance as the full matrix: what the diagonal model approximates."""
    covariance = np.diag(prior_variance)
    p = sigmoid(0.0)
    curvature, error = p * (1 - p), p - float(y)
    row_variance = x @ covariance @ x
    posterior = covariance - np.outer(covariance @ x, x @ covariance) * curvature / (
        1 + curvature * row_variance
    )
    return -error * posterior @ x, posterior


@pytest.mark.parametrize("y", [True, False])
def test_a_label_is_one_newton_step_on_the_whole_row_not_one_per_weight(y: bool) -> None:
    # 20 features and the intercept, each of prior variance 1/5: stepping each weight by its own
    # Newton step would move this row's logit by 0.5 × its variance (about 4.6), over twice as
    # far as the step for the row as a whole
    values = np.random.default_rng(7).uniform(0.5, 1.5, 20)
    x = {f"f{i}": float(v) for i, v in enumerate(values)}
    model = BayesianLogisticRegression(prior_precision=5.0)
    model.learn_one(x, y)

    mean, covariance = _dense_laplace_step(np.full(21, 1 / 5.0), np.append(values, 1.0), y)
    assert [model.weights[f"f{i}"] for i in range(20)] == pytest.approx(mean[:20], rel=1e-9)
    assert model.intercept == pytest.approx(mean[20], rel=1e-9)
    assert [model.variance_of(f"f{i}") for i in range(20)] == pytest.approx(
        np.diag(covariance)[:20], rel=1e-9
    )
    logit = model.logit_posterior(x)[0]
    row_variance = float(values @ values / 5.0 + 1 / 5.0)
    assert abs(logit) == pytest.approx(0.5 * row_variance / (1 + 0.25 * row_variance))
    assert abs(logit) < 0.5 * (0.5 * row_variance)


def test_variances_only_shrink_and_stay_positive_over_many_labels() -> None:
    rng = np.random.default_rng(3)
    model = BayesianLogisticRegression()
    names = [f"f{i}" for i in range(30)]
    before = {name: model.variance_of(name) for name in names}
    for _ in range(2000):
        chosen = rng.choice(names, size=12, replace=False)
        x = {str(name): float(rng.normal()) for name in chosen}
        model.learn_one(x, bool(rng.random() < 0.3))
        after = {name: model.variance_of(name) for name in names}
        assert all(0 < after[name] <= before[name] for name in names)
        before = after
    assert max(before.values()) < 0.5 * (1 / model.prior_precision)


def test_a_feature_never_seen_keeps_the_prior() -> None:
    model = BayesianLogisticRegression(prior_precision=4.0)
    for i in range(50):
        model.learn_one({"offer=a": 1.0}, i % 2 == 0)
    assert model.variance_of("offer=new") == 0.25
    assert "offer=new" not in model.weights


def test_optimism_raises_each_logit_by_its_posterior_standard_deviations() -> None:
    model = BayesianLogisticRegression()
    for i in range(40):
        model.learn_one({"bias": 1.0, "offer=a": 1.0}, i % 3 == 0)
    shared = {"bias": 1.0}
    rows = [[shared, {"offer=a": 1.0}], [shared, {"offer=new": 2.0}]]
    levels = np.array([0.0, 0.5, 2.0])
    logits = model.sample_logits(rows, 3, np.random.default_rng(0), 0.0, optimism=levels)
    for column, row in enumerate(rows):
        mean, variance = model.logit_posterior({**row[0], **row[1]})
        assert logits[:, column] == pytest.approx(mean + levels * np.sqrt(variance), rel=1e-9)
    # one level for every draw, on top of the posterior's own spread
    spread = model.sample_logits(rows, 20_000, np.random.default_rng(1), 1.0, optimism=1.0)
    for column, row in enumerate(rows):
        mean, variance = model.logit_posterior({**row[0], **row[1]})
        assert spread[:, column].mean() == pytest.approx(mean + np.sqrt(variance), abs=0.03)
