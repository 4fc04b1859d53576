"""Online models and what surrounds them: the ranker, time value, exploration and contact
policies, off-policy estimators, a model as a record, and the MLflow registry."""
