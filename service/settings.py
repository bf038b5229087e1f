"""The one settings object, read from a TOML file with environment overrides.

Built once in the entry point and passed down; nothing imports it as a global.
Secrets (IMAP passwords, API tokens) can stay out of the file: each mailbox
reads ``WARNINGSHOT_MAILBOX_<NAME>_PASSWORD`` when its ``password`` is empty,
and any top-level key can be overridden as ``WARNINGSHOT_<SECTION>__<KEY>``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from classifiers.interface import LABELS, Thresholds
from service.errors import ConfigError

CONFIG_ENV = "WARNINGSHOT_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Values an example file ships with; refusing them stops a copied example from
# going live with a guessable secret.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx"}

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MailboxSettings(_Section):
    """One IMAP account and the folders watched in it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Short name used in logs, the store and env variables.")
    host: str = Field(min_length=1, description="IMAP server host name.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Defaults to 993 for tls, 143 otherwise.")
    security: Literal["tls", "starttls", "plain"] = Field(
        default="tls", description="'plain' is only accepted for localhost."
    )
    username: str = Field(min_length=1, description="Login name (for Gmail and Microsoft 365: the mail address).")
    auth: Literal["password", "xoauth2"] = Field(
        default="password", description="'xoauth2' for Gmail and Microsoft 365 (docs/oauth2.md)."
    )
    password: SecretStr = Field(
        default=SecretStr(""), description="Leave empty and set WARNINGSHOT_MAILBOX_<NAME>_PASSWORD instead."
    )
    oauth2_token_command: str = Field(default="", description="Command printing a fresh XOAUTH2 access token.")
    oauth2_token_file: Path | None = Field(default=None, description="File holding the current XOAUTH2 access token.")
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1, description="Folders watched for new mail.")
    idle: bool = Field(default=True, description="Use IMAP IDLE when the server offers it; else poll.")
    idle_renew_seconds: float = Field(
        default=1500, gt=0, le=1740, description="Re-issue IDLE before the server's 29-minute limit (RFC 2177)."
    )
    poll_interval_seconds: float = Field(default=30.0, gt=0, le=3600, description="Check interval when IDLE is not used.")
    timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="Socket timeout of IMAP commands.")
    tls_verify: bool = Field(default=True, description="Check the server certificate; off only for tests.")
    tls_ca_file: Path | None = Field(default=None, description="CA bundle for a server with a private certificate.")
    drafts_folder: str = Field(default="Drafts", description="Reply drafts are appended here for a human to approve.")
    sent_folder: str = Field(
        default="Sent", description="Approved replies are filed here; empty where the server does it itself (Gmail)."
    )
    address: str = Field(
        default="", description="Support address the drafts are sent from; default: username when it is an address."
    )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security == "tls" else 143

    @field_validator("folders")
    @classmethod
    def _unique_folders(cls, folders: list[str]) -> list[str]:
        if len(set(folders)) != len(folders):
            raise ValueError("folders are listed twice")
        return folders

    @model_validator(mode="after")
    def _check_auth(self) -> MailboxSettings:
        if self.security == "plain" and self.host not in {"localhost", "127.0.0.1", "::1"}:
            raise ValueError("security = 'plain' sends the password in clear text; only allowed for localhost")
        if self.auth == "password":
            secret = self.password.get_secret_value()
            if not secret:
                raise ValueError(
                    f"no password: set 'password' or the environment variable {password_env(self.name)}"
                )
            if secret.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("password is a placeholder value from the example; set the real one")
        elif not self.oauth2_token_command and self.oauth2_token_file is None:
            raise ValueError("auth = 'xoauth2' needs oauth2_token_command or oauth2_token_file")
        return self


