"""Synthetic, seeded workloads for the benchmarks, built from the shipped sample data."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.connectors import load as connectors

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"

EXTRA_RULES = [
    (
        "region-mortgages",
        "eligibility",
        'customer.region != "west" || customer.income > 40000.0',
        "mortgage",
    ),
    ("tenure-investments", "eligibility", "customer.tenure_years >= 1.0", "investment"),
    ("young-insurance", "eligibility", "customer.age <= 70", "insurance"),
    ("known-customers", "eligibility", "customer.known", ""),
    ("card-income", "eligibility", "customer.income >= 5000.0", "card"),
    ("lever-positive", "validation", "offer.business_lever > 0.0", ""),
    ("value-floor", "validation", "offer.value >= 10.0", ""),
    (
        "big-deposit",
        "eligibility",
        "!has(event.attributes.amount) || event.attributes.amount > 100.0",
        "savings",
    ),
]


def offers(count: int = 100) -> list[tuple[str, bytes]]:
    base = [r for _, r in connectors.parse_source("offers", SAMPLE / "offers.csv").records]
    out = []
    for index in range(count):
        offer = base[index % len(base)]
        offer_id = f"{offer.offer_id}-v{index // len(base)}"  # type: ignore[attr-defined]
        out.append(
            (offer_id, offer.model_copy(update={"offer_id": offer_id}).model_dump_json().encode())
        )
    return out


def rules() -> dict[str, list[tuple[str, bytes]]]:
    by_topic: dict[str, list[tuple[str, bytes]]] = {"validation_rules": [], "eligibilities": []}
    for _, rule in connectors.parse_source("rules", SAMPLE / "rules.yaml").records:
        by_topic[connectors.logical_topic("rules", rule)].append(
            (rule.rule_id, rule.model_dump_json().encode())  # type: ignore[attr-defined]
        )
    for rule_id, kind, condition, category in EXTRA_RULES:
        body = {
            "rule_id": rule_id,
            "version": 1,
            "kind": kind,
            "condition": condition,
            "categories": [category] if category else [],
        }
        topic = "validation_rules" if kind == "validation" else "eligibilities"
        by_topic[topic].append((rule_id, json.dumps(body).encode()))
    return by_topic


def customers() -> list[tuple[str, bytes]]:
    return [
        (c.customer_id, c.model_dump_json().encode())  # type: ignore[attr-defined]
        for _, c in connectors.parse_source("customers", SAMPLE / "customers.csv").records
    ]


def events(count: int, seed: int = 11) -> list[tuple[str, bytes]]:
    """`count` journey events: the sample's event mix, spread over the sample's customers."""
    rng = random.Random(seed)
    base = [e for _, e in connectors.parse_source("events", SAMPLE / "events.jsonl").records]
    ids = [key for key, _ in customers()]
    start = base[0].timestamp  # type: ignore[attr-defined]
    out = []
    for index in range(count):
        template: Any = rng.choice(base)
        customer_id = rng.choice(ids)
        event = template.model_copy(
            update={
                "event_id": f"B{index:08d}",
                "customer_id": customer_id,
                "timestamp": start + timedelta(seconds=index),
            }
        )
        out.append((customer_id, event.model_dump_json().encode()))
    return out


def valid_offers(count: int, candidates: int = 20, seed: int = 5) -> list[tuple[str, bytes]]:
    """`count` valid_offers records with `candidates` offers each, as Valid Offers emits them."""
    rng = random.Random(seed)
    offer_ids = [key for key, _ in offers(100)]
    customer_views = {key: json.loads(raw) for key, raw in customers()}
    keys = list(customer_views)
    base = [e for _, e in connectors.parse_source("events", SAMPLE / "events.jsonl").records]
    start = base[0].timestamp  # type: ignore[attr-defined]
    out = []
    for index in range(count):
        key = rng.choice(keys)
        at = start + timedelta(seconds=index)
        record = {
            "schema_version": 1,
            "event_id": f"V{index:08d}",
            "event_type": rng.choice(base).event_type,  # type: ignore[attr-defined]
            "customer_id": key,
            "timestamp": at.isoformat(),
            "channel": "mobile_app",
            "customer": {**customer_views[key], "known": True},
            "candidates": [
                {
                    "offer_id": offer_id,
                    "days_since_trigger": rng.uniform(0, 200) / 24,
                    "impressions": 0,
                    "unanswered_impressions": 0,
                }
                for offer_id in rng.sample(offer_ids, candidates)
            ],
            "excluded": [],
            "rule_versions": {},
            "catalogue_version": 1,
        }
        out.append((key, json.dumps(record).encode()))
    return out
