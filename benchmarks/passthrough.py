"""Reference apps that do no nbo work, for the ceilings the benchmarks compare against.

python -m benchmarks.passthrough SOURCE SINK             # the throughput ceiling: bytes in, out
python -m benchmarks.passthrough S1,S2,S3 SINK --stateful

`--stateful` gives Valid Offers' shape without its work: the source topics read as one stream
(as Valid Offers reads customers, events and interactions), each record parsed from JSON, a
small per-key state read and written, a small JSON record out. No Valid Offers can be faster
than this on the same broker, so the benchmark shows it beside the real one.
Topic names are logical; settings come from NBO_* variables.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import orjson
from quixstreams import State

from pipeline.kafka.broker import cluster_id, configured_address
from pipeline.kafka.instance import Instance, instance_of
from pipeline.kafka.quix import make_application
from pipeline.settings import Settings

_RECENT = 20


def count_and_remember(raw: bytes, state: State[str, Any]) -> dict[str, Any]:
    """The least a stateful μ-product does per record: parse, read state, write state, emit."""
    record = orjson.loads(raw)
    seen = state.get("seen") or {"count": 0, "recent": []}
    seen["count"] += 1
    seen["recent"] = [*seen["recent"][-(_RECENT - 1) :], record.get("event_type")]
    state.set("seen", seen)
    return {"id": record.get("event_id"), "count": seen["count"]}


def main(sources: list[str], sink: str, stateful: bool) -> None:
    settings = Settings()
    stage = "reference-stateful" if stateful else "passthrough"
    bootstrap = configured_address(settings) or ""
    cluster = cluster_id(settings, bootstrap)
    with instance_of(settings, stage, cluster) as instance:
        _run(settings, bootstrap, instance, cluster, sources, sink, stateful)


def _run(
    settings: Settings,
    bootstrap: str,
    instance: Instance,
    cluster: str,
    sources: list[str],
    sink: str,
    stateful: bool,
) -> None:
    app = make_application(settings, bootstrap, instance, cluster)
    topics = [
        app.topic(settings.topic_name(name), key_deserializer="str", value_deserializer="bytes")
        for name in sources
    ]
    sdf = app.dataframe(topics[0])
    for topic in topics[1:]:
        sdf = sdf.concat(app.dataframe(topic))
    serializer: Literal["json", "bytes"] = "json" if stateful else "bytes"
    if stateful:
        sdf = sdf.apply(count_and_remember, stateful=True)
    sdf.to_topic(
        app.topic(settings.topic_name(sink), key_serializer="str", value_serializer=serializer)
    )
    app.run()


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(arguments[0].split(","), arguments[1], "--stateful" in sys.argv[1:])
