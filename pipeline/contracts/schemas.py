"""Pydantic models for every record on every nbo topic.

Each record carries a `schema_version`, so consumers can tell an old shape from a new one.
Input records forbid unknown fields: a misspelt column is reported, not silently dropped.
Timestamps are timezone-aware; a naive timestamp is read as UTC. In CSV files, list fields are
written `a|b|c`.

`nbo schema export DIR` writes these models as JSON Schema for producers in other languages.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from features.values import as_utc, split_list
from models.names import BaselineName
from models.time_value import Phase

SCHEMA_VERSION = 1


def _date_as_midnight(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time.min)
    if isinstance(value, str) and len(value) == 10:  # a bare date: 2026-01-31
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value  # let pydantic report it
    return value


def _split_pipes(value: Any) -> Any:
    return split_list(value) if isinstance(value, str) else value


def _json_object(value: Any) -> Any:
    """A map written as JSON text (a CSV cell): `{"tier": "gold"}`; empty text is no map."""
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a JSON object: {error.msg}") from error
    return value


Timestamp = Annotated[datetime, BeforeValidator(_date_as_midnight), AfterValidator(as_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
EventType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
# Free-form attributes a feature set may read: names to scalars (in CSV, a JSON object)
AttributeName = Annotated[str, Field(min_length=1, max_length=64)]
Attributes = Annotated[
    dict[AttributeName, str | float | int | bool],
    BeforeValidator(_json_object),
    Field(description="free-form attributes for feature sets: name to scalar"),
]


class Category(StrEnum):
    MORTGAGE = "mortgage"
    LOAN = "loan"
    CARD = "card"
    SAVINGS = "savings"
    INVESTMENT = "investment"
    INSURANCE = "insurance"


class Channel(StrEnum):
    EMAIL = "email"
    MOBILE_APP = "mobile_app"
    WEB = "web"
    BRANCH = "branch"
    CALL_CENTER = "call_center"
    SMS = "sms"


class Segment(StrEnum):
    STUDENT = "student"
    MASS = "mass"
    AFFLUENT = "affluent"
    PRIVATE = "private"
    SMALL_BUSINESS = "small_business"


class RuleKind(StrEnum):
    VALIDATION = "validation"
    ELIGIBILITY = "eligibility"


class Outcome(StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    ACCEPT = "accept"
    DISMISS = "dismiss"
    CONVERT = "convert"


class DeadLetterKind(StrEnum):
    """Why a record was refused, as a class an operator can count and alert on (the reason's
    text names the record and the problem)."""

    INVALID_RECORD = "invalid_record"  # not JSON, or not its topic's schema
    KEY_MISMATCH = "key_mismatch"  # the message key is not the record's own id
    UNKNOWN_REFERENCE = "unknown_reference"  # names an offer or a decision nbo does not know
    CATALOGUE_CONFLICT = "catalogue_conflict"  # an offer or rule that contradicts the catalogue
    PROCESSING_ERROR = "processing_error"  # a μ-product failed on it unexpectedly
    UNKNOWN = "unknown"  # written before kinds were


class FeedbackOutcome(StrEnum):
    """How a shown offer was resolved: a response, or none by its silence horizon."""

    ACCEPT = "accept"
    CONVERT = "convert"
    DISMISS = "dismiss"
    NO_RESPONSE = "no response"


# What the customers' reactions mean for learning: accept and convert are positive, dismiss is
# negative; an impression or a click says nothing yet (the offer waits for its outcome).
POSITIVE_OUTCOMES: frozenset[str] = frozenset({Outcome.ACCEPT, Outcome.CONVERT})
NEGATIVE_OUTCOMES: frozenset[str] = frozenset({Outcome.DISMISS})
# How long a shown offer waits for a response at most before its silence is a negative label
# (sooner once the ranker has learned how long answers take: `pipeline.next_best_offer.silence`).
DEFAULT_RESPONSE_WINDOW_HOURS = 72.0

Channels = Annotated[list[Channel], BeforeValidator(_split_pipes)]
Names = Annotated[list[str], BeforeValidator(_split_pipes)]


class Record(BaseModel):
    """Base of every input record: strict about unknown fields, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    schema_version: int = SCHEMA_VERSION


