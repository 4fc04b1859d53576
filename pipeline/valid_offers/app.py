"""The Valid Offers μ-product: per journey event, the offers valid for this customer right now.

Sources: `customers`, `events`, `interactions` (keyed by customer id, co-partitioned) and the
global tables `offers`, `validation_rules`, `eligibilities` (see `pipeline.catalogue.tables`).
Sink: `valid_offers`; bad records go to `dead_letter`.

The three customer-keyed topics are concatenated into one dataframe, so one state store holds
each customer's state and Quix processes their records in timestamp order: a profile update
produced before an event is applied before the event is decided, never after.

    parse ─> ValidOffersProcessor: update state, and decide on events ─> valid_offers
       └─ bad records ─> dead_letter (sent directly: a dataframe branch would deep-copy
                         every 20 KB output to serve a rare record)

Run it with `nbo run valid-offers`.
"""

from __future__ import annotations

import logging

from quixstreams import Application

from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.topics import sources_of
from pipeline.kafka.broker import cluster_id
from pipeline.kafka.dead_letters import DeadLetterProducer, processing_error_to_dead_letter
from pipeline.kafka.quix import (
    make_application,
    output_topic,
    parsed_sources,
    run_watched,
)
from pipeline.settings import Settings
from pipeline.valid_offers.processor import STAGE, ValidOffersProcessor

log = logging.getLogger(__name__)

SOURCES = sources_of(STAGE)


def build(
    settings: Settings,
    bootstrap: str,
    cluster: str,
    tables: GlobalTables,
    dead_letters: DeadLetterProducer,
) -> Application:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        STAGE,
        cluster,
        on_processing_error=processing_error_to_dead_letter(dead_letters, STAGE),
    )
    sdf = parsed_sources(app, settings, SOURCES, STAGE)
    sdf = sdf.apply(ValidOffersProcessor(tables, dead_letters), stateful=True, metadata=True)
    sdf = sdf.filter(lambda output: output is not None)
    sdf.to_topic(output_topic(app, settings, "valid_offers"))
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
    app = build(settings, bootstrap, cluster_id(settings, bootstrap), tables, dead_letters)
    try:
        run_watched(app, settings, bootstrap, STAGE, SOURCES)
    finally:
        dead_letters.flush()
        tables.stop()
