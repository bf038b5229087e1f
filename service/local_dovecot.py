"""A throwaway local Dovecot IMAP server (Debian's dovecot-imapd).

Used by ``warningshot demo`` and by the test suite. Each instance lives in its
own directory under /tmp with its own config, port, users and maildirs. It
needs root (Dovecot drops to its own users) and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.errors import WarningShotError

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_fsync = never
{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
{capability}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dovecot:
    """A running Dovecot; ``users`` maps user name to password."""

    users: dict[str, str] = field(default_factory=lambda: {"support": "support-pass"})
    capabilities: str | None = None
    tls: bool = False
    oauth2_introspection_url: str | None = None
    root: Path = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        if not Path(DOVECOT).exists():
            raise WarningShotError("Dovecot is not installed: apt-get install dovecot-imapd")
        self.root = Path(tempfile.mkdtemp(prefix="ws-dovecot-", dir="/tmp"))
        # The dovecot user must traverse the tree down to the maildirs.
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if self.tls else 0
        self.config = self.root / "dovecot.conf"
        self._write()

    def _write(self) -> None:
        dovecot_user = pwd.getpwnam("dovecot")
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, dovecot_user.pw_uid, dovecot_user.pw_gid)
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        ssl_files = ""
        if self.tls:
            self._make_certificate()
            ssl_files = f"ssl_cert = <{self.root}/cert.pem\nssl_key = <{self.root}/key.pem"
        capability = f"imap_capability = {self.capabilities}" if self.capabilities else ""
        oauth_passdb = oauth_mechanisms = ""
        if self.oauth2_introspection_url:
            # Tokens are checked by POSTing them to an introspection endpoint
            # (RFC 7662) that the caller runs; Dovecot trusts its "active".
            (self.root / "oauth2.conf").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
            )
            oauth_mechanisms = " xoauth2 oauthbearer"
            oauth_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.root}/oauth2.conf\n}}\n"
            )
        self.config.write_text(
            CONFIG.format(
                root=self.root, port=self.port, tls_port=self.tls_port, ssl="yes" if self.tls else "no",
                ssl_files=ssl_files, capability=capability,
                oauth_passdb=oauth_passdb, oauth_mechanisms=oauth_mechanisms,
            )
        )

    def _make_certificate(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem")],
            check=True, capture_output=True,
        )

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    def start(self) -> None:
        # The master forks and keeps running: its output must not be a pipe
        # that subprocess would wait on.
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise WarningShotError(f"dovecot did not start; log:\n{self.log()}")

    def stop(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not (self.root / "run" / "master.pid").exists():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        pass
                except OSError:
                    return
            time.sleep(0.05)

    def kick(self) -> None:
        """Drop every client connection, as a server crash or failover would.

        A plain ``dovecot stop`` leaves running imap processes serving their
        clients, so stopping alone does not disconnect anyone.
        """
        for user in self.users:
            subprocess.run(["doveadm", "-c", str(self.config), "kick", user], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        self.kick()
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
