"""What a running ranker measures about itself, for review in MLflow.

Progressive validation with delayed labels: a label that arrives hours after its decision is
scored against the P(accept) the model gave *at decision time* (kept with the pending decision),
then learned. So log loss and ROC AUC are out-of-sample for every label.

>>> metrics = StreamMetrics()
>>> metrics.decided(["primary", "secondary"])
>>> metrics.labelled(0.8, True, after_hours=2.0); metrics.labelled(0.3, False, 50.0)
>>> metrics.rewarded(120.0); metrics.rewarded(0.0)
>>> snapshot = metrics.snapshot()
>>> snapshot["acceptance_rate"], snapshot["reward_per_decision"], snapshot["roc_auc"]
(0.5, 60.0, 1.0)
>>> snapshot["hours_to_positive_label"], snapshot["hours_to_negative_label"]
(2.0, 50.0)

The two label delays say whether the model learns from a biased sample: when acceptances are
told within hours and silence only once the response window has passed, the labels learned at
any moment over-represent acceptances of what was shown lately, and the model rates its own
recent choices too high until their negatives arrive.
"""

from __future__ import annotations

from collections import Counter

from river import metrics as river_metrics

from features.offer_features import DOCUMENTED_CURVE

CALIBRATION_BINS = 10


class StreamMetrics:
    """Counts and progressive metrics; one owner (the ranker), updated in the stream."""

    def __init__(self) -> None:
        self.decisions = 0
        self.labels = 0
        self.accepted = 0
        self.rewarded_rounds = 0
        self.reward = 0.0
        self.phases: Counter[str] = Counter()
        self.log_loss = river_metrics.LogLoss()
        self.roc_auc = river_metrics.ROCAUC()
        # per bin of predicted P(accept): [sum of predictions, positives, labels]
        self.calibration = [[0.0, 0, 0] for _ in range(CALIBRATION_BINS)]
        self.acceptance_curve: list[tuple[int, float]] = []  # (labels so far, acceptance)
        self._window = [0, 0]  # labels, positives since the last curve point
        # per label (negative, positive): [hours from decision to label, summed; labels]
        self._label_hours: list[list[float]] = [[0.0, 0], [0.0, 0]]
        # per (offer, category): the documented curve's value in each phase its labels had
        self.documented_curves: dict[tuple[str, str], dict[str, float]] = {}

    def decided(self, phases: list[str]) -> None:
        """A decision was emitted with offers in these interest phases."""
        self.decisions += 1
        self.phases.update(phases)

    def labelled(self, predicted: float, accepted: bool, after_hours: float) -> None:
        """A shown offer got its label, `after_hours` after its decision; `predicted` is
        P(accept) from decision time."""
        self.labels += 1
        delay = self._label_hours[int(accepted)]
        delay[0] += max(after_hours, 0.0)
        delay[1] += 1
        self.accepted += int(accepted)
        self.log_loss.update(accepted, predicted)
        self.roc_auc.update(accepted, predicted)
        bin_ = self.calibration[min(int(predicted * CALIBRATION_BINS), CALIBRATION_BINS - 1)]
        bin_[0] += predicted
        bin_[1] += int(accepted)
        bin_[2] += 1
        self._window[0] += 1
        self._window[1] += int(accepted)
        if self._window[0] == 500:
            self.acceptance_curve.append((self.labels, self._window[1] / self._window[0]))
            self._window = [0, 0]

    def curve_seen(self, offer_id: str, features: dict[str, float]) -> None:
        """A label of `offer_id` with these features: where the offer stood on the documented
        curve (what the review sets the learned curve beside), if its feature set gives it."""
        documented = features.get(DOCUMENTED_CURVE)
        if documented is None:
            return
        # the offer's category and phase, as its features alone name them
        found = dict(name.split("=", 1) for name in features if "×" not in name and "=" in name)
        if {"category", "phase"} <= found.keys():
            offer = (offer_id, found["category"])
            self.documented_curves.setdefault(offer, {})[found["phase"]] = documented

    def rewarded(self, reward: float, late: bool = False) -> None:
        """The first offer of a shown decision was resolved with this reward (value if taken);
        `late`: accepted after its silence was resolved with none, in the same round."""
        if not late:
            self.rewarded_rounds += 1
        self.reward += reward

    def snapshot(self) -> dict[str, float]:
        values = {"decisions": float(self.decisions), "labels": float(self.labels)}
        if self.labels:
            values["acceptance_rate"] = self.accepted / self.labels
            values["log_loss"] = self.log_loss.get()
            values["roc_auc"] = float(self.roc_auc.get())
        if self.rewarded_rounds:
            values["reward_per_decision"] = self.reward / self.rewarded_rounds
        for name, (hours, count) in zip(("negative", "positive"), self._label_hours, strict=True):
            if count:
                values[f"hours_to_{name}_label"] = hours / count
        return values
