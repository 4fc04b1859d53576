"""Regenerate the sample data under data/sample/ (seeded: the same files every time).

    python data/make_sample.py

A small bank: 30 offers in six categories with interest periods that fit each product,
300 customers, 1,000 journey events and a rules file.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 7
OUT = Path(__file__).parent / "sample"
START = datetime(2026, 11, 1, tzinfo=UTC)

# category: (triggers, primary days, secondary days, negative-impact day, value range)
PROFILES = {
    "mortgage": ("mortgage_calculator_view|property_search", 14, 30, 90, (2500, 6000)),
    "loan": ("loan_calculator_view|car_configurator_view|checkout_declined", 3, 10, 30, (300, 900)),
    "card": ("travel_booking|card_declined|salary_increase", 2, 7, 21, (80, 250)),
    "savings": ("large_deposit|salary_increase|deposit_maturing", 5, 20, 60, (60, 200)),
    "investment": ("large_deposit|deposit_maturing|contract_ending", 7, 21, 60, (400, 1500)),
    "insurance": ("travel_booking|property_search|car_configurator_view", 1, 5, 14, (50, 300)),
}
NAMES = {
    "mortgage": [
        "Fixed 5y Mortgage",
        "Green Home Mortgage",
        "First Home Mortgage",
        "Mortgage Refinance",
        "Flexi Mortgage",
    ],
    "loan": ["Car Loan", "Personal Loan", "Consolidation Loan", "Student Loan", "Instant Loan"],
    "card": ["Travel Card", "Cashback Card", "Student Card", "Premium Card", "Contactless Debit"],
    "savings": ["Flexible Saver", "Fixed Saver 12m", "Kids Saver", "Goal Saver", "Bonus Saver"],
    "investment": [
        "Index Fund",
        "Green Bonds",
        "Managed Portfolio",
        "Pension Plus",
        "Robo Adviser",
    ],
    "insurance": [
        "Travel Insurance",
        "Home Insurance",
        "Car Insurance",
        "Life Cover",
        "Gadget Cover",
    ],
}
CHANNELS = ["email", "mobile_app", "web", "branch", "call_center", "sms"]
SEGMENTS = ["student", "mass", "mass", "mass", "affluent", "affluent", "private", "small_business"]
REGIONS = ["capital", "north", "south", "east", "west"]
TRIGGERS = sorted({t for profile in PROFILES.values() for t in profile[0].split("|")})
BACKGROUND = ["app_login", "page_view", "branch_visit", "address_change", "complaint"]


def offers(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for category, (triggers, primary, secondary, negative, (low, high)) in PROFILES.items():
        for index, name in enumerate(NAMES[category]):
            channels = rng.sample(CHANNELS, k=rng.randint(2, 4))
            if "mobile_app" not in channels:
                channels.append("mobile_app")
            rows.append(
                {
                    "offer_id": f"{category}-{index + 1:02d}",
                    "name": name,
                    "category": category,
                    "value": round(rng.uniform(low, high), 2),
                    "business_lever": rng.choice([1.0, 1.0, 1.0, 1.2, 0.8]),
                    "triggers": triggers,
                    "primary_interest_days": primary,
                    "secondary_interest_days": secondary,
                    "negative_impact_days": negative,
                    "secondary_value_ratio": 0.5,
                    "negative_value_ratio": -0.3,
                    "channels": "|".join(channels),
                    "valid_from": "2026-01-01",
                    "valid_to": "2027-12-31" if index != 4 else "2026-11-15",
                    "stock": rng.choice(["", "", "", 500, 0]) if category == "loan" else "",
                    "max_impressions": 3,
                    "contact_window_days": 14,
                    "response_window_hours": 48,
                }
            )
    return rows


def customers(rng: random.Random, count: int = 300) -> list[dict[str, object]]:
    rows = []
    for index in range(count):
        segment = rng.choice(SEGMENTS)
        age = rng.randint(18, 26) if segment == "student" else rng.randint(21, 80)
        income = {
            "student": 8000,
            "mass": 32000,
            "affluent": 75000,
            "private": 200000,
            "small_business": 60000,
        }[segment] * rng.uniform(0.6, 1.5)
        held = rng.sample(list(PROFILES), k=rng.randint(0, 3))
        rows.append(
            {
                "customer_id": f"C{index:05d}",
                "age": age,
                "segment": segment,
                "region": rng.choice(REGIONS),
                "income": round(income, 0),
                "tenure_years": round(rng.uniform(0, 25), 1),
                "products_held": "|".join(held),
                "consents": "|".join(rng.sample(CHANNELS, k=rng.randint(2, 6))),
                "updated_at": (START - timedelta(days=rng.randint(1, 400))).isoformat(),
            }
        )
    return rows


def events(
    rng: random.Random, customer_ids: list[str], count: int = 1000
) -> list[dict[str, object]]:
    rows = []
    at = START
    for index in range(count):
        at += timedelta(seconds=rng.randint(5, 300))
        is_trigger = rng.random() < 0.6
        event_type = rng.choice(TRIGGERS if is_trigger else BACKGROUND)
        attributes: dict[str, object] = {}
        if event_type == "large_deposit":
            attributes["amount"] = round(rng.uniform(10_000, 80_000), 2)
        rows.append(
            {
                "event_id": f"E{index:06d}",
                "customer_id": rng.choice(customer_ids),
                "event_type": event_type,
                "timestamp": at.isoformat(),
                "channel": rng.choice(
                    ["mobile_app", "mobile_app", "web", "web", "branch", "email"]
                ),
                "attributes": attributes,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "offers.csv", offers(rng))
    customer_rows = customers(rng)
    write_csv(OUT / "customers.csv", customer_rows)
    ids = [str(row["customer_id"]) for row in customer_rows]
    with (OUT / "events.jsonl").open("w") as handle:
        for row in events(rng, ids):
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
