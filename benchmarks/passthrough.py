"""The throughput ceiling: a Quix app that only reads a topic and writes each record on.

python -m benchmarks.passthrough SOURCE SINK   (logical topic names; settings from NBO_* variables)
"""

from __future__ import annotations

import sys

from pipeline.broker import configured_address
from pipeline.quix import make_application
from pipeline.settings import Settings


def main(source: str, sink: str) -> None:
    settings = Settings()
    app = make_application(settings, configured_address(settings) or "", "passthrough")
    source_topic = settings.topic_name(source)
    sdf = app.dataframe(app.topic(source_topic, key_deserializer="str", value_deserializer="bytes"))
    sdf.to_topic(
        app.topic(settings.topic_name(sink), key_serializer="str", value_serializer="bytes")
    )
    app.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
