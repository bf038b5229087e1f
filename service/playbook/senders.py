"""Who a sender is: one normalised address per customer, and where they stand.

Customers write from ``Jane.Doe+shop@GMail.com`` today and ``janedoe@gmail.com``
tomorrow; the ladder (warning shot, then termination) must see one person.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

State = Literal["clear", "warned", "terminated", "legal"]
STATES: Final[tuple[str, ...]] = ("clear", "warned", "terminated", "legal")
# What a sender was warned for; "will" is the pattern, the others are labels.
OFFENCES: Final[tuple[str, ...]] = ("abusive", "extortion", "will")

_GMAIL_CANONICAL: Final = "gmail.com"


@dataclass(frozen=True, slots=True)
class SenderState:
    """A sender's place on the ladder, as the decision function reads it."""

    state: State = "clear"
    warned_type: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown sender state {self.state!r}")
        if self.state == "warned" and self.warned_type not in OFFENCES:
            raise ValueError(f"a warned sender needs a warning type, got {self.warned_type!r}")


def normalise_address(
    address: str,
    *,
    plus: bool = True,
    gmail_dots: bool = True,
    gmail_domains: Collection[str] = ("gmail.com", "googlemail.com"),
) -> str:
    """The address that identifies a sender.

    Case is dropped everywhere (no real mail system tells ``Jane`` from
    ``jane``); ``+tag`` is dropped when ``plus``; dots in the local part and the
    googlemail.com alias are dropped for Gmail domains when ``gmail_dots``,
    because Gmail ignores them. Anything without an ``@`` is returned lower-cased.
    """
    value = address.strip().strip("<>").strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return value
    domain = domain.rstrip(".")
    gmail = {d.lower() for d in gmail_domains}
    if plus and "+" in local:
        local = local.split("+", 1)[0] or local
    if gmail_dots and domain in gmail:
        local = local.replace(".", "") or local
        if _GMAIL_CANONICAL in gmail:
            domain = _GMAIL_CANONICAL
    return f"{local}@{domain}"


__all__ = ["OFFENCES", "STATES", "SenderState", "State", "normalise_address"]
