"""`nbo replay`: logged feedback from other systems, replayed through nbo's features and model."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.synthetic import SyntheticBandit
from pipeline.cli.app import app
from pipeline.connectors.files import read_rows
from pipeline.errors import ConfigError, LoadError
from pipeline.offline.logged import LogMapping
from pipeline.offline.replay import replay_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "data" / "example_log"
RENAMED = {"timestamp": "ts", "offer_id": "item", "accepted": "clicked", "propensity": "p"}
MAPPING = "timestamp: ts\noffer_id: item\nreward: clicked\npropensity: p\n"


def write_log(path: Path, rows: list[dict]) -> None:
    renamed = [{RENAMED.get(k, k): v for k, v in row.items()} for row in rows]
    if path.suffix == ".csv":
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(renamed[0]))
            writer.writeheader()
            writer.writerows(renamed)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in renamed))


@pytest.fixture
def bandit_files(tmp_path: Path) -> tuple[SyntheticBandit, Path, Path, Path]:
    bandit = SyntheticBandit(seed=4)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(offer) + "\n" for offer in bandit.offers))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    return bandit, tmp_path / "log.jsonl", items, mapping


def test_the_learned_policy_is_estimated_better_than_logging_and_uniform(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    bandit, log, items, mapping = bandit_files
    write_log(log, bandit.log(4000, "uniform", seed=1))
    greedy = replay_file(log, items, mapping, policy="greedy")
    uniform = replay_file(log, items, mapping, policy="epsilon-greedy", epsilon=1.0)

    assert greedy.rounds_learned == len(greedy.log) == 4000 and not greedy.rejected
    assert greedy.model.version == "bayesian_logistic-4000"  # learned every row, in the replay
    assert greedy.uniform_logging and greedy.roc_auc > 0.6  # 0.5 is a coin flip
    learned = {e.estimator: e for e in greedy.estimates()}
    random_choice = {e.estimator: e for e in uniform.estimates()}
    for name in ("ips", "snips", "dr", "replay"):
        assert learned[name].low > learned["logging"].high, name
        assert learned[name].value > random_choice[name].value, name
    # a uniformly random target is the logging policy: every estimator agrees with it
    assert random_choice["ips"].value == pytest.approx(random_choice["logging"].value, abs=1e-9)
    # learning from scratch, the replayed greedy policy ends below the best one, above uniform
    assert bandit.true_value(bandit.uniform_policy) < learned["dr"].value
    assert learned["dr"].value < bandit.true_value(bandit.best_policy)


def test_bad_rows_are_reported_by_line_and_the_rest_is_replayed(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    bandit, _, items, mapping = bandit_files
    log = bandit_files[1].with_suffix(".csv")
    rows = bandit.log(50, "uniform", seed=2)
    rows[3]["propensity"] = 0
    rows[5]["offer_id"] = "o99"
    rows[7]["timestamp"] = "yesterday"
    rows[9]["accepted"] = ""
    write_log(log, rows)

    result = replay_file(log, items, mapping)

    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [5, 7, 9, 11]  # CSV line = row index + 2 (header)
    assert "propensity 0.0 not in (0, 1]" in reasons[5]
    assert "'o99' is not in the items file" in reasons[7]
    assert "column 'ts'" in reasons[9]
    assert "column 'clicked' is missing" in reasons[11]
    assert result.rounds_learned == 46


def test_a_mapping_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("timestamp: ts\nofer_id: item\n")
    with pytest.raises(LoadError, match="ofer_id"):
        LogMapping.from_file(mapping)


def test_the_command_on_the_shipped_example_prints_writes_json_and_logs_to_mlflow(
    tmp_path: Path,
) -> None:
    out = tmp_path / "replay.json"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(EXAMPLE / "log.csv"),
            "--items",
            str(EXAMPLE / "items.csv"),
            "--mapping",
            str(EXAMPLE / "mapping.yaml"),
            "--json",
            str(out),
        ],
        env={
            "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "NBO_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        },
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "replayed 4,000 shows" in result.output and "snips" in result.output
    report = json.loads(out.read_text())
    estimates = {e["estimator"]: e for e in report["estimates"]}
    assert set(estimates) == {"logging", "ips", "snips", "dr", "replay"}
    assert estimates["dr"]["low"] <= estimates["dr"]["value"] <= estimates["dr"]["high"]

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["nbo-ranker"])
    assert len(runs) == 1
    assert runs.iloc[0]["metrics.ope_dr"] == pytest.approx(estimates["dr"]["value"])


def _replay_command(tmp_path: Path, log: Path, items: Path, mapping: Path, *extra: str):  # type: ignore[no-untyped-def]
    """`nbo replay` as a user runs it: its own process, its exit code and both outputs."""
    env = {
        **os.environ,
        "COLUMNS": "400",  # one line per message
        "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "NBO_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    command = [sys.executable, "-m", "pipeline", "replay", str(log), "--items", str(items)]
    return subprocess.run(
        [*command, "--mapping", str(mapping), "--no-mlflow", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_reward_or_propensity_that_is_not_a_finite_number_is_rejected_by_line_and_column(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    bandit, log, items, mapping = bandit_files
    rows = bandit.log(40, "uniform", seed=3)
    rows[2]["accepted"] = float("nan")
    rows[4]["propensity"] = float("inf")
    log.write_text(
        "".join(json.dumps({RENAMED.get(k, k): v for k, v in row.items()}) + "\n" for row in rows)
    )
    result = replay_file(log, items, mapping)
    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [3, 5]
    assert "column 'clicked'" in reasons[3] and "not a finite number" in reasons[3]
    assert "column 'p'" in reasons[5] and "not a finite number" in reasons[5]
    assert all(math.isfinite(e.value) for e in result.estimates())


def test_csv_rows_are_reported_at_their_true_line_after_blank_lines_and_multi_line_fields(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    bandit = bandit_files[0]
    log = bandit_files[1].with_suffix(".csv")
    rows = bandit.log(6, "uniform", seed=5)
    rows[1]["note"] = "two\nlines"  # row 2 spans lines 3-4
    for row in rows:
        row.setdefault("note", "")
    write_log(log, rows)
    text = log.read_text().splitlines(keepends=True)
    text.insert(5, "\n")  # a blank line before the fourth row (now line 6 -> 7)
    log.write_text("".join(text))
    rows_seen = [number for number, _ in read_rows(log)]
    assert rows_seen == [2, 3, 5, 7, 8, 9]


def test_a_mapping_that_names_a_column_the_log_lacks_is_refused(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    bandit, log, items, mapping = bandit_files
    write_log(log, bandit.log(20, "uniform", seed=6))
    mapping.write_text(MAPPING + "context: {segment: customer_segment}\n")
    with pytest.raises(LoadError, match=r"context.segment → 'customer_segment'"):
        replay_file(log, items, mapping)


def test_nothing_to_evaluate_a_missing_file_and_few_rewards_are_said_plainly(
    tmp_path: Path, bandit_files: tuple[SyntheticBandit, Path, Path, Path]
) -> None:
    bandit, log, items, mapping = bandit_files
    rows = bandit.log(20, "uniform", seed=7)
    write_log(log, [{**row, "propensity": 2.0} for row in rows])  # every row rejected
    nothing = _replay_command(tmp_path, log, items, mapping)
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert "nothing to evaluate (20 rows rejected; line 1:" in nothing.stderr

    missing = _replay_command(tmp_path, tmp_path / "no-such.csv", items, mapping)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no-such.csv: no such file" in missing.stderr

    write_log(log, [{**row, "accepted": 1.0 if i < 3 else 0.0} for i, row in enumerate(rows)])
    out, per_row = tmp_path / "replay.json", tmp_path / "rows.csv"
    few = _replay_command(
        tmp_path, log, items, mapping, "--json", str(out), "--rows", str(per_row),
        "--resamples", "50",
    )  # fmt: skip
    assert few.returncode == 0, few.stderr
    assert "only 3 of 20 evaluated rounds have a non-zero reward" in few.stderr
    report = json.loads(out.read_text(), parse_constant=_refuse)  # valid JSON: no NaN tokens
    assert report["warnings"] and report["rounds_evaluated"] == 20
    with open(per_row, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [int(r["line"]) for r in written] == list(range(1, 21))
    assert {"logged_offer", "chosen_offer", "target_probability", "predicted_reward"} <= set(
        written[0]
    )
    assert sum(float(r["reward"]) for r in written) == 3.0


def _refuse(token: str) -> None:
    raise ValueError(f"not JSON: {token}")


def test_a_registered_version_is_replayed_with_its_own_feature_set(
    tmp_path: Path, bandit_files: tuple[SyntheticBandit, Path, Path, Path]
) -> None:
    """`--model models:/nbo-ranker@champion`: the version as registered, learned state and
    feature set included, goes on learning from the log; a name that is nothing says so."""
    from models.ranker import make_ranker
    from pipeline.review import registry
    from pipeline.settings import Settings
    from tests.factories import register

    bandit, log, items, mapping = bandit_files
    write_log(log, bandit.log(300, "uniform", seed=2))
    learned = replay_file(
        log, items, mapping, model="tests.plugins:scaled_logistic",
        features="tests.plugins:segment_by_offer",
    )  # fmt: skip
    assert learned.model.version == "scaled_logistic-300"
    settings = Settings(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifacts_dir=tmp_path / "artifacts",
    )
    registry.promote(register(settings, learned.model))

    out = tmp_path / "replay.json"
    champion = _replay_command(
        tmp_path, log, items, mapping, "--model", "models:/nbo-ranker@champion",
        "--json", str(out),
    )  # fmt: skip
    assert champion.returncode == 0, champion.stderr
    report = json.loads(out.read_text())
    assert report["feature_set"] == "segment-by-offer/1"
    assert report["model_version"] == "scaled_logistic-600"  # 300 learned, then 300 more

    with_features = _replay_command(
        tmp_path, log, items, mapping, "--model", "models:/nbo-ranker/1", "--features", "default"
    )
    assert with_features.returncode == 1 and "reads its own feature set" in with_features.stderr
    for wrong in ("models:/nbo-ranker/9", "gpt", "tests.plugins:nothing_here"):
        refused = _replay_command(tmp_path, log, items, mapping, "--model", wrong)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"cannot replay model {wrong}" in refused.stderr
    assert make_ranker("logistic").features.label == "default/6"


def test_a_notebook_model_and_policy_objects_are_replayed_as_given(
    bandit_files: tuple[SyntheticBandit, Path, Path, Path],
) -> None:
    from river import linear_model, preprocessing

    from pipeline.connectors.files import read_rows
    from pipeline.offline.logged import LogMapping, read_items
    from pipeline.offline.replay import Replayer, replay_rows

    class FirstInFileOrder:
        """A data scientist's policy: the ranker's order as it is, the first with certainty."""

        name = "file-order"

        def choose(self, ranking):  # type: ignore[no-untyped-def]
            return list(range(len(ranking))), [1.0] + [0.0] * (len(ranking) - 1)

    bandit, log, items, mapping = bandit_files
    write_log(log, bandit.log(200, "uniform", seed=3))
    parsed = LogMapping.from_file(mapping)
    pipeline = preprocessing.MaxAbsScaler() | linear_model.LogisticRegression()
    replayer = Replayer(
        read_items(items, parsed.items), parsed, model=pipeline, policy=FirstInFileOrder()
    )
    result = replay_rows(read_rows(log), replayer)
    assert result.policy == "file-order" and result.model.version.startswith("MaxAbsScaler|")
    assert result.model.n_learned == 200 and not result.rejected
    for row in result.rows:
        assert row.target_probability == float(row.chosen_offer == row.logged_offer)
    assert len({row.chosen_offer for row in result.rows}) > 1  # the learned order moves
    assert pipeline["LogisticRegression"].weights == {}  # the notebook's object is untouched


def test_feedback_is_replayed_through_another_model_beside_the_deciding_ones(
    tmp_path: Path,
) -> None:
    """`nbo replay-feedback --file`: the target predicts each label before learning it, beside
    the P(accept) the deciding model had; a record of another feature set is set aside, said."""
    from tests.pipeline.test_learner import told

    records = [json.loads(told(n).model_dump_json()) for n in range(200)]
    records[5]["feature_set"] = "old/1"
    records[7] = {"decision_id": "d-7"}  # not a feedback record
    log = tmp_path / "feedback.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "feedback.json"
    result = CliRunner().invoke(
        app,
        ["replay-feedback", "--file", str(log), "--model", "naive_bayes", "--json", str(out)],
        env={"COLUMNS": "200"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["rounds"] == 198 and report["model_version"] == "naive_bayes-198"
    assert [r["record"] for r in report["rejected"]] == [5, 7]
    assert "decided with feature set old/1" in report["rejected"][0]["reason"]
    assert "feedback.jsonl:8" in report["rejected"][1]["reason"]  # where it was read
    # the labels follow the features exactly: the target learns to predict them
    assert report["target"]["roc_auc"] > 0.9 and report["deployed"]["roc_auc"] == 0.5

    other = CliRunner().invoke(
        app,
        ["replay-feedback", "--file", str(log), "--features", "tests.plugins:segment_by_offer"],
    )
    assert isinstance(other.exception, ConfigError)  # `nbo` prints it, exit code 1
    assert "decided with feature set(s) default/6, old/1" in str(other.exception)


def test_a_fresh_feedback_target_reads_the_feature_set_most_labels_were_decided_with() -> None:
    from pipeline.offline.feedback_replay import replay_feedback

    def told(index: int, feature_set: str) -> tuple[str, dict[str, object]]:
        return f"feedback[0]@{index}", {
            "decision_id": f"d-{index}", "customer_id": "C1", "offer_id": "a", "rank": 1,
            "outcome": "accept", "label": index % 2 == 0, "reward": 100.0,
            "features": {"bias": 1.0}, "feature_set": feature_set, "p_accept": 0.4,
            "value_now": 100.0, "propensity": 1.0, "model_version": "m-0",
            "decided_at": "2026-11-02T09:00:00+00:00",
            "resolved_at": f"2026-11-02T09:{index:02d}:00+00:00",
        }  # fmt: skip

    records = [told(i, "every-field/4" if i < 3 else "default/6") for i in range(4)]
    result = replay_feedback(records, "naive_bayes")
    assert result.target.features.label == "every-field/4" and result.rounds == 3
    assert [r.reason for r in result.rejected] == ["decided with feature set default/6"]
    told_before = [told(i, "default/6") for i in range(4)]
    assert replay_feedback(told_before, "naive_bayes").target.features.label == "default/6"
