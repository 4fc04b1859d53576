"""The names a setting may choose a model, a feature set or an exploration policy by.

Kept apart from the models themselves so that reading the settings does not import River.
Besides a built-in name, a model or feature set setting may name a data scientist's own object
by import reference, `package.module:attribute` (see `import_reference`).
"""

import importlib
import re
from typing import Any, Literal, get_args

ModelName = Literal["logistic", "adaptive_forest", "naive_bayes"]
MODELS: tuple[str, ...] = get_args(ModelName)
DEFAULT_MODEL: ModelName = "logistic"

FeatureSetName = Literal["default"]
FEATURE_SETS: tuple[str, ...] = get_args(FeatureSetName)
DEFAULT_FEATURE_SET: FeatureSetName = "default"

PolicyName = Literal["greedy", "epsilon-greedy", "thompson"]
POLICIES: tuple[str, ...] = get_args(PolicyName)

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_reference(text: str) -> bool:
    """Whether `text` has the form of an import reference.

    >>> is_reference("my_team.rankers:scaled_logistic"), is_reference("logistic")
    (True, False)
    """
    return bool(_REFERENCE.match(text))


def check_choice(text: str, names: tuple[str, ...], what: str) -> str:
    """`text` if it is one of `names` or an import reference; else a ValueError that lists them."""
    if text in names or is_reference(text):
        return text
    raise ValueError(
        f"unknown {what} {text!r}: choose one of {', '.join(names)}, "
        "or name your own as package.module:attribute"
    )


def import_reference(reference: str) -> Any:
    """The object `package.module:attribute` names; a ValueError that says what is missing.

    >>> import_reference("math:pi") > 3
    True
    """
    if not is_reference(reference):
        raise ValueError(f"{reference!r} is not an import reference (package.module:attribute)")
    module_name, _, attribute = reference.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{reference}: cannot import {module_name}: {error}") from error
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{reference}: {module_name} has no {attribute}")
        found = getattr(found, part)
    return found
