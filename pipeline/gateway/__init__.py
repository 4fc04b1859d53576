"""The gateway μ-product: channels reach nbo over HTTP (see app.py and docs/gateway.md)."""
