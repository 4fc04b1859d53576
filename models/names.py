"""The names a setting may choose a model or an exploration policy by.

Kept apart from the models themselves so that reading the settings does not import River.
Besides a built-in name, a model setting may name a data scientist's own object by import
reference, `package.module:attribute` (see `features.references`).
"""

from typing import Literal, get_args

ModelName = Literal["bayesian_logistic", "logistic", "adaptive_forest", "naive_bayes"]
MODELS: tuple[str, ...] = get_args(ModelName)
DEFAULT_MODEL: ModelName = "bayesian_logistic"

PolicyName = Literal[
    "randomized-ucb", "thompson", "squarecb", "epsilon-greedy", "greedy", "beta-around-estimate"
]
POLICIES: tuple[str, ...] = get_args(PolicyName)
