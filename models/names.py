"""The built-in names a setting may choose a model, an exploration policy or a baseline by.

Each is an alias of an import reference, `package.module:attribute`, the same form in which a
data scientist names their own (see `features.references`); adding one is a line here. Written
as text, so that reading the settings imports neither River nor NumPy.
"""

from typing import Literal

# name → a function (features, learning_rate, seed) → a fresh `OnlineRanker`
MODELS: dict[str, str] = {
    "bayesian_logistic": "models.ranker:bayesian_logistic",
    "bayesian_logistic_refit": "models.ranker:bayesian_logistic_refit",
    "logistic": "models.ranker:logistic",
    "adaptive_forest": "models.ranker:adaptive_forest",
    "naive_bayes": "models.ranker:naive_bayes",
}
DEFAULT_MODEL = "bayesian_logistic"

# name → an exploration policy class, built with `seed` (and `epsilon` where it takes one)
POLICIES: dict[str, str] = {
    "randomized-ucb": "models.policies:RandomizedUCB",
    "thompson": "models.policies:ThompsonSampling",
    "squarecb": "models.policies:SquareCB",
    "epsilon-greedy": "models.policies:EpsilonGreedy",
    "greedy": "models.policies:Greedy",
    "beta-around-estimate": "models.policies:BetaAroundEstimate",
}
DEFAULT_POLICY = "randomized-ucb"

# what decides a control group's customer (`pipeline.next_best_offer.control.Baseline`)
BaselineName = Literal["random", "priority", "none"]
BASELINES: tuple[BaselineName, ...] = ("random", "priority", "none")
