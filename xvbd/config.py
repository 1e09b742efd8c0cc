"""Settings of xvbd: ``xvb.conf`` (INI) read into frozen dataclasses, one per section.

Every problem in a file is collected and reported together; each message names the file
(and line), the section, the key, the bad value and what is accepted.  Keys are matched
without regard to case (the original product wrote ``Ast_Sound_Format``), values may be
wrapped in quotes as in the original ``xvb.cfg``.  Relative paths are resolved against the
working directory of the process.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one sentence per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class BadValue(ValueError):
    """Raised by a value parser; the text continues the sentence ``[SECTION] KEY …``."""


# --------------------------------------------------------------------------- parsers


def _sentence(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def text(raw: str) -> str:
    return raw


def nonempty(raw: str) -> str:
    if not raw:
        raise BadValue("must not be empty")
    return raw


def integer(minimum: int | None = None, maximum: int | None = None, *, above: int | None = None
            ) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise BadValue(f"must be a whole number, got {raw!r}") from None
        if above is not None and value <= above:
            raise BadValue(f"must be > {above}, got {raw}")
        if minimum is not None and value < minimum:
            raise BadValue(f"must be >= {minimum}, got {raw}")
        if maximum is not None and value > maximum:
            raise BadValue(f"must be <= {maximum}, got {raw}")
        return value
    return parse


def number(*, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise BadValue(f"must be a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise BadValue(f"must be a finite number, got {raw!r}")
        if above is not None and not value > above:
            raise BadValue(f"must be > {above:g}, got {raw}")
        if at_least is not None and value < at_least:
            raise BadValue(f"must be >= {at_least:g}, got {raw}")
        if at_most is not None and value > at_most:
            raise BadValue(f"must be <= {at_most:g}, got {raw}")
        return value
    return parse


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def flag(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise BadValue(f": {raw!r} is not a flag; use 1 or 0 (yes/no also work)")


def choice(*accepted: str, what: str = "value") -> Callable[[str], str]:
    canon = {a.upper(): a for a in accepted}

    def parse(raw: str) -> str:
        try:
            return canon[raw.upper()]
        except KeyError:
            raise BadValue(f": unknown {what} {raw!r}; use {_sentence(accepted)}") from None
    return parse


def int_choice(*accepted: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value not in accepted:
            raise BadValue(f"must be {_sentence([str(a) for a in accepted])}, got {raw!r}")
        return value
    return parse


def split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def word_set(*accepted: str, what: str, exclusive: str | None = None
             ) -> Callable[[str], frozenset[str]]:
    """A comma separated set of names out of ``accepted``; ``exclusive`` stands alone."""
    one = choice(*accepted, what=what)

    def parse(raw: str) -> frozenset[str]:
        values = frozenset(one(item) for item in split_list(raw))
        if exclusive and exclusive in values and len(values) > 1:
            raise BadValue(f": {exclusive} cannot be combined with other values, got {raw!r}")
        return values
    return parse


def name_list(raw: str) -> tuple[str, ...]:
    return tuple(split_list(raw))


def ip_list(*, disabled: str | None = None,
            accepted: str = "") -> Callable[[str], tuple[str, ...]]:
    """IP addresses or networks (``10.1.0.0/16``); ``disabled`` alone means an empty list.
    ``accepted`` ends the error's sentence (what the key takes)."""
    def parse(raw: str) -> tuple[str, ...]:
        items = split_list(raw)
        if disabled is not None and items == [disabled]:
            return ()
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise BadValue(f": {item!r} is not an IP address or network"
                               f"{'; ' + accepted if accepted else ''}") from None
        return tuple(items)
    return parse


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}")


def domain_list(raw: str) -> tuple[str, ...]:
    items = [item.lower() for item in split_list(raw)]
    if items == ["0.0.0.0"]:
        return ()
    for item in items:
        if not _DOMAIN.fullmatch(item):
            raise BadValue(f": {item!r} is not a domain name (example: comp.ru); "
                           "0.0.0.0 alone turns SIP domain routing off")
    return tuple(items)


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _host_port(item: str, default_port: int | None) -> HostPort:
    host, sep, port = item.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port_number = item, default_port
    else:
        try:
            port_number = int(port)
        except ValueError:
            port_number = -1
    host = host.strip("[]")
    if port_number is None:
        raise BadValue(f": {item!r} needs a port, as in 127.0.0.1:50000")
    if not 0 < port_number < 65536:
        raise BadValue(f": {item!r} has no valid port (1-65535), as in 127.0.0.1:50000")
    if not host:
        raise BadValue(f": {item!r} has no host, as in 127.0.0.1:{port_number}")
    return HostPort(host, port_number)


