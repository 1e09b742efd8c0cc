"""Fetching a URL during a call (WEB-Request, web variables), on the reactor, guarded.

:meth:`WebFetcher.fetch` sends one request with treq and follows at most ``[WEBREQUEST]
REDIRECTS`` redirects itself.  Every hop is checked by :class:`~xvbd.engine.netguard.
NetPolicy`: the URL first, then each address the host's name resolves to (resolved here,
in the reactor's thread pool); the connection goes to a checked address (an Agent with an
endpoint factory bound to the hop), so DNS cannot answer differently between the check and
the connection.  The whole fetch has the group's time cap (on the engine's clock), and the
body is counted as it arrives and cut off past the group's size cap.  Answers are asked
for and accepted without Content-Encoding (a small compressed answer cannot grow past the
cap).  Each failure is a :class:`~xvbd.engine.netguard.WebFailure` with its CDR word.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import subprocess
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IResponse
from zope.interface import implementer

from xvbd.engine.netguard import Address, NetPolicy, Target, WebFailure
from xvbd.logs import logger
from xvbd.mediadirs import MediaDirs

log = logger("xvbd.webfetch")

#: The body cap when the group sets none ("Maximum TTS download size" 0).
HARD_MAX_BYTES = 16 * 1024 * 1024
#: The time cap when the group sets none.
DEFAULT_SECONDS = 10
#: Web variables and calendar feeds cached at most (the oldest goes first).
CACHE_ENTRIES = 4096
#: Causes warned once each per extension; the memory of them is forgotten past this.
WARNED_MAX = 10000
REDIRECT_CODES = {301, 302, 303, 307, 308}

Resolver = Callable[[str, int], Awaitable[list[Address]]]


@dataclass(frozen=True)
class Answer:
    """What a URL gave: its final URL, status, content type (lower case, no parameters),
    charset and body."""

    url: str
    status: int
    content_type: str
    charset: str
    body: bytes

    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class _CappedBody(Protocol):
    """Collects a response body up to ``cap`` bytes; past it, stops the connection."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred(self._cancel)

    def _cancel(self, _: Any) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.cap:
            self.done.errback(WebFailure("TOO_BIG", f"the answer is longer than the "
                                         f"group's {self.cap} bytes"))
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self.done.called:
            return
        from twisted.web.client import PotentialDataLoss, ResponseDone
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(WebFailure("BROKEN", "the server broke off its answer "
                                         f"({reason.getErrorMessage()})"))


class _Discard(Protocol):
    """A body not wanted (an error status, a redirect): the connection is dropped."""

    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        pass


def discard(response: IResponse) -> None:
    response.deliverBody(_Discard())


@implementer(IAgentEndpointFactory)
class _CheckedEndpoints:
    """The endpoint factory of one hop: whatever URI the Agent asks for, it connects to
    the hop's target, by an address checked against the policy."""

    def __init__(self, fetcher: WebFetcher, target: Target, seconds: float) -> None:
        self.fetcher, self.target, self.seconds = fetcher, target, seconds

    def endpointForURI(self, uri: Any) -> Any:
        return self

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory: Any) -> Any:
        target, reactor = self.target, self.fetcher.reactor
        addresses = ([target.address] if target.address is not None
                     else await self.fetcher.resolve(target.host, target.port))
        if not addresses:
            raise WebFailure("UNREACHABLE", f"{target.host} has no address")
        for address in addresses:  # every one, so a mixed answer is refused whole
            self.fetcher.policy.check(address, target.host)
        last: Exception | None = None
        for address in addresses:
            kind = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
            endpoint: Any = kind(reactor, str(address), target.port, timeout=self.seconds)
            if target.scheme == "https":
                endpoint = wrapClientTLS(optionsForClientTLS(target.host), endpoint)
            try:
                return await endpoint.connect(factory)
            except ConnectError as exc:
                last = exc
        raise WebFailure("UNREACHABLE", f"cannot connect to {target.host} port "
                         f"{target.port} ({last})")


