"""The global tables: offers and versioned rules applied record by record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalogue.tables import TableState
from pipeline.connectors.load import parse_source
from pipeline.kafka.dead_letters import Origin

OFFSETS = iter(range(10**9))


def origin(topic: str, key: str | None) -> Origin:
    return Origin(f"nbo.{topic}", 0, next(OFFSETS), key)


def rule(
    rule_id: str, version: int, condition: str, kind: str = "eligibility", **extra: Any
) -> bytes:
    body = {"rule_id": rule_id, "version": version, "kind": kind, "condition": condition, **extra}
    return json.dumps(body).encode()


def apply_rule(
    state: TableState, raw: bytes, topic: str = "eligibilities"
) -> dict[str, Any] | None:
    return state.apply(topic, origin(topic, json.loads(raw)["rule_id"]), raw)


def loaded(sample_dir: Path) -> TableState:
    state = TableState()
    for _line, offer in parse_source("offers", sample_dir / "offers.csv").records:
        assert (
            state.apply(
                "offers", origin("offers", offer.offer_id), offer.model_dump_json().encode()
            )
            is None
        )  # type: ignore[attr-defined]
    return state


def test_sample_offers_and_rules_make_a_catalogue(sample_dir: Path) -> None:
    state = loaded(sample_dir)
    for _line, record in parse_source("rules", sample_dir / "rules.yaml").records:
        topic = "validation_rules" if record.kind == "validation" else "eligibilities"  # type: ignore[attr-defined]
        assert apply_rule(state, record.model_dump_json().encode(), topic) is None
    catalogue = state.snapshot()
    assert len(catalogue.offers) == 30 and len(catalogue.rules) == 12
    kinds = [r.compiled.rule.kind for r in catalogue.rules]
    assert kinds == sorted(kinds, key=lambda k: k != "validation")  # validation rules first
    assert catalogue.triggers["card-01"] == tuple(catalogue.offers["card-01"]["triggers"])


def test_new_version_replaces_old_and_bad_versions_keep_it(sample_dir: Path) -> None:
    state = loaded(sample_dir)
    assert apply_rule(state, rule("adult", 1, "customer.age >= 18")) is None
    assert apply_rule(state, rule("adult", 2, "customer.age >= 21")) is None
    assert state.snapshot().rule_versions == {"adult": 2}

    broken = apply_rule(state, rule("adult", 3, "customer.age >="))
    assert broken is not None and "does not compile" in broken["reason"]
    assert "v2 stays in force" in broken["reason"]
    typo = apply_rule(state, rule("adult", 4, "customer.agee >= 21"))
    assert typo is not None and "unknown field customer.agee" in typo["reason"]
    stale = apply_rule(state, rule("adult", 1, "true"))
    assert stale is not None and "not newer than v2" in stale["reason"]
    assert state.snapshot().rule_versions == {"adult": 2}
    assert state.rules["adult"].rule.condition == "customer.age >= 21"


def test_same_version_again_is_a_quiet_no_op_and_disabling_removes(sample_dir: Path) -> None:
    state = loaded(sample_dir)
    apply_rule(state, rule("adult", 1, "customer.age >= 18"))
    changes = state.changes
    assert apply_rule(state, rule("adult", 1, "customer.age >= 18")) is None
    assert state.changes == changes
    assert apply_rule(state, rule("adult", 2, "customer.age >= 18", enabled=False)) is None
    assert state.snapshot().rule_versions == {}


def test_wrong_topic_malformed_json_and_invalid_offer_are_dead_letters(sample_dir: Path) -> None:
    state = loaded(sample_dir)
    wrong = apply_rule(state, rule("v", 1, "true", kind="validation"), topic="eligibilities")
    assert wrong is not None and "came on nbo.eligibilities" in wrong["reason"]
    garbage = state.apply("offers", origin("offers", "x"), b"{nope")
    assert garbage is not None and "malformed JSON" in garbage["reason"]
    assert garbage["source_topic"] == "nbo.offers" and garbage["key"] == "x"
    bad_offer = state.apply("offers", origin("offers", "x"), b'{"offer_id": "x"}')
    assert bad_offer is not None and "invalid offer: name: Field required" in bad_offer["reason"]
    assert len(state.offers) == 30


def test_tombstones_delete(sample_dir: Path) -> None:
    state = loaded(sample_dir)
    apply_rule(state, rule("adult", 1, "customer.age >= 18"))
    assert state.apply("offers", origin("offers", "card-01"), None) is None
    assert state.apply("eligibilities", origin("eligibilities", "adult"), None) is None
    snapshot = state.snapshot()
    assert "card-01" not in snapshot.offers and snapshot.rule_versions == {}


@given(
    topic=st.sampled_from(["offers", "validation_rules", "eligibilities"]),
    raw=st.binary(max_size=200) | st.none(),
)
def test_arbitrary_bytes_never_raise(topic: str, raw: bytes | None) -> None:
    state = TableState()
    outcome = state.apply(topic, origin(topic, "k"), raw)
    assert outcome is None or outcome["reason"]