def host_port(default_port: int | None = None, *, optional: bool = False
              ) -> Callable[[str], HostPort | None]:
    def parse(raw: str) -> HostPort | None:
        if not raw:
            if optional:
                return None
            raise BadValue("must not be empty; use host:port")
        return _host_port(raw, default_port)
    return parse


def host_port_list(default_port: int | None = None) -> Callable[[str], tuple[HostPort, ...]]:
    def parse(raw: str) -> tuple[HostPort, ...]:
        return tuple(_host_port(item, default_port) for item in split_list(raw))
    return parse


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int = 0
    prefix: str = "xvbd:"  # of every key xvbd writes (several installations, one Redis)

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}?prefix={self.prefix}"


def redis_list(raw: str) -> tuple[RedisAddress, ...]:
    """``host:port``, ``host:port/db`` or ``redis://host:port/db?prefix=xvbd:``; empty
    means in-process."""
    out = []
    for item in split_list(raw):
        body = item[len("redis://"):] if item.startswith("redis://") else item
        body, _, query = body.partition("?")
        address, _, db = body.partition("/")
        try:
            db_number = int(db) if db else 0
        except ValueError:
            raise BadValue(f": {item!r} has a database number that is not a number") from None
        prefix = parse_qs(query).get("prefix", ["xvbd:"])[0]
        hp = _host_port(address, 6379)
        out.append(RedisAddress(hp.host, hp.port, db_number, prefix))
    return tuple(out)


def trusted_list(raw: str) -> tuple[re.Pattern[str], ...]:
    """The seed's syntax: comma separated regexes matched against the whole client address
    (``127\\.0\\.0\\.1, 10\\.1\\.11\\..*``); ``*`` alone trusts every address."""
    items = split_list(raw)
    if items == ["*"]:
        return (re.compile(r".*"),)
    out = []
    for item in items:
        try:
            out.append(re.compile(item))
        except re.error as exc:
            raise BadValue(f": {item!r} is not a valid regular expression ({exc}); "
                           r"write addresses as 127\.0\.0\.1 or 10\.1\..*, or * for all") from None
    return tuple(out)


def path(raw: str) -> Path:
    if not raw:
        raise BadValue("must be a file or directory path")
    return Path(raw).expanduser().resolve()


def system_group(raw: str) -> str:
    """A group of this machine (name or number), or '' for none."""
    if not raw:
        return ""
    from xvbd.mediadirs import group_id

    try:
        group_id(raw)
    except KeyError:
        raise BadValue(f"is not a group of this machine; create it (groupadd {raw}) and add "
                       "the users of xvbd and Asterisk to it, or leave it empty") from None
    return raw


def optional_path(raw: str) -> Path | None:
    return path(raw) if raw else None


def mail_from(raw: str) -> str:
    """A sender: ``name@host`` or ``"Name" <name@host>``."""
    from email.utils import parseaddr

    if not raw:
        raise BadValue("must not be empty; use name@example.com or "
                       '"Virtual PBX" <no-reply@example.com>')
    _, address = parseaddr(raw)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise BadValue(f": {raw!r} is not a mail address; use name@example.com or "
                       '"Virtual PBX" <no-reply@example.com>')
    return raw


def optional_file(raw: str) -> Path | None:
    """A file that exists, or '' for none."""
    if not raw:
        return None
    file = path(raw)
    if not file.is_file():
        raise BadValue(f": no such file {str(file)!r}; give a PEM file that exists, or leave "
                       "it empty")
    return file


def url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadValue(f"must be an http(s) address with a host, as in "
                       f"https://xvb.example.com, got {raw!r}")
    return raw.rstrip("/")


_ENDPOINT_KINDS = ("tcp", "tcp6", "ssl", "unix")


