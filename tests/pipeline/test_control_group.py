"""The control group: who is in it, what its baselines decide, and what its labels carry."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.contracts.schemas import Interaction
from pipeline.next_best_offer.control import ControlGroups
from pipeline.next_best_offer.feedback import InputPosition
from pipeline.next_best_offer.state import CustomerDecisions, MemoryState
from pipeline.settings import Settings
from tests.factories import (
    SHORT_INTEREST,
    candidate,
    catalogue_offer,
    decide,
    make_ranker_processor,
)
from tests.factories import valid_offers as valid_offers_of

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
CUSTOMERS = [f"C{i}" for i in range(20_000)]


def offer(offer_id: str, **fields: Any) -> dict[str, Any]:
    return catalogue_offer(offer_id, **{**SHORT_INTEREST, **fields})


def test_the_share_is_kept_and_raising_it_only_moves_customers_into_control() -> None:
    baselines = {"random": 2.0, "none": 1.0}
    five, ten = (ControlGroups(share, baselines, "salt") for share in (0.05, 0.10))
    at_five = {c: five.group_of(c) for c in CUSTOMERS}
    at_ten = {c: ten.group_of(c) for c in CUSTOMERS}
    control = [c for c, g in at_five.items() if g.name == "control"]
    assert 0.045 < len(control) / len(CUSTOMERS) < 0.055
    assert all(at_ten[c] == at_five[c] for c in control)  # none leaves, none changes baseline
    assert 0.095 < sum(g.name == "control" for g in at_ten.values()) / len(CUSTOMERS) < 0.105
    split = Counter(g.baseline for g in at_five.values() if g.baseline)
    assert 0.6 < split["random"] / len(control) < 0.73  # weights 2 : 1
    # the same in any process: the group depends on the salt and the id only
    assert ControlGroups(0.05, baselines, "salt").group_of("C7") == five.group_of("C7")
    other_salt = ControlGroups(0.05, baselines, "pepper")
    assert any(other_salt.group_of(c) != at_five[c] for c in control)
    assert all(ControlGroups(0.0, baselines, "s").group_of(c).name == "treatment" for c in control)


def test_baselines_are_checked_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBO_CONTROL_BASELINES", '{"random": 0.5, "priority": 0.5}')
    monkeypatch.setenv("NBO_CONTROL_SHARE", "0.1")
    settings = Settings()
    assert settings.control_baselines == {"random": 0.5, "priority": 0.5}
    assert settings.control_share == 0.1
    with pytest.raises(ValidationError, match="best"):
        Settings(control_baselines={"best": 1.0})
    with pytest.raises(ValueError, match="weights above 0"):
        ControlGroups(0.1, {"random": 0.0}, "s")


def test_the_priority_baseline_ranks_by_value_now_and_lever_without_the_model(
    tmp_path: Path,
) -> None:
    offers = [offer("plain", value=100.0), offer("pushed", value=80.0, business_lever=2.0),
              offer("rich", value=150.0)]  # fmt: skip
    ranker = make_ranker_processor(
        tmp_path, offers, control_share=1.0, control_baselines={"priority": 1.0}
    )
    decision = decide(ranker, CustomerDecisions(MemoryState()),
                      valid(*(candidate(o["offer_id"], 1) for o in offers)))  # fmt: skip
    assert [o["offer_id"] for o in decision["offers"]] == ["pushed", "rich", "plain"]
    assert [o["propensity"] for o in decision["offers"]] == [1.0, 0.0, 0.0]
    assert (decision["group"], decision["baseline"]) == ("control", "priority")
    assert decision["policy"] == "baseline:priority"
    assert decision["explanation"].startswith("control group, baseline priority: pushed")


def test_the_random_baseline_draws_the_first_offer_uniformly_and_its_labels_carry_the_group(
    tmp_path: Path,
) -> None:
    offers = [offer(f"o{i}", value=100.0 * (i + 1)) for i in range(4)]
    ranker = make_ranker_processor(tmp_path, offers, control_share=1.0, seed=3)
    firsts: Counter[str] = Counter()
    for i in range(800):
        decision = decide(ranker, CustomerDecisions(MemoryState()),
                          valid(*(candidate(o["offer_id"], 1) for o in offers),
                                customer_id=f"C{i}", event_id=f"e{i}"))  # fmt: skip
        assert decision["group"] == "control" and decision["baseline"] == "random"
        assert [o["propensity"] for o in decision["offers"]] == [0.25] * 4
        firsts[decision["offers"][0]["offer_id"]] += 1
    assert all(150 < count < 250 for count in firsts.values()), firsts  # 200 each expected

    book = CustomerDecisions(MemoryState())
    shown = decide(ranker, book, valid(*(candidate(o["offer_id"], 1) for o in offers)))
    first = shown["offers"][0]["offer_id"]
    feedback = ranker.handle(book, accepted(shown["decision_id"], first),
                             InputPosition("interactions", 0, 1), "C1")  # fmt: skip
    assert [(f.group, f.label, f.propensity) for f in feedback] == [("control", True, 0.25)]


def test_the_none_baseline_shows_nothing_and_keeps_nothing_pending(tmp_path: Path) -> None:
    ranker = make_ranker_processor(
        tmp_path, [offer("a")], control_share=1.0, control_baselines={"none": 1.0}
    )
    book = CustomerDecisions(MemoryState())
    decision = decide(ranker, book, valid(candidate("a", 1)))
    assert decision["offers"] == [] and decision["group"] == "control"
    assert decision["explanation"] == "control group, baseline none: shows nothing"
    assert book.pending == {}


def test_treatment_decisions_say_so_and_their_labels_too(tmp_path: Path) -> None:
    ranker = make_ranker_processor(tmp_path, [offer("a")], control_share=0.0)
    book = CustomerDecisions(MemoryState())
    decision = decide(ranker, book, valid(candidate("a", 1)))
    assert (decision["group"], decision["baseline"], decision["policy"]) == (
        "treatment",
        None,
        "greedy",
    )
    feedback = ranker.handle(book, accepted(decision["decision_id"], "a"),
                             InputPosition("interactions", 0, 2), "C1")  # fmt: skip
    assert [f.group for f in feedback] == ["treatment"]


def valid(*candidates: Any, customer_id: str = "C1", event_id: str = "e1") -> Any:
    return valid_offers_of(*candidates, at=NOW, customer_id=customer_id, event_id=event_id)


def accepted(decision_id: str, offer_id: str) -> Interaction:
    return Interaction(interaction_id=f"i-{decision_id}", decision_id=decision_id,
                       customer_id="C1", offer_id=offer_id, channel="web", outcome="accept",
                       timestamp=NOW + timedelta(hours=1))  # fmt: skip
