"""Business rules as data: CEL conditions compiled once, evaluated cheaply for every event.

A rule is a CEL expression over four names: `offer`, `customer`, `event` and `now` (the event's
time, to the minute: precise enough for validity dates and day counts, and it lets a minute's
events share results), plus the function `days_since_last("event_type")` (days since the
customer's last event of that type, `NEVER_DAYS` if none). It must be true for an offer to stay.

Why the evaluation is shaped the way it is: a compiled CEL program runs in under a microsecond
against an unchanged `cel.Context`, but every change of a variable costs about 4 µs to convert
again, so evaluating 20 rules for 100 offers per event naively costs over a millisecond. The rule
text itself says which fields it reads (`offer.channels`, `event.channel`, ...). So, per rule:

- the offers it applies to are grouped by the values of the offer fields it reads (all offers
  with the same channel list share one group); this is done once per catalogue change;
- per event, the values of the customer and event fields it reads form the *event key*;
- the result for (rule, group, event key) is memoised; CEL has no side effects, so a memoised
  result is exactly what evaluating again would give.

An event therefore costs a few dictionary look-ups per rule and a CEL run only for combinations
not seen before (a rule on `now` is run once per group per event).

>>> rule = compile_rule(Rule(rule_id="adult", version=1, kind="eligibility",
...                          condition="customer.age >= 18"))
>>> rule.reads
Reads(offer=(), customer=('age',), event=(), now=False, days_since=())
>>> compile_rule(Rule(rule_id="typo", version=1, kind="eligibility", condition="customer.agee > 1"))
Traceback (most recent call last):
...
pipeline.rules.RuleError: rule typo v1: references unknown field customer.agee
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cel

from pipeline.errors import NboError
from pipeline.schemas import Customer, JourneyEvent, Offer, Rule

NEVER_DAYS = 1.0e9
_SECONDS_PER_DAY = 86400.0
_MEMO_LIMIT = 50_000  # entries; the memo is emptied when it grows past this

VARIABLES = ("offer", "customer", "event", "now")
FUNCTIONS = ("days_since_last",)
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "offer": frozenset(Offer.model_fields),
    "customer": frozenset(Customer.model_fields) | {"known"},
    "event": frozenset(JourneyEvent.model_fields),
}
_STRING_LITERAL = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_FIELD_ACCESS = re.compile(r"\b(offer|customer|event)\s*\.\s*([A-Za-z_]\w*)")
_WHOLE_VARIABLE = re.compile(r"\b(offer|customer|event)\b(?!\s*\.)")
_NOW = re.compile(r"\bnow\b")
_DAYS_SINCE_LITERAL = re.compile(r'days_since_last\(\s*"([^"\\]*)"\s*\)')
_DAYS_SINCE_ANY = re.compile(r"\bdays_since_last\s*\(")
_MACRO_BINDER = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class RuleError(NboError):
    """A rule that cannot be put in force: it does not compile, or reads unknown names."""


@dataclass(frozen=True)
class Reads:
    """What a rule reads. A field list of `("*",)` means the whole variable."""

    offer: tuple[str, ...]
    customer: tuple[str, ...]
    event: tuple[str, ...]
    now: bool
    days_since: tuple[str, ...]  # event types; ("*",) if computed names are used


def _reads(condition: str, rule_label: str) -> Reads:
    literals_removed = _STRING_LITERAL.sub('""', condition)
    fields: dict[str, set[str]] = {name: set() for name in KNOWN_FIELDS}
    for variable, name in _FIELD_ACCESS.findall(literals_removed):
        if name not in KNOWN_FIELDS[variable]:
            raise RuleError(f"{rule_label}: references unknown field {variable}.{name}")
        fields[variable].add(name)
    for variable in _WHOLE_VARIABLE.findall(literals_removed):
        fields[variable].add("*")
    days = set(_DAYS_SINCE_LITERAL.findall(condition))
    if len(_DAYS_SINCE_ANY.findall(literals_removed)) > len(_DAYS_SINCE_LITERAL.findall(condition)):
        days.add("*")

    def ordered(names: set[str]) -> tuple[str, ...]:
        return ("*",) if "*" in names else tuple(sorted(names))

    return Reads(
        offer=ordered(fields["offer"]),
        customer=ordered(fields["customer"]),
        event=ordered(fields["event"]),
        now=bool(_NOW.search(literals_removed)),
        days_since=ordered(days),
    )


def _probe_bindings() -> dict[str, Any]:
    """A record of every type with every field set, to catch type errors at compile time."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    offer = Offer(
        offer_id="probe",
        name="probe",
        category="card",
        value=1.0,
        primary_interest_days=1,
        secondary_interest_days=1,
        negative_impact_days=3,
        channels=["web"],
        valid_from=now,
        valid_to=datetime(2027, 1, 1, tzinfo=UTC),
        stock=1,
        max_impressions=1,
        triggers=["x"],
    )
    customer = Customer(
        customer_id="probe",
        age=30,
        segment="mass",
        region="r",
        income=1.0,
        tenure_years=1.0,
        products_held=["card"],
        consents=["web"],
        updated_at=now,
    )
    event = JourneyEvent(
        event_id="probe", customer_id="probe", event_type="x", timestamp=now, channel="web"
    )
    return {
        "offer": offer.model_dump(),
        "customer": {**customer.model_dump(), "known": True},
        "event": event.model_dump(),
        "now": now,
    }


