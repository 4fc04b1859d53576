"""Import references: how a setting names a data scientist's own object.

`package.module:attribute`, as entry points are written. Used by the model and feature set
settings (`NBO_RANKER_MODEL`, `NBO_FEATURE_SET`) and by `nbo replay`.
"""

import importlib
import re
from collections.abc import Collection
from typing import Any

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_reference(text: str) -> bool:
    """Whether `text` has the form of an import reference.

    >>> is_reference("my_team.rankers:scaled_logistic"), is_reference("logistic")
    (True, False)
    """
    return bool(_REFERENCE.match(text))


def check_choice(text: str, names: Collection[str], what: str) -> str:
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
