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
- what the rule excludes for (rule, event key) is memoised; CEL has no side effects, so a
  memoised result is exactly what evaluating again would give;
- each offer is one bit of an integer (offer i of the catalogue is bit i), so the exclusions
  of the rules combine by bitwise or, and "the first rule that says no" by and-not.

An event therefore costs a few dictionary look-ups per rule and a CEL run only for combinations
not seen before (a rule on `now` is run once per group per event).

>>> rule = compile_rule(Rule(rule_id="adult", version=1, kind="eligibility",
...                          condition="customer.age >= 18"))
>>> rule.reads
Reads(offer=(), customer=('age',), event=(), now=False, days_since=())
>>> compile_rule(Rule(rule_id="typo", version=1, kind="eligibility", condition="customer.agee > 1"))
Traceback (most recent call last):
...
pipeline.catalogue.rules.RuleError: rule typo v1: references unknown field customer.agee
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.time_value import SECONDS_PER_DAY
from pipeline.catalogue.cel_runtime import cel
from pipeline.contracts.schemas import (
    Category,
    Channel,
    Customer,
    Exclusion,
    JourneyEvent,
    Offer,
    Rule,
    Segment,
)
from pipeline.errors import NboError

NEVER_DAYS = 1.0e9
_MEMO_LIMIT = 50_000  # entries; the memo is emptied when it grows past this
_REMAINING_LIMIT = 10_000  # distinct exclusion masks remembered (each about 400 bytes)

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
        category=Category.CARD,
        value=1.0,
        primary_interest_days=1,
        secondary_interest_days=1,
        negative_impact_days=3,
        channels=[Channel.WEB],
        valid_from=now,
        valid_to=datetime(2027, 1, 1, tzinfo=UTC),
        stock=1,
        max_impressions=1,
        triggers=["x"],
    )
    customer = Customer(
        customer_id="probe",
        age=30,
        segment=Segment.MASS,
        region="r",
        income=1.0,
        tenure_years=1.0,
        products_held=["card"],
        consents=[Channel.WEB],
        updated_at=now,
    )
    event = JourneyEvent(
        event_id="probe", customer_id="probe", event_type="x", timestamp=now, channel=Channel.WEB
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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value, for memo keys.

    >>> freeze({"b": [1, 2], "a": None})
    (('a', None), ('b', (1, 2)))
    """
    if type(value) in _SCALARS:  # most fields: returned as they are, without isinstance checks
        return value
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
    """Offers a rule sees as one: they agree on every offer field it reads."""

    key: tuple[Any, ...]
    representative: Mapping[str, Any]
    offer_ids: tuple[str, ...]
    bits: tuple[int, ...]  # each offer's bit (see `group_offers`), in `offer_ids` order
    mask: int  # all of them


@dataclass(frozen=True)
class Excluded:
    """Offers that one rule excluded at an event, for one reason."""

    rule: Rule
    reason: str
    offer_ids: tuple[str, ...]
    bits: tuple[int, ...]  # each offer's bit, in `offer_ids` order
    mask: int

    def record(self) -> Exclusion:
        """As a valid_offers `excluded` entry."""
        return Exclusion(
            rule_id=self.rule.rule_id,
            rule_version=self.rule.version,
            kind=self.rule.kind,
            reason=self.reason,
            offer_ids=list(self.offer_ids),
        )


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a memo key
class RuleInForce:
    compiled: CompiledRule
    groups: tuple[OfferGroup, ...]
    # what the rule excludes when its condition is false on every group, built once
    all_false: Excluded
    # the event key: the values of every event-side name the rule reads (see `EventFacts`)
    event_key: Callable[[Mapping[tuple[str, str], Any]], Any]


def group_offers(compiled: CompiledRule, offers: Iterable[Mapping[str, Any]]) -> RuleInForce:
    """Group the offers `compiled` applies to by the offer fields it reads.

    The i-th offer of `offers` is bit i of every mask: the catalogue gives every rule its
    offers in one order, so a rule's exclusions combine with another's by bitwise or.
    """
    groups: dict[tuple[Any, ...], tuple[Mapping[str, Any], list[str], list[int]]] = {}
    fields = compiled.reads.offer
    for index, offer in enumerate(offers):
        if not compiled.applies_to(offer):
            continue
        if fields == ("*",):
            key: tuple[Any, ...] = (offer["offer_id"],)
        else:
            key = tuple(freeze(offer.get(name)) for name in fields)
        _, ids, bits = groups.setdefault(key, (_only(offer, fields), [], []))
        ids.append(offer["offer_id"])
        bits.append(1 << index)
    built = tuple(
        OfferGroup(key, representative, tuple(ids), tuple(bits), sum(bits))
        for key, (representative, ids, bits) in groups.items()
    )
    return RuleInForce(
        compiled,
        built,
        _excluded(compiled.rule, f"condition false: {compiled.rule.condition}", built),
        _event_key_of(compiled.reads),
    )


def _excluded(rule: Rule, reason: str, groups: Iterable[OfferGroup]) -> Excluded:
    groups = tuple(groups)
    return Excluded(
        rule,
        reason,
        tuple(offer_id for group in groups for offer_id in group.offer_ids),
        tuple(bit for group in groups for bit in group.bits),
        sum(group.mask for group in groups),
    )


def _event_key_of(reads: Reads) -> Callable[[Mapping[tuple[str, str], Any]], Any]:
    """A C-speed getter of the rule's event key from an event's `EventFacts.values`."""
    names = [("customer", name) for name in reads.customer]
    names += [("event", name) for name in reads.event]
    if reads.now:
        names.append(("now", ""))
    names += [("days_since", name) for name in reads.days_since]
    if reads.days_since == ("*",):
        names.append(("now", ""))
    if not names:
        return lambda _values: ()
    return operator.itemgetter(*names)


class _FrozenValues(dict[tuple[str, str], Any]):
    """(variable, name) -> the hashable value a rule's event key is made of, frozen on first use."""

    def __init__(self, facts: EventFacts) -> None:
        super().__init__()
        self._facts = facts

    def __missing__(self, name: tuple[str, str]) -> Any:
        variable, field_name = name
        facts = self._facts
        if variable == "now":
            value: Any = facts.now
        elif variable == "days_since":
            value = (
                freeze(dict(facts.last_seen)) if field_name == "*" else facts.days_since(field_name)
            )
        else:
            values = facts.customer if variable == "customer" else facts.event
            value = freeze(values) if field_name == "*" else freeze(values.get(field_name))
        self[name] = value
        return value


@dataclass(frozen=True)
class EventFacts:
    """The per-event inputs of rules: customer view, event, time, and last-seen times.

    `now` is truncated to the minute on construction (see the module docstring).
    """

    customer: Mapping[str, Any]
    event: Mapping[str, Any]
    now: datetime
    last_seen: Mapping[str, float]  # event type -> epoch seconds
    values: _FrozenValues = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", self.now.replace(second=0, microsecond=0))
        object.__setattr__(self, "values", _FrozenValues(self))

    def days_since(self, event_type: str) -> float:
        seen = self.last_seen.get(event_type)
        if seen is None:
            return NEVER_DAYS
        return (self.now.timestamp() - seen) / SECONDS_PER_DAY


@dataclass(frozen=True)
class Exclusions:
    """What the rules in force excluded at one event: each offer under the first rule only."""

    mask: int  # every excluded offer's bit
    by_rule: tuple[Excluded, ...]  # in evaluation order

    def verdicts(self) -> dict[str, Verdict]:
        """offer id -> why it was excluded."""
        return {
            offer_id: Verdict(offer_id, e.rule.rule_id, e.rule.version, e.rule.kind, e.reason)
            for e in self.by_rule
            for offer_id in e.offer_ids
        }


_NOTHING: tuple[Excluded, ...] = ()


@dataclass
class RuleEvaluator:
    """Evaluates the rules in force for one event, memoising on what each rule reads.

    Per rule, the memo maps an event key to what the rule excludes, so a repeated situation
    costs one look-up per rule; exclusions of several rules combine as bit masks. One evaluator
    per processing thread; empty its memo (`reset`) when the catalogue changes.
    """

    memo: dict[RuleInForce, dict[Any, tuple[Excluded, ...]]] = field(default_factory=dict)
    memo_size: int = 0
    runs: int = 0
    errors: int = 0
    _remaining: dict[int, tuple[str, ...]] = field(default_factory=dict)
    _narrowings: dict[tuple[int, int], Excluded] = field(default_factory=dict)

    def reset(self) -> None:
        self.memo.clear()
        self.memo_size = 0
        self._remaining.clear()
        self._narrowings.clear()

    def remaining(self, offer_ids: tuple[str, ...], excluded_mask: int) -> tuple[str, ...]:
        """The offers of `offer_ids` (offer i is bit i) not in `excluded_mask`, in order;
        memoised on the mask, since customers in one situation share one, so `offer_ids` must
        be the same catalogue's until `reset`."""
        remaining = self._remaining.get(excluded_mask)
        if remaining is None:
            remaining = tuple(
                offer_id
                for index, offer_id in enumerate(offer_ids)
                if not excluded_mask >> index & 1
            )
            if len(self._remaining) >= _REMAINING_LIMIT:
                self._remaining.clear()
            self._remaining[excluded_mask] = remaining
        return remaining

    def exclusions(self, rules: Iterable[RuleInForce], facts: EventFacts) -> Exclusions:
        if self.memo_size > _MEMO_LIMIT:
            self.reset()
        values = facts.values
        mask = 0
        by_rule: list[Excluded] = []
        for rule in rules:
            memo = self.memo.get(rule)
            if memo is None:
                memo = self.memo[rule] = {}
            event_key = rule.event_key(values)
            excluded = memo.get(event_key)
            if excluded is None:
                excluded = memo[event_key] = self._evaluate(rule, facts)
                self.memo_size += 1
            for part in excluded:
                new = part.mask & ~mask
                if new == part.mask:
                    by_rule.append(part)
                elif new:  # some of its offers were excluded by an earlier rule already
                    by_rule.append(self._narrowed(part, new))
                mask |= new
        return Exclusions(mask, tuple(by_rule))

    def _narrowed(self, part: Excluded, mask: int) -> Excluded:
        """`part` reduced to the offers in `mask` (memoised: the same rules overlap the same
        way for every customer in one situation)."""
        key = (id(part), mask)  # `part` lives in the memo as long as this entry does
        narrowed = self._narrowings.get(key)
        if narrowed is None:
            pairs = zip(part.offer_ids, part.bits, strict=True)
            kept = [(offer_id, bit) for offer_id, bit in pairs if mask & bit]
            narrowed = self._narrowings[key] = Excluded(
                part.rule, part.reason, tuple(o for o, _ in kept), tuple(b for _, b in kept), mask
            )
            self.memo_size += 1
        return narrowed

    def _evaluate(self, rule: RuleInForce, facts: EventFacts) -> tuple[Excluded, ...]:
        """Run the rule on every group it applies to: what it excludes, by reason."""
        compiled = rule.compiled
        reads = compiled.reads
        customer = _only(facts.customer, reads.customer)
        event = _only(facts.event, reads.event)
        false: list[OfferGroup] = []
        failed: dict[str, list[OfferGroup]] = {}
        for group in rule.groups:
            self.runs += 1
            bindings: dict[str, Any] = {
                "offer": group.representative,
                "customer": customer,
                "event": event,
            }
            if reads.now:
                bindings["now"] = facts.now
            try:
                if not compiled.evaluate(bindings, facts.days_since):
                    false.append(group)
            except RuleError as error:
                self.errors += 1
                failed.setdefault(f"could not be evaluated, so excluded: {error}", []).append(group)
        if len(false) == len(rule.groups):
            parts = [rule.all_false] if false else []
        else:
            parts = [_excluded(compiled.rule, rule.all_false.reason, false)] if false else []
        parts += [_excluded(compiled.rule, reason, groups) for reason, groups in failed.items()]
        return tuple(parts) if parts else _NOTHING
