"""Bad rows in every loader format: reported with line and field, nothing else lost."""

from pathlib import Path

import pytest

from pipeline.connectors.files import parse_file
from pipeline.contracts.schemas import Customer, JourneyEvent, Offer, Rule
from pipeline.errors import ConfigError

CUSTOMER_HEADER = (
    "customer_id,age,segment,region,income,tenure_years,products_held,consents,updated_at"
)
GOOD_CUSTOMER = "C1,40,mass,north,30000,3,card,web|email,2026-01-01"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_bad_rows_are_reported_with_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "customers.csv",
        "\n".join(
            [
                CUSTOMER_HEADER,
                GOOD_CUSTOMER,
                "C2,forty,mass,north,30000,3,,web,2026-01-01",  # wrong type
                "C3,40,mass,,30000,3,,web,2026-01-01",  # missing field (empty region)
                "C4,40,mass,north,30000,3,,web,2026-01-01,surplus",  # malformed: extra cell
                "C5,40,royalty,north,30000,3,,web,2026-01-01",  # unknown enum
                "C6,40,mass,north,30000,3,,web",  # malformed: missing cell
                GOOD_CUSTOMER.replace("C1", "C7"),
            ]
        )
        + "\n",
    )
    parsed = parse_file(path, Customer)
    assert [record.customer_id for _, record in parsed.records] == ["C1", "C7"]  # type: ignore[attr-defined]
    found = {(row.line, row.field) for row in parsed.rejected}
    assert found == {(3, "age"), (4, "region"), (5, "(row)"), (6, "segment"), (7, "(row)")}
    assert all(row.file == "customers.csv" for row in parsed.rejected)
    first = str(parsed.rejected[0])
    assert first.startswith("customers.csv:3: age: Input should be a valid integer")


def test_jsonl_bad_lines_are_reported(tmp_path: Path) -> None:
    good = (
        '{"event_id": "e1", "customer_id": "c1", "event_type": "app_login", '
        '"timestamp": "2026-01-01T00:00:00Z", "channel": "web"}'
    )
    path = _write(
        tmp_path,
        "events.jsonl",
        "\n".join(
            [
                good,
                "{not json",
                "[1, 2]",
                good.replace('"web"', '"fax"'),
                good.replace('"event_id": "e1", ', ""),
                "",
                good.replace("e1", "e2"),
            ]
        )
        + "\n",
    )
    parsed = parse_file(path, JourneyEvent)
    assert [line for line, _ in parsed.records] == [1, 7]
    assert [(row.line, row.field) for row in parsed.rejected] == [
        (2, "(line)"),
        (3, "(line)"),
        (4, "channel"),
        (5, "event_id"),
    ]
    assert "bad JSON" in parsed.rejected[0].reason


def test_yaml_rules_report_the_line_of_the_bad_rule(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "rules.yaml",
        """rules:
  - rule_id: adult
    version: 1
    kind: eligibility
    condition: customer.age >= 18
  - rule_id: broken
    version: one
    kind: eligibility
    condition: "true"
  - just a string
  - rule_id: wrong-kind
    version: 1
    kind: suitability
    condition: "true"
""",
    )
    parsed = parse_file(path, Rule)
    assert [record.rule_id for _, record in parsed.records] == ["adult"]  # type: ignore[attr-defined]
    assert [(row.line, row.field) for row in parsed.rejected] == [
        (6, "version"),
        (10, "(item)"),
        (11, "kind"),
    ]


def test_yaml_syntax_error_is_one_rejected_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.yaml", "rules:\n  - rule_id: [unclosed\n")
    parsed = parse_file(path, Rule)
    assert parsed.records == []
    assert parsed.rejected[0].field == "(file)" and "bad YAML" in parsed.rejected[0].reason


def test_offer_period_error_names_the_row(tmp_path: Path, sample_dir: Path) -> None:
    lines = (sample_dir / "offers.csv").read_text().splitlines()
    bad = lines[1].replace(",14,30,90,", ",14,30,20,")
    path = _write(tmp_path, "offers.csv", "\n".join([lines[0], bad, *lines[2:]]) + "\n")
    parsed = parse_file(path, Offer)
    assert len(parsed.records) == len(lines) - 2
    assert [(row.line, row.field) for row in parsed.rejected] == [(2, "(row)")]
    assert "negative_impact_days" in parsed.rejected[0].reason


def test_unsupported_or_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        parse_file(_write(tmp_path, "offers.xlsx", ""), Offer)
    with pytest.raises(ConfigError, match="no such file"):
        parse_file(tmp_path / "absent.csv", Offer)


@pytest.mark.parametrize(
    ("name", "schema", "count"),
    [
        ("offers.csv", Offer, 30),
        ("customers.csv", Customer, 300),
        ("rules.yaml", Rule, 12),
        ("events.jsonl", JourneyEvent, 1000),
    ],
)
def test_sample_data_is_all_valid(sample_dir: Path, name: str, schema: type, count: int) -> None:
    parsed = parse_file(sample_dir / name, schema)
    assert parsed.rejected == []
    assert len(parsed.records) == count