_PROBE = _probe_bindings()


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    program: cel.Program
    reads: Reads
    uid: tuple[str, int] = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uid", (self.rule.rule_id, self.rule.version))
        object.__setattr__(self, "label", f"rule {self.rule.rule_id} v{self.rule.version}")

    def applies_to(self, offer: Mapping[str, Any]) -> bool:
        rule = self.rule
        if rule.offer_ids and offer["offer_id"] not in rule.offer_ids:
            return False
        return not rule.categories or offer["category"] in rule.categories

    def evaluate(self, bindings: Mapping[str, Any], days_since: Callable[[str], float]) -> bool:
        """Run the program; raise RuleError for an error or a non-boolean result."""
        context = cel.Context(dict(bindings), {"days_since_last": days_since})
        try:
            result = self.program.execute(context)
        except Exception as error:  # the CEL binding raises builtin types for eval errors
            raise RuleError(f"{self.label}: {type(error).__name__}: {error}") from error
        if not isinstance(result, bool):
            raise RuleError(f"{self.label}: gave {type(result).__name__} {result!r}, not a boolean")
        return result


def compile_rule(rule: Rule) -> CompiledRule:
    """Compile and check a rule; raise RuleError saying what is wrong with it."""
    label = f"rule {rule.rule_id} v{rule.version}"
    try:
        program = cel.compile(rule.condition)
    except Exception as error:  # ValueError for syntax; be safe with anything the binding raises
        raise RuleError(f"{label}: does not compile: {error}") from error
    reads = _reads(rule.condition, label)
    try:
        binders = set(_MACRO_BINDER.findall(_STRING_LITERAL.sub('""', rule.condition)))
        unknown = set(program.variables()) - set(VARIABLES) - binders
    except Exception as error:
        raise RuleError(f"{label}: cannot be analysed: {error}") from error
    if unknown:
        raise RuleError(
            f"{label}: references unknown name(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(VARIABLES + FUNCTIONS)}"
        )
    compiled = CompiledRule(rule, program, reads)
    try:
        compiled.evaluate(_PROBE, lambda _type: NEVER_DAYS)
    except RuleError as error:
        # A missing key inside a free-form map (event.attributes.x) depends on the data;
        # anything else (type errors, unknown functions, non-boolean results) is the rule's own.
        if "KeyError" not in str(error):
            raise
    return compiled


def freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value, for memo keys."""
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, freeze(item)) for key, item in value.items()))
    return value


@dataclass(frozen=True)
class Verdict:
    """Why an offer was excluded: the first rule, in evaluation order, that said no."""

    offer_id: str
    rule_id: str
    rule_version: int
    kind: str
    reason: str


def _only(values: Mapping[str, Any], fields: tuple[str, ...]) -> Mapping[str, Any]:
    """The fields a rule reads: CEL converts every value it is given, so give it no more."""
    if fields == ("*",):
        return values
    return {name: values[name] for name in fields if name in values}


@dataclass(frozen=True)
class OfferGroup:
    key: tuple[Any, ...]
    representative: Mapping[str, Any]
    offer_ids: tuple[str, ...]
    excluded: tuple[Verdict, ...]  # the verdicts when the condition is false, built once


@dataclass(frozen=True)
class RuleInForce:
    compiled: CompiledRule
    groups: tuple[OfferGroup, ...]


def group_offers(compiled: CompiledRule, offers: Iterable[Mapping[str, Any]]) -> RuleInForce:
    """Group the offers `compiled` applies to by the offer fields it reads."""
    groups: dict[tuple[Any, ...], tuple[Mapping[str, Any], list[str]]] = {}
    fields = compiled.reads.offer
    for offer in offers:
        if not compiled.applies_to(offer):
            continue
        if fields == ("*",):
            key: tuple[Any, ...] = (offer["offer_id"],)
        else:
            key = tuple(freeze(offer.get(name)) for name in fields)
        groups.setdefault(key, (_only(offer, fields), []))[1].append(offer["offer_id"])
    rule = compiled.rule
    reason = f"condition false: {rule.condition}"
    return RuleInForce(
        compiled,
        tuple(
            OfferGroup(
                key,
                representative,
                tuple(ids),
                tuple(Verdict(oid, rule.rule_id, rule.version, rule.kind, reason) for oid in ids),
            )
            for key, (representative, ids) in groups.items()
        ),
    )


@dataclass(frozen=True)
class EventFacts:
    """The per-event inputs of rules: customer view, event, time, and last-seen times.

    `now` is truncated to the minute on construction (see the module docstring).
    """

    customer: Mapping[str, Any]
    event: Mapping[str, Any]
    now: datetime
    last_seen: Mapping[str, float]  # event type -> epoch seconds
    _frozen: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", self.now.replace(second=0, microsecond=0))

    def frozen(self, variable: str, name: str) -> Any:
        """The hashable value of `variable.name`, frozen once per event."""
        try:
            return self._frozen[variable, name]
        except KeyError:
            values = self.customer if variable == "customer" else self.event
            value = self._frozen[variable, name] = freeze(values.get(name))
            return value

    def days_since(self, event_type: str) -> float:
        seen = self.last_seen.get(event_type)
        if seen is None:
            return NEVER_DAYS
        return (self.now.timestamp() - seen) / _SECONDS_PER_DAY


@dataclass
class RuleEvaluator:
    """Evaluates the rules in force for one event, memoising on what each rule reads.

    The memo maps (rule, event key) to the rule's verdicts over all its offer groups, so a
    repeated situation costs one look-up per rule. One evaluator per processing thread; empty
    its memo (`reset`) when the catalogue changes.
    """

    memo: dict[tuple[Any, ...], dict[str, Verdict]] = field(default_factory=dict)
    runs: int = 0
    errors: int = 0

    def reset(self) -> None:
        self.memo.clear()

    @staticmethod
    def _event_key(reads: Reads, facts: EventFacts) -> tuple[Any, ...]:
        parts: list[Any] = []
        if reads.customer == ("*",):
            parts.append(freeze(facts.customer))
        else:
            parts.extend(facts.frozen("customer", name) for name in reads.customer)
        if reads.event == ("*",):
            parts.append(freeze(facts.event))
        else:
            parts.extend(facts.frozen("event", name) for name in reads.event)
        if reads.now:
            parts.append(facts.now)
        if reads.days_since == ("*",):
            parts.append(freeze(dict(facts.last_seen)))
            parts.append(facts.now)
        else:
            parts.extend(facts.days_since(name) for name in reads.days_since)
        return tuple(parts)

    def _verdicts(self, rule: RuleInForce, facts: EventFacts) -> dict[str, Verdict]:
        """Run the rule on every group it applies to; the verdicts of the offers it excludes."""
        compiled = rule.compiled
        reads = compiled.reads
        customer = _only(facts.customer, reads.customer)
        event = _only(facts.event, reads.event)
        verdicts: list[Verdict] = []
        for group in rule.groups:
            self.runs += 1
            bindings = {"offer": group.representative, "customer": customer, "event": event}
            if reads.now:
                bindings["now"] = facts.now
            try:
                if not compiled.evaluate(bindings, facts.days_since):
                    verdicts.extend(group.excluded)
            except RuleError as error:
                self.errors += 1
                rule_ = compiled.rule
                reason = f"could not be evaluated, so excluded: {error}"
                verdicts.extend(
                    Verdict(oid, rule_.rule_id, rule_.version, rule_.kind, reason)
                    for oid in group.offer_ids
                )
        return {verdict.offer_id: verdict for verdict in verdicts}

    def exclusions(self, rules: Iterable[RuleInForce], facts: EventFacts) -> dict[str, Verdict]:
        """offer id -> the verdict of the first rule that excludes it."""
        if len(self.memo) > _MEMO_LIMIT:
            self.memo.clear()
        per_rule: list[dict[str, Verdict]] = []
        keys: dict[Reads, tuple[Any, ...]] = {}  # rules reading the same fields share a key
        for rule in rules:
            reads = rule.compiled.reads
            event_key = keys.get(reads)
            if event_key is None:
                event_key = keys[reads] = self._event_key(reads, facts)
            memo_key = (rule.compiled.uid, event_key)
            verdicts = self.memo.get(memo_key)
            if verdicts is None:
                verdicts = self.memo[memo_key] = self._verdicts(rule, facts)
            if verdicts:
                per_rule.append(verdicts)
        excluded: dict[str, Verdict] = {}
        for verdicts in reversed(per_rule):  # earlier rules overwrite later ones: first one wins
            excluded.update(verdicts)
        return excluded
