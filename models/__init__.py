"""Online models and what surrounds them: the ranker, time value, exploration and contact
policies, off-policy estimators and a model as a record; no I/O (MLflow is in `pipeline.review`)."""
