"""``warningshot demo``: the product end to end on a throwaway local mailbox.

Starts a private Dovecot on 127.0.0.1, delivers the sample support mail from
config/demo/, runs the real daemon with the shipped model against it, and
prints what was tagged. Nothing leaves the machine.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from imapclient import IMAPClient

from service.daemon import Daemon
from service.local_dovecot import Dovecot
from service.settings import PROJECT_ROOT, Settings
from service.store import MessageRecord

DEMO_MAIL = PROJECT_ROOT / "config" / "demo"


def demo_settings(server: Dovecot, password: str, workdir: Path, base: Settings) -> Settings:
    return Settings.model_validate(
        {
            **base.model_dump(exclude={"mailboxes", "store", "daemon", "playbook", "tagging", "api"}),
            "mailboxes": [{
                "name": "demo", "host": "127.0.0.1", "port": server.port, "security": "plain",
                "username": "support", "password": password, "poll_interval_seconds": 1.0,
                "address": "support@example.com",
            }],
            "playbook": {
                **base.playbook.model_dump(),
                "company": base.playbook.company or "Example Plugins Ltd",
                "agent_name": base.playbook.agent_name or "The support team",
                "refund_terms": base.playbook.refund_terms or "A full refund of your last payment, within 5 business days.",
            },
            "store": {"url": f"sqlite:///{workdir / 'demo.db'}"},
            "tagging": {"routes": {"legal_threat": {"keyword": "LegalThreat", "folder": "WarningShot/Counsel", "mode": "copy"}}},
            "daemon": {"backoff_initial_seconds": 0.5, "backoff_max_seconds": 5.0},
        }
    )


def deliver_samples(server: Dovecot, password: str, files: list[Path]) -> None:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
    client.login("support", password)
    try:
        for path in files:
            client.append("INBOX", path.read_bytes())
    finally:
        client.logout()


def wait_until_handled(daemon: Daemon, count: int, timeout: float) -> list[MessageRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [r for r in daemon.store.messages() if r.state not in ("processing", "decided")]
        if len(records) >= count:
            return records
        time.sleep(0.25)
    return daemon.store.messages()


def format_table(records: list[MessageRecord]) -> str:
    lines = [f"{'uid':>3}  {'lang':4}  {'labels':28}  {'abusive':>7} {'extort.':>7} {'legal':>7}  subject"]
    for r in sorted(records, key=lambda r: r.uid):
        scores = r.scores or {}
        labels = ",".join(r.labels or []) or ("-" if r.state == "done" else r.state)
        lines.append(
            f"{r.uid:>3}  {r.language or '':4}  {labels:28}  "
            f"{scores.get('abusive', 0):7.2f} {scores.get('extortion', 0):7.2f} {scores.get('legal_threat', 0):7.2f}  "
            f"{(r.subject or '')[:48]}"
        )
    return "\n".join(lines)


def run_demo(base: Settings, echo: Callable[[str], None], *, keep_running: bool = False, timeout: float = 600) -> int:
    files = sorted(DEMO_MAIL.glob("*.eml"))
    password = secrets.token_urlsafe(12)
    server = Dovecot(users={"support": password})
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="warningshot-demo-"))
    try:
        echo(f"local IMAP server on 127.0.0.1:{server.port} (user 'support'), {len(files)} sample mails delivered")
        deliver_samples(server, password, files)
        settings = demo_settings(server, password, workdir, base)
        echo("loading the model and starting the daemon ...")
        daemon = Daemon(settings)
        daemon.start()
        records = wait_until_handled(daemon, len(files), timeout)
        echo("")
        echo(format_table(records))
        echo("")
        echo("IMAP keywords set: WarningShot/Scanned on every message, plus Abusive / Extortion / LegalThreat;")
        echo("legal threats were also copied to the folder WarningShot/Counsel.")
        drafts = daemon.playbook.drafts()
        echo(f"\nreply drafts for a human to approve ({len(drafts)}, in the Drafts folder; nothing is sent):")
        for draft in sorted(drafts, key=lambda d: d.id):
            echo(f"  {draft.template:22} {draft.language:3} {draft.state:9} to {draft.to_address}")
        if keep_running:
            echo(f"still running: connect a mail client to 127.0.0.1:{server.port}, user support, password {password}")
            echo("Ctrl-C to stop")
            try:
                while not daemon.stop.wait(1):
                    pass
            except KeyboardInterrupt:
                pass
        daemon.request_stop()
        daemon.join(30)
        daemon.store.close()
        return 0 if len(records) >= len(files) else 1
    finally:
        server.cleanup()
