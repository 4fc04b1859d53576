"""The Next Best Offer μ-product: ranks valid offers and tells the customers' reactions.

Sources: `valid_offers` and `interactions` (both keyed by customer id, read as one stream so a
customer's responses and decisions are processed in timestamp order), and, followed as tables,
`offers` and `models` (the learner's latest champion and challenger). Sinks: `next_best_offers`
and `feedback`; bad records go to `dead_letter`.

    parse ─> Ranker: valid offers ─> Decider (ModelFollower's models) ─> next_best_offers
                     interactions ─> FeedbackResolver ──────────────────> feedback
             └─ bad records ─> dead_letter

Run it with `nbo run ranker`.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from pydantic import BaseModel
from quixstreams import Application
from quixstreams.models.topics import Topic

from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import Decision, Feedback
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
from pipeline.next_best_offer.emitted import EmittedDecisions
from pipeline.next_best_offer.models import ModelFollower
from pipeline.next_best_offer.processor import STAGE, Ranker
from pipeline.settings import Settings

log = logging.getLogger(__name__)

SOURCES = sources_of(STAGE)


def build(
    settings: Settings,
    bootstrap: str,
    instance: Instance,
    cluster: str,
    tables: GlobalTables,
    dead_letters: DeadLetterProducer,
    models: ModelFollower,
) -> tuple[Application, Ranker]:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        instance,
        cluster,
        on_processing_error=processing_error_to_dead_letter(dead_letters, STAGE),
    )
    emitted = (
        EmittedDecisions(settings, bootstrap)
        if settings.processing_guarantee == "at-least-once"
        else None
    )
    ranker = Ranker(settings, tables, dead_letters, models, instance.id, emitted)

    sdf = parsed_sources(app, settings, SOURCES, STAGE)
    sdf = sdf.apply(ranker, stateful=True, metadata=True, expand=True)
    sinks: dict[type[BaseModel], Topic] = {
        Decision: output_topic(app, settings, "next_best_offers"),
        Feedback: output_topic(app, settings, "feedback"),
    }
    written: dict[type[BaseModel], Counter] = {
        Decision: metrics.RECORDS_OUT.labels(STAGE, "next_best_offers"),
        Feedback: metrics.RECORDS_OUT.labels(STAGE, "feedback"),
    }
    sdf = sdf.update(lambda record: written[type(record)].inc())
    sdf.to_topic(lambda record, _key, _timestamp, _headers: sinks[type(record)])
    return app, ranker


def run(settings: Settings, bootstrap: str) -> None:
    """As this process's instance: load the offers table and the latest models, then decide
    until stopped."""
    cluster = cluster_id(settings, bootstrap)
    with (
        instance_of(settings, STAGE, cluster) as instance,
        serving(settings, STAGE, instance.state_dir) as probes,
    ):
        tables = GlobalTables(settings, bootstrap, tables=("offers",))
        tables.start(timeout=settings.broker_start_timeout)
        models = ModelFollower(settings).follow(settings, bootstrap)
        dead_letters = DeadLetterProducer(settings, bootstrap)
        app, ranker = build(settings, bootstrap, instance, cluster, tables, dead_letters, models)
        log.info("%s %s: model %s, policy %s", STAGE, instance.id, models.model.version,
                 ranker.decider.policy.name)  # fmt: skip
        try:
            run_watched(app, settings, bootstrap, instance, SOURCES, probes)
        finally:
            dead_letters.flush()
            log.info("%s: stopped with model %s (%s, %s, %s)", STAGE, models.model.version,
                     ranker.decider.stats, ranker.resolver.stats,
                     ranker.resolver.horizon)  # fmt: skip
            models.stop()
            tables.stop()
