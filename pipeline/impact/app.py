"""μ-product 5, `nbo run impact`: the impact report kept up to date from the topics and logged
to MLflow, as metrics over time and a plot, one run per process.

Source: `next_best_offers` (every decision with its group) and `feedback` (the labels); sink:
MLflow, and the dead letters for a record it cannot read. It is a process of its own rather than
part of the learner: the report needs every decision, shown or not, as its denominator, while
the learner reads labels only, under offsets its models carry. It keeps no state: at start it
reads both topics from their beginning (their retention bounds how far back the report goes),
so a restart, or a second one, reports the same. Like every μ-product it serves its metrics and
probes on `NBO_METRICS_PORT`, and stops, saying where, if its reading stalls.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from confluent_kafka import Message
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from pipeline.impact.reading import SOURCES, STAGE, apply
from pipeline.impact.report import GroupFigures, ImpactReport
from pipeline.kafka.clients import reader_from_start
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, parse
from pipeline.kafka.progress import ReaderProbe, watched
from pipeline.monitoring import metrics
from pipeline.monitoring.server import serving
from pipeline.review.tracking import RunTracker
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def metric_values(report: ImpactReport) -> dict[str, float]:
    """The report as MLflow metrics: per group and per lift, the estimate and its interval."""
    values: dict[str, float] = {}
    for group in report.groups():
        values[f"decisions/{group.name}"] = group.decisions
        for what, estimate in (("value", group.value), ("acceptance", group.acceptance)):
            values[f"{what}/{group.name}"] = estimate.mean
            values[f"{what}_low/{group.name}"] = estimate.low
            values[f"{what}_high/{group.name}"] = estimate.high
    for lift in report.lifts():
        values[f"lift/{lift.baseline}"] = lift.absolute.mean
        values[f"lift_low/{lift.baseline}"] = lift.absolute.low
        values[f"lift_high/{lift.baseline}"] = lift.absolute.high
        if lift.relative.mean == lift.relative.mean:  # not NaN: the baseline earned something
            values[f"relative_lift/{lift.baseline}"] = lift.relative.mean
    return values


def impact_figure(history: list[tuple[int, list[GroupFigures]]]) -> Figure:
    """Each group's value per decision, with its 95% interval, as decisions came."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    names = sorted({group.name for _, groups in history for group in groups})
    for name in names:
        points = [(n, g.value) for n, groups in history for g in groups if g.name == name]
        steps = [n for n, _ in points]
        axes.plot(steps, [v.mean for _, v in points], label=name)
        axes.fill_between(steps, [v.low for _, v in points], [v.high for _, v in points],
                          alpha=0.2)  # fmt: skip
    axes.set_xlabel("decisions")
    axes.set_ylabel("value earned per decision")
    axes.set_title("impact: the model (treatment) against the control group's baselines")
    axes.legend()
    figure.tight_layout()
    return figure


class ImpactFollower:
    """Reads decisions and labels into the report from the topics' beginning; a record it
    cannot read goes to the dead letters with the reason, and it reads on."""

    def __init__(
        self, settings: Settings, bootstrap: str, dead_letters: DeadLetterProducer
    ) -> None:
        self.report = ImpactReport()
        self.progress = ReaderProbe(settings, bootstrap, STAGE, SOURCES)  # its position, watched
        self._dead_letters = dead_letters
        self._consumer, self._names = reader_from_start(
            settings, bootstrap, SOURCES, f"{settings.topic_prefix}-impact"
        )
        self._partitions = self._consumer.assignment()  # assigned once, never rebalanced
        metrics.expect_dead_letters(STAGE, self._names)
        self._read = {name: metrics.RECORDS_IN.labels(STAGE, name) for name in SOURCES}

    def read(self, timeout: float) -> int:
        """What came within `timeout`, added; how many records that was."""
        messages = self._consumer.consume(num_messages=1000, timeout=timeout)
        self._read_messages(messages)
        self.progress.report(self._consumer.position(self._partitions))
        return len(messages)

    def _read_messages(self, messages: list[Message]) -> None:
        for message in messages:
            if message.error() is not None:
                continue
            key = message.key()
            text = key.decode(errors="replace") if key is not None else None
            origin = Origin(message.topic() or "", message.partition(), message.offset(), text)
            self._read[self._names[origin.topic]].inc()
            parsed = parse(message.value(), text, self._names, SOURCES, STAGE, origin)
            if parsed.dead is not None:
                log.warning("dead letter from %s: %s", origin, parsed.dead["reason"])
                self._dead_letters.send(parsed.dead)
            elif parsed.record is not None:
                apply(self.report, parsed.record)

    def close(self) -> None:
        self._consumer.close()


class ImpactLog:
    """The report's MLflow run: its figures every `interval` seconds, the plot at the end."""

    def __init__(self, settings: Settings) -> None:
        self._interval = settings.impact_log_interval
        self._logged_at = time.monotonic()
        self._history: list[tuple[int, list[GroupFigures]]] = []
        self._tracker = (
            RunTracker(
                settings.mlflow_tracking_uri,
                settings.mlflow_artifacts_dir,
                run_name=f"impact-{time.strftime('%Y%m%d-%H%M%S')}",
                params={
                    "control_share": settings.control_share,
                    "control_baselines": settings.control_baselines,
                },
            )
            if settings.mlflow_tracking
            else None
        )

    def due(self) -> bool:
        return time.monotonic() - self._logged_at >= self._interval

    def log(self, report: ImpactReport) -> None:
        self._logged_at = time.monotonic()
        groups = report.groups()
        decisions = sum(group.decisions for group in groups)
        if not decisions or (self._history and self._history[-1][0] == decisions):
            return  # nothing new
        self._history.append((decisions, groups))
        if self._tracker is not None:
            self._tracker.log_metrics(metric_values(report), step=decisions)

    def finish(self, report: ImpactReport) -> None:
        self.log(report)
        if self._tracker is not None and self._history:
            figure = impact_figure(self._history)
            self._tracker.log_figure(figure, "plots/impact.png")
            plt.close(figure)
        if self._tracker is not None:
            self._tracker.end()


def run(settings: Settings, bootstrap: str) -> None:
    """Follow the topics and log the report until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    dead_letters = DeadLetterProducer(settings, bootstrap)
    follower = ImpactFollower(settings, bootstrap, dead_letters)
    impact_log = ImpactLog(settings)
    log.info("impact: reading %s from their beginning", ", ".join(SOURCES))
    try:
        with (
            serving(settings, STAGE) as probes,
            watched(settings, bootstrap, STAGE, SOURCES, stop.set, probes, follower.progress),
        ):
            while not stop.is_set():
                follower.read(timeout=0.5)
                if impact_log.due():
                    impact_log.log(follower.report)
    finally:
        impact_log.finish(follower.report)
        dead_letters.flush()
        follower.close()