def endpoint(raw: str) -> str:
    """A Twisted server endpoint string; a bare number means ``tcp:NUMBER``."""
    if raw.isdigit():
        raw = f"tcp:{raw}"
    kind, _, rest = raw.partition(":")
    if kind not in _ENDPOINT_KINDS or not rest:
        raise BadValue(f": {raw!r} is not a listening address; use a port number or an endpoint "
                       "such as tcp:4573:interface=127.0.0.1 or "
                       "ssl:8443:privateKey=key.pem:certKey=cert.pem")
    if kind in ("tcp", "tcp6", "ssl"):
        port = rest.split(":", 1)[0]
        if port.startswith("port="):
            port = port[5:]
        if not port.isdigit() or int(port) > 65535:
            raise BadValue(f": {raw!r} has no valid port number (0-65535)")
    if kind == "ssl":
        options = dict(opt.split("=", 1) for opt in rest.split(":")[1:] if "=" in opt)
        key_file = options.get("privateKey")
        if not key_file:
            raise BadValue(f": {raw!r} needs privateKey=FILE (and certKey=FILE) for TLS")
        for name in ("privateKey", "certKey"):
            if name in options and not Path(options[name]).is_file():
                raise BadValue(f": {name} file {options[name]!r} does not exist")
    return raw


_APP = re.compile(r"[A-Za-z][A-Za-z0-9_]*(,[A-Za-z0-9_=|]*)?")


def asterisk_app(raw: str) -> str:
    if not _APP.fullmatch(raw):
        raise BadValue(f"must be an Asterisk application name with optional options "
                       f"(ReceiveFax or ReceiveFax,f), got {raw!r}")
    return raw


_SERVER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def server_id(raw: str) -> str:
    if not _SERVER_ID.fullmatch(raw):
        raise BadValue(f"must be 1-64 letters, digits, '.', '_' or '-' "
                       f"(the node's Id in the Nodes list), got {raw!r}")
    return raw


def asterisk_version(raw: str) -> str:
    """Asterisk's major version: 13-23, or the old 1.6 / 1.8 the original supported."""
    if raw in ("1.6", "1.8"):
        return raw
    if raw.isdigit() and 13 <= int(raw) <= 23:
        return raw
    raise BadValue(f"must be an Asterisk major version from 13 to 23 (or 1.6, 1.8), got {raw!r}")


@dataclass(frozen=True)
class DatabaseURL:
    """Where the one schema lives: an SQLite file or a MariaDB/MySQL database."""

    backend: str  # "sqlite" | "mysql"
    path: Path | None = None
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = ""
    name: str = ""
    charset: str = "utf8mb4"

    def __str__(self) -> str:
        """The URL with the password hidden, fit for logs."""
        if self.backend == "sqlite":
            return f"sqlite:{self.path}"
        who = f"{self.user}:***@" if self.password else f"{self.user}@"
        return f"mysql://{who}{self.host}:{self.port}/{self.name}"


