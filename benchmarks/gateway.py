"""The gateway case of `make bench`: HTTP against the loop it fronts, on one broker.

Valid Offers, the ranker and one gateway run as their own processes on the bench's catalogue.

1. **The loop's own latency**: journey events produced straight to `events` at 200/s; from each
   event's timestamp to its decision read from `next_best_offers`.
2. **HTTP event → decision**: the same rate of `POST /v1/events?wait=…`, open loop (each request
   sent on schedule, whether or not the earlier ones were answered); from the scheduled send to
   the answer with the decision. Both again at 500/s, then HTTP alone at 1,000/s.
3. **Server-sent events**: 1,000 streams open on the gateway (one per customer) while events come
   at 100/s; every decision must reach its customer's stream and no other; the gateway's
   resident memory is sampled throughout.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import httpx

from benchmarks import cases, workload
from local_kafka.cluster import free_port
from pipeline.contracts.schemas import Channel
from pipeline.gateway.keys import add_key
from pipeline.kafka import processes
from pipeline.kafka.clients import consume, produce
from pipeline.settings import Settings

LATENCY_RATES = (200.0, 500.0, 1000.0)
LOOP_RATES = (200.0, 500.0)  # the rates the loop's own latency is measured at too
LATENCY_SECONDS = 15.0
WAIT_MS = 10_000
STREAMS = 1000
STREAM_RATE = 100.0
APPS = {
    "valid-offers": ["pipeline", "run", "valid-offers"],
    "ranker": ["pipeline", "run", "ranker"],
    "gateway": ["pipeline", "run", "gateway"],
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def _events(count: int, first: int, prefix: str, customers: list[str]) -> list[dict[str, Any]]:
    """`count` journey events of the bench's mix for `customers`, stamped after the earlier
    phases' (each customer's events in time order across phases)."""
    records = workload.events(first + count, seed=13)[first:]
    out = []
    for index, (_key, raw) in enumerate(records):
        event = json.loads(raw)
        event["event_id"] = f"{prefix}{index:07d}"
        event["customer_id"] = customers[(first + index) % len(customers)]
        out.append(event)
    return out


def _customers(settings: Settings, bootstrap: str) -> list[str]:
    """The sample's profiles copied to 1,000 customers (a stream each in phase 3)."""
    profiles = [json.loads(raw) for _, raw in workload.customers()]
    records = []
    for number in range(STREAMS):
        profile = {**profiles[number % len(profiles)], "customer_id": f"S{number:04d}"}
        records.append((profile["customer_id"], json.dumps(profile).encode()))
    produce(settings, bootstrap, settings.topic_name("customers"), records)
    return [key for key, _ in records]


def _await_first_decision(address: str, key: str, event: dict[str, Any]) -> None:
    """Until the gateway answers and the loop behind it decides (bounded by `cases.WAIT`)."""
    deadline = time.monotonic() + cases.WAIT
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(f"{address}/v1/events?wait={WAIT_MS}", json=event,
                                headers={"X-API-Key": key}, timeout=WAIT_MS / 1000 + 5)  # fmt: skip
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)  # not listening yet; the loop is bounded by the deadline
    raise RuntimeError(f"the gateway at {address} gave no decision within {cases.WAIT:.0f} s")


