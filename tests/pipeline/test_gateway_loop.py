"""The closed loop through the gateway, as a channel lives it: Valid Offers, the ranker, the
learner and the gateway as their own processes on the session broker; HTTP requests (and a real
browser on the bank's page) instead of Kafka clients."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipeline.gateway.keys import add_key
from pipeline.kafka.clients import consume
from pipeline.learner.topics import latest_snapshots
from pipeline.settings import Settings
from tests.factories import customer, event, eventually, with_offers
from tests.streams import gateway, running, send

pytestmark = pytest.mark.slow

CUSTOMERS = [f"G{i:02d}" for i in range(6)]
NOW = datetime.now(UTC).replace(microsecond=0)  # the page's events are stamped by the browser


@dataclass(frozen=True)
class Loop:
    settings: Settings
    address: str
    headers: dict[str, str]  # a web channel's key

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.address}{path}", json=body, headers=self.headers, timeout=60)

    def feedback(self) -> list[dict[str, Any]]:
        settings = self.settings
        topic = settings.topic_name("feedback")
        return [r.json() for r in consume(settings, settings.broker_address or "", topic)]

    def labels_learned(self) -> int:
        champion = latest_snapshots(self.settings, self.settings.broker_address or "").get(
            "champion"
        )
        return champion.labels_learned if champion else 0


@pytest.fixture(scope="module")
def loop(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    directory = tmp_path_factory.mktemp("gateway-loop")
    settings = with_offers(
        Settings(
            broker_address=broker,
            topic_prefix=f"gw{os.getpid()}",
            state_dir=directory / "state",
            mlflow_tracking=False,
            exploration="greedy",
            model_publish_interval=0.5,
            gateway_keys_file=directory / "keys.json",
            gateway_max_wait_ms=60_000,
        )
    )
    send(settings, "customers", [(c, customer(c, "affluent")) for c in CUSTOMERS])
    key = add_key(settings.gateway_keys_file, "web").secret
    with (
        running(settings, "run", "valid-offers"),
        running(settings, "run", "ranker"),
        running(settings, "run", "learner"),
        gateway(settings) as (address, _process),
    ):
        yield Loop(settings, address, {"X-API-Key": key})


def test_a_posted_event_is_answered_with_its_decision_and_an_accept_is_learned(loop: Loop) -> None:
    answer = loop.post("/v1/events?wait=60000", event("h1", "G00", NOW))
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert (decision["event_id"], decision["customer_id"]) == ("h1", "G00")
    assert decision["offers"], decision["explanation"]
    latest = httpx.get(f"{loop.address}/v1/customers/G00/decision", headers=loop.headers)
    assert latest.json()["decision_id"] == decision["decision_id"]

    first = decision["offers"][0]["offer_id"]
    learned_before = loop.labels_learned()
    for outcome in ("impression", "accept"):
        reaction = {
            "interaction_id": f"h1-{outcome}", "decision_id": decision["decision_id"],
            "customer_id": "G00", "offer_id": first, "channel": "web", "outcome": outcome,
            "timestamp": (NOW + timedelta(minutes=1)).isoformat(),
        }  # fmt: skip
        assert loop.post("/v1/interactions", reaction).status_code == 202
    label = eventually(
        lambda: [f for f in loop.feedback() if f["decision_id"] == decision["decision_id"]],
        within=60, what="the accept's label on feedback",
    )  # fmt: skip
    assert [(f["offer_id"], f["outcome"], f["label"]) for f in label] == [(first, "accept", True)]
    eventually(lambda: loop.labels_learned() > learned_before, within=60,
               what="the learner learned the label")  # fmt: skip


def test_each_customers_stream_gets_its_decisions_and_no_other(loop: Loop) -> None:
    people = CUSTOMERS[1:5]
    received: dict[str, list[dict[str, Any]]] = {c: [] for c in people}
    listening = threading.Barrier(len(people) + 1, timeout=30)

    def listen(customer_id: str) -> None:
        url = f"{loop.address}/v1/customers/{customer_id}/decisions"
        with httpx.stream("GET", url, headers=loop.headers, timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith(": following"):
                    listening.wait()  # subscribed: the events may be posted
                elif line.startswith("data: "):
                    received[customer_id].append(json.loads(line[6:]))
                    if any(d["event_id"] == f"s-{customer_id}-1" for d in received[customer_id]):
                        return

    with ThreadPoolExecutor(len(people)) as pool:
        listeners = [pool.submit(listen, c) for c in people]
        listening.wait()
        for number in range(2):
            for c in people:
                at = NOW + timedelta(hours=1, minutes=number)
                assert loop.post("/v1/events", event(f"s-{c}-{number}", c, at)).status_code == 202
        for listener in listeners:
            listener.result(timeout=90)
    for c in people:
        assert {d["customer_id"] for d in received[c]} == {c}  # none of another customer
        assert [d["event_id"] for d in received[c]][-2:] == [f"s-{c}-0", f"s-{c}-1"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="no Chromium here (apt-get install chromium; .ci/run installs it in CI)",
)
def test_the_bank_page_shows_the_offer_decided_and_accept_is_a_label(loop: Loop) -> None:
    from playwright.sync_api import expect, sync_playwright

    browser_path = chromium()
    assert browser_path is not None, "CI must have Chromium: .ci/run installs it"
    key = loop.headers["X-API-Key"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{loop.address}/#key={key}")
            assert "#key" not in page.url  # the key is taken out of the address bar
            page.fill("#customer", "G05")
            page.click("text=Sign in")
            expect(page.get_by_test_id("status")).to_have_text("Signed in as G05.")
            page.click("nav >> text=Travel")
            offer = page.get_by_test_id("offer")
            expect(offer).to_be_visible(timeout=60_000)
            offer_id = offer.get_attribute("data-offer-id")
            expect(page.get_by_test_id("status")).to_have_text(f"Offer {offer_id} shown.")
            page.get_by_test_id("accept").click()
            expect(page.get_by_test_id("status")).to_have_text(f"Accepted {offer_id}. Thank you!")
        finally:
            browser.close()
    reactions = [
        r.json()
        for r in consume(loop.settings, loop.settings.broker_address or "",
                         loop.settings.topic_name("interactions"))
        if r.key == "G05"
    ]  # fmt: skip
    assert [(r["offer_id"], r["outcome"]) for r in reactions] == [
        (offer_id, "impression"), (offer_id, "accept")]  # fmt: skip
    label = eventually(
        lambda: [f for f in loop.feedback() if f["customer_id"] == "G05"],
        within=60, what="the page's accept as a label on feedback",
    )  # fmt: skip
    assert [(f["offer_id"], f["label"]) for f in label] == [(offer_id, True)]