def database_url(raw: str) -> DatabaseURL:
    if raw.startswith("sqlite:"):
        file = raw[len("sqlite:"):]
        if file.startswith("//"):
            file = file[2:]
        if not file or file == ":memory:":
            raise BadValue(f"needs a file, as in sqlite:var/xvbd.sqlite3, got {raw!r}")
        return DatabaseURL("sqlite", path=Path(file).expanduser().resolve())
    parts = urlsplit(raw)
    if parts.scheme in ("mysql", "mariadb"):
        name = parts.path.lstrip("/")
        if not parts.hostname or not name:
            raise BadValue(f"needs a host and a database name, as in "
                           f"mysql://xvb:secret@127.0.0.1:3306/xvb, got {raw!r}")
        try:
            port = parts.port or 3306
        except ValueError:
            raise BadValue(f"has a bad port in {raw!r}") from None
        query = parse_qs(parts.query)
        return DatabaseURL(
            "mysql", host=parts.hostname, port=port, user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""), name=name,
            charset=query.get("charset", ["utf8mb4"])[0])
    raise BadValue(f": unknown database {raw!r}; use sqlite:FILE or "
                   "mysql://USER:PASSWORD@HOST:PORT/NAME")


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    parse: Callable[[str], Any]

    @property
    def attr(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class CommonSettings:
    pstn_gw: tuple[str, ...]
    sip_domains: tuple[str, ...]
    journal_store: int
    cdr_store: int
    mem_cached: tuple[RedisAddress, ...]
    mem_cached_shared: tuple[RedisAddress, ...]
    server_id: str
    use_billing: int


@dataclass(frozen=True)
class AsteriskSettings:
    rxfax_app: str
    txfax_app: str
    version: str
    ami_host: str
    ami_port: int
    ami_username: str
    ami_secret: str
    ami_auth: str


@dataclass(frozen=True)
class FileSettings:
    ast_sound_format: str


@dataclass(frozen=True)
class CDRSettings:
    send_to: frozenset[str]
    file: Path
    udp_server: tuple[HostPort, ...]


@dataclass(frozen=True)
class CGISettings:
    server: str
    trusted_4_ui_df: tuple[re.Pattern[str], ...]
    trusted_4_ai_df: tuple[re.Pattern[str], ...]

    @staticmethod
    def trusts(patterns: tuple[re.Pattern[str], ...], address: str) -> bool:
        """Whether ``address`` matches a pattern, as given or, an IPv4 address seen on an
        IPv6 socket (``::ffff:10.0.0.1``), as plain IPv4."""
        plain = address.removeprefix("::ffff:")
        return any(p.fullmatch(address) or p.fullmatch(plain) for p in patterns)


@dataclass(frozen=True)
class EmailSettings:
    server: HostPort
    from_: str
    subject: str
    forks: int
    user: str = ""
    password: str = ""
    starttls: str = "no"  # no | try | yes
    ca_file: Path | None = None
    allow_local: bool = True
    max_tries: int = 10
    retry_min: int = 60
    retry_max: int = 3600
    timeout: int = 60
    poll: int = 30


@dataclass(frozen=True)
class DebugSettings:
    level: int
    full: tuple[str, ...]
    send_to: frozenset[str]
    file: Path
    host: str


@dataclass(frozen=True)
class CallblastSettings:
    check_amd: bool
    max_calls: int
    load_threshold: float
    sleep: float


@dataclass(frozen=True)
class SIPSettings:
    registrar_ip: tuple[str, ...]
    registrar_name: str
    registrar_type: str
    uac_type: str
    uac_gw_in: tuple[str, ...]
    uac_gw_out: tuple[str, ...]


@dataclass(frozen=True)
class RadiusSettings:
    acct_host: HostPort | None
    auth_host: HostPort | None
    acct_secret: str
    acct_send_events: bool
    acct_timeout: float
    acct_retries: int


@dataclass(frozen=True)
class GearmanSettings:
    host: str
    func: frozenset[str]
    threads: int


@dataclass(frozen=True)
class DBSettings:
    url: DatabaseURL
    pool_max: int
    connect_timeout: int
    reports_url: DatabaseURL | None
    reports_timeout: int
    reports_max_rows: int = 100_000
    reports_max_mb: int = 20
    reports_max_cell_kb: int = 64


@dataclass(frozen=True)
class AGISettings:
    listen: str
    shutdown_grace: float
    env_timeout: float


@dataclass(frozen=True)
class WebSettings:
    listen: str
    session_timeout: int
    trusted_proxies: tuple[str, ...] = ()
    metrics_from: tuple[str, ...] = ("127.0.0.0/8", "::1")
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    idle_timeout: float = 75.0
    max_connections: int = 1024
    max_connections_per_address: int = 64
    fd_share: float = 0.25


@dataclass(frozen=True)
class PathSettings:
    sound_dir: Path
    media_dir: Path
    tmp_dir: Path
    media_group: str


@dataclass(frozen=True)
class AttemptsSettings:
    ivr_input: int
    password: int
    access_code: int
    source_failures: int
    pin_failures: int
    guard_failures: int
    failure_window: int
    lockout: int
    lockout_max: int


@dataclass(frozen=True)
class TimeoutSettings:
    digit: int
    dialout: int
    counter_lease: int
    node_stats: int
    heartbeat: int


@dataclass(frozen=True)
class WebRequestSettings:
    """What WEB-Request and web variables may reach (``xvbd/engine/netguard.py``)."""

    allow: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    redirects: int = 3


def port_list(raw: str) -> tuple[int, ...]:
    ports = []
    for item in split_list(raw):
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise BadValue(f": {item!r} is not a port (1 to 65535); list ports like 8080, 8443")
        ports.append(int(item))
    return tuple(ports)


#: The jobs ``[GEARMAN] FUNC`` may move onto the worker thread pool.
WORKER_JOBS = ("radius_acct", "notify_email", "notify_http", "gearman_cdr", "gearman_db_do",
               "convert_audio", "tts")


@dataclass(frozen=True)
class Section:
    name: str
    cls: type
    keys: tuple[Key, ...]


SECTIONS: tuple[Section, ...] = (
    Section("COMMON", CommonSettings, (
        Key("PSTN_GW", "127.0.0.1", ip_list(disabled="0.0.0.0")),
        Key("SIP_DOMAINS", "0.0.0.0", domain_list),
        Key("JOURNAL_STORE", "180", integer(0)),
        Key("CDR_STORE", "1420", integer(0)),
        Key("MEM_CACHED", "", redis_list),
        Key("MEM_CACHED_SHARED", "", redis_list),
        Key("SERVER_ID", "DEFAULT_NODE", server_id),
        Key("USE_BILLING", "1", int_choice(1, 0, -1)),
    )),
    Section("ASTERISK", AsteriskSettings, (
        Key("RxFax_APP", "ReceiveFax", asterisk_app),
        Key("TxFax_APP", "SendFax", asterisk_app),
        Key("VERSION", "22", asterisk_version),
        Key("AMI_HOST", "", text),
        Key("AMI_PORT", "5038", integer(1, 65535)),
        Key("AMI_USERNAME", "xvb", text),
        Key("AMI_SECRET", "", text),
        Key("AMI_AUTH", "md5", choice("md5", "plain", what="login method")),
    )),
    Section("FILE", FileSettings, (
        Key("Ast_Sound_Format", "wav", choice("wav", "ul", "al", "g722", "gsm", "wav16", "sln",
                                             "sln16", what="sound format")),
    )),
    Section("CDR", CDRSettings, (
        Key("SEND_TO", "FILE,DB", word_set("FILE", "UDP", "DB", "NONE", what="sink",
                                           exclusive="NONE")),
        Key("FILE", "var/log/xvbd.cdr", path),
        Key("UDP_SERVER", "127.0.0.1:50000", host_port_list()),
    )),
    Section("CGI", CGISettings, (
        Key("SERVER", "http://127.0.0.1:8080", url),
        Key("TRUSTED_4_UI_DF", r"127\.0\.0\.1", trusted_list),
        Key("TRUSTED_4_AI_DF", r"127\.0\.0\.1", trusted_list),
    )),
    Section("EMAIL", EmailSettings, (
        Key("SERVER", "127.0.0.1:25", host_port(25)),
        Key("FROM", '"Virtual PBX" <no-reply@localhost>', mail_from),
        Key("SUBJ", "New message in mailbox", text),
        Key("FORKS", "4", integer(1, 64)),
        Key("USER", "", text),
        Key("PASSWORD", "", text),
        Key("STARTTLS", "no", choice("no", "try", "yes", what="STARTTLS setting")),
        Key("CA_FILE", "", optional_file),
        Key("ALLOW_LOCAL", "yes", flag),
        Key("MAX_TRIES", "10", integer(1, 100)),
        Key("RETRY_MIN", "60", integer(1, 86400)),
        Key("RETRY_MAX", "3600", integer(1, 7 * 86400)),
        Key("TIMEOUT", "60", integer(5, 3600)),
        Key("POLL", "30", integer(1, 3600)),
    )),
    Section("DEBUG", DebugSettings, (
        Key("LEVEL", "7", integer(0, 255)),
        Key("FULL", "", name_list),
        Key("SEND_TO", "FILE", word_set("FILE", "SYSLOG", what="log target")),
        Key("FILE", "var/log/xvbd.log", path),
        Key("HOST", "", text),
    )),
    Section("CALLBLAST", CallblastSettings, (
        Key("CHECK_AMD", "0", flag),
        Key("MAX_CALLS", "150", integer(above=0)),
        Key("LOAD_THRESHOLD", "0.9", number(above=0, at_most=1)),
        Key("SLEEP", "1", number(above=0)),
    )),
    Section("SIP", SIPSettings, (
        Key("REGISTRAR_IP", "", ip_list()),
        Key("REGISTRAR_NAME", "", text),
        Key("REGISTRAR_TYPE", "ASTERISK", choice("ASTERISK", "SER", what="registrar type")),
        Key("UAC_TYPE", "ASTERISK", choice("ASTERISK", "SER", what="registration method")),
        Key("UAC_GW_IN", "", ip_list()),
        Key("UAC_GW_OUT", "", ip_list()),
    )),
    Section("RADIUS", RadiusSettings, (
        Key("ACCT_HOST", "", host_port(1813, optional=True)),
        Key("AUTH_HOST", "", host_port(1812, optional=True)),
        Key("ACCT_SECRET", "", text),
        Key("ACCT_SEND_EVENTS", "0", flag),
        Key("ACCT_TIMEOUT", "3", number(above=0, at_most=60)),
        Key("ACCT_RETRIES", "3", integer(1, 10)),
    )),
    Section("GEARMAN", GearmanSettings, (
        Key("HOST", "", text),
        Key("FUNC", "notify_email,notify_http,convert_audio,tts",
            word_set(*WORKER_JOBS, what="job")),
        Key("THREADS", "4", integer(1, 64)),
    )),
    Section("DB", DBSettings, (
        Key("URL", "sqlite:var/xvbd.sqlite3", database_url),
        Key("POOL_MAX", "8", integer(1, 100)),
        Key("CONNECT_TIMEOUT", "5", integer(1, 120)),
        Key("REPORTS_URL", "", lambda raw: database_url(raw) if raw else None),
        Key("REPORTS_TIMEOUT", "30", integer(1, 3600)),
        Key("REPORTS_MAX_ROWS", "100000", integer(10, 10_000_000)),
        Key("REPORTS_MAX_MB", "20", integer(1, 1024)),
        Key("REPORTS_MAX_CELL_KB", "64", integer(1, 16384)),
    )),
    Section("AGI", AGISettings, (
        Key("LISTEN", "tcp:4573:interface=127.0.0.1", endpoint),
        Key("SHUTDOWN_GRACE", "20", number(at_least=0, at_most=3600)),
        Key("ENV_TIMEOUT", "10", number(above=0, at_most=600)),
    )),
    Section("WEB", WebSettings, (
        Key("LISTEN", "tcp:8080:interface=127.0.0.1", endpoint),
        Key("SESSION_TIMEOUT", "3600", integer(60)),
        Key("TRUSTED_PROXIES", "", ip_list()),
        Key("METRICS_FROM", "127.0.0.0/8, ::1", ip_list(
            disabled="none", accepted="it takes IP addresses and networks (192.0.2.7, "
            "10.0.0.0/8, ::1), separated by commas, or none (nobody may read /metrics)")),
        Key("HEADER_TIMEOUT", "10", number(above=0, at_most=600)),
        Key("BODY_TIMEOUT", "120", number(above=0, at_most=3600)),
        Key("IDLE_TIMEOUT", "75", number(above=0, at_most=3600)),
        Key("MAX_CONNECTIONS", "1024", integer(1, 1_000_000)),
        Key("MAX_CONNECTIONS_PER_ADDRESS", "64", integer(1, 1_000_000)),
        Key("FD_SHARE", "0.25", number(above=0, at_most=0.9)),
    )),
    Section("PATH", PathSettings, (
        Key("SOUND_DIR", "/usr/share/asterisk/sounds", path),
        Key("MEDIA_DIR", "var/spool/recordings", path),
        Key("TMP_DIR", "var/tmp", path),
        Key("MEDIA_GROUP", "", system_group),
    )),
    Section("ATTEMPTS", AttemptsSettings, (
        Key("IVR_INPUT", "3", integer(1, 10)),
        Key("PASSWORD", "3", integer(1, 10)),
        Key("ACCESS_CODE", "3", integer(1, 10)),
        Key("SOURCE_FAILURES", "10", integer(1, 1000)),
        Key("PIN_FAILURES", "5", integer(1, 100)),
        Key("GUARD_FAILURES", "20", integer(1, 100000)),
        Key("FAILURE_WINDOW", "900", integer(60, 86400)),
        Key("LOCKOUT", "900", integer(60, 604800)),
        Key("LOCKOUT_MAX", "86400", integer(60, 2592000)),
    )),
    Section("TIMEOUT", TimeoutSettings, (
        Key("DIGIT", "3000", integer(500, 60000)),
        Key("DIALOUT", "40", integer(5, 600)),
        Key("COUNTER_LEASE", "60", integer(3, 3600)),
        Key("NODE_STATS", "10", integer(1, 3600)),
        Key("HEARTBEAT", "5", integer(1, 60)),
    )),
    Section("WEBREQUEST", WebRequestSettings, (
        Key("ALLOW", "", ip_list(accepted="list networks like 10.1.0.0/16, fd00::/8 "
                                 "(empty: public addresses only)")),
        Key("PORTS", "", port_list),
        Key("REDIRECTS", "3", integer(0, 10)),
    )),
)

# ``FROM`` is a Python keyword-ish name we keep readable as ``from_``.
_ATTR_OVERRIDES = {("EMAIL", "FROM"): "from_", ("EMAIL", "SUBJ"): "subject"}


@dataclass(frozen=True)
class Settings:
    """Everything ``xvb.conf`` says, typed and checked."""

    common: CommonSettings
    asterisk: AsteriskSettings
    file: FileSettings
    cdr: CDRSettings
    cgi: CGISettings
    email: EmailSettings
    debug: DebugSettings
    callblast: CallblastSettings
    sip: SIPSettings
    radius: RadiusSettings
    gearman: GearmanSettings
    db: DBSettings
    agi: AGISettings
    web: WebSettings
    path: PathSettings
    attempts: AttemptsSettings
    timeout: TimeoutSettings
    webrequest: WebRequestSettings = WebRequestSettings()
    source: str = "<defaults>"
    warnings: tuple[str, ...] = ()


def _attr(section: Section, key: Key) -> str:
    return _ATTR_OVERRIDES.get((section.name, key.name), key.attr)


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and raw.count(raw[0]) == 2:
        return raw[1:-1]
    return raw


def _line_numbers(content: str) -> dict[tuple[str, str], int]:
    """(SECTION, KEY) -> line number, for messages that point at the line."""
    where: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(content.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            section = stripped[1:stripped.index("]")].strip().upper()
            where[(section, "")] = number
        elif stripped and stripped[0] not in "#;":
            name = re.split(r"[=:]", stripped, maxsplit=1)[0].strip().upper()
            where.setdefault((section, name), number)
    return where


def parse_settings(content: str, source: str = "<string>") -> Settings:
    """Parse the text of an ``xvb.conf``; raise :class:`ConfigError` listing every problem."""
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       comment_prefixes=("#", ";"), inline_comment_prefixes=None,
                                       default_section="\x00none")
    parser.optionxform = str.upper  # type: ignore[assignment,method-assign]
    lines = _line_numbers(content)

    def at(section: str, key: str = "") -> str:
        number = lines.get((section, key.upper()))
        return f"{source}:{number}: " if number else f"{source}: "

    try:
        parser.read_string(content, source=source)
    except configparser.Error as exc:
        message = str(exc).replace("\n", " ")
        raise ConfigError([f"{source}: cannot read the file as INI: {message}"]) from None

    problems: list[str] = []
    warnings: list[str] = []
    known = {s.name: s for s in SECTIONS}
    present = {name.upper(): name for name in parser.sections()}
    for upper, original in present.items():
        if upper not in known:
            warnings.append(f"{at(upper)}section [{original}] is not used by xvbd and is ignored "
                            f"(xvbd reads {', '.join('[' + s.name + ']' for s in SECTIONS)})")

    values: dict[str, Any] = {}
    for section in SECTIONS:
        raw_section = parser[present[section.name]] if section.name in present else {}
        by_name = {k.name.upper(): k for k in section.keys}
        for name in raw_section:
            if name not in by_name:
                warnings.append(
                    f"{at(section.name, name)}[{section.name}] {name} is not used by xvbd and is "
                    f"ignored (keys of [{section.name}]: "
                    f"{', '.join(k.name for k in section.keys)})")
        kwargs: dict[str, Any] = {}
        for key in section.keys:
            given = key.name.upper() in raw_section
            raw = _unquote(raw_section[key.name.upper()]) if given else key.default
            try:
                kwargs[_attr(section, key)] = key.parse(raw)
            except BadValue as exc:
                tail = str(exc)
                joint = "" if tail.startswith(":") else " "
                where = at(section.name, key.name) if given else f"{source}: (default) "
                problems.append(f"{where}[{section.name}] {key.name}{joint}{tail}")
        if len(kwargs) == len(section.keys):
            values[section.name.lower()] = section.cls(**kwargs)

    if problems:
        raise ConfigError(problems)
    settings = Settings(**values, source=source, warnings=tuple(warnings))
    problems = _cross_checks(settings, at)
    if problems:
        raise ConfigError(problems)
    if settings.radius.auth_host is not None and settings.common.use_billing != -1:
        settings = replace(settings, warnings=(*settings.warnings, (
            f"{at('RADIUS', 'AUTH_HOST')}[RADIUS] AUTH_HOST is used only with [COMMON] "
            f"USE_BILLING = -1 (external billing), which is {settings.common.use_billing}; "
            "it is ignored")))
    return settings


def _cross_checks(s: Settings, at: Callable[..., str]) -> list[str]:
    problems = []
    if s.radius.acct_host is not None and not s.radius.acct_secret:
        problems.append(f"{at('RADIUS', 'ACCT_SECRET')}[RADIUS] ACCT_SECRET must be set when "
                        f"ACCT_HOST is set ({s.radius.acct_host}); use the client secret "
                        "the RADIUS server has for this host")
    if s.common.use_billing == -1 and s.radius.acct_host is None:
        problems.append(f"{at('COMMON', 'USE_BILLING')}[COMMON] USE_BILLING -1 (external billing) "
                        "needs [RADIUS] ACCT_HOST and ACCT_SECRET; set them or use 1 or 0")
    if "UDP" in s.cdr.send_to and not s.cdr.udp_server:
        problems.append(f"{at('CDR', 'UDP_SERVER')}[CDR] UDP_SERVER must list at least one "
                        "host:port when SEND_TO has UDP")
    if s.asterisk.ami_host and not s.asterisk.ami_secret:
        problems.append(f"{at('ASTERISK', 'AMI_SECRET')}[ASTERISK] AMI_SECRET must be set when "
                        "AMI_HOST is set; use the secret of the manager.conf user AMI_USERNAME")
    if s.db.url.backend == "mysql" and s.db.reports_url and s.db.reports_url.backend != "mysql":
        problems.append(f"{at('DB', 'REPORTS_URL')}[DB] REPORTS_URL must point at the same "
                        "MySQL/MariaDB server as URL (a read-only user), not at SQLite")
    if s.web.max_connections_per_address > s.web.max_connections:
        problems.append(f"{at('WEB', 'MAX_CONNECTIONS_PER_ADDRESS')}[WEB] "
                        f"MAX_CONNECTIONS_PER_ADDRESS ({s.web.max_connections_per_address}) "
                        f"must not be more than MAX_CONNECTIONS ({s.web.max_connections}); "
                        "lower it or raise MAX_CONNECTIONS")
    if s.attempts.lockout > s.attempts.lockout_max:
        problems.append(f"{at('ATTEMPTS', 'LOCKOUT')}[ATTEMPTS] LOCKOUT ({s.attempts.lockout} s) "
                        f"must not be longer than LOCKOUT_MAX ({s.attempts.lockout_max} s); "
                        "raise LOCKOUT_MAX or lower LOCKOUT")
    if s.email.password and not s.email.user:
        problems.append(f"{at('EMAIL', 'PASSWORD')}[EMAIL] PASSWORD is set but USER is empty; "
                        "set USER (the relay's login) or clear PASSWORD")
    if s.email.retry_min > s.email.retry_max:
        problems.append(f"{at('EMAIL', 'RETRY_MIN')}[EMAIL] RETRY_MIN ({s.email.retry_min} s) "
                        f"must not be longer than RETRY_MAX ({s.email.retry_max} s); raise "
                        "RETRY_MAX or lower RETRY_MIN")
    if s.email.ca_file is not None and s.email.starttls == "no":
        problems.append(f"{at('EMAIL', 'CA_FILE')}[EMAIL] CA_FILE is used only with STARTTLS = "
                        "try or yes, which is no; set STARTTLS or clear CA_FILE")
    return problems


def load_settings(file: str | Path) -> Settings:
    """Read and check ``file``; raise :class:`ConfigError` when it cannot be used."""
    file = Path(file)
    try:
        content = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such configuration file; pass one with -c, "
                           "for example -c etc/xvb.conf"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read the configuration file: {exc}"]) from None
    return parse_settings(content, source=str(file))


def default_settings() -> Settings:
    """The settings an empty file gives (every default)."""
    return parse_settings("", source="<defaults>")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value, key=str) if isinstance(value, (frozenset, set)) else value
        return ", ".join(p.pattern if isinstance(p, re.Pattern) else str(p) for p in items)
    if value is None:
        return ""
    return str(value)


_SECRETS = {("ASTERISK", "AMI_SECRET"), ("RADIUS", "ACCT_SECRET"), ("EMAIL", "PASSWORD")}


def render_settings(settings: Settings) -> str:
    """The effective settings as INI text, secrets hidden (``xvbd-admin check-config``)."""
    out = []
    for section in SECTIONS:
        obj = getattr(settings, section.name.lower())
        out.append(f"[{section.name}]")
        for key in section.keys:
            value = _show(getattr(obj, _attr(section, key)))
            if (section.name, key.name) in _SECRETS and value:
                value = "***"
            out.append(f"{key.name} = {value}")
        out.append("")
    return "\n".join(out)


def section_fields(section: Section) -> list[str]:
    """The attribute names of a section's dataclass (used by tests)."""
    return [f.name for f in fields(section.cls)]
