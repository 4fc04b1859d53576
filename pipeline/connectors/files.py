"""Read offer, customer, rule and event files into validated records, reporting bad rows.

CSV, JSON Lines and (for rules) YAML are read. Every row is validated against its schema; a row
that fails is reported with file, line, field and reason and the rest of the file still loads.

>>> from pathlib import Path; import tempfile
>>> from pipeline.contracts.schemas import JourneyEvent
>>> path = Path(tempfile.mkdtemp()) / "events.jsonl"
>>> _ = path.write_text('{"event_id": "e1", "customer_id": "c1", "event_type": "app_login", '
...     '"timestamp": "2026-01-01T10:00:00", "channel": "web"}\\n{"event_id": "e2"}\\n')
>>> parsed = parse_file(path, JourneyEvent)
>>> len(parsed.records), str(parsed.rejected[0]).split(": ")[:2]
(1, ['events.jsonl:2', 'customer_id'])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.contracts.schemas import Record
from pipeline.errors import ConfigError

SUPPORTED_SUFFIXES = {".csv", ".jsonl", ".ndjson", ".json", ".yaml", ".yml"}


@dataclass(frozen=True)
class RejectedRow:
    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


@dataclass
class ParsedFile:
    path: Path
    records: list[tuple[int, Record]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


RawRow = tuple[int, dict[str, Any] | RejectedRow]


class _NumberedLines:
    """A text file's lines for `csv`, remembering which lines each record was read from, so a
    row is reported at its true first line (after blank lines and multi-line fields too)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self._read: list[tuple[int, bool]] = []  # (line number, blank) since the last record

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self._lines, start=1):
            self._read.append((number, not line.strip()))
            yield line

    def first_line(self) -> int:
        """The first non-blank line read since the last call."""
        numbers = [number for number, blank in self._read if not blank] or [0]
        self._read.clear()
        return numbers[0]


def _csv_rows(path: Path) -> Iterator[RawRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        lines = _NumberedLines(handle)
        reader = csv.DictReader(lines, restval=None)
        if reader.fieldnames is None:
            return
        lines.first_line()  # the header's
        for row in reader:
            line = lines.first_line()
            if None in row:
                yield line, RejectedRow(path.name, line, "(row)", "more cells than header columns")
            elif any(value is None for value in row.values()):
                yield line, RejectedRow(path.name, line, "(row)", "fewer cells than header columns")
            else:
                yield line, row


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield (
                    line_number,
                    RejectedRow(path.name, line_number, "(line)", f"bad JSON: {error}"),
                )
                continue
            if not isinstance(value, dict):
                reason = f"expected a JSON object, got {type(value).__name__}"
                yield line_number, RejectedRow(path.name, line_number, "(line)", reason)
            else:
                yield line_number, value


def _yaml_rows(path: Path) -> Iterator[RawRow]:
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        root = loader.get_single_node()
        if root is None:
            return
        document = loader.construct_document(root)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        yield line, RejectedRow(path.name, line, "(file)", f"bad YAML: {error}")
        return
    finally:
        loader.dispose()
    items, nodes = document, root.value
    if isinstance(document, dict) and "rules" in document:  # `rules:` list under a top key
        items = document["rules"]
        nodes = next(value for key, value in root.value if key.value == "rules").value
    if not isinstance(items, list):
        yield 1, RejectedRow(path.name, 1, "(file)", "expected a list of records")
        return
    for item, node in zip(items, nodes, strict=True):
        line = node.start_mark.line + 1
        if isinstance(item, dict):
            yield line, item
        else:
            yield line, RejectedRow(path.name, line, "(item)", "expected a mapping")


def read_rows(path: Path) -> Iterator[RawRow]:
    """Yield `(line, raw dict or RejectedRow)` for every record in `path`, at the line where
    the record starts; a CSV row keeps its empty cells (as "")."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ConfigError(f"{path}: unsupported file type {suffix!r}; use CSV, JSON Lines or YAML")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix in {".yaml", ".yml"}:
        return _yaml_rows(path)
    return _jsonl_rows(path)


def _rejections(path: Path, line: int, error: ValidationError) -> list[RejectedRow]:
    return [
        RejectedRow(
            path.name, line, ".".join(str(part) for part in issue["loc"]) or "(row)", issue["msg"]
        )
        for issue in error.errors()
    ]


def parse_file(path: Path, schema: type[Record]) -> ParsedFile:
    """Validate every row of `path` against `schema`; keep good records, report bad ones."""
    parsed = ParsedFile(path)
    for line, row in read_rows(path):
        if isinstance(row, RejectedRow):
            parsed.rejected.append(row)
            continue
        if path.suffix.lower() == ".csv":  # an empty cell means "not given": the default applies
            row = {key: value for key, value in row.items() if value != ""}
        try:
            parsed.records.append((line, schema.model_validate(row)))
        except ValidationError as error:
            parsed.rejected.extend(_rejections(path, line, error))
    return parsed
