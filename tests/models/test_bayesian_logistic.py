import copy
import pickle

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
    # the update alone: a prior learned for a group may widen its weights (see below)
    rng = np.random.default_rng(3)
    model = BayesianLogisticRegression(relevance_every=0)
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


def _labels_by_one_field(rng: np.random.Generator, count: int) -> list[tuple[dict, bool]]:
    """Acceptance depends on the customer's colour, offer by offer, and not at all on their
    tenure band: both are crossed with the offer, as nbo's every-field features are."""
    colours, tenures, offers = ("red", "green", "blue"), range(6), ("a", "b", "c", "d")
    effect = {(c, o): rng.normal(0.0, 1.5) for c in colours for o in offers}
    rows = []
    for _ in range(count):
        colour, tenure, offer = rng.choice(colours), rng.choice(tenures), rng.choice(offers)
        x = {f"offer={offer}": 1.0, f"colour={colour}×offer={offer}": 1.0,
             f"tenure~{tenure}×offer={offer}": 1.0}  # fmt: skip
        p = sigmoid(-1.0 + effect[colour, offer])
        rows.append((x, bool(rng.random() < p)))
    return rows


def test_a_field_that_matters_gets_a_wider_prior_and_one_that_does_not_a_narrower() -> None:
    model = BayesianLogisticRegression(relevance_every=500)
    for x, y in _labels_by_one_field(np.random.default_rng(5), 6000):
        model.learn_one(x, y)
    priors = model.group_priors
    assert priors["colour×offer"] < model.prior_precision < priors["tenure×offer"]
    # a weight of the group never seen yet starts from its group's prior, not the first one
    assert model.variance_of("colour=violet×offer=a") == pytest.approx(1 / priors["colour×offer"])
    assert model.variance_of("tenure~9×offer=a") == pytest.approx(1 / priors["tenure×offer"])
    assert "offer" not in priors  # four weights only: too few to say how spread they are


def test_a_new_prior_keeps_what_the_labels_taught_each_weight() -> None:
    rows = _labels_by_one_field(np.random.default_rng(8), 1000)
    fixed, learning = BayesianLogisticRegression(relevance_every=0), None
    for index, (x, y) in enumerate(rows):
        if index == len(rows) - 1:  # the same model, but this label also re-learns the priors
            learning = copy.deepcopy(fixed)
            learning.relevance_every = len(rows)
            learning.learn_one(x, y)
        fixed.learn_one(x, y)
    assert learning is not None and learning.group_priors and not fixed.group_priors
    for name, mean in fixed.weights.items():
        taught = 1 / fixed.variance_of(name) - fixed.prior_precision
        precision = 1 / learning.variance_of(name)
        assert precision - learning.prior_of(name) == pytest.approx(taught, abs=1e-9)
        assert learning.weights[name] * precision == pytest.approx(mean / fixed.variance_of(name))


def test_without_relevance_every_weight_keeps_one_prior() -> None:
    model = BayesianLogisticRegression(relevance_every=0)
    for x, y in _labels_by_one_field(np.random.default_rng(5), 3000):
        model.learn_one(x, y)
    assert model.group_priors == {}
    assert model.variance_of("colour=violet×offer=a") == 1 / model.prior_precision


def test_a_model_pickled_before_priors_were_learned_goes_on_with_one_prior() -> None:
    model = BayesianLogisticRegression(relevance_every=0)
    for x, y in _labels_by_one_field(np.random.default_rng(5), 300):
        model.learn_one(x, y)
    for added in ("relevance_every", "_group_precision", "_labels", "refit_every", "refit_window"):
        del model.__dict__[added]  # what an older model's pickle holds
    restored = pickle.loads(pickle.dumps(model))
    assert restored.relevance_every == 0 and restored.group_priors == {}
    assert restored.refit_every == 0
    x = {"offer=a": 1.0, "colour=red×offer=a": 1.0}
    assert restored.predict_proba_one(x) == model.predict_proba_one(x)
    restored.learn_one(x, True)


def test_relevance_every_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="relevance_every"):
        BayesianLogisticRegression(relevance_every=-1)


