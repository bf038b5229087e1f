"""WarningShot: flags hostile mail in a support inbox and drafts replies for a human to approve."""

__version__ = "0.1.0"
