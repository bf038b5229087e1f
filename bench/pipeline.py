"""Pipeline benchmark: real Dovecot, real daemon, IDLE.

1. Throughput: deliver N messages (default 2,000), start the daemon, time until
   every one is tagged; report messages/s and the time per message spent
   outside the classifier (parse, store, IMAP) — the pipeline's overhead.
2. Latency: with the daemon idle in IDLE, offer messages at a fixed rate
   (default 5/s for 60 s) and report arrival-to-tag p50/p95/p99, where arrival
   is the moment APPEND returned and tagged the moment the keywords were stored.

    .venv/bin/python bench/pipeline.py                  # the shipped model
    .venv/bin/python bench/pipeline.py --classifier marker   # overhead only

Needs root and Debian's dovecot-imapd (like the test suite). Bounded: it stops
by itself after the given counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imapclient import IMAPClient  # noqa: E402

from classifiers.interface import Classifier  # noqa: E402
from service.daemon import Daemon  # noqa: E402
from service.local_dovecot import Dovecot  # noqa: E402
from service.pipeline import Outcome  # noqa: E402
from service.settings import Settings  # noqa: E402

BODIES = [
    "Hello, my licence key stopped working after the update. Order {n}. Could you check it? Thanks, Dana",
    "Your support team is useless and I am sick of waiting. Fix ticket {n} today or I will leave a one-star review everywhere.",
    "Hi, can I get an invoice with our VAT number for order {n}? Best regards, Tom",
    "مرحباً، لم يصلني رمز التفعيل للطلب رقم {n}. أرجو المساعدة. شكراً",
    "שלום, ההזמנה {n} עדיין לא הגיעה. אפשר לבדוק? תודה",
    "Bonjour, la mise à jour a cassé mon site (commande {n}). Pouvez-vous m'aider ?",
]


def mail(n: int) -> bytes:
    body = BODIES[n % len(BODIES)].format(n=n)
    return (
        f"From: Customer {n} <c{n}@example.org>\r\nTo: support@example.com\r\n"
        f"Subject: Ticket {n}\r\nMessage-ID: <bench-{n}@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    ).encode()


class TimedClassifier:
    """Wraps a classifier to add up the time spent inside it."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.labels = inner.labels
        self.thresholds = inner.thresholds
        self.seconds = 0.0

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        start = time.perf_counter()
        try:
            return self.inner.predict(texts)
        finally:
            self.seconds += time.perf_counter() - start

    def evidence(self, text: str, labels: Sequence[str]) -> dict[str, str]:
        start = time.perf_counter()
        try:
            return self.inner.evidence(text, labels)
        finally:
            self.seconds += time.perf_counter() - start


def load(kind: str, settings: Settings) -> Classifier:
    if kind == "marker":
        sys.path.insert(0, str(REPO / "tests" / "support"))
        from marker_classifier import MarkerClassifier

        return MarkerClassifier()
    from service.scoring import load_classifier

    return load_classifier(settings.model)


def settings_for(server: Dovecot, workdir: Path, batch: int) -> Settings:
    return Settings.model_validate({
        "mailboxes": [{"name": "bench", "host": "127.0.0.1", "port": server.port, "security": "plain",
                       "username": "support", "password": "bench-pass", "address": "support@example.com"}],
        # Flagged mail gets a real draft (rendered, litmus-scored, appended), as in production.
        "playbook": {"company": "Example Plugins Ltd", "agent_name": "Support", "refund_terms": "A full refund."},
        "store": {"url": f"sqlite:///{workdir / 'bench.db'}"},
        "daemon": {"batch_size": batch},
    })


class Recorder:
    def __init__(self) -> None:
        self.done: dict[int, float] = {}
        self.event = threading.Event()
        self.expected = 0

    def __call__(self, _mailbox: str, _folder: str, outcome: Outcome) -> None:
        self.done[outcome.uid] = time.perf_counter()
        if len(self.done) >= self.expected:
            self.event.set()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def run(args: argparse.Namespace) -> dict:
    server = Dovecot(users={"support": "bench-pass"})
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    try:
        client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
        client.login("support", "bench-pass")
        t0 = time.perf_counter()
        for n in range(args.messages):
            client.append("INBOX", mail(n))
        deliver_s = time.perf_counter() - t0

        settings = settings_for(server, workdir, args.batch)
        classifier = TimedClassifier(load(args.classifier, settings))
        recorder = Recorder()
        recorder.expected = args.messages
        daemon = Daemon(settings, classifier=classifier)
        daemon.pipeline.on_outcome = recorder
        start = time.perf_counter()
        daemon.start()
        if not recorder.event.wait(args.timeout):
            raise SystemExit(f"only {len(recorder.done)} of {args.messages} handled in {args.timeout} s")
        wall = time.perf_counter() - start
        model_s = classifier.seconds
        result = {
            "messages": args.messages,
            "deliver_seconds": round(deliver_s, 2),
            "throughput_msgs_per_s": round(args.messages / wall, 1),
            "wall_seconds": round(wall, 2),
            "classifier_seconds": round(model_s, 2),
            "overhead_ms_per_msg": round((wall - model_s) / args.messages * 1000, 2),
            "share_outside_classifier": round((wall - model_s) / wall, 3),
        }

        # Latency under a steady offered load, the daemon waiting in IDLE.
        recorder.done.clear()
        recorder.event.clear()
        count = int(args.rate * args.seconds)
        recorder.expected = count
        arrivals: dict[int, float] = {}
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        for n in range(count):
            time.sleep(max(0.0, next_at - time.perf_counter()))
            response = client.append("INBOX", mail(args.messages + n))
            # UIDPLUS: "[APPENDUID <uidvalidity> <uid>] ..." names the new UID.
            uid = int(response.split(b"]")[0].split()[-1])
            arrivals[uid] = time.perf_counter()
            next_at += interval
        if not recorder.event.wait(args.timeout):
            raise SystemExit(f"latency phase: only {len(recorder.done)} of {count} handled")
        latencies = [recorder.done[uid] - t for uid, t in arrivals.items()]
        result.update({
            "offered_rate_per_s": args.rate,
            "latency_messages": count,
            "latency_p50_s": round(percentile(latencies, 50), 3),
            "latency_p95_s": round(percentile(latencies, 95), 3),
            "latency_p99_s": round(percentile(latencies, 99), 3),
            "latency_max_s": round(max(latencies), 3),
        })
        client.logout()
        daemon.request_stop()
        daemon.join(30)
        return result
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=5.0, help="offered load in the latency phase (msgs/s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the latency phase")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classifier", choices=["model", "marker"], default="model")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = {"machine": f"{platform.node()} {platform.machine()}", "classifier": args.classifier, **run(args)}
    for key, value in result.items():
        print(f"{key:28} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
