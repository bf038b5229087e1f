"""Persistent state: handled messages, checkpoints (SQLAlchemy; SQLite by default)."""

from service.store.db import Store
from service.store.tables import Checkpoint, MessageRecord

__all__ = ["Checkpoint", "MessageRecord", "Store"]
