"""Sending over SMTP with smtplib: TLS, STARTTLS or plain on localhost; capped retries.

smtplib, socket and ssl errors are translated here and nowhere else: a
refused login, sender or recipient (5xx) becomes :class:`SendRefusedError`
and is not retried; everything else (4xx, dropped connections, timeouts) is
a :class:`SendError`, retried ``max_attempts`` times with doubling delays.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.errors import SendError, SendRefusedError
from service.settings import SmtpSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the server accepted: the envelope and how many tries it took."""

    sender: str
    recipients: tuple[str, ...]
    attempts: int


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpSender:
    """Sends finished messages (bytes) with the settings' server and credentials."""

    def __init__(self, settings: SmtpSettings, *, sleep: Callable[[float], object] | None = None) -> None:
        self.settings = settings
        self._sleep = sleep or threading.Event().wait

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.effective_port, timeout=s.timeout_seconds, context=_tls_context(s)
            )
        else:
            client = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout_seconds)
        try:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=_tls_context(s))
                client.ehlo()
            if s.username:
                client.login(s.username, s.password.get_secret_value())
        except BaseException:
            client.close()
            raise
        return client

    def _send_once(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        what = f"SMTP {self.settings.host}:{self.settings.effective_port}"
        try:
            client = self._connect()
            try:
                options = ["SMTPUTF8"] if not (sender.isascii() and all(r.isascii() for r in recipients)) else []
                refused = client.sendmail(sender, list(recipients), data, mail_options=options)
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        except smtplib.SMTPAuthenticationError as exc:
            raise SendRefusedError(f"{what}: login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {r: c for r, (c, _m) in exc.recipients.items()}
            if all(code >= 500 for code in codes.values()):
                raise SendRefusedError(f"{what}: recipient refused {codes}") from exc
            raise SendError(f"{what}: recipient temporarily refused {codes}") from exc
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                raise SendRefusedError(f"{what}: sender refused ({exc.smtp_code})") from exc
            raise SendError(f"{what}: sender temporarily refused ({exc.smtp_code})") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise SendRefusedError(f"{what}: message refused ({exc.smtp_code})") from exc
            raise SendError(f"{what}: {exc.smtp_code} (temporary)") from exc
        except (smtplib.SMTPException, OSError) as exc:  # OSError covers socket and ssl errors
            raise SendError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
        if refused:
            raise SendRefusedError(f"{what}: some recipients refused {sorted(refused)}")

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> Delivery:
        """Deliver ``data``; retry temporary failures; raise the last error when every try failed."""
        delay = self.settings.retry_delay_seconds
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                self._send_once(sender, recipients, data)
                return Delivery(sender, tuple(recipients), attempt)
            except SendRefusedError as exc:
                exc.attempts = attempt
                raise
            except SendError as exc:
                if attempt == self.settings.max_attempts:
                    final = SendError(f"{exc} (gave up after {attempt} tries)")
                    final.attempts = attempt
                    raise final from exc
                log.warning("send failed (try %d of %d): %s; retrying in %.1f s",
                            attempt, self.settings.max_attempts, exc, delay)
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["Delivery", "SmtpSender"]