async def _post_on_schedule(address: str, keys: dict[str, str], events: list[dict[str, Any]],
                            rate: float) -> tuple[list[float], Counter[int]]:  # fmt: skip
    """Post each event at its time on a schedule of `rate`/s; the milliseconds from its time to
    the decision, and the answers' statuses (0: no answer)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=2000)
    timeout = aiohttp.ClientTimeout(total=WAIT_MS / 1000 + 30)
    async with aiohttp.ClientSession(address, connector=connector, timeout=timeout) as client:

        async def post(event: dict[str, Any], due: float) -> None:
            headers = {"X-API-Key": keys[event["channel"]], "Content-Type": "application/json"}
            try:
                async with client.post(f"/v1/events?wait={WAIT_MS}", data=json.dumps(event),
                                       headers=headers) as answer:  # fmt: skip
                    await answer.read()
                    statuses[answer.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1
                return
            if answer.status == 200:
                latencies.append((time.perf_counter() - due) * 1000)

        started = time.perf_counter() + 0.05
        tasks = []
        for index, event in enumerate(events):
            due = started + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(post(event, due)))
        await asyncio.gather(*tasks)
    return latencies, statuses


def _loop_latency(settings: Settings, bootstrap: str, apps: dict[str, Any],
                  events: list[dict[str, Any]], rate: float) -> list[float]:  # fmt: skip
    records = [(e["customer_id"], json.dumps(e).encode()) for e in events]
    sink = settings.topic_name("next_best_offers")
    with (
        cases.Reader(settings, bootstrap, sink, apps, at_end=True) as reader,
        ThreadPoolExecutor(1) as pool,
    ):
        reader.wait_until_fetching()
        measuring = pool.submit(reader.latencies, len(records))
        cases.paced(settings, bootstrap, settings.topic_name("events"), records, rate)
        return measuring.result()


Received = dict[str, list[dict[str, Any]]]


async def _streams(address: str, key: str, customers: list[str], received: Received,
                   opened: threading.Event, done: threading.Event) -> None:  # fmt: skip
    """One server-sent-event stream per customer until `done`, its decisions into `received`."""
    following = 0
    connector = aiohttp.TCPConnector(limit=len(customers) + 10)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(address, connector=connector, timeout=timeout) as client:

        async def listen(customer: str) -> None:
            nonlocal following
            url = f"/v1/customers/{customer}/decisions"
            async with client.get(url, headers={"X-API-Key": key}) as stream:
                async for raw in stream.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith(": following"):
                        following += 1
                        if following == len(customers):
                            opened.set()
                    elif line.startswith("data: "):
                        received[customer].append(json.loads(line[6:]))

        tasks = [asyncio.create_task(listen(c)) for c in customers]
        while not done.is_set():
            await asyncio.sleep(0.2)
            failed = [t for t in tasks if t.done()]
            if failed:
                raise RuntimeError(f"{len(failed)} streams ended early: {failed[0].exception()}")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fan_out(settings: Settings, bootstrap: str, address: str, key: str, customers: list[str],
             events: list[dict[str, Any]], gateway_pid: int) -> dict[str, Any]:  # fmt: skip
    opened, done = threading.Event(), threading.Event()
    received: Received = defaultdict(list)
    with ThreadPoolExecutor(1) as pool:
        streams = pool.submit(
            asyncio.run, _streams(address, key, customers, received, opened, done)
        )
        if not opened.wait(120):
            done.set()
            streams.result()
            raise RuntimeError("the 1,000 streams did not open within 120 s")
        memory = [processes.resident_mb(gateway_pid)]
        cpu_before = cases.cpu_seconds([gateway_pid])
        records = [(e["customer_id"], json.dumps(e).encode()) for e in events]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(1.0):
                memory.append(processes.resident_mb(gateway_pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cases.paced(settings, bootstrap, settings.topic_name("events"), records, STREAM_RATE)
        ids = {e["event_id"] for e in events}
        deadline = time.monotonic() + cases.WAIT
        while True:  # bounded: until every event of the phase is decided, or WAIT
            decided = [d for d in _decisions(settings, bootstrap) if d["event_id"] in ids]
            if len(decided) >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(1.0)  # between reads of the whole topic
        expected: dict[str, Counter[str]] = defaultdict(Counter)
        for decision in decided:
            expected[decision["customer_id"]][decision["decision_id"]] += 1
        delivered_by = time.monotonic() + 30
        while time.monotonic() < delivered_by and _undelivered(received, expected, ids):
            time.sleep(0.5)  # bounded: the streams' last decisions on their way
        cpu = cases.cpu_seconds([gateway_pid]) - cpu_before
        done.set()
        sampling.set()
        streams.result()
    figures = fan_out_figures(received, expected, ids, len(events), memory)
    figures["gateway CPU s per 1,000 decisions"] = cpu / max(1, len(decided)) * 1000
    return figures


def _undelivered(received: Received, expected: dict[str, Counter[str]], ids: set[str]) -> int:
    got = sum(1 for ds in list(received.values()) for d in list(ds) if d["event_id"] in ids)
    return max(0, _count(expected) - got)


def _count(expected: dict[str, Counter[str]]) -> int:
    return sum(sum(c.values()) for c in expected.values())


def fan_out_figures(received: Received,
                     expected: dict[str, Counter[str]], ids: set[str], events: int,
                     memory: list[float]) -> dict[str, Any]:  # fmt: skip
    foreign = sum(1 for c, ds in received.items() for d in ds if d["customer_id"] != c)
    missing = extra = 0
    for customer in set(expected) | set(received):
        got = Counter(d["decision_id"] for d in received.get(customer, []) if d["event_id"] in ids)
        missing += sum((expected[customer] - got).values())
        extra += sum((got - expected[customer]).values())
    return {
        "streams": STREAMS,
        "events": events,
        "decisions": _count(expected),
        "delivered to their own stream": _count(expected) - missing,
        "missing": missing,
        "extra (twice, or not its own)": extra,
        "to another customer's stream": foreign,
        "gateway memory MB, peak": max(memory),
        "gateway memory MB, start": memory[0],
    }


def _decisions(settings: Settings, bootstrap: str) -> list[dict[str, Any]]:
    return [r.json() for r in consume(settings, bootstrap, settings.topic_name("next_best_offers"))]


def gateway_case(settings: Settings, bootstrap: str, stream_seconds: float) -> dict[str, Any]:
    """Every figure of the case (see the module)."""
    keys_file = settings.state_dir / "gateway-keys.json"
    keys = {channel.value: add_key(keys_file, channel.value).secret for channel in Channel}
    port = free_port()
    settings = settings.model_copy(
        update={
            "gateway_keys_file": keys_file,
            "gateway_port": port,
            "gateway_rate": 1e6,
            "gateway_burst": 1_000_000,
        }
    )
    cases.catalogue(settings, bootstrap)
    customers = _customers(settings, bootstrap)
    address = f"http://127.0.0.1:{port}"
    figures: dict[str, Any] = {}
    with cases.running_apps(settings, APPS) as apps:
        warm = _events(200, 0, "W", customers)
        _await_first_decision(address, keys[warm[0]["channel"]], warm[0])
        asyncio.run(_post_on_schedule(address, keys, warm[1:], 50.0))  # the apps warm up
        first = 200
        for rate in LATENCY_RATES:
            if rate in LOOP_RATES:  # the loop's own latency, just before the HTTP one
                count = int(LATENCY_SECONDS * rate)
                events = _events(count, first, f"L{rate:.0f}-", customers)
                loop = _loop_latency(settings, bootstrap, apps, events, rate)
                first += count
                figures[f"loop p50 ms at {rate:.0f}/s"] = statistics.median(loop)
                figures[f"loop p99 ms at {rate:.0f}/s"] = percentile(loop, 0.99)
            count = int(LATENCY_SECONDS * rate)
            events = _events(count, first, f"H{rate:.0f}-", customers)
            first += count
            latencies, statuses = asyncio.run(_post_on_schedule(address, keys, events, rate))
            figures[f"http p50 ms at {rate:.0f}/s"] = statistics.median(latencies)
            figures[f"http p99 ms at {rate:.0f}/s"] = percentile(latencies, 0.99)
            figures[f"http statuses at {rate:.0f}/s"] = dict(statuses)
        count = int(stream_seconds * STREAM_RATE)
        events = _events(count, first, "S", customers)
        figures["server-sent events"] = _fan_out(
            settings, bootstrap, address, keys["web"], customers, events, apps["gateway"].pid
        )
    for rate in LOOP_RATES:
        figures[f"http p99 - loop p99 ms at {rate:.0f}/s"] = (
            figures[f"http p99 ms at {rate:.0f}/s"] - figures[f"loop p99 ms at {rate:.0f}/s"]
        )
    return figures
