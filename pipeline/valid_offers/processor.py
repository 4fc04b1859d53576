"""Valid Offers' stateful step: a customer's records update their state; an event is decided.

Per record, in the customer's timestamp order:
    profile      → the customer's attributes (a tombstone forgets the customer)
    interaction  → contact history and responses, per offer and category
    event        → recent events and triggers, then `decide`: every offer the rules leave valid,
                   with this customer's days since its trigger and impressions so far
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from quixstreams import State

from pipeline.catalogue.rules import EventFacts, RuleEvaluator
from pipeline.catalogue.tables import Catalogue, GlobalTables
from pipeline.contracts.schemas import (
    CandidateOffer,
    Customer,
    DeadLetterKind,
    Interaction,
    JourneyEvent,
    ValidOffers,
)
from pipeline.contracts.topics import VALID_OFFERS
from pipeline.kafka.dead_letters import DeadLetterProducer, Origin, Parsed, dead_letter
from pipeline.valid_offers import state as customer_state

STAGE = VALID_OFFERS
_STATE_KEY = "customer"


def valid_offers_for(
    catalogue: Catalogue,
    evaluator: RuleEvaluator,
    state: customer_state.State,
    event: JourneyEvent,
) -> ValidOffers:
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
    candidates: list[CandidateOffer] = []
    for offer_id in evaluator.remaining(catalogue.offer_ids, exclusions.mask):
        triggers = catalogue.triggers[offer_id]
        if triggers not in trigger_days:
            trigger_days[triggers] = customer_state.days_since_trigger(state, triggers, now)
        shown, unanswered = customer_state.contact_counts(
            state, offer_id, now, catalogue.offers[offer_id]["contact_window_days"]
        )
        candidates.append(  # a literal: calling the TypedDict costs more, once per candidate
            {
                "offer_id": offer_id,
                "days_since_trigger": trigger_days[triggers],
                "impressions": shown,
                "unanswered_impressions": unanswered,
            }
        )
    # Built without validating again what is validated already (the event, the customer state,
    # the catalogue), a fifth of the cost. The output-contract test checks the records against
    # the exported schema.
    return ValidOffers.model_construct(
        event_id=event.event_id,
        event_type=event.event_type,
        customer_id=event.customer_id,
        timestamp=event.timestamp,
        channel=event.channel,
        event_attributes=event.attributes,
        customer={**customer, "updated_at": _json_time(customer.get("updated_at"))},
        candidates=candidates,
        excluded=[excluded.record() for excluded in exclusions.by_rule],
        rule_versions=catalogue.rule_versions,
        catalogue_version=catalogue.version,
    )


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
    ) -> ValidOffers | None:
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
    ) -> ValidOffers | None:
        if isinstance(record, Customer):
            customer_state.apply_profile(current, record.model_dump(mode="json"))
            return None
        if isinstance(record, Interaction):
            offer = catalogue.offers.get(record.offer_id)
            if offer is None:
                reason = f"interaction {record.interaction_id}: unknown offer id {record.offer_id}"
                origin, raw = Origin.of_current_message(key), record.model_dump_json()
                unknown = DeadLetterKind.UNKNOWN_REFERENCE
                self._dead_letters.send(dead_letter(STAGE, origin, reason, raw, unknown))
                return None
            customer_state.apply_interaction(
                current,
                record.offer_id,
                offer["category"],
                record.outcome,
                record.timestamp.timestamp(),
            )
            return None
        if not isinstance(record, JourneyEvent):
            raise TypeError(f"Valid Offers reads customers, events and interactions: {record!r}")
        customer_state.apply_event(current, record.event_type, record.timestamp.timestamp())
        return valid_offers_for(catalogue, self._evaluator, current, record)