class RouteSettings(_Section):
    """Where a flagged message goes, per label."""

    keyword: str = Field(min_length=1, pattern=r"^[^\s()\[\]{}%*\"\\]+$", description="IMAP keyword set on the message.")
    folder: str = Field(default="", description="Folder to copy or move the message to (created when missing).")
    mode: Literal["none", "copy", "move"] = Field(default="none", description="Keyword only, or also copy or move to folder.")
    gmail_label: str = Field(default="", description="X-GM-LABELS label, used when the server is Gmail.")

    @model_validator(mode="after")
    def _folder_needed(self) -> RouteSettings:
        if self.mode != "none" and not self.folder:
            raise ValueError(f"mode = '{self.mode}' needs a folder")
        return self


def _default_routes() -> dict[str, RouteSettings]:
    return {
        "abusive": RouteSettings(keyword="Abusive"),
        "extortion": RouteSettings(keyword="Extortion"),
        "legal_threat": RouteSettings(keyword="LegalThreat"),
    }


class TaggingSettings(_Section):
    scanned_keyword: str = Field(default="WarningShot/Scanned", description="Set on every message handled.")
    error_keyword: str = Field(default="WarningShot/Error", description="Set on a message quarantined after repeated failures.")
    routes: dict[str, RouteSettings] = Field(default_factory=_default_routes)

    @field_validator("routes")
    @classmethod
    def _known_labels(cls, routes: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
        unknown = sorted(set(routes) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; labels are {list(LABELS)}")
        return {**_default_routes(), **routes}


class ThresholdSettings(_Section):
    """Overrides of the model's shipped thresholds (the API can change them too)."""

    abusive: Probability | None = Field(default=None, description="Overrides the model's abusive threshold.")
    extortion: Probability | None = Field(default=None, description="Overrides the model's extortion threshold.")
    legal_threat: Probability | None = Field(default=None, description="Overrides the model's legal_threat threshold.")
    per_language: dict[str, dict[Literal["abusive", "extortion", "legal_threat"], Probability]] = Field(
        default_factory=dict, description="Per language code, e.g. [thresholds.per_language.ar] abusive = 0.7."
    )

    def as_thresholds(self) -> Thresholds:
        default = {label: getattr(self, label) for label in LABELS if getattr(self, label) is not None}
        per_language = {lang: {str(label): p for label, p in v.items()} for lang, v in self.per_language.items()}
        return Thresholds(default, per_language)


class ModelSettings(_Section):
    path: Path = Field(default=PROJECT_ROOT / "models" / "warningshot", description="Fine-tuned model directory.")
    base_cache: Path | None = Field(default=None, description="Base-model cache; default $WARNINGSHOT_CACHE or ~/.cache/warningshot.")
    factory: str = Field(
        default="",
        pattern=r"^$|^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="Optional 'module:callable' returning a Classifier, to use your own model.",
    )
    threads: int = Field(default=0, ge=0, le=256, description="Torch threads; 0 = one per core.")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default="auto",
        description="What the encoder computes in. auto: bf16 where the CPU has it natively (AMX, AVX512-BF16: "
        "~3x fp32, same test F1), else fp32. int8: torch dynamic quantisation, ~1.2x fp32, but a text's "
        "scores then depend on the rest of its batch.",
    )
    quantize: bool = Field(default=False, description="Deprecated: true means precision = 'int8'.")
    max_chars: int = Field(default=20000, ge=200, le=1_000_000, description="Text sent to the model is capped here.")
    batch_size: int = Field(default=16, ge=1, le=512, description="Texts per model call in `classify` and `scan`.")
    registry: Path = Field(
        default=Path("var/models"),
        description="Model versions made by `warningshot retrain` and the ACTIVE file naming the one in use "
        "(none, or 'shipped': the model at model.path). A relative path is relative to the config file, like "
        "store.url; the default, var/models, sits next to the default store var/warningshot.db.",
    )

    @model_validator(mode="after")
    def _one_precision(self) -> ModelSettings:
        if self.quantize and self.precision not in ("auto", "int8"):
            raise ValueError(f"quantize = true (int8) contradicts precision = {self.precision!r}; keep precision only")
        return self

    @property
    def requested_precision(self) -> str:
        """``precision``, with the older ``quantize = true`` read as int8 ("auto" is resolved where torch is)."""
        return "int8" if self.quantize else self.precision


class StoreSettings(_Section):
    url: str = Field(default="sqlite:///var/warningshot.db", description="SQLAlchemy URL; relative SQLite paths are relative to the config file.")
    store_bodies: bool = Field(default=False, description="Keep message bodies in the store (off for privacy).")


class DaemonSettings(_Section):
    max_attempts: int = Field(default=3, ge=1, le=100, description="Failures before a message is quarantined.")
    backoff_initial_seconds: float = Field(default=1.0, gt=0, le=600, description="First wait before reconnecting.")
    backoff_max_seconds: float = Field(default=300.0, gt=0, le=86400, description="The wait doubles up to this.")
    batch_size: int = Field(default=16, ge=1, le=1000, description="Messages fetched and classified together.")
    dry_run: bool = Field(default=False, description="Decide and record, but change nothing on the server.")


class CorrectionSettings(_Section):
    """Learning from agents: label keywords removed or added, messages moved out of or into label folders."""

    enabled: bool = Field(default=True, description="Record agents' keyword and folder changes as label corrections.")
    interval_seconds: float = Field(default=60.0, ge=0.2, le=86400, description="How often the folders are checked.")
    max_messages: int = Field(default=2000, ge=10, le=1_000_000,
                              description="Newest messages per folder checked when the server lacks CONDSTORE.")
    use_condstore: bool = Field(default=True, description="Ask only for changes (CONDSTORE MODSEQ) when the server can.")
    keep_text: bool = Field(default=True, description="Keep the subject and text of a corrected mail, for retraining.")


class ApiSettings(_Section):
    """The admin HTTP API (see docs/api.md); tokens best set as WARNINGSHOT_API__ADMIN_TOKENS='["..."]'."""

    enabled: bool = Field(default=False, description="Serve the API from inside `warningshot run`.")
    host: str = Field(default="127.0.0.1", min_length=1,
                      description="Listen address; keep it local behind a TLS proxy.")
    port: int = Field(default=8025, ge=1, le=65535, description="Listen port.")
    admin_tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens allowed everything.")
    viewer_tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens allowed GET requests only.")
    protect_health: bool = Field(default=False, description="Require a token for /healthz and /readyz.")
    protect_metrics: bool = Field(default=False, description="Require a token for /metrics.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024,
                                description="Larger request bodies get 413.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; empty = CORS off.")

    @field_validator("admin_tokens", "viewer_tokens")
    @classmethod
    def _strong_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        for token in tokens:
            secret = token.get_secret_value()
            if secret.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("a token is a placeholder value from the example; generate a real one")
            if len(secret) < 16 or not secret.isascii() or not secret.isprintable() or " " in secret:
                raise ValueError("a token must be at least 16 printable ASCII characters without spaces "
                                 "(e.g. `openssl rand -hex 32`)")
        return tokens

    @model_validator(mode="after")
    def _tokens_needed(self) -> ApiSettings:
        admin = {t.get_secret_value() for t in self.admin_tokens}
        if admin & {t.get_secret_value() for t in self.viewer_tokens}:
            raise ValueError("the same token is listed as admin and viewer token")
        if self.enabled and not (self.admin_tokens or self.viewer_tokens):
            raise ValueError("enabled = true needs admin_tokens or viewer_tokens (or WARNINGSHOT_API__ADMIN_TOKENS)")
        return self


_PLACEHOLDER_TEXTS = Literal["company", "agent_name", "from_name", "refund_terms", "docs_url", "alternatives"]


class WillSettings(_Section):
    """The "Will" pattern: a sender who opens many conversations, each answered in the docs."""

    conversations: int = Field(default=10, ge=1, le=10000, description="More new conversations than this...")
    days: int = Field(default=14, ge=1, le=365, description="...within this many days make a Will candidate.")
    keyword: str = Field(default="WarningShot/Will", pattern=r"^[^\s()\[\]{}%*\"\\]+$",
                         description="Set on mail of a Will candidate.")
    drafts: bool = Field(default=False, description="Draft the Will warning and termination (off: tag and record).")
    docs_dir: Path | None = Field(default=None, description="Markdown/HTML docs pages; the closest one is linked.")
    docs_base_url: str = Field(default="", description="URL of docs_dir; a page's link is this + its relative path.")
    docs_extension: str = Field(default=".html", description="Extension of the published pages (replaces .md).")

    @model_validator(mode="after")
    def _docs_url(self) -> WillSettings:
        if self.docs_dir is not None and not self.docs_base_url:
            raise ValueError("docs_dir needs docs_base_url, to turn a page into a link")
        return self


class PlaybookSettings(_Section):
    """Sender history, escalation and the drafted replies a human approves."""

    enabled: bool = Field(default=True, description="Track senders and draft the playbook's replies.")
    default_language: str = Field(default="en", pattern=r"^[a-z]{2,3}$", description="Replies fall back to it.")
    templates_dir: Path | None = Field(default=None, description="<dir>/<lang>/<name>.txt overrides a shipped one.")
    company: str = Field(default="", description="Your company's name, as the replies write it.")
    agent_name: str = Field(default="", description="Who signs the replies (the agent edits the draft anyway).")
    from_name: str = Field(default="", description="Display name of the From address; default: company.")
    refund_terms: str = Field(default="", description="A sentence or two on the refund, for termination notices.")
    docs_url: str = Field(default="", description="Docs link for the Will warning shot when no docs index is set.")
    alternatives: str = Field(default="", description="Alternatives suggested to a Will on termination (optional).")
    hosted_service: bool = Field(default=False, description="Termination notices give a data-export deadline.")
    data_export_days: int = Field(default=30, ge=1, le=365, description="Days to export data after termination.")
    localized: dict[str, dict[_PLACEHOLDER_TEXTS, str]] = Field(
        default_factory=dict, description="Per-language values of the texts above, e.g. [playbook.localized.fr]."
    )
    normalise_plus: bool = Field(default=True, description="name+tag@x and name@x are one sender.")
    normalise_gmail_dots: bool = Field(default=True, description="f.o.o@gmail.com and foo@gmail.com are one sender.")
    gmail_domains: list[str] = Field(default_factory=lambda: ["gmail.com", "googlemail.com"],
                                     description="Domains where dots in the local part do not count.")
    will: WillSettings = Field(default_factory=WillSettings)


class SmtpSettings(_Section):
    """Where approved replies and counsel forwards are sent."""

    host: str = Field(default="localhost", description="SMTP relay host.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: 465 tls, 587 starttls, 25 plain.")
    security: Literal["tls", "starttls", "plain"] = Field(default="starttls", description="'plain': localhost only.")
    username: str = Field(default="", description="Empty: no AUTH.")
    password: SecretStr = Field(default=SecretStr(""), description="Or WARNINGSHOT_SMTP__PASSWORD.")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Socket timeout of one SMTP session.")
    tls_verify: bool = Field(default=True, description="Check the relay's certificate; off only for tests.")
    tls_ca_file: Path | None = Field(default=None, description="CA bundle for a relay with a private certificate.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Tries per send before it is reported as failed.")
    retry_delay_seconds: float = Field(default=2.0, ge=0, le=300, description="Doubles after each failed try.")

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"tls": 465, "starttls": 587, "plain": 25}[self.security]

    @model_validator(mode="after")
    def _check(self) -> SmtpSettings:
        if self.security == "plain" and self.host not in {"localhost", "127.0.0.1", "::1"}:
            raise ValueError("security = 'plain' is only allowed for localhost")
        secret = self.password.get_secret_value()
        if secret and secret.lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("password is a placeholder value from the example; set the real one")
        if secret and not self.username:
            raise ValueError("a password without a username")
        return self


