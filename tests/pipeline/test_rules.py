"""Rules: compile-time checks, memoised evaluation equal to plain evaluation, no raise ever."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalogue.rules import (
    NEVER_DAYS,
    EventFacts,
    RuleError,
    RuleEvaluator,
    compile_rule,
    group_offers,
)
from pipeline.contracts.schemas import Rule
from tests.factories import catalogue_offer

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def rule(condition: str, rule_id: str = "r", version: int = 1, **extra: Any) -> Rule:
    return Rule(rule_id=rule_id, version=version, kind="eligibility", condition=condition, **extra)


def offer(offer_id: str, category: str = "card", **fields: Any) -> dict[str, Any]:
    """A catalogue offer valid from ten days before `NOW` to ten days after."""
    window = {"valid_from": NOW - timedelta(days=10), "valid_to": NOW + timedelta(days=10)}
    return catalogue_offer(offer_id, category, **{**window, **fields})


def facts(**customer: Any) -> EventFacts:
    view = {"age": 40, "segment": "mass", "products_held": [], "consents": ["web"], "known": True}
    view.update(customer)
    return EventFacts(
        customer=view,
        event={"event_type": "app_login", "channel": "web", "attributes": {}},
        now=NOW,
        last_seen={"complaint": (NOW - timedelta(days=3)).timestamp()},
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("customer.age >", "does not compile"),
        ("customer.agee >= 18", "unknown field customer.agee"),
        ("offer.colour == 'red'", "unknown field offer.colour"),
        ("balance > 10", "unknown name(s) balance"),
        ("customer.age + 1", "not a boolean"),
        ("customer.segment + 1 == 2", "Unsupported operation"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(condition: str, message: str) -> None:
    with pytest.raises(
        RuleError, match="rule r v1: .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        compile_rule(rule(condition))


def test_reads_ignore_string_literals_and_macro_binders() -> None:
    compiled = compile_rule(
        rule(
            'customer.products_held.exists(p, p == "offer.bogus")'
            ' && days_since_last("complaint") > 30.0'
        )
    )
    assert compiled.reads.customer == ("products_held",)
    assert compiled.reads.offer == ()
    assert compiled.reads.days_since == ("complaint",)


def test_a_free_form_attribute_may_be_missing_at_compile_time() -> None:
    compiled = compile_rule(rule("event.attributes.amount > 10000.0"))
    assert compiled.reads.event == ("attributes",)


def test_offers_are_grouped_by_the_fields_a_rule_reads() -> None:
    offers = [offer("a", "card"), offer("b", "card"), offer("c", "loan")]
    in_force = group_offers(compile_rule(rule("offer.category != customer.segment")), offers)
    assert sorted(g.offer_ids for g in in_force.groups) == [("a", "b"), ("c",)]
    scoped = group_offers(compile_rule(rule("true", categories=["loan"])), offers)
    assert [g.offer_ids for g in scoped.groups] == [("c",)]


def test_exclusion_names_the_first_rule_that_says_no() -> None:
    offers = [offer("a", "card"), offer("b", "loan")]
    rules = [
        group_offers(compile_rule(rule("customer.age >= 50", "old-enough")), offers),
        group_offers(compile_rule(rule('offer.category == "card"', "cards-only")), offers),
    ]
    excluded = RuleEvaluator().exclusions(rules, facts(age=40)).verdicts()
    assert {oid: v.rule_id for oid, v in excluded.items()} == {"a": "old-enough", "b": "old-enough"}
    excluded = RuleEvaluator().exclusions(rules, facts(age=60)).verdicts()
    assert {oid: v.rule_id for oid, v in excluded.items()} == {"b": "cards-only"}
    assert "condition false" in excluded["b"].reason


def test_days_since_last_and_runtime_errors_exclude_with_reason() -> None:
    offers = [offer("a")]
    cool_off = group_offers(compile_rule(rule('days_since_last("complaint") > 30.0')), offers)
    assert "a" in RuleEvaluator().exclusions([cool_off], facts()).verdicts()
    never = group_offers(compile_rule(rule('days_since_last("fraud") >= 1000000.0')), offers)
    assert RuleEvaluator().exclusions([never], facts()).verdicts() == {}
    assert NEVER_DAYS >= 1e6
    amount = group_offers(compile_rule(rule("event.attributes.amount > 5.0")), offers)
    evaluator = RuleEvaluator()
    verdict = evaluator.exclusions([amount], facts()).verdicts()["a"]
    assert "could not be evaluated" in verdict.reason and evaluator.errors == 1


def test_memoised_results_equal_plain_evaluation() -> None:
    """Many random events: the memo must never change a verdict, and must save most runs."""
    rng = random.Random(3)
    categories = ["card", "loan", "mortgage"]
    offers = [
        offer(f"o{i}", rng.choice(categories), channels=rng.sample(["web", "email", "sms"], 2))
        for i in range(40)
    ]
    conditions = [
        "customer.age >= 21",
        "event.channel in offer.channels",
        "!(offer.category in customer.products_held)",
        "now <= offer.valid_to",
        'customer.segment != "student" || offer.category == "card"',
    ]
    rules = [group_offers(compile_rule(rule(c, f"r{i}")), offers) for i, c in enumerate(conditions)]
    memoised = RuleEvaluator()
    for step in range(300):
        event_facts = EventFacts(
            customer={
                "age": rng.randint(16, 30),
                "segment": rng.choice(["student", "mass"]),
                "products_held": rng.sample(categories, rng.randint(0, 2)),
            },
            event={"channel": rng.choice(["web", "email", "sms"])},
            now=NOW + timedelta(days=rng.randint(0, 20)),
            last_seen={},
        )
        fresh = RuleEvaluator().exclusions(rules, event_facts)
        again = memoised.exclusions(rules, event_facts)
        assert again == fresh and again.verdicts() == fresh.verdicts(), f"step {step}"
    assert memoised.runs < 300 * sum(len(r.groups) for r in rules) / 3


@given(st.text(max_size=80))
def test_arbitrary_rule_text_only_ever_raises_rule_error(text: str) -> None:
    with contextlib.suppress(RuleError):
        compile_rule(rule(text or "x"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    condition=st.sampled_from(
        [
            "customer.age >= 18",
            "event.channel in offer.channels",
            "offer.stock == null || offer.stock > 0",
            "!(offer.category in customer.products_held)",
            "event.attributes.amount > 3.0",
            'days_since_last("complaint") > 30.0',
            "now >= offer.valid_from",
        ]
    ),
    customer=st.dictionaries(st.sampled_from(["age", "products_held", "segment"]), json_values),
    event=st.dictionaries(st.sampled_from(["channel", "attributes"]), json_values),
    offer_fields=st.dictionaries(
        st.sampled_from(["channels", "stock", "category", "valid_from"]), json_values
    ),
)
def test_arbitrary_records_never_raise_out_of_evaluation(
    condition: str, customer: dict[str, Any], event: dict[str, Any], offer_fields: dict[str, Any]
) -> None:
    offers = [{"offer_id": "x", "category": "card", **offer_fields}]
    in_force = group_offers(compile_rule(rule(condition)), offers)
    excluded = RuleEvaluator().exclusions(
        [in_force], EventFacts(customer=customer, event=event, now=NOW, last_seen={})
    )
    assert set(excluded.verdicts()) <= {"x"}


def test_a_later_rule_is_credited_only_with_the_offers_it_excluded_first() -> None:
    offers = [offer("a", "card"), offer("b", "loan"), offer("c", "mortgage")]
    rules = [
        group_offers(compile_rule(rule('offer.category != "card"', "no-cards")), offers),
        group_offers(compile_rule(rule('offer.category == "mortgage"', "mortgages")), offers),
    ]
    evaluator = RuleEvaluator()
    for _ in range(2):  # the second time from the memo
        exclusions = evaluator.exclusions(rules, facts())
        assert [(e.rule.rule_id, e.offer_ids) for e in exclusions.by_rule] == [
            ("no-cards", ("a",)),
            ("mortgages", ("b",)),
        ]
        assert exclusions.mask == 0b011
        assert evaluator.remaining(("a", "b", "c"), exclusions.mask) == ("c",)
    assert evaluator.runs == 6  # three groups per rule, run once each


def test_the_stream_loads_cel_s_evaluator_without_its_interactive_shell() -> None:
    """The μ-products that evaluate rules start without CEL's shell (prompt_toolkit), and a
    later `import cel` in the same process gets the same evaluator, not a second copy."""
    script = (
        "import sys\n"
        "import pipeline.valid_offers.app, pipeline.next_best_offer.app\n"
        "shell = sorted(m for m in sys.modules if m.split('.')[0] in ('prompt_toolkit', 'cel'))\n"
        "import cel\n"
        "same = cel.compile is sys.modules['cel.cel'].compile\n"
        "print(shell, same, cel.compile('customer.age >= 18').execute("
        "cel.Context({'customer': {'age': 20}})))\n"
    )
    ran = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert ran.stdout.strip() == "['cel.cel'] True True"