@implementer(IAgent)
class _IdentityAgent:
    """Asks for answers without Content-Encoding, and refuses one that has it."""

    def __init__(self, agent: IAgent) -> None:
        self.agent = agent

    async def _request(self, method: bytes, uri: bytes, headers: Headers | None,
                       body: Any) -> IResponse:
        headers = headers.copy() if headers is not None else Headers()
        headers.setRawHeaders(b"accept-encoding", [b"identity"])
        response = await self.agent.request(method, uri, headers, body)
        encodings = response.headers.getRawHeaders(b"content-encoding") or []
        if any(e.strip().lower() not in (b"", b"identity") for e in encodings):
            discard(response)
            raise WebFailure("BAD_ANSWER", "the answer is compressed although xvbd asked "
                             "for it plain")
        return response

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: Any = None) -> defer.Deferred[IResponse]:
        return defer.Deferred.fromCoroutine(self._request(method, uri, headers,
                                                          bodyProducer))


def _content_type(response: IResponse) -> tuple[str, str]:
    raw = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
    text = raw.decode("latin-1")
    kind, _, params = text.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    return kind.strip().lower(), charset


class WebFetcher:
    """The engine's HTTP client: the policy, the caps, the web variables' cache and the
    warnings said once per extension and cause."""

    def __init__(self, policy: NetPolicy, reactor: Any, clock: Any, media: MediaDirs, *,
                 redirects: int = 3, threadpool: Any = None,
                 resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.reactor = reactor
        self.clock = clock
        self.media = media
        self.redirects = redirects
        self.threadpool = threadpool or reactor.getThreadPool()
        self.resolve: Resolver = resolver or self._getaddrinfo
        self.in_flight = 0
        self.cache: OrderedDict[tuple[Any, ...], tuple[Any, float]] = OrderedDict()
        self._warned: set[tuple[int, str]] = set()
        self._converted: set[str] = set()

    # ------------------------------------------------------------------ fetching

    async def _getaddrinfo(self, host: str, port: int) -> list[Address]:
        try:
            infos = await deferToThreadPool(self.reactor, self.threadpool, socket.getaddrinfo,
                                            host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise WebFailure("UNREACHABLE", f"{host} does not resolve ({exc})") from None
        seen: list[Address] = []
        for *_, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if address not in seen:
                seen.append(address)
        return seen

    async def fetch(self, url: str, *, method: str = "GET", body: bytes | None = None,
                    content_type: str = "", max_bytes: int = 0,
                    seconds: float = 0) -> Answer:
        """The answer of ``url`` (a 2xx status), or :class:`WebFailure`."""
        seconds = seconds if seconds > 0 else DEFAULT_SECONDS
        cap = max_bytes if max_bytes > 0 else HARD_MAX_BYTES
        work = defer.Deferred.fromCoroutine(self._fetch(url, method, body, content_type, cap,
                                                        seconds))

        def timed_out(result: Any, timeout: float) -> Failure:
            if isinstance(result, Failure):  # what the cancel left, whatever it was
                result.trap(Exception)
            return Failure(WebFailure("TIMEOUT", f"no whole answer within {timeout:g} s"))

        work.addTimeout(seconds, self.clock, onTimeoutCancel=timed_out)
        self.in_flight += 1
        try:
            return await work
        except (DNSLookupError, ConnectError, ResponseNeverReceived) as exc:
            raise WebFailure("UNREACHABLE", f"no answer ({exc})") from None
        finally:
            self.in_flight -= 1

    async def _fetch(self, url: str, method: str, body: bytes | None, content_type: str,
                     cap: int, seconds: float) -> Answer:
        target = self.policy.target(url)
        for hop in range(self.redirects + 1):
            response = await self._send(target, method, body, content_type, seconds)
            if response.code in REDIRECT_CODES:
                discard(response)
                location = (response.headers.getRawHeaders(b"location") or [b""])[0]
                if not location:
                    raise WebFailure("BAD_ANSWER", f"a redirect ({response.code}) without "
                                     "a Location")
                if hop == self.redirects:
                    raise WebFailure("REDIRECTS", f"more than {self.redirects} redirects")
                try:
                    following = target.url.click(location.decode("latin-1")).to_text()
                except (ValueError, UnicodeDecodeError) as exc:
                    raise WebFailure("BAD_ANSWER", f"a redirect to a bad Location "
                                     f"({exc})") from None
                target = self.policy.target(following)
                if response.code == 303 or (response.code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if not 200 <= response.code < 300:
                discard(response)
                raise WebFailure(f"HTTP_{response.code}", f"the server answered "
                                 f"{response.code} {response.phrase.decode('latin-1')}")
            if isinstance(response.length, int) and response.length > cap:
                discard(response)
                raise WebFailure("TOO_BIG", f"the answer is {response.length} bytes, longer "
                                 f"than the group's {cap}")
            reader = _CappedBody(cap)
            response.deliverBody(reader)
            data = await reader.done
            kind, charset = _content_type(response)
            return Answer(target.url.to_text(), response.code, kind, charset, data)
        raise AssertionError("unreachable")

    async def _send(self, target: Target, method: str, body: bytes | None,
                    content_type: str, seconds: float) -> IResponse:
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        agent = _IdentityAgent(Agent.usingEndpointFactory(
            self.reactor, _CheckedEndpoints(self, target, seconds), pool))
        headers = Headers({b"user-agent": [b"xvbd"]})
        if body is not None and content_type:
            headers.setRawHeaders(b"content-type", [content_type.encode("latin-1", "replace")])
        client = HTTPClient(agent)  # a cookie jar of its own: nothing kept between calls
        response: IResponse = await client.request(
            method, target.url.to_uri().to_text(), headers=headers, data=body,
            allow_redirects=False, unbuffered=True)
        return response

    # ------------------------------------------------------------------ helpers

    def warn_once(self, ext: Any, type_name: str, failure: WebFailure, what_next: str) -> None:
        """One WARN per extension and cause, however many calls meet it."""
        key = (ext.id, failure.cause)
        if key in self._warned:
            return
        if len(self._warned) >= WARNED_MAX:
            self._warned.clear()
        self._warned.add(key)
        log.warn("{type} extension {path} of user {user}: {detail} (RESULT={cause}); "
                 "{what_next}. Said once for this extension and cause.", type=type_name,
                 path=ext.cdr_number, user=ext.user_id, detail=failure.detail,
                 cause=failure.cause, what_next=what_next)

    def cached(self, key: tuple[Any, ...]) -> Any:
        """What :meth:`keep` kept under ``key`` and is not past its time, or None."""
        found = self.cache.get(key)
        if found is None:
            return None
        value, expires = found
        if self.clock.seconds() >= expires:
            del self.cache[key]
            return None
        return value

    def keep(self, key: tuple[Any, ...], value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        self.cache[key] = (value, self.clock.seconds() + ttl)
        self.cache.move_to_end(key)
        while len(self.cache) > CACHE_ENTRIES:
            self.cache.popitem(last=False)

    async def sound_of(self, data: bytes, max_seconds: int) -> str:
        """An audio answer as a sound xvbd plays (``file:`` reference), converted by ffmpeg
        to 8 kHz mono WAV in the thread pool; ``WebFailure("BAD_AUDIO")`` if it is not."""
        key = hashlib.sha1(data + str(max_seconds).encode()).hexdigest()
        target = self.media.media_dir / "web" / key
        if key not in self._converted:
            ok = await deferToThreadPool(self.reactor, self.threadpool, self._convert, data,
                                         target, max_seconds)
            if not ok:
                raise WebFailure("BAD_AUDIO", "the answer is not audio ffmpeg can read")
            self._converted.add(key)
        return f"file:{target}"

    def _convert(self, data: bytes, target: Path, max_seconds: int) -> bool:
        wav = target.with_suffix(".wav")
        if wav.exists():
            return True
        self.media.make(target.parent)
        self.media.make(self.media.tmp_dir)
        upload = self.media.tmp_dir / f"web-{target.name}.in"
        made = target.with_suffix(".part.wav")
        limit = ["-t", str(max_seconds)] if max_seconds > 0 else []
        try:
            upload.write_bytes(data)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(upload),
                            "-vn", *limit, "-ar", "8000", "-ac", "1", "-sample_fmt", "s16",
                            "-f", "wav", str(made)], check=True, capture_output=True,
                           timeout=60)
            made.replace(wav)
        except (OSError, subprocess.SubprocessError):
            made.unlink(missing_ok=True)
            return False
        finally:
            upload.unlink(missing_ok=True)
        self.media.share_file(wav)
        return True


def web_fetcher(settings: Any, reactor: Any, media: MediaDirs, clock: Any = None) -> WebFetcher:
    """The fetcher ``[WEBREQUEST]`` describes (``clock``: the reactor unless given)."""
    web = settings.webrequest
    return WebFetcher(NetPolicy(web.allow, web.ports), reactor, clock or reactor, media,
                      redirects=web.redirects)
