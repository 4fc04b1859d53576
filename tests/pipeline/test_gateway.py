"""The gateway's API against the session broker: what it accepts reaches Kafka before it answers,
what it refuses gets its status and reaches no topic. The closed loop through the gateway (and
the browser) is in test_gateway_loop.py."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.contracts.topics import create_topics
from pipeline.gateway.app import build
from pipeline.gateway.keys import add_key, revoke_key
from pipeline.kafka.clients import consume
from pipeline.settings import Settings
from tests.factories import START, event, eventually, with_offers
from tests.streams import gateway, send


@dataclass
class Served:
    """A gateway running in this process (its lifespan started) and its settings."""

    client: TestClient
    settings: Settings

    def key(self, channel: str) -> dict[str, str]:
        """The headers of a new key of `channel`."""
        return {"X-API-Key": add_key(self.settings.gateway_keys_file, channel).secret}


Serve = Callable[..., Served]


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Iterator[Serve]:
    """Start a gateway on fresh topics with settings `**overrides`."""
    with ExitStack() as running:

        def _serve(**overrides: Any) -> Served:
            settings = make_settings(mlflow_tracking=False, **overrides)
            settings = settings.model_copy(
                update={"gateway_keys_file": settings.state_dir.parent / "keys.json"}
            )
            create_topics(settings, settings.broker_address or "")
            client = TestClient(build(settings, settings.broker_address or ""))
            return Served(running.enter_context(client), settings)

        yield _serve


def on_topic(settings: Settings, logical: str, field: str) -> list[str]:
    topic = settings.topic_name(logical)
    return [record.json()[field] for record in consume(settings, settings.broker_address or "",
                                                        topic)]  # fmt: skip


def a_decision(decision_id: str, customer_id: str, offer_ids: list[str]) -> dict[str, Any]:
    """A `next_best_offers` record, as a ranker writes it."""
    return {
        "decision_id": decision_id, "customer_id": customer_id, "event_id": decision_id[2:],
        "event_type": "travel_booking", "timestamp": START.isoformat(), "channel": "web",
        "offers": [{"offer_id": offer_id, "rank": rank, "score": 1.0, "p_accept": 0.5,
                    "value_now": 2.0, "phase": "primary", "propensity": 1.0}
                   for rank, offer_id in enumerate(offer_ids, 1)],
        "model_version": "m-1", "policy": "greedy", "feature_set": "default",
        "rule_versions": {}, "explanation": "test",
    }  # fmt: skip


def an_interaction(decision_id: str, customer_id: str, offer_id: str, **fields: Any) -> Any:
    return {
        "interaction_id": f"i-{decision_id}-{offer_id}", "decision_id": decision_id,
        "customer_id": customer_id, "offer_id": offer_id, "channel": "web",
        "outcome": "accept", "timestamp": START.isoformat(), **fields,
    }  # fmt: skip


def test_each_refused_request_gets_its_status_and_reaches_no_topic(serve: Serve) -> None:
    served = serve(gateway_max_body_bytes=2048)
    client, settings = served.client, served.settings
    web, email = served.key("web"), served.key("email")
    send(settings, "next_best_offers", [("C1", a_decision("d-e0", "C1", ["card-1", "card-2"]))])
    eventually(lambda: client.get("/v1/customers/C1/decision", headers=web).status_code == 200,
               within=30, what="the gateway reads the decision")  # fmt: skip
    good = event("e1", "C1", START)

    def status(path: str, body: Any = None, headers: dict[str, str] | None = None,
               **options: Any) -> tuple[int, str]:  # fmt: skip
        answer = client.post(path, json=body, headers=headers, **options)
        json = answer.headers["content-type"] == "application/json"
        return answer.status_code, str(answer.json().get("detail", "") if json else answer.text)

    assert status("/v1/events", good) == (401, "an API key is needed (X-API-Key)")
    assert status("/v1/events", good, {"X-API-Key": "nbo_forged"}) == (401, "unknown key")
    assert status("/v1/events", good, email) == (
        403, "event e1 is on channel 'web'; this key is for 'email'")  # fmt: skip
    code, detail = status("/v1/events", {**good, "event_type": "Bad Type"}, web)
    assert code == 422 and "'body', 'event_type'" in detail
    code, detail = status("/v1/events", {**good, "surprise": 1}, web)
    assert code == 422 and "'body', 'surprise'" in detail
    huge = {**good, "attributes": {"note": "x" * 4000}}
    assert status("/v1/events", huge, web) == (413, "Content Too Large")
    assert status("/v1/events?wait=999999", good, web)[0] == 422
    assert status("/v1/interactions", an_interaction("d-nope", "C1", "card-1"), web) == (
        409, "unknown decision d-nope")  # fmt: skip
    assert status("/v1/interactions", an_interaction("d-e0", "C2", "card-1"), web) == (
        409, "decision d-e0 is of another customer")  # fmt: skip
    assert status("/v1/interactions", an_interaction("d-e0", "C1", "card-9"), web) == (
        409, "offer card-9 is not in decision d-e0")  # fmt: skip
    assert status("/v1/interactions", an_interaction("d-e0", "C1", "card-1"), email)[0] == 403
    assert on_topic(settings, "events", "event_id") == []  # nothing refused was produced
    assert on_topic(settings, "interactions", "interaction_id") == []

    assert status("/v1/events", good, web) == (202, "")
    assert status("/v1/interactions", an_interaction("d-e0", "C1", "card-2"), web) == (202, "")
    assert on_topic(settings, "events", "event_id") == ["e1"]  # acknowledged: on Kafka
    assert on_topic(settings, "interactions", "interaction_id") == ["i-d-e0-card-2"]
    metrics = client.get("/metrics").text
    assert 'nbo_gateway_requests_total{route="/v1/events",status="401"} 2.0' in metrics
    assert 'nbo_gateway_records_produced_total{topic="events"} 1.0' in metrics


def test_a_decision_is_served_latest_first_and_a_wait_without_one_is_504(serve: Serve) -> None:
    served = serve()
    client, settings, web = served.client, served.settings, served.key("web")
    assert client.get("/v1/customers/C7/decision", headers=web).status_code == 404
    send(settings, "next_best_offers", [("C7", a_decision("d-e1", "C7", ["card-1"])),
                                        ("C7", a_decision("d-e2", "C7", ["loan-1"]))])  # fmt: skip

    def latest_is_e2() -> Any:
        latest = client.get("/v1/customers/C7/decision", headers=web).json()
        return latest.get("decision_id") == "d-e2" and latest

    latest = eventually(latest_is_e2, within=30, what="the latest of C7's decisions")
    assert [offer["offer_id"] for offer in latest["offers"]] == ["loan-1"]
    assert client.get("/v1/customers", headers=web).json() == ["C7"]
    answer = client.post("/v1/events?wait=300", json=event("e9", "C7", START), headers=web)
    assert answer.status_code == 504  # no ranker runs here
    assert answer.json()["detail"].startswith("no decision for event e9 within 300 ms")
    assert on_topic(settings, "events", "event_id") == ["e9"]  # it will be decided later
    again = client.post("/v1/events?wait=300", json=event("e2", "C7", START), headers=web)
    assert (again.status_code, again.json()["decision_id"]) == (200, "d-e2")  # sent again
    metrics = client.get("/metrics").text
    assert "nbo_gateway_waiting_requests 0.0" in metrics  # none left behind
    assert "nbo_gateway_decisions_read 2.0" in metrics
    assert "nbo_gateway_decisions_to_waiting_requests 0.0" in metrics  # e2's came from latest


def test_a_revoked_key_is_refused_without_a_restart(serve: Serve) -> None:
    served = serve()
    client, path = served.client, served.settings.gateway_keys_file
    old, new = add_key(path, "web"), add_key(path, "web")
    for key in (old, new):
        assert client.get("/v1/customers", headers={"X-API-Key": key.secret}).status_code == 200
    revoke_key(path, old.key_id)
    eventually(lambda: client.get("/v1/customers", headers={"X-API-Key": old.secret})
               .status_code == 401, within=10, what="the old key refused")  # fmt: skip
    assert client.get("/v1/customers", headers={"X-API-Key": new.secret}).status_code == 200


def test_a_key_over_its_rate_gets_429_and_others_are_served(serve: Serve) -> None:
    served = serve(gateway_rate=0.01, gateway_burst=3)
    client, busy, other = served.client, served.key("web"), served.key("web")
    codes = [client.get("/v1/customers", headers=busy).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert client.get("/v1/customers", headers=other).status_code == 200
    refused = client.get("/v1/customers", headers=busy)
    assert refused.headers["retry-after"] == "1"


def test_a_record_on_the_decisions_topic_that_is_not_a_decision_is_counted_and_skipped(
    serve: Serve,
) -> None:
    served = serve()
    client, settings, web = served.client, served.settings, served.key("web")
    send(settings, "next_best_offers", [("C3", b"not json"), ("C3", {"decision_id": "d-x"}),
                                        ("C3", a_decision("d-e3", "C3", ["card-1"]))])  # fmt: skip
    eventually(lambda: client.get("/v1/customers/C3/decision", headers=web).status_code == 200,
               within=30, what="the good decision read after the bad ones")  # fmt: skip
    assert "nbo_gateway_unreadable_decisions_total 2.0" in client.get("/metrics").text


def test_the_openapi_document_is_the_records_of_the_contracts(serve: Serve) -> None:
    client = serve().client
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"JourneyEvent", "Interaction", "Decision"} <= set(schemas)
    assert schemas["JourneyEvent"]["additionalProperties"] is False
    assert client.get("/docs").status_code == 200
    assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200  # no CDN needed
    assert "Example Bank" in client.get("/").text
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "broker": True,
                                            "decisions_followed": True}  # fmt: skip


def test_only_the_listed_origins_may_call_the_api_from_a_browser(serve: Serve) -> None:
    client = serve(gateway_cors_origins=["https://bank.example"]).client
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "x-api-key, content-type"}  # fmt: skip
    allowed = client.options("/v1/events", headers={"Origin": "https://bank.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://bank.example"
    other = client.options("/v1/events", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.slow
def test_a_gateway_killed_under_load_loses_no_acknowledged_request(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = with_offers(
        make_settings(mlflow_tracking=False, gateway_keys_file=tmp_path / "keys.json")
    )
    headers = {"X-API-Key": add_key(settings.gateway_keys_file, "web").secret}
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_until_refused(worker: int, address: str) -> None:
        with httpx.Client(base_url=address, headers=headers, timeout=10) as client:
            for number in range(100_000):
                event_id = f"k{worker}-{number}"
                try:
                    answer = client.post("/v1/events", json=event(event_id, f"K{worker}", START))
                except httpx.TransportError:
                    return  # the gateway died mid-request: not acknowledged
                if answer.status_code == 202:
                    acknowledged.append(event_id)
                if stop.is_set():
                    return

    with gateway(settings) as (address, process), ThreadPoolExecutor(8) as pool:
        workers = [pool.submit(post_until_refused, w, address) for w in range(8)]
        try:
            eventually(lambda: len(acknowledged) >= 300, within=60, what="300 acknowledged")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            stop.set()
        for worker in workers:
            worker.result(timeout=30)
    assert len(acknowledged) >= 300
    with gateway(settings) as (address, _):  # restarted: it serves again
        answer = httpx.post(f"{address}/v1/events", json=event("after", "K0", START),
                            headers=headers)  # fmt: skip
        assert answer.status_code == 202
    written = {
        r.json()["event_id"]
        for r in consume(settings, settings.broker_address or "", settings.topic_name("events"))
    }
    assert set(acknowledged) - written == set()  # every acknowledged request is on Kafka
    assert "after" in written