class Offer(Record):
    """An offer from the pool, with its time-value profile.

    After a trigger event (one of `triggers`) the offer is worth `value` for
    `primary_interest_days`, `secondary_value_ratio × value` for the following
    `secondary_interest_days`, nothing after that, and `negative_value_ratio × value` (a loss)
    from `negative_impact_days` after the trigger on.
    """

    offer_id: Identifier
    name: str = Field(min_length=1)
    category: Category
    value: float = Field(gt=0, description="business value of an accepted offer")
    business_lever: float = Field(default=1.0, ge=0, description="marketing weight")
    triggers: Names = Field(default_factory=list, description="event types that open interest")
    primary_interest_days: float = Field(gt=0)
    secondary_interest_days: float = Field(ge=0)
    negative_impact_days: float = Field(gt=0, description="days after trigger when it hurts")
    secondary_value_ratio: float = Field(default=0.5, ge=0, le=1)
    negative_value_ratio: float = Field(default=-0.5, le=0)
    channels: Channels = Field(min_length=1)
    valid_from: Timestamp
    valid_to: Timestamp
    stock: int | None = Field(default=None, ge=0, description="remaining budget; None: no limit")
    max_impressions: int | None = Field(default=None, ge=1, description="per customer per window")
    contact_window_days: float = Field(default=30, gt=0)
    response_window_hours: float = Field(default=DEFAULT_RESPONSE_WINDOW_HOURS, gt=0)
    attributes: Attributes = Field(default_factory=dict)

    @model_validator(mode="after")
    def _periods_in_order(self) -> Offer:
        interest_ends = self.primary_interest_days + self.secondary_interest_days
        if self.negative_impact_days < interest_ends:
            raise ValueError(
                f"negative_impact_days ({self.negative_impact_days}) must not fall inside the "
                f"interest periods (primary + secondary = {interest_ends})"
            )
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


class Customer(Record):
    """A customer profile from the CRM; the latest one per customer wins."""

    customer_id: Identifier
    age: int = Field(ge=0, le=130)
    segment: Segment
    region: str = Field(min_length=1)
    income: float = Field(ge=0, description="yearly income")
    tenure_years: float = Field(ge=0)
    products_held: Names = Field(default_factory=list, description="offer categories held")
    consents: Channels = Field(default_factory=list, description="channels the customer allows")
    updated_at: Timestamp
    attributes: Attributes = Field(default_factory=dict)


class JourneyEvent(Record):
    """Something the customer did or that happened to them: the trigger of a decision."""

    event_id: Identifier
    customer_id: Identifier
    event_type: EventType
    timestamp: Timestamp
    channel: Channel = Field(description="where the customer is, where an offer can be shown")
    attributes: Attributes = Field(default_factory=dict)


class Rule(Record):
    """A business rule as data: a CEL condition that must hold for an offer to stay valid.

    `offer_ids` and `categories` limit the offers the rule applies to (both empty: every offer).
    A new `version` of a rule id replaces the old one from the moment it arrives.
    """

    rule_id: Identifier
    version: int = Field(ge=1)
    kind: RuleKind
    condition: str = Field(min_length=1, description="CEL expression that must be true")
    description: str = ""
    offer_ids: Names = Field(default_factory=list)
    categories: Annotated[list[Category], BeforeValidator(_split_pipes)] = Field(
        default_factory=list
    )
    enabled: bool = True


class Interaction(Record):
    """What a channel did with a decision and how the customer reacted."""

    interaction_id: Identifier
    decision_id: Identifier
    customer_id: Identifier
    offer_id: Identifier
    channel: Channel
    outcome: Outcome
    timestamp: Timestamp


class Output(BaseModel):
    """Base of records nbo itself produces (not strict: consumers may see newer fields)."""

    model_config = ConfigDict(frozen=True, use_enum_values=True)

    schema_version: int = SCHEMA_VERSION


class CandidateOffer(TypedDict):
    """An offer valid for a customer at an event, with this customer's facts about it.

    The offer's own fields (value, time-value profile, limits) are on the `offers` table,
    which the ranker reads too; `catalogue_version` on the record says which state of it applied.
    A plain dict rather than a model: a record carries tens of them, and validating into dicts
    takes half the time.
    """

    offer_id: str
    days_since_trigger: Annotated[
        float | None,
        Field(description="days from this offer's latest trigger to this event; none: no trigger"),
    ]
    impressions: Annotated[
        int, Field(description="impressions to this customer in the contact window")
    ]
    unanswered_impressions: Annotated[int, Field(description="impressions since the last response")]


class Exclusion(TypedDict):
    """The offers one rule excluded at this event (each offer under the first rule only).
    A plain dict, as `CandidateOffer` is."""

    rule_id: str
    rule_version: int
    kind: RuleKind
    reason: str
    offer_ids: list[str]


class ValidOffers(Output):
    """Per triggering event: the offers valid for this customer right now, and why not others."""

    event_id: str
    event_type: str
    customer_id: str
    timestamp: datetime
    channel: Channel
    event_attributes: dict[str, Any] = Field(default_factory=dict)
    customer: dict[str, Any] = Field(description="the customer state the decision used")
    candidates: list[CandidateOffer]
    excluded: list[Exclusion]
    rule_versions: dict[str, int]
    catalogue_version: int = Field(description="changes applied to offers and rules so far")


# treatment: decided by the model; control: by a baseline (`pipeline.next_best_offer.control`)
GroupName = Literal["treatment", "control"]


def group_name(group: str, baseline: str | None) -> str:
    """treatment, or control/<baseline>: a decision's group as reports name it."""
    return f"{group}/{baseline}" if baseline else group


