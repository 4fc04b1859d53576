"""Model review in MLflow: the registry of ranker models (`registry`), each ranker process's
run (`tracking`) and the figures a reviewer looks at (`plots`).

`models/` stays pure online ML with no I/O; this is where nbo talks to MLflow.
`registry.configure` is the one place that points MLflow at the tracking store.
"""
