"""The exceptions WarningShot raises.

Every error the program means to report derives from :class:`WarningShotError`,
so the CLI and the daemon catch one root. Errors of the libraries underneath
(imapclient, socket, smtplib, torch, SQLAlchemy) are translated where they are
called, with ``raise ... from exc``, and never leak further up::

    WarningShotError
    ├── ConfigError              the settings file or environment is invalid
    ├── MailboxError             talking to the IMAP server failed
    │   ├── MailboxConnectionError   cannot connect, or the connection dropped (retried with backoff)
    │   └── MailboxAuthError         the server refused the credentials
    ├── MessageError             one message cannot be processed (counted towards quarantine)
    ├── ModelError               the classifier cannot be built or loaded
    │   ├── BaseModelError           the base-model package is missing or its file does not match
    │   └── ModelFilesError          shipped model files are missing, corrupt or mismatched
    ├── StoreError               the database cannot be reached or migrated
    ├── TemplateError            a reply template is missing, broken or lacks a value
    ├── SendError                a draft or a counsel forward could not be sent over SMTP (retried, capped)
    │   └── SendRefusedError         the server refused the login, sender or recipient (not retried)
    └── PlaybookError            a draft or sender operation cannot be done as asked
        ├── UnknownDraftError        no draft has that id
        ├── UnknownSenderError       no sender has that address
        ├── UnknownMailboxError      a draft's mailbox is not in the settings (also a KeyError)
        ├── DraftStateError          the draft's state does not allow it (already sent, rejected, sending)
        └── DraftBlockedError        the litmus test flagged the text: it would not look good published
"""

from __future__ import annotations


class WarningShotError(Exception):
    """Root of every error WarningShot reports."""


class ConfigError(WarningShotError):
    """The configuration is invalid; ``problems`` lists every ``key: reason``."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class MailboxError(WarningShotError):
    """Talking to the IMAP server failed."""


class MailboxConnectionError(MailboxError):
    """The server cannot be reached or the connection dropped; worth retrying."""


class MailboxAuthError(MailboxError):
    """The server refused the login or the OAuth2 token."""


class MessageError(WarningShotError):
    """A single message cannot be processed; after repeated failures it is quarantined."""


class ModelError(WarningShotError):
    """The classifier cannot be built or loaded."""


class BaseModelError(ModelError):
    """The base-model package is missing, or its weight file fails the sha256 check."""


class ModelFilesError(ModelError):
    """Files of the fine-tuned model are missing, corrupt or do not match the base."""


class StoreError(WarningShotError):
    """The database cannot be reached, opened or migrated."""


class TemplateError(WarningShotError):
    """A reply template is missing, does not render, or a placeholder has no value."""


class SendError(WarningShotError):
    """A draft or forward could not be delivered over SMTP; ``attempts`` says how many tries were made."""

    attempts: int = 0


class SendRefusedError(SendError):
    """The SMTP server refused the credentials, the sender or a recipient; retrying will not help."""


class PlaybookError(WarningShotError):
    """A draft or sender operation (approve, reject, reset) cannot be done as asked."""


class UnknownDraftError(PlaybookError):
    """No draft has the given id."""


class UnknownSenderError(PlaybookError):
    """No sender with the given (normalised) address has been seen."""


class UnknownMailboxError(PlaybookError, KeyError):
    """A draft or forward belongs to a mailbox the settings no longer name.

    Also a KeyError, for callers that treat the mailboxes as a mapping.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DraftStateError(PlaybookError):
    """The draft's state does not allow the operation (already sent, rejected, or being sent)."""


class DraftBlockedError(PlaybookError):
    """The classifier flagged the draft's text; ``labels`` are the labels that fired."""

    def __init__(self, message: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.labels = labels
