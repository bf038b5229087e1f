"""Admin API benchmark: latency of the review queue and of a threshold preview, and throughput.

Fills a fresh SQLite store with N handled messages (bulk insert), serves the
API with a real uvicorn on localhost in a separate process (as in production,
where the clients are elsewhere; in one process the load generator would
share the GIL with the server), and measures with httpx.AsyncClient:

* p50/p99 latency of ``GET /v1/messages`` (a 50-message page: first page,
  filtered, and a later page by cursor), one request at a time;
* p50/p99 latency of ``POST /v1/thresholds/preview`` over the last 30 days;
* requests/s of ``GET /v1/messages`` under C concurrent clients (C
  AsyncClients of one connection each), bounded by a duration and a request
  count. httpx costs about as much CPU per request as the server, so on a
  small machine the client side is part of what this measures.

Targets: p99 < 100 ms for a queue page, < 500 ms for a 30-day preview.
No model is loaded: the API's model routes are not measured here.

    .venv/bin/python bench/api.py                       # 100,000 messages, 50 clients
    .venv/bin/python bench/api.py --messages 20000 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifiers.interface import LABELS, Thresholds  # noqa: E402
from service.api.app import create_app  # noqa: E402
from service.api.server import ApiServer  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.store import Store  # noqa: E402
from service.store.tables import MessageRecord  # noqa: E402

TOKEN = "bench-admin-token-0123456789"
LANGUAGES = ["en"] * 10 + ["he"] * 3 + ["ar"] * 3 + ["de", "fr", "es", "ru", "tr", "fa", "und"]
QUEUE_QUERIES: dict[str, dict[str, Any]] = {
    "first page": {"limit": 50},
    "label+lang filter": {"limit": 50, "label": "extortion", "lang": "he"},
    "since filter": {"limit": 50, "since": "__7_days_ago__"},
}
PROPOSAL = {
    "days": 30,
    "thresholds": {"default": {"abusive": 0.45, "extortion": 0.6}, "per_language": {"he": {"legal_threat": 0.4}}},
}


class FixedClassifier:
    """Stands in for the model: the API needs only its thresholds for these routes."""

    labels = LABELS
    thresholds = Thresholds({label: 0.5 for label in LABELS})

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{label: 0.0 for label in LABELS} for _ in texts]

    def evidence(self, text: str, labels: Sequence[str]) -> dict[str, str]:
        return {}


def populate(store: Store, count: int, days: int, seed: int = 7) -> float:
    """Bulk-insert ``count`` handled messages spread over ``days``; returns seconds taken."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    started = time.perf_counter()
    chunk: list[dict] = []
    with store.engine.begin() as connection:
        for n in range(count):
            # Most mail is clean; a few percent scores high on a label.
            scores = {label: round(rng.betavariate(0.6, 9) if rng.random() > 0.05 else rng.uniform(0.3, 1.0), 4)
                      for label in LABELS}
            labels = [label for label in LABELS if scores[label] >= 0.5]
            at = now - timedelta(seconds=rng.uniform(0, days * 86400))
            state = "done" if rng.random() > 0.01 else rng.choice(["quarantined", "skipped"])
            chunk.append({
                "mailbox": "support", "folder": "INBOX", "uidvalidity": 1, "uid": n + 1,
                "message_key": f"<m{n}@bench.example>", "message_id": f"<m{n}@bench.example>",
                "sender": f"customer{rng.randrange(count // 5 + 1)}@example.org",
                "subject": f"Ticket {n}: licence key does not work",
                "language": rng.choice(LANGUAGES),
                "scores": scores if state == "done" else None,
                "labels": labels if state == "done" else None,
                "evidence": {label: "An evidence sentence of moderate length, as the model picks it."
                             for label in labels},
                "action": {"keywords": ["WarningShot/Scanned"], "gmail_labels": [], "copy_to": [], "move_to": None,
                           "thresholds": {label: 0.5 for label in LABELS}},
                "state": state, "attempts": 1, "received_at": at, "updated_at": at,
            })
            if len(chunk) == 5000:
                connection.execute(insert(MessageRecord), chunk)
                chunk = []
        if chunk:
            connection.execute(insert(MessageRecord), chunk)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
            f"mean {statistics.fmean(ms):7.1f} ms   max {max(ms):7.1f} ms   (n={len(ms)})")


async def sequential(client: httpx.AsyncClient, method: str, path: str, n: int, **kwargs: object) -> list[float]:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        r = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
        timings.append(time.perf_counter() - started)
        r.raise_for_status()
    return timings