class RankedOffer(Output):
    offer_id: str
    rank: int
    score: float = Field(
        description="priority = P(accept) as the objective reads it × value now × business lever"
    )
    p_accept: float = Field(description="the model's P(accept) in the offer's phase now")
    value_now: float
    phase: Phase
    propensity: float = Field(description="probability the policy chose this offer here")


class Decision(Output):
    """Per triggering event: the ranked next best offers, ready for a channel."""

    decision_id: str
    customer_id: str
    event_id: str
    event_type: str
    timestamp: datetime
    channel: Channel
    offers: list[RankedOffer]
    model_version: str
    registry_version: str | None = None  # the registered version the model descends from
    challenger_version: str | None = None  # scored in shadow, for its off-policy estimate
    instance: str | None = None  # host-pid of the ranker instance that decided
    policy: str
    feature_set: str
    rule_versions: dict[str, int]
    explanation: str
    group: GroupName = Field(
        default="treatment",
        description="control: a baseline decided instead of the model (`baseline`), for the "
        "impact report; each offer's propensity is the baseline's",
    )
    baseline: BaselineName | None = Field(default=None, description="who decided, in control")
    best_by_expected_value: str | None = Field(
        default=None,
        description="the candidate the model's P(accept) × value × lever (the interest phase "
        "counted once) puts first, shown or not: what the time weighting and exploration changed",
    )


class Feedback(Output):
    """One shown offer, resolved: what the customer did with it and what the ranker knew when it
    decided. Learners learn from these; off-policy evaluation reads them."""

    decision_id: str
    customer_id: str
    offer_id: str
    rank: int | None = Field(description="the offer's place in the decision; 1 is shown first")
    outcome: FeedbackOutcome = Field(
        description="no response: none by the silence horizon (at most the response window)"
    )
    label: bool = Field(description="accepted (accept or convert)")
    reward: float = Field(description="the offer's value at decision time if accepted, else 0")
    late: bool = Field(
        default=False,
        description="an accept that came after the offer's silence was told as a negative label",
    )
    features: dict[str, float] = Field(description="what the model scored, at decision time")
    feature_set: str
    p_accept: float = Field(description="the model's P(accept) at decision time")
    value_now: float
    propensity: float | None = Field(
        default=None, description="probability the policy chose this offer at its rank"
    )
    model_version: str = Field(description="the model that decided")
    group: GroupName = Field(default="treatment", description="the decision's group")
    challenger: dict[str, float] | None = Field(
        default=None,
        description="for the first offer, when a challenger was scored in shadow: what it "
        "would have done (propensity, target_probability, target_value, predicted_reward)",
    )
    challenger_version: str | None = Field(
        default=None, description="the registered version of that challenger"
    )
    decided_at: datetime
    resolved_at: datetime = Field(
        description="event time of the reaction, or of the first event past the silence horizon"
    )


class ModelRole(StrEnum):
    CHAMPION = "champion"  # decides
    CHALLENGER = "challenger"  # scored in shadow, estimated off-policy against the champion


class ModelSnapshot(Output):
    """One model as the learner published it on `models`, keyed by its role: the latest per role
    is the model every ranker scores with. The learner resumes from its own latest champion."""

    role: ModelRole
    model_version: str = Field(description="the model and how many labels it has learned")
    registry_version: str | None = Field(
        default=None, description="the registered version it descends from"
    )
    feature_set: str
    learned_offsets: dict[str, int] = Field(
        description="per feedback partition (`topic/partition`), the last offset learned"
    )
    labels_learned: int = Field(description="feedback records learned since the learner began")
    published_at: datetime
    model: str = Field(description="the OnlineRanker: cloudpickle, zlib, base64")


class DeadLetter(Output):
    """A record nbo could not use, with where it came from and why."""

    stage: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    reason: str
    kind: DeadLetterKind = Field(
        default=DeadLetterKind.UNKNOWN, description="the reason's class, for counting"
    )
    value: str = Field(description="the raw record, truncated")
    at: datetime


ALL_SCHEMAS: dict[str, type[BaseModel]] = {
    "offer": Offer,
    "customer": Customer,
    "journey_event": JourneyEvent,
    "rule": Rule,
    "interaction": Interaction,
    "valid_offers": ValidOffers,
    "decision": Decision,
    "feedback": Feedback,
    "model_snapshot": ModelSnapshot,
    "dead_letter": DeadLetter,
}


def response_window_seconds(offer: dict[str, Any] | None) -> float:
    """Seconds a shown `offer` (an offers-table entry) waits for a response; the default for an
    offer no longer listed."""
    hours = offer["response_window_hours"] if offer else DEFAULT_RESPONSE_WINDOW_HOURS
    return float(hours) * 3600


def describe_errors(error: ValidationError) -> str:
    """A validation error as one line: `field: reason; field: reason`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or '(record)'}: {issue['msg']}"
        for issue in error.errors()
    )


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one JSON Schema file per record type into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in ALL_SCHEMAS.items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
