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
from pipeline.kafka.instance import Instance, instance_of
from pipeline.kafka.quix import (
    make_application,
    output_topic,
    parsed_sources,
    run_watched,
)
from pipeline.monitoring import metrics
from pipeline.monitoring.server import serving
from pipeline.settings import Settings
from pipeline.valid_offers.processor import STAGE, ValidOffersProcessor

log = logging.getLogger(__name__)

SOURCES = sources_of(STAGE)


def build(
    settings: Settings,
    bootstrap: str,
    instance: Instance,
    cluster: str,
    tables: GlobalTables,
    dead_letters: DeadLetterProducer,
) -> Application:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        instance,
        cluster,
        on_processing_error=processing_error_to_dead_letter(dead_letters, STAGE),
    )
    sdf = parsed_sources(app, settings, SOURCES, STAGE)
    sdf = sdf.apply(ValidOffersProcessor(tables, dead_letters), stateful=True, metadata=True)
    sdf = sdf.filter(lambda output: output is not None)
    written = metrics.RECORDS_OUT.labels(STAGE, "valid_offers")
    sdf = sdf.update(lambda _output: written.inc())
    sdf.to_topic(output_topic(app, settings, "valid_offers"))
    return app


def run(settings: Settings, bootstrap: str) -> None:
    """As this process's instance: load the global tables, then process until stopped (SIGTERM
    or Ctrl-C)."""
    cluster = cluster_id(settings, bootstrap)
    with (
        instance_of(settings, STAGE, cluster) as instance,
        serving(settings, STAGE, instance.state_dir) as probes,
    ):
        tables = GlobalTables(settings, bootstrap).start(timeout=settings.broker_start_timeout)
        log.info("%s %s: catalogue loaded (%d offers, %d rules)", STAGE, instance.id,
                 len(tables.catalogue.offers), len(tables.catalogue.rules))  # fmt: skip
        dead_letters = DeadLetterProducer(settings, bootstrap)
        app = build(settings, bootstrap, instance, cluster, tables, dead_letters)
        try:
            run_watched(app, settings, bootstrap, instance, SOURCES, probes)
        finally:
            dead_letters.flush()
            tables.stop()