async def concurrent(url: str, clients: int, duration: float, max_requests: int) -> tuple[int, int, float, list[float]]:
    """(ok, failed, seconds, latencies) of GET /v1/messages from ``clients`` concurrent clients."""
    deadline = time.perf_counter() + duration
    sent = ok = failed = 0
    latencies: list[float] = []

    async def worker(i: int) -> None:
        nonlocal sent, ok, failed
        params = list(QUEUE_QUERIES.values())[i % 2]
        # One client (one connection) per simulated admin: a shared pool of 50
        # connections is slower in httpx than the server it measures.
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                started = time.perf_counter()
                try:
                    r = await client.get("/v1/messages", params=params)
                    ok += r.status_code == 200
                    failed += r.status_code != 200
                except httpx.HTTPError:
                    failed += 1
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return ok, failed, time.perf_counter() - started, latencies


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        # Warm-up; the first preview also waits for the score index to finish loading.
        await sequential(client, "GET", "/v1/messages", 5)
        await sequential(client, "POST", "/v1/thresholds/preview", 1, json=PROPOSAL)
        seven_days_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
        for name, params in QUEUE_QUERIES.items():
            params = {k: (seven_days_ago if v == "__7_days_ago__" else v) for k, v in params.items()}
            results[f"GET /v1/messages ({name})"] = await sequential(
                client, "GET", "/v1/messages", args.requests, params=params)
        # A page deep in the queue, reached by cursor.
        cursor = None
        for _ in range(20):
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/messages", params=params)).json()
            cursor = page["next_cursor"]
        results["GET /v1/messages (21st page, cursor)"] = await sequential(
            client, "GET", "/v1/messages", args.requests, params={"limit": 50, "cursor": cursor})
        preview = (await client.post("/v1/thresholds/preview", json=PROPOSAL)).json()
        results["preview scope"] = {"messages": preview["messages"], "changed": preview["changed"]}
        results["POST /v1/thresholds/preview (30 days)"] = await sequential(
            client, "POST", "/v1/thresholds/preview", args.preview_requests, json=PROPOSAL)
    results["concurrent"] = await concurrent(url, args.clients, args.duration, args.max_requests)
    return results


def serve(path: Path, port: int) -> None:
    """The server process."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.model_validate({"api": {"admin_tokens": [TOKEN]}, "store": {"url": f"sqlite:///{path}"}})
    store = Store(settings.store.url)
    ApiServer(create_app(settings, store, FixedClassifier()), "127.0.0.1", port, access_log=False).run()


def wait_until_up(url: str, process: BaseProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.is_alive():
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the API server did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30,
                        help="Spread of received_at (default: all in the preview window).")
    parser.add_argument("--requests", type=int, default=300, help="Sequential requests per queue variant.")
    parser.add_argument("--preview-requests", type=int, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds of the concurrent run (upper bound).")
    parser.add_argument("--max-requests", type=int, default=20_000,
                        help="Requests of the concurrent run (upper bound).")
    parser.add_argument("--store", type=Path, default=None, help="SQLite file to use (default: a temporary one).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="ws-bench-api-") as tmp:
        path = args.store or Path(tmp) / "bench.db"
        store = Store(f"sqlite:///{path}")
        store.migrate()
        filled = populate(store, args.messages, args.days)
        store.close()
        print(f"store: {args.messages:,} messages over {args.days} days, bulk insert {filled:.1f} s ({path.name})")
        port = free_port()
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(path, port), daemon=True)
        server.start()
        try:
            wait_until_up(f"http://127.0.0.1:{port}", server)
            results = asyncio.run(measure(f"http://127.0.0.1:{port}", args))
        finally:
            server.terminate()
            server.join(10)

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
          "uvicorn (h11, asyncio) in its own process; SQLite (WAL)")
    for name, value in results.items():
        if name == "concurrent":
            ok, failed, seconds, latencies = value  # type: ignore[misc]
            print(f"{'GET /v1/messages, ' + str(args.clients) + ' concurrent clients':42s} "
                  f"{ok / seconds:7.0f} requests/s   ({ok} ok, {failed} failed in {seconds:.1f} s; "
                  f"latency p50 {percentile(latencies, 50) * 1000:.0f} ms, "
                  f"p99 {percentile(latencies, 99) * 1000:.0f} ms)")
        elif name == "preview scope":
            print(f"{'preview covers':42s} {json.dumps(value)}")
        else:
            print(f"{name:42s} {summary(value)}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
