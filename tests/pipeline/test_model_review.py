"""Model review in MLflow: the logged pyfunc scores like the live ranker; a promoted champion
takes over a running ranker; the challenger is scored in shadow and estimated off-policy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.ranker import OnlineRanker
from models.ranker import make_ranker as named_ranker
from pipeline.cli.app import app
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.review import registry
from pipeline.settings import Settings
from tests.factories import (
    SHORT_INTEREST,
    START,
    candidate,
    catalogue_offer,
    customer,
    decide,
    event,
    interaction,
    make_ranker_processor,
    register,
    valid_offers,
    with_offers,
)
from tests.streams import output_for, running, send


def preferring(category: str, avoiding: str, n: int = 60) -> OnlineRanker:
    ranker = named_ranker("logistic")
    for _ in range(n):
        ranker.learn_one({"bias": 1.0, f"category={category}": 1.0}, True)
        ranker.learn_one({"bias": 1.0, f"category={avoiding}": 1.0}, False)
    return ranker


def nbo_model(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["model", *args],
        env={
            "NBO_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "NBO_MLFLOW_ARTIFACTS_DIR": str(settings.mlflow_artifacts_dir),
        },
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_logged_pyfunc_scores_like_the_live_ranker(settings: Settings, tmp_path: Path) -> None:
    offers = [
        catalogue_offer("card-1", **SHORT_INTEREST),
        catalogue_offer("loan-1", category="loan", **SHORT_INTEREST),
        catalogue_offer("ins-1", category="insurance", **SHORT_INTEREST),
    ]
    ranker = make_ranker_processor(tmp_path, offers)
    ranker.models.model = preferring("card", "loan")
    for _ in range(30):  # a customer's accepted loan weighs apart from a loan the CRM knows of
        ranker.models.model.learn_one({"bias": 1.0, "accepted_category": 1.0}, False)
    record = valid_offers(
        candidate("card-1", 1), candidate("loan-1", 4, 1, 1), candidate("ins-1", None)
    )
    record.customer.update(products_held=["savings", "loan"], acquired=["loan"])
    decision = decide(ranker, CustomerDecisions(MemoryState()), record)

    version = register(settings, ranker.models.model)
    model = mlflow.pyfunc.load_model(f"models:/{registry.REGISTERED_MODEL}/{version}")
    rows = []
    for shown in decision["offers"]:
        given = next(c for c in record.candidates if c["offer_id"] == shown["offer_id"])
        category = next(o for o in offers if o["offer_id"] == given["offer_id"])["category"]
        days = given["days_since_trigger"]
        rows.append(
            {
                "segment": record.customer["segment"],
                "age": float(record.customer["age"]),
                "products_held": "|".join(record.customer["products_held"]),
                "acquired": "|".join(record.customer["acquired"]),
                "offer_id": given["offer_id"],
                "category": category,
                "channel": record.channel,
                "event_type": record.event_type,
                "timestamp": record.timestamp.isoformat(),
                "days_since_trigger": float("nan") if days is None else days,
                "phase": shown["phase"],
                "impressions": float(given["impressions"]),
                "unanswered": float(given["unanswered_impressions"]),
            }
        )
    scores = model.predict(pd.DataFrame(rows))
    assert [round(s, 6) for s in scores] == [o["p_accept"] for o in decision["offers"]]
    assert len(set(scores)) == 3  # three different cases, three different scores


def test_a_logged_model_loads_and_scores_without_the_pipeline_package(
    settings: Settings, tmp_path: Path
) -> None:
    """A reviewer's or a serving host's Python needs MLflow, `models/` and `features/` (which
    travel in the model as code paths), not nbo's stream code."""
    version = register(settings, preferring("card", "loan"))
    uri = f"models:/{registry.REGISTERED_MODEL}/{version}"
    script = (
        "import sys\n"
        "sys.modules['pipeline'] = None  # importing nbo's stream code now fails\n"
        "import mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({settings.mlflow_tracking_uri!r})\n"
        f"model = mlflow.pyfunc.load_model({uri!r})\n"
        "rows = pd.DataFrame([{'segment': 'mass', 'age': 40.0, 'offer_id': o, 'category': c,\n"
        "    'channel': 'web', 'event_type': 'login', 'timestamp': '2026-03-02T09:00:00'}\n"
        "    for o, c in (('card-1', 'card'), ('loan-1', 'loan'))])\n"
        "card, loan = model.predict(rows)\n"
        "print(card > loan)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip().splitlines()[-1] == "True"


def test_promote_and_list_name_versions_and_aliases(settings: Settings) -> None:
    first = register(settings, preferring("card", "loan"))
    second = register(settings, preferring("loan", "card"))
    nbo_model(settings, "promote", first)
    nbo_model(settings, "promote", second, "--as", "challenger")
    listing = nbo_model(settings, "list")
    assert "champion" in listing and "challenger" in listing and "logistic-120" in listing
    nbo_model(settings, "promote", second)  # the challenger wins: it is no longer challenger
    assert registry.aliased_version("champion") == second
    assert registry.aliased_version("challenger") is None
    with pytest.raises(Exception, match="cannot promote version 99"):
        CliRunner().invoke(
            app,
            ["model", "promote", "99"],
            env={"NBO_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri},
            catch_exceptions=False,
            standalone_mode=False,
        )


@pytest.fixture
def loop(make_settings) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        exploration="greedy", top_k=2, model_publish_interval=0.5, model_poll_interval=0.5
    )
    with running(with_offers(settings), "run", "valid-offers"):
        yield settings


def test_a_promoted_champion_reaches_a_running_ranker_and_the_challenger_is_shadowed(
    loop: Settings,
) -> None:
    """Promoting a version makes the learner continue from it and publish it: the running ranker
    decides with it without a restart, scores the challenger in shadow, and the learner
    estimates the challenger off-policy from the feedback."""
    cards = register(loop, preferring("card", "loan"))  # offer-a is a card, offer-b a loan
    loans = register(loop, preferring("loan", "card"))
    registry.promote(cards)
    send(loop, "customers", [(c, customer(c, "mass")) for c in ("P1", "P2")])
    seen = 0

    def decide(customer_id: str, n: int) -> dict:
        nonlocal seen
        at = START + timedelta(minutes=seen)
        send(loop, "events", [(customer_id, event(f"e-{customer_id}-{n}", customer_id, at))])
        seen += 1
        return output_for(loop, "next_best_offers", seen, f"e-{customer_id}-{n}")

    with running(loop, "run", "ranker"), running(loop, "run", "learner"):
        for probe in range(60):  # bounded: until the learner's first publish reaches the ranker
            before = decide("P1", probe)
            if before["registry_version"] == cards:
                break
        assert before["registry_version"] == cards and before["challenger_version"] is None
        assert before["offers"][0]["offer_id"] == "offer-a"

        nbo_model(loop, "promote", loans)
        nbo_model(loop, "promote", cards, "--as", "challenger")
        for probe in range(100, 160):  # bounded: the learner looks at the aliases every 0.5 s
            after = decide("P1", probe)
            if after["registry_version"] == loans and after["challenger_version"] == cards:
                break
        assert after["registry_version"] == loans and after["challenger_version"] == cards
        assert after["offers"][0]["offer_id"] == "offer-b"  # the new champion decides
        later = decide("P2", 0)
        assert later["registry_version"] == loans  # and every decision after it

        for decision in (after, later):  # the shown first offers are accepted
            d, c = decision["decision_id"], decision["customer_id"]
            at = START + timedelta(hours=1)
            send(
                loop,
                "interactions",
                [interaction(d, c, "offer-b", o, at) for o in ("impression", "accept")],
            )
        probe = decide("P2", 1)  # decided after the labels: the model learned from them
        for extra in range(2, 40):
            if int(probe["model_version"].split("-")[1]) >= 122:
                break
            probe = decide("P2", extra)
        assert probe["model_version"] == "logistic-122"

    runs = mlflow.search_runs(
        experiment_names=[registry.EXPERIMENT], filter_string="attributes.run_name LIKE 'learner-%'"
    )
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.model"] == "bayesian_logistic"  # the setting: it resumed from `cards`
    assert run["params.exploration"] == "greedy"
    assert run["metrics.labels"] == 2 and run["metrics.acceptance_rate"] == 1.0
    assert run["metrics.challenger_rounds"] == 2
    assert run["metrics.challenger_logging"] == pytest.approx(100.0)  # value of each accept
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "plots")}
    assert "plots/calibration.png" in artifacts and "plots/largest_weights.png" in artifacts
    newest = registry.list_versions()[0]
    assert newest.run_id == run["run_id"] and newest.ranker_version == "logistic-122"
