"""`make demo`, `make test` and CI install exactly the versions in requirements.lock."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
_PINNED = re.compile(r"^[A-Za-z0-9][^ ;\\]*==[^ ;\\]+(\s*;[^\\]*)?")


def locked(text: str) -> dict[str, str]:
    """Name → version of every pin in a uv lock that applies to this interpreter."""
    pins = {}
    for line in text.splitlines():
        match = _PINNED.match(line)
        if match is None:
            continue
        requirement = Requirement(match.group(0))
        if requirement.marker is None or requirement.marker.evaluate():
            (spec,) = requirement.specifier
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def installed() -> dict[str, str]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if dist.metadata["Name"] != "nbo"
    }


def test_the_lock_reader_keeps_the_pins_for_this_platform() -> None:
    text = (
        "# comment\n"
        "numpy==2.4.6 \\\n"
        "    --hash=sha256:abc\n"
        "pywin32==312 ; sys_platform == 'win32' \\\n"
        "Typing_Extensions==4.15.0 ; python_full_version >= '3.11' \\\n"
        "    # via pydantic\n"
    )
    assert locked(text) == {"numpy": "2.4.6", "typing-extensions": "4.15.0"}


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
    reason="checks the environment `make` builds, not one installed by hand",
)
def test_the_environment_holds_exactly_the_locked_versions() -> None:
    assert installed() == locked(LOCK.read_text())
