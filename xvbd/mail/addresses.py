"""A tenant's mail addresses: several, comma separated, each checked."""

from __future__ import annotations

import re

#: The local part: the dot-atom of RFC 5322 (no quoted strings, no comments).
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

#: At most this many addresses per tenant.
MAX_ADDRESSES = 10


class BadAddress(ValueError):
    """The text says which address is wrong and what is accepted."""


def check_address(address: str, *, allow_local: bool) -> str:
    """``address`` as it is kept (the domain in lower case), or :class:`BadAddress`."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise BadAddress(f"{address!r} is not a mail address; write it like name@example.com")
    if not address.isascii():
        raise BadAddress(f"{address!r} has letters outside ASCII; write the domain in its "
                         "xn-- form and use a plain local part")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise BadAddress(f"{address!r}: the part before @ has characters a mail address "
                         "cannot have (spaces, quotes, commas …)")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadAddress(f"{address!r}: {domain!r} is not a domain name")
    if len(labels) < 2 and not allow_local:
        raise BadAddress(f"{address!r}: this server sends only to addresses with a full "
                         "domain, like name@example.com")
    return f"{local}@{domain.lower()}"


def parse_addresses(raw: str, *, allow_local: bool) -> list[str]:
    """The addresses of ``raw`` (comma, semicolon or space separated), each checked,
    duplicates (in any case) dropped; :class:`BadAddress` names the first wrong one."""
    items = [item for item in re.split(r"[,;\s]+", raw.strip()) if item]
    out: list[str] = []
    for item in items:
        address = check_address(item, allow_local=allow_local)
        if address.lower() not in (known.lower() for known in out):
            out.append(address)
    if len(out) > MAX_ADDRESSES:
        raise BadAddress(f"{len(out)} addresses; at most {MAX_ADDRESSES} are kept")
    return out


def usable_addresses(raw: str, *, allow_local: bool) -> list[str]:
    """The good addresses of ``raw``, the bad ones left out (for mail to what was saved
    before the rules changed)."""
    out: list[str] = []
    for item in re.split(r"[,;\s]+", raw.strip()):
        try:
            address = check_address(item, allow_local=allow_local) if item else ""
        except BadAddress:
            continue
        if address and address.lower() not in (known.lower() for known in out):
            out.append(address)
    return out[:MAX_ADDRESSES]
