"""`make bench`: throughput and latency figures measured on the embedded broker."""
