"""CEL's compiler and evaluator, without the package's command line.

The `common-expression-language` package's `__init__` imports its interactive shell (`cel.cli`,
with prompt_toolkit) before its Rust extension, so every μ-product that evaluates rules would
load a shell it never runs, at each start. The rules need only the extension (`cel.cel`:
`compile`, `Context`, `Program`; the package's Python `stdlib` functions are opt-in, and nbo
does not opt in), so it is loaded alone, under its own name: a later `import cel` (a notebook,
a test) finds it loaded and does not initialise it twice, which its extension refuses. A
package laid out otherwise (a new version) is imported whole, as before.

>>> cel.compile("customer.age >= 18").execute(cel.Context({"customer": {"age": 20}}))
True
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING


def _extension_alone() -> ModuleType:
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("cel")  # finds it without running its `__init__`
    places = (package.submodule_search_locations or []) if package is not None else []
    found = [
        path
        for where in places
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (path := Path(where) / f"cel{suffix}").is_file()
    ]
    if not found:
        import cel as whole

        return whole
    loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(found[0]))
    spec = importlib.util.spec_from_file_location("cel.cel", found[0], loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cel.cel"] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import cel as cel
else:
    cel = _extension_alone()
