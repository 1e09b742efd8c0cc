"""Where WEB-Request and web variables may go (the SSRF guard).

A tenant writes the URL, so it may point at xvbd's own host, the operator's private
network or a cloud's metadata address.  :class:`NetPolicy` allows only ``http``/``https``
URLs without user information, on port 80, 443 or one of ``[WEBREQUEST] PORTS``, and an
address only when it is public or in a network of ``[WEBREQUEST] ALLOW``.  A host spelled
as a number in an old form (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) is read as the
address a resolver would make of it and checked as such.  Names are resolved by
:mod:`xvbd.engine.webfetch`, which checks every address with :meth:`NetPolicy.check` and
connects to the checked address itself, so a name cannot resolve one way for the check
and another for the connection.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from hyperlink import URL, URLParseError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The ports every URL may use; more come from ``[WEBREQUEST] PORTS``.
DEFAULT_PORTS = {"http": 80, "https": 443}

#: A host that may be an IPv4 address in one of inet_aton's old spellings.
_NUMERIC = re.compile(r"[0-9a-fA-FxX.]+")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = ipaddress.ip_address("169.254.169.254")


class WebFailure(Exception):
    """A fetch that did not give an answer: ``cause`` is the word of the CDR's ``RESULT=``
    (REFUSED, BAD_URL, TIMEOUT, TOO_BIG, HTTP_404 …), ``detail`` what a person reads."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """A URL the policy accepts: where to connect, and (for a literal) the address."""

    url: URL
    scheme: str
    host: str
    port: int
    address: Address | None  # the host was an address (in any spelling), not a name


def literal_address(host: str) -> Address | None:
    """The address a host names when it is a number (IPv6 in brackets' inside, dotted
    IPv4, or IPv4 in an old form a resolver also accepts); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise WebFailure("BAD_URL", f"{host!r} is not an IPv6 address")
    if _NUMERIC.fullmatch(host) and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded(ip: Address) -> Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, NAT64, 6to4, Teredo client)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def kind_of(ip: Address) -> str | None:
    """What makes an address one not to fetch from ('loopback', 'private' …); None when it
    is public."""
    inner = _embedded(ip)
    if inner is not None:
        why = kind_of(inner)
        return f"{why} (it carries {inner})" if why else None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip == _METADATA:
        return "link-local: the cloud metadata address"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not public"
    return None


class NetPolicy:
    """The operator's allow-list (``[WEBREQUEST] ALLOW``, ``PORTS``) and the rules."""

    def __init__(self, allow: Iterable[str] = (), ports: Iterable[int] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(n, strict=False) for n in allow)
        self.ports = frozenset(DEFAULT_PORTS.values()) | frozenset(ports)

    def allowed(self, ip: Address) -> bool:
        inner = _embedded(ip)
        return any(ip in net for net in self.allow) or (
            inner is not None and any(inner in net for net in self.allow))

    def check(self, ip: Address, host: str = "") -> None:
        """Raise ``WebFailure("REFUSED")`` unless xvbd may connect to ``ip``."""
        if self.allowed(ip):
            return
        why = kind_of(ip)
        if why is not None:
            named = f" (the address of {host})" if host and host != str(ip) else ""
            raise WebFailure("REFUSED", f"{ip}{named} is {why}; xvbd fetches from public "
                             "addresses only, unless [WEBREQUEST] ALLOW lists the network")

    def target(self, text: str) -> Target:
        """The URL ``text`` if it may be fetched (its address, when it is a literal, checked
        too); ``WebFailure`` (BAD_URL or REFUSED) saying why not."""
        try:
            url = URL.from_text(text.strip())
        except (URLParseError, ValueError) as exc:
            raise WebFailure("BAD_URL", f"not a URL ({exc})") from None
        scheme = url.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise WebFailure("BAD_URL", f"only http:// and https:// URLs are fetched, not "
                             f"{scheme or 'a relative one'}")
        if url.userinfo:
            raise WebFailure("BAD_URL", "a URL with a user name or password (user@host) is "
                             "not fetched")
        host = url.host.lower()
        if not host or "%" in host:
            raise WebFailure("BAD_URL", "the URL has no host name")
        port = url.port or DEFAULT_PORTS[scheme]
        if port not in self.ports:
            raise WebFailure("REFUSED", f"port {port} is not fetched (80 and 443 are, and "
                             "the ports of [WEBREQUEST] PORTS)")
        address = literal_address(host)
        if address is not None:
            self.check(address, host)
        return Target(url, scheme, host, port, address)
