"""The streaming side of nbo: μ-product apps, topics, connectors, the broker and the CLI."""
