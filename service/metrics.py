"""Prometheus metrics of the daemon, in a registry of its own.

A private registry (rather than the global default) keeps tests and several
daemons in one process from counting into each other.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "warningshot_messages_handled", "Messages handled, by final state.", ["mailbox", "state"],
            registry=self.registry,
        )
        self.flagged = Counter(
            "warningshot_messages_flagged", "Messages flagged, per label.", ["label"], registry=self.registry
        )
        self.errors = Counter(
            "warningshot_processing_errors", "Failed processing attempts (retried or quarantined).",
            registry=self.registry,
        )
        self.quarantined = Counter(
            "warningshot_messages_quarantined", "Messages given up on after repeated failures.",
            registry=self.registry,
        )
        self.classify_seconds = Histogram(
            "warningshot_classification_seconds", "Time of one classifier call (a batch).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry,
        )
        self.reconnects = Counter(
            "warningshot_imap_reconnects", "IMAP reconnect attempts.", ["mailbox"], registry=self.registry
        )
        self.connected = Gauge(
            "warningshot_imap_connected", "1 while the folder's connection is up.", ["mailbox", "folder"],
            registry=self.registry,
        )
        self.drafts_pending = Gauge(
            "warningshot_drafts_pending", "Drafts waiting for a human decision.", registry=self.registry
        )
        self.corrections = Counter(
            "warningshot_label_corrections", "Labels corrected by agents in the mail client, per label.",
            ["mailbox", "label", "change"], registry=self.registry,
        )
        self.model_reloads = Counter(
            "warningshot_model_reloads", "Model reloads (SIGHUP or the API), by result.", ["result"],
            registry=self.registry,
        )
