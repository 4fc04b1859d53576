"""What operators see of a running nbo: each μ-product's Prometheus metrics (`metrics`), served
with its liveness and readiness probes on a port of its own (`server`). The dashboard and the
alert rules that read them are in `docs/monitoring/`."""