def _random_rows(seed: int, count: int) -> list[tuple[dict[str, float], bool]]:
    """Rows of 3 to 6 of 12 features, labelled by a logistic truth."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 1.0, 12)
    rows = []
    for _ in range(count):
        chosen = rng.choice(12, size=int(rng.integers(3, 7)), replace=False)
        values = rng.uniform(0.5, 1.5, len(chosen))
        p = sigmoid(float(truth[chosen] @ values) - 1.0)
        rows.append(
            ({f"f{i}": float(v) for i, v in zip(chosen, values, strict=True)}, rng.random() < p)
        )
    return rows


def test_a_refit_puts_the_weights_at_the_maximum_of_the_windows_posterior() -> None:
    rows = _random_rows(4, 400)
    model = BayesianLogisticRegression(prior_precision=3.0, relevance_every=0, refit_every=400)
    for x, y in rows:
        model.learn_one(x, y)
    names = [f"f{i}" for i in range(12)]
    design = np.array([[x.get(name, 0.0) for name in names] + [1.0] for x, _ in rows])
    labels = np.array([y for _, y in rows], dtype=float)
    w = np.array([model.weights[name] for name in names] + [model.intercept])
    p = 1 / (1 + np.exp(-design @ w))
    gradient = design.T @ (p - labels) + 3.0 * w  # of the negative log posterior, prior N(0, 1/3)
    assert np.abs(gradient).max() < 1e-3
    # each precision: the prior's and the labels' curvature at that maximum (Laplace, diagonal)
    curvature = (design**2).T @ (p * (1 - p))
    assert [1 / model.variance_of(name) for name in names] == pytest.approx(3.0 + curvature[:12])


def test_after_a_refit_the_order_of_the_labels_no_longer_matters() -> None:
    rows = _random_rows(6, 600)
    ordered = sorted(rows, key=lambda row: row[1])  # every refusal first: the worst order
    for refit_every, apart in ((0, True), (600, False)):
        first, last = (
            BayesianLogisticRegression(relevance_every=0, refit_every=refit_every) for _ in range(2)
        )
        for x, y in ordered:
            first.learn_one(x, y)
        for x, y in reversed(ordered):
            last.learn_one(x, y)
        gap = max(abs(first.weights[n] - last.weights[n]) for n in first.weights)
        assert (gap > 0.1) is apart, (refit_every, gap)
        if not apart:
            assert gap < 1e-4


def test_a_full_window_becomes_the_prior_of_the_next() -> None:
    rows = _random_rows(2, 500)
    model = BayesianLogisticRegression(relevance_every=0, refit_every=100, refit_window=200)
    seen = []
    for x, y in rows:
        model.learn_one(x, y)
        seen.append(model.labels_in_window)
    assert seen[99] == 100 and seen[199] == 0 and seen[200] == 1 and seen[-1] == 100
    # a window's refit starts from the posterior the last one ended with, not from the prior:
    # refit windows of 100 end far nearer one refit over all 500 than 100 labels alone would
    whole = BayesianLogisticRegression(relevance_every=0, refit_every=500)
    alone = BayesianLogisticRegression(relevance_every=0, refit_every=100)
    for x, y in rows:
        whole.learn_one(x, y)
    for x, y in rows[400:]:
        alone.learn_one(x, y)

    def gap(other: BayesianLogisticRegression) -> float:
        return max(abs(model.weights[n] - other.weights.get(n, 0.0)) for n in model.weights)

    assert gap(whole) < 0.5 * gap(alone)


def test_a_pickle_leaves_the_window_out_and_the_copy_goes_on_from_its_posterior() -> None:
    rows = _random_rows(3, 1500)
    model = BayesianLogisticRegression(relevance_every=0, refit_every=500, refit_window=5000)
    for x, y in rows[:1200]:
        model.learn_one(x, y)
    small = BayesianLogisticRegression(relevance_every=0, refit_every=500, refit_window=5000)
    for x, y in rows[:100]:
        small.learn_one(x, y)
    assert len(pickle.dumps(model)) < 1.5 * len(pickle.dumps(small))  # weights, not labels
    restored = pickle.loads(pickle.dumps(model))
    assert model.labels_in_window == 1200 and restored.labels_in_window == 0
    x = rows[0][0]
    assert restored.predict_proba_one(x) == model.predict_proba_one(x)
    for x, y in rows[1200:]:
        restored.learn_one(x, y)
    assert restored.labels_in_window == 300


@pytest.mark.parametrize(("refit_every", "refit_window"), [(-1, 100), (200, 100)])
def test_refit_settings_must_make_sense(refit_every: int, refit_window: int) -> None:
    with pytest.raises(ValueError, match="refit"):
        BayesianLogisticRegression(refit_every=refit_every, refit_window=refit_window)
