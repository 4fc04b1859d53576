"""The review plots of a ranker run, as matplotlib figures (logged to MLflow by the tracker)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in a stream process or in CI

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from models.evaluation import StreamMetrics
from models.ranker import OnlineRanker
from pipeline.review.curves import PHASES, OfferCurve, learned_curves


def acceptance_over_time(metrics: StreamMetrics) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    if metrics.acceptance_curve:
        labels, acceptance = zip(*metrics.acceptance_curve, strict=True)
        axes.plot(labels, acceptance, marker="o")
    axes.set(xlabel="labels learned", ylabel="acceptance (last 500 labels)", title="Acceptance")
    return figure


def calibration(metrics: StreamMetrics) -> Figure:
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    points = [(s / n, positives / n, n) for s, positives, n in metrics.calibration if n]
    if points:
        predicted, observed, counts = zip(*points, strict=True)
        axes.scatter(predicted, observed, s=[10 + 200 * c / max(counts) for c in counts])
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(xlabel="predicted P(accept)", ylabel="observed acceptance", title="Calibration")
    return figure


def largest_weights(ranker: OnlineRanker, top: int = 15) -> Figure:
    figure, axes = plt.subplots(figsize=(7, 5))
    weights = sorted(ranker.weights().items(), key=lambda item: abs(item[1]), reverse=True)[:top]
    if weights:
        names, values = zip(*reversed(weights), strict=True)
        axes.barh(names, values, color=["tab:green" if v > 0 else "tab:red" for v in values])
    axes.set(title=f"Largest feature weights ({ranker.version})", xlabel="weight")
    figure.tight_layout()
    return figure


def phase_mix(metrics: StreamMetrics) -> Figure:
    figure, axes = plt.subplots(figsize=(4.5, 3.5))
    phases = sorted(metrics.phases)
    axes.bar(phases, [metrics.phases[p] for p in phases])
    axes.set(title="Interest phase of emitted offers", ylabel="offers")
    return figure


def curves(offers: list[OfferCurve], top: int = 12) -> Figure:
    """The documented and the learned share of each offer's primary-period odds, by phase, for
    the `top` offers whose learned curve differs most."""
    shown = list(reversed(offers[:top]))
    figure, axes = plt.subplots(1, len(PHASES), figsize=(10, 0.4 * len(shown) + 1.5), sharey=True)
    for column, phase in zip(axes, PHASES, strict=True):
        at = [i for i, offer in enumerate(shown) if phase in offer.learned]
        names = [shown[i].offer_id for i in at]
        column.barh([i - 0.2 for i in at], [shown[i].documented[phase] for i in at], height=0.4,
                    color="grey", label="documented")  # fmt: skip
        column.barh([i + 0.2 for i in at], [shown[i].learned[phase] for i in at], height=0.4,
                    color="tab:blue", label="learned")  # fmt: skip
        column.set_yticks(at, names)
        column.set(xscale="log", title=f"{phase}: share of the primary period",
                   xlabel="odds of acceptance, primary = 1")  # fmt: skip
    axes[0].legend(loc="lower right")
    figure.tight_layout()
    return figure


def review_figures(metrics: StreamMetrics, ranker: OnlineRanker) -> dict[str, Figure]:
    """Every review plot, by its artifact file name."""
    figures = {
        "acceptance_over_time.png": acceptance_over_time(metrics),
        "calibration.png": calibration(metrics),
        "largest_weights.png": largest_weights(ranker),
    }
    if metrics.phases:  # counted where decisions are made, not where labels are learned
        figures["phase_mix.png"] = phase_mix(metrics)
    if metrics.documented_curves:  # labels of a feature set with each offer's curve
        figures["learned_curves.png"] = curves(learned_curves(ranker, metrics.documented_curves))
    return figures
