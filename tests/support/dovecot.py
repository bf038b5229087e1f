"""Kept for helpers written against the old location; the class lives in the product now."""

from service.local_dovecot import Dovecot, free_port

__all__ = ["Dovecot", "free_port"]
