"""The Next Best Offer μ-product on the embedded broker, with Valid Offers in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from pipeline.settings import Settings
from tests.factories import START, customer, event, interaction, with_offers
from tests.streams import output_for, outputs, running, send


@pytest.fixture
def loop(make_settings) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    settings = make_settings(exploration="greedy", top_k=4, model_publish_interval=0.5)
    with running(with_offers(settings), "run", "valid-offers"):
        yield settings


def test_the_loop_learns_from_accepts_and_a_restarted_ranker_resumes_the_model(
    loop: Settings,
) -> None:
    learners = [f"A{i:02d}" for i in range(30)]
    send(loop, "customers", [(c, customer(c, "affluent")) for c in [*learners, "NEW1", "NEW2"]])
    with running(loop, "run", "learner"), running(loop, "run", "ranker"):
        send(loop, "events", [(c, event(f"e-{c}", c, START)) for c in learners])
        first = outputs(loop, "next_best_offers", len(learners))
        assert {d["decision_id"] for d in first} == {f"d-e-{c}" for c in learners}
        p_before = {o["offer_id"]: o["p_accept"] for o in first[0]["offers"]}
        assert len(p_before) == 4 and first[0]["model_version"] == "bayesian_logistic-0"
        for decision in first:  # the channel shows a and b; a is accepted, b is dismissed
            c, d, at = (
                decision["customer_id"],
                decision["decision_id"],
                START + timedelta(minutes=5),
            )
            send(
                loop,
                "interactions",
                [
                    interaction(d, c, "offer-a", "impression", at),
                    interaction(d, c, "offer-a", "accept", at),
                    interaction(d, c, "offer-b", "impression", at),
                    interaction(d, c, "offer-b", "dismiss", at),
                ],
            )
        learned = f"bayesian_logistic-{2 * len(learners)}"
        seen = len(learners)
        for probe in range(40):  # bounded: the other partition's interactions may still be queued
            at = START + timedelta(hours=1, minutes=probe)
            send(loop, "events", [("NEW1", event(f"e-NEW1-{probe}", "NEW1", at))])
            seen += 1
            after = output_for(loop, "next_best_offers", seen, f"e-NEW1-{probe}")
            if after["model_version"] == learned:
                break
        assert after["model_version"] == learned
        ranked = [o["offer_id"] for o in after["offers"]]
        assert ranked[0] == "offer-a" and ranked[-1] == "offer-b"
        p_after = {o["offer_id"]: o["p_accept"] for o in after["offers"]}
        assert p_after["offer-a"] > p_before["offer-a"] + 0.2
        assert p_after["offer-b"] < p_before["offer-b"]
        assert after["offers"][0]["propensity"] == 1.0
        assert "offer-a" in after["explanation"] and "primary interest" in after["explanation"]

    with running(loop, "run", "ranker"):  # restarted: the model comes from the models topic
        send(loop, "events", [("NEW2", event("e-NEW2", "NEW2", START + timedelta(hours=2)))])
        resumed = output_for(loop, "next_best_offers", seen + 1, "e-NEW2")
    assert resumed["model_version"] == f"bayesian_logistic-{2 * len(learners)}"
    assert resumed["offers"][0]["offer_id"] == "offer-a"


def test_a_model_and_feature_set_chosen_by_settings_decide_and_learn(loop: Settings) -> None:
    """A data scientist's pipeline and feature set (import references in the settings) decide
    in the stream; the customer's free-form attributes reach the features it learns from."""
    plugged = loop.model_copy(
        update={
            "ranker_model": "tests.plugins:scaled_logistic",
            "feature_set": "tests.plugins:segment_by_offer",
        }
    )
    send(loop, "customers", [("G1", customer("G1", "affluent", attributes={"tier": "gold"}))])
    with running(plugged, "run", "ranker"):
        send(loop, "events", [("G1", event("e-G1", "G1", START))])
        decision = outputs(loop, "next_best_offers", 1)[0]
        assert decision["feature_set"] == "segment-by-offer/1"
        assert decision["model_version"] == "scaled_logistic-0"
        at = START + timedelta(minutes=5)
        send(
            loop,
            "interactions",
            [
                interaction(decision["decision_id"], "G1", "offer-a", "impression", at),
                interaction(decision["decision_id"], "G1", "offer-a", "accept", at),
            ],
        )
        (feedback,) = outputs(loop, "feedback", 1)
    assert feedback["offer_id"] == "offer-a" and feedback["label"] is True
    assert feedback["feature_set"] == "segment-by-offer/1"
    assert feedback["features"]["tier=gold×offer=offer-a"] == 1.0
    assert feedback["features"]["segment=affluent×offer=offer-a"] == 1.0
