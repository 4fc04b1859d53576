"""The global tables every Valid Offers instance needs in full: offers and rules.

Offers and rules are not keyed by customer, so a consumer group would give each instance only
some of them. Each instance therefore reads every partition of the compacted `offers`,
`validation_rules` and `eligibilities` topics itself, from the beginning, in a background thread
with no consumer group (`GlobalTables`, on a `TopicFollower`), and publishes an immutable
`Catalogue` snapshot that the processing thread picks up per event. We chose this over Quix's
`join_lookup` because a decision needs the whole table (every offer and every rule), not one
value looked up by key.

A rule is compiled when it arrives. One that does not compile, reads unknown fields, or is not
newer than the version in force goes to the dead-letter topic, and the previous version stays.
A change is in force from the moment the reader applies it; each output records the rule
versions it used, so every decision can be explained and replayed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from pipeline.catalogue.rules import (
    CompiledRule,
    RuleError,
    RuleInForce,
    compile_rule,
    group_offers,
)
from pipeline.contracts.schemas import DeadLetterKind, Offer, Rule, RuleKind, describe_errors
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, dead_letter
from pipeline.kafka.follow import TopicFollower
from pipeline.settings import Settings

INVALID, KEY_MISMATCH = DeadLetterKind.INVALID_RECORD, DeadLetterKind.KEY_MISMATCH
CONFLICT = DeadLetterKind.CATALOGUE_CONFLICT

log = logging.getLogger(__name__)

TABLE_TOPICS = {
    "offers": None,
    "validation_rules": RuleKind.VALIDATION,
    "eligibilities": RuleKind.ELIGIBILITY,
}


@dataclass(frozen=True)
class Catalogue:
    """An immutable snapshot of offers and rules in force. Replaced whole on any change."""

    version: int
    offers: dict[str, dict[str, Any]]  # offer id -> offer fields (python values, for rules)
    offer_ids: tuple[str, ...]  # the offers in order: offer i is bit i of the rules' masks
    triggers: dict[str, tuple[str, ...]]  # offer id -> event types that open its interest
    rules: tuple[RuleInForce, ...]  # validation rules first, then eligibilities
    rule_versions: dict[str, int]


@dataclass
class TableState:
    """The tables as read so far; `apply` one record at a time, `snapshot` when done."""

    offers: dict[str, Offer] = field(default_factory=dict)
    rules: dict[str, CompiledRule] = field(default_factory=dict)
    latest_versions: dict[str, Rule] = field(default_factory=dict)  # incl. disabled rules
    changes: int = 0

    def apply(self, logical_topic: str, origin: Origin, raw: bytes | None) -> dict[str, Any] | None:
        """Apply one record; return a dead letter if it cannot be used, else None."""
        if logical_topic not in TABLE_TOPICS:
            raise ValueError(f"not a table topic: {logical_topic}")
        if raw is None:  # tombstone: the key is deleted
            self._delete(logical_topic, origin)
            return None
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return dead_letter("catalogue", origin, f"malformed JSON: {error}", raw, INVALID)
        if logical_topic == "offers":
            return self._apply_offer(origin, payload, raw)
        return self._apply_rule(TABLE_TOPICS[logical_topic], origin, payload, raw)

    def _delete(self, logical_topic: str, origin: Origin) -> None:
        key = origin.key or ""
        table: dict[str, Any] = self.offers if logical_topic == "offers" else self.rules
        if table.pop(key, None) is not None:
            self.changes += 1
        if logical_topic != "offers":
            self.latest_versions.pop(key, None)

    def _apply_offer(self, origin: Origin, payload: Any, raw: bytes) -> dict[str, Any] | None:
        try:
            offer = Offer.model_validate(payload)
        except ValidationError as error:
            reason = f"invalid offer: {describe_errors(error)}"
            return dead_letter("catalogue", origin, reason, raw, INVALID)
        if origin.key is not None and origin.key != offer.offer_id:
            reason = f"key {origin.key!r} differs from offer_id {offer.offer_id!r}"
            return dead_letter("catalogue", origin, reason, raw, KEY_MISMATCH)
        self.offers[offer.offer_id] = offer
        self.changes += 1
        return None

    def _apply_rule(
        self, kind: RuleKind | None, origin: Origin, payload: Any, raw: bytes
    ) -> dict[str, Any] | None:
        try:
            rule = Rule.model_validate(payload)
        except ValidationError as error:
            reason = f"invalid rule: {describe_errors(error)}"
            return dead_letter("catalogue", origin, reason, raw, INVALID)
        if rule.kind != kind:
            reason = f"rule {rule.rule_id} has kind {rule.kind} but came on {origin.topic}"
            return dead_letter("catalogue", origin, reason, raw, CONFLICT)
        current = self.latest_versions.get(rule.rule_id)
        if current is not None and rule.version <= current.version:
            if rule == current:
                return None  # the same version delivered again (a reload): nothing changes
            reason = (
                f"rule {rule.rule_id} v{rule.version} is not newer than v{current.version} "
                "in force; the rule in force is kept"
            )
            return dead_letter("catalogue", origin, reason, raw, CONFLICT)
        if rule.enabled:
            try:
                compiled = compile_rule(rule)
            except RuleError as error:
                kept = f"; v{current.version} stays in force" if current else ""
                return dead_letter("catalogue", origin, f"{error}{kept}", raw, INVALID)
            self.rules[rule.rule_id] = compiled
        else:
            self.rules.pop(rule.rule_id, None)
        self.latest_versions[rule.rule_id] = rule
        self.changes += 1
        return None

    def snapshot(self) -> Catalogue:
        offers = {offer_id: offer.model_dump() for offer_id, offer in sorted(self.offers.items())}
        ordered = sorted(
            self.rules.values(),
            key=lambda c: (c.rule.kind != RuleKind.VALIDATION, c.rule.rule_id),
        )
        return Catalogue(
            version=self.changes,
            offers=offers,
            offer_ids=tuple(offers),
            triggers={oid: tuple(offer.triggers) for oid, offer in self.offers.items()},
            rules=tuple(group_offers(compiled, offers.values()) for compiled in ordered),
            rule_versions={c.rule.rule_id: c.rule.version for c in ordered},
        )


class GlobalTables:
    """Reads the table topics in a background thread and publishes `Catalogue` snapshots."""

    def __init__(
        self, settings: Settings, bootstrap: str, tables: tuple[str, ...] = tuple(TABLE_TOPICS)
    ) -> None:
        self._topics = {settings.topic_name(name): name for name in tables}
        self._state = TableState()
        self._dead_letters = DeadLetterProducer(settings, bootstrap)
        self._follower = TopicFollower(
            settings, bootstrap, list(self._topics), self._apply_batch, "global-tables"
        )
        self.catalogue: Catalogue = self._state.snapshot()

    def start(self, timeout: float = 30.0) -> GlobalTables:
        """Start reading and return once every table topic has been read to its end."""
        self._follower.start(timeout)
        return self

    def stop(self) -> None:
        self._follower.stop()
        self._dead_letters.flush()

    @property
    def dead_letters_sent(self) -> int:
        return self._dead_letters.sent

    def _apply_batch(self, messages: list[Message]) -> None:
        changed = False
        for message in messages:
            changed |= self._apply(message)
        if changed:
            self.catalogue = self._state.snapshot()

    def _apply(self, message: Message) -> bool:
        key = message.key()
        origin = Origin(
            topic=message.topic() or "",
            partition=message.partition(),
            offset=message.offset(),
            key=key.decode(errors="replace") if key is not None else None,
        )
        before = self._state.changes
        dead = self._state.apply(self._topics[origin.topic], origin, message.value())
        if dead is not None:
            log.warning("dead letter from %s: %s", origin, dead["reason"])
            self._dead_letters.send(dead)
        return self._state.changes != before
