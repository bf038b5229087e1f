"""Turning raw RFC 5322 bytes into the text the classifier reads."""
