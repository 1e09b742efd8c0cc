"""``xvbd-admin check``: is this machine ready to run xvbd with this configuration?

One :class:`Item` per thing checked, each OK or FAIL with what was found and, for a FAIL,
what to do.  Everything here is plain blocking code with timeouts (the command runs before
any reactor, like ``db upgrade``): the configuration, the database and its schema, the
report database, Redis, the AMI of this node (banner and login) and of the other nodes of
the Nodes list on request, the directories xvbd writes, and the programs it runs.
"""

from __future__ import annotations

import grp
import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xvbd.config import ConfigError, DatabaseURL, RedisAddress, Settings, load_settings
from xvbd.store.migrations import HEAD, SchemaError, current_version, open_connection
from xvbd.store.migrations import with_transaction as _with_transaction

#: Seconds any one network check may take.
NET_TIMEOUT = 5.0
#: The programs xvbd runs: greeting conversion and text-to-speech.
TOOLS = (("ffmpeg", "converting uploaded greetings"), ("sox", "converting greetings and TTS"),
         ("espeak-ng", "text-to-speech greetings"))


@dataclass(frozen=True)
class Item:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def run_checks(config: str, *, all_nodes: bool = False) -> tuple[Settings | None, list[Item]]:
    """Every check of ``config``; the settings are None when the file cannot be used."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return None, [Item("config", False, f"{config} has errors: " + "; ".join(exc.problems)
                           + " (fix them; `xvbd-admin check-config` lists them)")]
    except OSError as exc:
        return None, [Item("config", False, f"cannot read {config}: {exc.strerror}")]
    warned = f"; warnings: {'; '.join(settings.warnings)}" if settings.warnings else ""
    items = [Item("config", True, f"{settings.source} loads{warned}")]
    items.append(_database("database", settings.db.url, settings.db.connect_timeout,
                           schema=True))
    if settings.db.reports_url is not None:
        items.append(_database("reports database", settings.db.reports_url,
                               settings.db.connect_timeout, schema=False))
    items.extend(_redis(address) for address in settings.common.mem_cached_shared)
    items.extend(_ami_items(settings, all_nodes, items[1].ok))
    items.extend(_directories(settings))
    items.extend(_tools())
    return settings, items


# ------------------------------------------------------------------ database


def _database(name: str, url: DatabaseURL, timeout: int, *, schema: bool) -> Item:
    try:
        conn = open_connection(url, timeout)
    except SchemaError as exc:
        return Item(name, False, str(exc))
    try:
        version = _with_transaction(url, conn, current_version)
    except Exception as exc:
        return Item(name, False, f"{url} is reachable but cannot be read: {exc}")
    finally:
        conn.close()
    if not schema:
        return Item(name, True, f"{url} is reachable")
    if version < HEAD:
        return Item(name, False, f"{url} is at schema version {version}, this xvbd needs "
                    f"{HEAD}: back it up (`xvbd-admin backup`), then run `xvbd-admin db "
                    "upgrade`")
    if version > HEAD:
        return Item(name, False, f"{url} is at schema version {version}, newer than this "
                    f"xvbd ({HEAD}): install the xvbd release that upgraded it")
    return Item(name, True, f"{url} is reachable, schema version {version} (up to date)")


def _node_ids(settings: Settings) -> list[tuple[str, str]]:
    """(node id, Asterisk IP) of the Nodes list."""
    url = settings.db.url
    conn = open_connection(url, settings.db.connect_timeout)
    try:
        rows = _with_transaction(url, conn, lambda txn: txn.all(
            "SELECT id, asterisk_ip FROM nodes ORDER BY id"))
    finally:
        conn.close()
    return [(str(r["id"]), str(r["asterisk_ip"] or "")) for r in rows]


# ------------------------------------------------------------------ Redis


def _redis(address: RedisAddress) -> Item:
    name = f"redis {address.host}:{address.port}/{address.db}"
    where = "[COMMON] MEM_CACHED_SHARED"
    try:
        with socket.create_connection((address.host, address.port), NET_TIMEOUT) as sock:
            sock.settimeout(NET_TIMEOUT)
            reader = sock.makefile("rb")
            sock.sendall(_resp("SELECT", str(address.db)) + _resp("PING"))
            replies = [reader.readline().rstrip(b"\r\n") for _ in range(2)]
    except OSError as exc:
        return Item(name, False, f"cannot reach it ({_why(exc)}): start Redis there or fix "
                    f"{where}; meanwhile calls are counted per process only")
    if replies[0] != b"+OK":
        return Item(name, False, f"Redis refused SELECT {address.db} "
                    f"({replies[0].decode(errors='replace')}): fix the database number in "
                    f"{where}")
    if replies[1] != b"+PONG":
        return Item(name, False, f"no PONG to PING ({replies[1].decode(errors='replace')}); "
                    "is it a Redis server, and does it need no password?")
    return Item(name, True, f"answers PING, prefix {address.prefix!r}")


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# ------------------------------------------------------------------ AMI


def _ami_items(settings: Settings, all_nodes: bool, db_ok: bool) -> Iterator[Item]:
    a = settings.asterisk
    server_id = settings.common.server_id
    if a.ami_host:
        yield _ami(f"ami {server_id} {a.ami_host}:{a.ami_port}", a.ami_host, a.ami_port,
                   a.ami_username, a.ami_secret, a.ami_auth)
    else:
        yield Item(f"ami {server_id}", True, "[ASTERISK] AMI_HOST is empty: no AMI (CallBlast "
                   "and Callback calls are not placed; inbound calls are served)")
    if not all_nodes:
        return
    if not db_ok:
        yield Item("ami nodes", False, "the Nodes list cannot be read: fix the database first")
        return
    for node_id, ip in _node_ids(settings):
        if node_id == server_id and a.ami_host:
            continue
        if not ip:
            yield Item(f"ami {node_id}", False, "the node has no Asterisk IP in the Nodes "
                       "list: set it in /ai/ (Nodes)")
            continue
        yield _ami(f"ami {node_id} {ip}:{a.ami_port}", ip, a.ami_port, a.ami_username,
                   a.ami_secret, a.ami_auth)


def _ami(name: str, host: str, port: int, username: str, secret: str, auth: str) -> Item:
    """Connect, read the banner, log in (as xvbd does: MD5 after Challenge, or plain) and
    log off."""
    try:
        with socket.create_connection((host, port), NET_TIMEOUT) as sock:
            # Asterisk pauses about a second before it refuses a login.
            sock.settimeout(NET_TIMEOUT)
            reader = sock.makefile("rb")
            banner = reader.readline().decode("utf-8", "replace").strip()
            if not banner.startswith("Asterisk Call Manager"):
                return Item(name, False, f"answers {banner[:60]!r}, not Asterisk's manager "
                            "interface: fix [ASTERISK] AMI_HOST / AMI_PORT")
            if auth == "md5":
                challenge = _action(sock, reader, "Challenge", [("AuthType", "MD5")])
                key = hashlib.md5((challenge.get("challenge", "") + secret).encode()
                                  ).hexdigest()
                fields = [("AuthType", "MD5"), ("Username", username), ("Key", key)]
            else:
                fields = [("Username", username), ("Secret", secret)]
            reply = _action(sock, reader, "Login", [*fields, ("Events", "off")])
            if reply.get("response", "").lower() != "success":
                return Item(name, False, f"{banner}: the login of {username!r} was refused "
                            f"({reply.get('message', '?')}): check AMI_USERNAME, AMI_SECRET "
                            "and AMI_AUTH against manager.conf")
            _action(sock, reader, "Logoff", [])
    except OSError as exc:
        return Item(name, False, f"cannot reach it ({_why(exc)}): check that Asterisk runs, "
                    "manager.conf has enabled = yes and its bindaddr/port, and the firewall")
    return Item(name, True, f"{banner}, logged in as {username!r}")


def _action(sock: socket.socket, reader: Any, name: str,
            fields: list[tuple[str, str]]) -> dict[str, str]:
    text = f"Action: {name}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    sock.sendall(text.encode())
    reply: dict[str, str] = {}
    while True:  # the first block with a Response (events may come first)
        line = reader.readline()
        if not line:
            raise ConnectionResetError("Asterisk closed the connection")
        text_line = line.decode("utf-8", "replace").rstrip("\r\n")
        if text_line:
            key, _, value = text_line.partition(":")
            reply[key.strip().lower()] = value.strip()
        elif "response" in reply:
            return reply
        else:
            reply = {}


# ------------------------------------------------------------------ files


def _directories(settings: Settings) -> Iterator[Item]:
    wanted: list[tuple[str, Path, str]] = [
        ("media directory", settings.path.media_dir, "[PATH] MEDIA_DIR"),
        ("tmp directory", settings.path.tmp_dir, "[PATH] TMP_DIR"),
    ]
    if "FILE" in settings.cdr.send_to:
        wanted.append(("cdr directory", settings.cdr.file.parent, "[CDR] FILE"))
    if "FILE" in settings.debug.send_to:
        wanted.append(("log directory", settings.debug.file.parent, "[DEBUG] FILE"))
    if settings.db.url.backend == "sqlite" and settings.db.url.path is not None:
        wanted.append(("database directory", settings.db.url.path.parent, "[DB] URL"))
    seen: set[Path] = set()
    for name, path, key in wanted:
        path = path.resolve()
        if path in seen:
            continue
        seen.add(path)
        yield _writable(name, path, key)
    if settings.path.media_group:
        yield _group(settings.path.media_group)
    sounds = settings.path.sound_dir
    if sounds.is_dir() and os.access(sounds, os.R_OK | os.X_OK):
        yield Item("sound directory", True, f"{sounds} is readable")
    else:
        yield Item("sound directory", False, f"{sounds} is not a readable directory: install "
                   "Asterisk's sounds (asterisk-core-sounds-en) or fix [PATH] SOUND_DIR")


def _writable(name: str, path: Path, key: str) -> Item:
    who = _user()
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        if _can_write(parent):
            return Item(name, True, f"{path} does not exist yet; xvbd makes it in {parent}, "
                        f"writable by {who}")
        return Item(name, False, f"{path} does not exist and {who} cannot make it in "
                    f"{parent}: `install -d -o {who} {path}`, or change {key}")
    if not path.is_dir():
        return Item(name, False, f"{path} is not a directory: change {key}")
    if not _can_write(path):
        return Item(name, False, f"{path} is not writable by {who}: `chown {who} {path}`, or "
                    f"change {key}")
    return Item(name, True, f"{path} is writable by {who}")


def _can_write(directory: Path) -> bool:
    """Really create and remove a file: permission bits, read-only mounts and full disks all
    show."""
    try:
        fd, name = tempfile.mkstemp(prefix=".xvbd-check-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _group(name: str) -> Item:
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return Item("media group", False, f"[PATH] MEDIA_GROUP {name!r} does not exist: "
                    f"`groupadd {name}`, then add xvbd's and Asterisk's users to it")
    if group.gr_gid not in os.getgroups() and group.gr_gid != os.getgid() and os.getuid():
        return Item("media group", False, f"{_user()} is not in the group {name!r}: "
                    f"`adduser {_user()} {name}` (and log in again)")
    return Item("media group", True, f"{name!r} (gid {group.gr_gid})")


def _tools() -> Iterator[Item]:
    for tool, why in TOOLS:
        found = shutil.which(tool)
        if found:
            yield Item(f"program {tool}", True, found)
        else:
            yield Item(f"program {tool}", False, f"not on PATH; needed for {why}: "
                       f"`apt install {tool}`")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())


def _why(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer in {NET_TIMEOUT:g} s"
    return exc.strerror or exc.__class__.__name__


def report(items: list[Item], write: Callable[[str], Any]) -> bool:
    """Write one line per item; True when every item is OK."""
    for item in items:
        write(item.line())
    failed = sum(not item.ok for item in items)
    write(f"{len(items) - failed} OK, {failed} FAIL" + ("" if failed else ": ready"))
    return not failed
