"""The Valid Offers μ-product: per journey event, the offers valid for this customer right now.

Sources: `customers`, `events`, `interactions` (keyed by customer id, co-partitioned) and the
global tables `offers`, `validation_rules`, `eligibilities` (see `pipeline.catalogue`).
Sink: `valid_offers`; bad records go to `dead_letter`.

The three customer-keyed topics are concatenated into one dataframe, so one state store holds
each customer's state and Quix processes their records in timestamp order: a profile update
produced before an event is applied before the event is decided, never after.

    parse ─> update state, and decide on events ─> valid_offers
                 └─ bad records ─> dead_letter (sent directly: a dataframe branch would
                                   deep-copy every 20 KB output to serve a rare record)

Run it with `nbo run valid-offers`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from quixstreams import Application, State
from quixstreams.models import Row

from pipeline import customer_state
from pipeline.catalogue import Catalogue, GlobalTables
from pipeline.dead_letters import DeadLetterProducer, Origin, dead_letter
from pipeline.quix import make_application, run_watched
from pipeline.rules import EventFacts, RuleEvaluator
from pipeline.schemas import Customer, Interaction, JourneyEvent, describe_errors
from pipeline.settings import Settings

log = logging.getLogger(__name__)

STAGE = "valid-offers"
SOURCES: dict[str, type[BaseModel]] = {
    "customers": Customer,
    "events": JourneyEvent,
    "interactions": Interaction,
}
_STATE_KEY = "customer"


@dataclass(frozen=True)
class Parsed:
    """A source record, validated, or the dead letter that replaces it."""

    source: str  # logical topic
    record: BaseModel | None  # None for a tombstone
    dead: dict[str, Any] | None = None


def parse(
    raw: bytes | None,
    key: str | None,
    topics: dict[str, str],
    schemas: dict[str, type[BaseModel]],
    stage: str = STAGE,
) -> Parsed:
    """Validate one raw record from a source topic (`topics`: real name -> logical name)."""
    origin = Origin.of_current_message(key)
    source = topics[origin.topic]
    if raw is None:
        return Parsed(source, None)
    try:
        record = schemas[source].model_validate_json(raw)
    except ValidationError as error:
        reason = f"invalid {source}: {describe_errors(error)}"
        return Parsed(source, None, dead_letter(stage, origin, reason, raw))
    record_customer = getattr(record, "customer_id", None)
    if key != record_customer:
        reason = f"message key {key!r} differs from customer_id {record_customer!r}"
        return Parsed(source, None, dead_letter(stage, origin, reason, raw))
    return Parsed(source, record)


def decide(
    catalogue: Catalogue,
    evaluator: RuleEvaluator,
    state: customer_state.State,
    event: JourneyEvent,
) -> dict[str, Any]:
    """The valid_offers record for `event`, given the customer's state after the event."""
    customer = customer_state.customer_view(state, event.customer_id)
    facts = EventFacts(
        customer=customer,
        event=event.model_dump(),
        now=event.timestamp,
        last_seen=state["last_seen"],
    )
    exclusions = evaluator.exclusions(catalogue.rules, facts)
    now = event.timestamp.timestamp()
    trigger_days: dict[tuple[str, ...], float | None] = {}  # offers of a kind share triggers
    candidates = []
    for offer_id in evaluator.remaining(catalogue.offer_ids, exclusions.mask):
        triggers = catalogue.triggers[offer_id]
        if triggers not in trigger_days:
            trigger_days[triggers] = customer_state.days_since_trigger(state, triggers, now)
        shown, unanswered = customer_state.contact_counts(
            state, offer_id, now, catalogue.offers[offer_id]["contact_window_days"]
        )
        candidates.append(
            {
                "offer_id": offer_id,
                "days_since_trigger": trigger_days[triggers],
                "impressions": shown,
                "unanswered_impressions": unanswered,
            }
        )
    return {
        "schema_version": 1,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "customer_id": event.customer_id,
        "timestamp": event.timestamp.isoformat(),
        "channel": event.channel,
        "event_attributes": event.attributes,
        "customer": {**customer, "updated_at": _json_time(customer.get("updated_at"))},
        "candidates": candidates,
        "excluded": [excluded.record() for excluded in exclusions.by_rule],
        "rule_versions": catalogue.rule_versions,
        "catalogue_version": catalogue.version,
    }