class CounselSettings(_Section):
    """Where legal threats, and later mail of a sender who made one, are routed."""

    folder: str = Field(default="", description="Copy the message to this folder (created when missing).")
    address: str = Field(default="", description="Forward the message as an attachment to this address over SMTP.")
    keyword: str = Field(default="WarningShot/Counsel", pattern=r"^[^\s()\[\]{}%*\"\\]+$",
                         description="Set on mail routed to counsel.")


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Lowest level logged.")
    format: Literal["text", "json"] = Field(default="text", description="Human-readable lines or JSON lines.")


class Settings(BaseSettings):
    """Everything WarningShot can be told; see config/warningshot.example.toml."""

    model_config = SettingsConfigDict(
        env_prefix="WARNINGSHOT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    tagging: TaggingSettings = Field(default_factory=TaggingSettings)
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    corrections: CorrectionSettings = Field(default_factory=CorrectionSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    playbook: PlaybookSettings = Field(default_factory=PlaybookSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    counsel: CounselSettings = Field(default_factory=CounselSettings)

    @field_validator("mailboxes")
    @classmethod
    def _unique_names(cls, mailboxes: list[MailboxSettings]) -> list[MailboxSettings]:
        names = [m.name for m in mailboxes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique; repeated: {dupes}")
        return mailboxes

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, so a secret never has to be written down.
        return (env_settings, init_settings)


def password_env(mailbox_name: str) -> str:
    return "WARNINGSHOT_MAILBOX_" + re.sub(r"[^A-Z0-9]", "_", mailbox_name.upper()) + "_PASSWORD"


def _inject_mailbox_passwords(data: dict, environ: os._Environ[str]) -> None:
    for mailbox in data.get("mailboxes", []) or []:
        if isinstance(mailbox, dict) and not mailbox.get("password") and isinstance(mailbox.get("name"), str):
            secret = environ.get(password_env(mailbox["name"]))
            if secret:
                mailbox["password"] = secret


# Keys holding file paths, by section; relative paths are relative to the config file.
_PATH_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("model",), "path"),
    (("model",), "base_cache"),
    (("model",), "registry"),
    (("playbook",), "templates_dir"),
    (("playbook", "will"), "docs_dir"),
    (("smtp",), "tls_ca_file"),
)


def _section(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = data
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    store = _section(data, ("store",))
    if store is not None:
        url = store.get("url")
        if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                store["url"] = "sqlite:///" + str((base / rel).resolve())
    for path, key in _PATH_KEYS:
        section = _section(data, path)
        value = section.get(key) if section is not None else None
        if section is not None and isinstance(value, str) and value:
            section[key] = str((base / Path(value).expanduser()).resolve())
    for mailbox in data.get("mailboxes") or []:
        value = mailbox.get("tls_ca_file") if isinstance(mailbox, dict) else None
        if isinstance(value, str) and value:
            mailbox["tls_ca_file"] = str((base / Path(value).expanduser()).resolve())


def _format_error(err: Mapping[str, Any], data: dict[str, Any]) -> str:
    parts = [str(part) for part in err["loc"]]
    if len(parts) > 1 and parts[0] == "mailboxes" and parts[1].isdigit():
        # Admins know their mailboxes by name, not by position in the file.
        mailboxes = data.get("mailboxes") or []
        index = int(parts[1])
        name = mailboxes[index].get("name") if index < len(mailboxes) and isinstance(mailboxes[index], dict) else None
        parts[:2] = [f"mailboxes[{name}]" if isinstance(name, str) else f"mailboxes[{index}]"]
    key = ".".join(parts) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key (typo?)"
    return f"{key}: {message}"


def load_settings(path: Path | str | None = None) -> Settings:
    """Read, validate and return the settings; raise ConfigError listing every problem.

    ``path`` defaults to ``$WARNINGSHOT_CONFIG``; with neither, the built-in
    defaults apply (no mailbox: ``run`` then refuses, ``scan`` works).
    """
    environ = os.environ
    path = path or environ.get(CONFIG_ENV)
    data: dict = {}
    base = Path.cwd()
    if path:
        file = Path(path).expanduser()
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        base = file.resolve().parent
    _inject_mailbox_passwords(data, environ)
    _resolve_relative_paths(data, base)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([_format_error(e, data) for e in exc.errors()]) from None
