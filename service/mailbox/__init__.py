"""The mailbox behind a small interface, so the pipeline never imports imapclient."""

from service.mailbox.base import FetchedMessage, FolderSession

__all__ = ["FetchedMessage", "FolderSession"]
