"""The first steps of a decision: the contact policy and the time value.

Of a `valid_offers` record's candidates, an offer shown as often as its impression limit allows
is left out (the contact policy), and so is one past its point of negative impact, or worth
nothing now (the time value). The offers left are `Offers`, as columns: each with the phase it
is in and what an acceptance earns now under the ranker's objective. The catalogue's terms are
read into arrays once per catalogue, so a decision's time values are a few NumPy operations
(`models.time_value.value_now` for each candidate at once; a test holds the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from features.feature_set import DecisionParts, Exposures
from models.candidates import Offers
from models.contact_policy import ContactPolicy
from models.time_value import Objective, Phase, TimeValueProfile, earned_now
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import ValidOffers

PHASES: tuple[Phase, ...] = ("primary", "secondary", "irrelevant", "negative")
PRIMARY, SECONDARY, IRRELEVANT, NEGATIVE = range(4)


@dataclass(frozen=True)
class CatalogueTerms:
    """What deciding needs of each offer of one catalogue, as arrays by the offer's row."""

    row_of: dict[str, int]
    offer_ids: list[str]
    records: list[Mapping[str, Any]]
    max_impressions: np.ndarray
    primary_days: np.ndarray
    secondary_days: np.ndarray
    negative_days: np.ndarray
    earned: np.ndarray  # offers × phases: what an acceptance earns, under the objective
    expected_worth: np.ndarray  # offers × phases: under `expected-value`, × the lever
    lever: np.ndarray

    @classmethod
    def of(
        cls,
        offers: Mapping[str, Mapping[str, Any]],
        contact: ContactPolicy,
        objective: Objective,
        irrelevant_value_ratio: float,
    ) -> CatalogueTerms:
        records = list(offers.values())
        profiles = [TimeValueProfile.of(dict(o), irrelevant_value_ratio) for o in records]
        lever = np.array([float(o["business_lever"]) for o in records])
        return cls(
            row_of={offer_id: row for row, offer_id in enumerate(offers)},
            offer_ids=list(offers),
            records=records,
            max_impressions=np.array([contact.max_impressions(dict(o)) for o in records]),
            primary_days=np.array([p.primary_interest_days for p in profiles], dtype=float),
            secondary_days=np.array([p.secondary_interest_days for p in profiles], dtype=float),
            negative_days=np.array([p.negative_impact_days for p in profiles], dtype=float),
            earned=_by_phase(profiles, objective),
            expected_worth=_by_phase(profiles, "expected-value") * lever[:, None],
            lever=lever,
        )


def _by_phase(profiles: list[TimeValueProfile], objective: Objective) -> np.ndarray:
    return np.array(
        [[earned_now(p, phase, objective) for phase in PHASES] for p in profiles], dtype=float
    ).reshape(len(profiles), len(PHASES))


class Showable(NamedTuple):
    """The offers of a record that may be shown now."""

    offers: Offers
    expected_worth: np.ndarray  # each one's value × lever, the phase counted once
    suppressed: int  # how many others the contact policy and the time value left out


class OffersNow:
    """The contact policy and the time value of one ranker, over the offers table it follows."""

    def __init__(
        self,
        tables: GlobalTables,
        contact: ContactPolicy,
        objective: Objective,
        irrelevant_value_ratio: float,
    ) -> None:
        self._tables = tables
        self._contact = contact
        self._objective = objective
        self._irrelevant_value_ratio = irrelevant_value_ratio
        self._terms: tuple[Mapping[str, Any] | None, CatalogueTerms | None] = (None, None)

    def of(self, valid: ValidOffers, parts: DecisionParts) -> Showable:
        """The offers of `valid` that may be shown now, their features as `parts` gives them."""
        terms = self.terms()
        row_of = terms.row_of
        # one row per candidate of the catalogue: its offer's row, days since the trigger (None
        # becomes NaN: no trigger seen), impressions, unanswered impressions
        table = np.array(
            [
                (row, c["days_since_trigger"], c["impressions"], c["unanswered_impressions"])
                for c in valid.candidates
                if (row := row_of.get(c["offer_id"])) is not None
            ],
            dtype=float,
        ).reshape(-1, 4)
        rows, days = table[:, 0].astype(np.int64), table[:, 1]
        impressions, unanswered = table[:, 2].astype(np.int64), table[:, 3].astype(np.int64)
        phase = self._phases(terms, rows, days, unanswered)
        value = terms.earned[rows, phase]
        # the contact policy's limit; past the point of negative impact an offer would hurt,
        # and at 0 it earns nothing
        shown = (impressions < terms.max_impressions[rows]) & (value > 0)
        at = np.flatnonzero(shown)
        kept = rows[at]
        kept_rows = kept.tolist()
        offers = Offers(
            keys=[terms.offer_ids[row] for row in kept_rows],
            records=[terms.records[row] for row in kept_rows],
            exposures=Exposures(
                days[at], [PHASES[p] for p in phase[at].tolist()], impressions[at], unanswered[at]
            ),
            value_now=value[at],
            lever=terms.lever[kept],
            parts=parts,
        )
        expected = terms.expected_worth[kept, phase[at]]
        return Showable(offers, expected, len(valid.candidates) - len(at))

    def _phases(
        self, terms: CatalogueTerms, rows: np.ndarray, days: np.ndarray, unanswered: np.ndarray
    ) -> np.ndarray:
        """Each candidate's phase (an index of `PHASES`), as `models.time_value.value_now`: the
        unanswered impressions move an offer along its curve, and one ignored often enough
        without a trigger is past its point of negative impact."""
        negative, primary = terms.negative_days[rows], terms.primary_days[rows]
        fatigue = unanswered * self._contact.fatigue_share
        moved = np.maximum(days, 0.0) + fatigue * negative  # NaN: no trigger seen
        annoyed = np.isnan(days) & (fatigue >= 1.0)  # ignored so often that it now annoys
        moved[annoyed] = negative[annoyed]
        # a comparison with NaN is false: no trigger seen, and not moved, is irrelevant
        phase = np.full(len(rows), IRRELEVANT, dtype=np.int64)
        phase[moved < primary + terms.secondary_days[rows]] = SECONDARY
        phase[moved < primary] = PRIMARY
        phase[moved >= negative] = NEGATIVE
        return phase

    def terms(self) -> CatalogueTerms:
        """The catalogue's terms, worked out once per catalogue (replaced on any change)."""
        offers = self._tables.catalogue.offers
        catalogue, terms = self._terms
        if catalogue is not offers or terms is None:
            terms = CatalogueTerms.of(
                offers, self._contact, self._objective, self._irrelevant_value_ratio
            )
            self._terms = (offers, terms)
        return terms