def _json_time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class ValidOffersProcessor:
    """The stateful step: owns the rule evaluator and reads the current catalogue per record."""

    def __init__(self, tables: GlobalTables, dead_letters: DeadLetterProducer) -> None:
        self._tables = tables
        self._dead_letters = dead_letters
        self._evaluator = RuleEvaluator()
        self._catalogue_version = -1

    def __call__(
        self, parsed: Parsed, key: str, _timestamp: int, _headers: Any, state: State[str, Any]
    ) -> dict[str, Any] | None:
        """The valid_offers record for an event; None for other records."""
        if parsed.dead is not None:
            self._dead_letters.send(parsed.dead)
            return None
        record = parsed.record
        if record is None:  # tombstone on customers: the customer asked to be forgotten
            state.delete(_STATE_KEY)
            return None
        catalogue = self._tables.catalogue
        if catalogue.version != self._catalogue_version:
            self._evaluator.reset()
            self._catalogue_version = catalogue.version
        current = state.get(_STATE_KEY) or customer_state.new_state()
        output = self._apply(catalogue, current, record, key)
        state.set(_STATE_KEY, current)
        return output

    def _apply(
        self, catalogue: Catalogue, current: customer_state.State, record: BaseModel, key: str
    ) -> dict[str, Any] | None:
        if isinstance(record, Customer):
            customer_state.apply_profile(current, record.model_dump(mode="json"))
            return None
        if isinstance(record, Interaction):
            offer = catalogue.offers.get(record.offer_id)
            if offer is None:
                reason = f"interaction {record.interaction_id}: unknown offer id {record.offer_id}"
                raw = record.model_dump_json()
                self._dead_letters.send(
                    dead_letter(STAGE, Origin.of_current_message(key), reason, raw)
                )
                return None
            customer_state.apply_interaction(
                current,
                record.offer_id,
                offer["category"],
                record.outcome,
                record.timestamp.timestamp(),
            )
            return None
        assert isinstance(record, JourneyEvent)
        customer_state.apply_event(current, record.event_type, record.timestamp.timestamp())
        return decide(catalogue, self._evaluator, current, record)


def processing_error_to_dead_letter(dead_letters: DeadLetterProducer, stage: str = STAGE) -> Any:
    """Quix error callback: an unexpected error dead-letters the record; the stream goes on."""

    def _on_error(error: Exception, row: Row | None, logger: logging.Logger) -> bool:
        if row is None:
            return False
        origin = Origin(row.topic, row.partition, row.offset, _key_text(row.key))
        reason = f"unexpected {type(error).__name__} in {STAGE}: {error}"
        logger.error("dead letter from %s: %s", origin, reason)
        raw = (
            row.value if isinstance(row.value, bytes | str) else json.dumps(row.value, default=str)
        )
        dead_letters.send(dead_letter(STAGE, origin, reason, raw))
        return True

    return _on_error


def _key_text(key: Any) -> str | None:
    if isinstance(key, bytes):
        return key.decode(errors="replace")
    return None if key is None else str(key)


def build(
    settings: Settings, bootstrap: str, tables: GlobalTables, dead_letters: DeadLetterProducer
) -> Application:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        STAGE,
        on_processing_error=processing_error_to_dead_letter(dead_letters),
    )
    topics = {settings.topic_name(name): name for name in SOURCES}
    sources = [
        app.topic(name, key_deserializer="str", value_deserializer="bytes") for name in topics
    ]
    valid_offers = app.topic(
        settings.topic_name("valid_offers"), key_serializer="str", value_serializer="json"
    )

    sdf = app.dataframe(sources[0])
    for source in sources[1:]:
        sdf = sdf.concat(app.dataframe(source))
    sdf = sdf.apply(lambda raw, key, _ts, _headers: parse(raw, key, topics, SOURCES), metadata=True)
    sdf = sdf.apply(ValidOffersProcessor(tables, dead_letters), stateful=True, metadata=True)
    sdf = sdf.filter(lambda output: output is not None)
    sdf.to_topic(valid_offers)
    return app


def run(settings: Settings, bootstrap: str) -> None:
    """Load the global tables, then process until stopped (SIGTERM or Ctrl-C)."""
    tables = GlobalTables(settings, bootstrap).start(timeout=settings.broker_start_timeout)
    log.info(
        "%s: catalogue loaded (%d offers, %d rules)",
        STAGE,
        len(tables.catalogue.offers),
        len(tables.catalogue.rules),
    )
    dead_letters = DeadLetterProducer(settings, bootstrap)
    try:
        run_watched(build(settings, bootstrap, tables, dead_letters), settings, bootstrap, STAGE,
                    SOURCES)  # fmt: skip
    finally:
        dead_letters.flush()
        tables.stop()
