"""The review plots of a ranker run, as matplotlib figures (logged to MLflow by the tracker)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in a stream process or in CI

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from models.evaluation import StreamMetrics
from models.ranker import OnlineRanker


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


def review_figures(metrics: StreamMetrics, ranker: OnlineRanker) -> dict[str, Figure]:
    """Every review plot, by its artifact file name."""
    figures = {
        "acceptance_over_time.png": acceptance_over_time(metrics),
        "calibration.png": calibration(metrics),
        "largest_weights.png": largest_weights(ranker),
    }
    if metrics.phases:  # counted where decisions are made, not where labels are learned
        figures["phase_mix.png"] = phase_mix(metrics)
    return figures
