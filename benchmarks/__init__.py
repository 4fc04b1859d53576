"""`make bench`: throughput, latency, memory and CPU, on the embedded broker and on Kafka."""
