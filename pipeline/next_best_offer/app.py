"""The Next Best Offer μ-product: ranks valid offers and learns from the customers' reactions.

Sources: `valid_offers` and `interactions` (both keyed by customer id, read as one stream so a
customer's responses and decisions are processed in timestamp order) and the `offers` table.
Sink: `next_best_offers`; bad records go to `dead_letter`.

    parse ─> Ranker: valid offers ─> Decider ─────────> next_best_offers
                     interactions ─> FeedbackLearner ─> ChampionFollower (the models)
             └─ bad records ─> dead_letter

Run it with `nbo run ranker`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel
from quixstreams import Application
from quixstreams.models.topics import Topic

from models.tracking import RunTracker
from pipeline.catalogue.tables import GlobalTables
from pipeline.contracts.schemas import Decision, Feedback
from pipeline.contracts.topics import sources_of
from pipeline.kafka.dead_letters import DeadLetterProducer, processing_error_to_dead_letter
from pipeline.kafka.quix import (
    cluster_id,
    make_application,
    output_topic,
    parsed_sources,
    run_watched,
    state_dir,
)
from pipeline.next_best_offer.champion import start_tracking
from pipeline.next_best_offer.processor import STAGE, Ranker
from pipeline.settings import Settings

log = logging.getLogger(__name__)

SOURCES = sources_of(STAGE)


def checkpoint_path(settings: Settings, cluster: str) -> Path:
    return state_dir(settings, STAGE, cluster) / "model.pkl"


def build(
    settings: Settings,
    bootstrap: str,
    cluster: str,
    tables: GlobalTables,
    dead_letters: DeadLetterProducer,
    tracker: RunTracker | None = None,
) -> tuple[Application, Ranker]:
    """Wire the μ-product: every stage is named here, in order."""
    app = make_application(
        settings,
        bootstrap,
        STAGE,
        cluster,
        on_processing_error=processing_error_to_dead_letter(dead_letters, STAGE),
    )
    ranker = Ranker(
        settings, tables, dead_letters, checkpoint_path(settings, cluster), tracker=tracker
    )

    sdf = parsed_sources(app, settings, SOURCES, STAGE)
    sdf = sdf.apply(ranker, stateful=True, metadata=True, expand=True)
    sinks: dict[type[BaseModel], Topic] = {
        Decision: output_topic(app, settings, "next_best_offers"),
        Feedback: output_topic(app, settings, "feedback"),
    }
    sdf.to_topic(lambda record, _key, _timestamp, _headers: sinks[type(record)])
    return app, ranker


def run(settings: Settings, bootstrap: str) -> None:
    """Load the offers table and the last model checkpoint, then decide and learn until stopped."""
    tables = GlobalTables(settings, bootstrap, tables=("offers",))
    tables.start(timeout=settings.broker_start_timeout)
    dead_letters = DeadLetterProducer(settings, bootstrap)
    cluster = cluster_id(settings, bootstrap)
    app, ranker = build(
        settings, bootstrap, cluster, tables, dead_letters, start_tracking(settings)
    )
    models, policy = ranker.models.model.version, ranker.decider.policy.name
    log.info("%s: model %s, policy %s", STAGE, models, policy)
    try:
        run_watched(app, settings, bootstrap, STAGE, SOURCES)
    finally:
        ranker.models.finish()
        dead_letters.flush()
        log.info(
            "%s: stopped; model %s checkpointed (%s, %s)",
            STAGE,
            ranker.models.model.version,
            ranker.decider.stats,
            ranker.learner.stats,
        )
        tables.stop()
