"""The `nbo` command line, run in-process against the session broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.settings import Settings

runner = CliRunner()


def _nbo(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    env = {
        "NBO_BROKER_ADDRESS": settings.broker_address or "",
        "NBO_TOPIC_PREFIX": settings.topic_prefix,
        "NBO_STATE_DIR": str(settings.state_dir),
    }
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def topics_ready(settings: Settings) -> Settings:
    result = _nbo(settings, "topics", "create")
    assert result.exit_code == 0, result.output
    return settings


def test_load_reports_counts_and_tail_prints_records(
    topics_ready: Settings, sample_dir: Path
) -> None:
    result = _nbo(topics_ready, "load", "offers", str(sample_dir / "offers.csv"))
    assert result.exit_code == 0, result.output
    assert "offers.csv: loaded 30 (30 to offers), rejected 0 rows" in result.output
    tail = _nbo(topics_ready, "tail", "offers", "--limit", "2")
    assert tail.exit_code == 0
    assert tail.output.count("key=") == 2
    assert '"offer_id"' in tail.output


def test_load_with_bad_rows_names_file_line_and_field(
    topics_ready: Settings, sample_dir: Path, tmp_path: Path
) -> None:
    lines = (sample_dir / "customers.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "royalty"  # the segment column
    lines[5] = ",".join(cells)
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _nbo(topics_ready, "load", "customers", str(path))
    assert result.exit_code == 0
    assert "rejected customers.csv:6: segment" in result.output
    assert "loaded 299" in result.output and "rejected 1 rows" in result.output


def test_strict_load_exits_nonzero(topics_ready: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "e1"}\n')
    result = runner.invoke(
        app,
        ["produce", "events", str(path), "--strict"],
        env={
            "NBO_BROKER_ADDRESS": topics_ready.broker_address or "",
            "NBO_TOPIC_PREFIX": topics_ready.topic_prefix,
        },
    )
    assert result.exit_code != 0
    assert "refused (--strict)" in str(result.exception)


def test_topics_list_and_schema_export(topics_ready: Settings, tmp_path: Path) -> None:
    listing = _nbo(topics_ready, "topics", "list")
    assert f"{topics_ready.topic_prefix}.next_best_offers" in listing.output
    exported = _nbo(topics_ready, "schema", "export", str(tmp_path / "schemas"))
    assert exported.exit_code == 0
    decision = json.loads((tmp_path / "schemas" / "decision.schema.json").read_text())
    assert "propensity" in json.dumps(decision)


def test_an_unknown_topic_is_named_without_a_traceback(settings: Settings) -> None:
    env = {**os.environ, "NBO_BROKER_ADDRESS": settings.broker_address or ""}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "tail", "bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown topic 'bogus'; known: offers, customers" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_gateway_key_is_printed_once_stored_hashed_and_revoked(tmp_path: Path) -> None:
    from pipeline.gateway.keys import ChannelKeys

    keys_file = tmp_path / "keys.json"
    env = {"NBO_GATEWAY_KEYS_FILE": str(keys_file)}
    added = runner.invoke(app, ["gateway", "add-key", "web"], env=env, catch_exceptions=False)
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("nbo_") and secret not in keys_file.read_text()  # only its hash
    assert ChannelKeys(keys_file).channel_of(secret) == "web"
    key_id = json.loads(keys_file.read_text())["keys"][0]["id"]
    revoked = runner.invoke(app, ["gateway", "revoke-key", key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert ChannelKeys(keys_file).channel_of(secret) is None
    unknown = runner.invoke(app, ["gateway", "add-key", "fax"], env=env)
    assert "unknown channel 'fax'" in str(unknown.exception)
