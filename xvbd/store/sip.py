"""Asterisk realtime tables: SIP peers (``sippeers``), music on hold (``musiconhold``), and
the declarative SIP provider templates.

``sippeers`` keeps Asterisk's column names (some have hyphens, so a peer's columns travel as
a dict).  Which tenant owns a peer is in ``user_sip_peers``; every tenant function joins it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xvbd.store.accounts import NotFound, _unique
from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

#: Asterisk's realtime sippeers columns (besides ``id``), in table order.
SIPPEER_COLUMNS: tuple[str, ...] = (
    "name", "ipaddr", "port", "regseconds", "defaultuser", "fullcontact", "regserver",
    "useragent", "lastms", "host", "type", "context", "permit", "deny", "secret", "md5secret",
    "remotesecret", "transport", "dtmfmode", "directmedia", "nat", "callgroup", "pickupgroup",
    "language", "allow", "disallow", "insecure", "trustrpid", "progressinband", "promiscredir",
    "useclientcode", "accountcode", "setvar", "callerid", "amaflags", "callcounter",
    "busylevel", "allowoverlap", "allowsubscribe", "videosupport", "maxcallbitrate",
    "rfc2833compensate", "mailbox", "session-timers", "session-expires", "session-minse",
    "session-refresher", "t38pt_usertpsource", "regexten", "fromdomain", "fromuser",
    "qualify", "defaultip", "rtptimeout", "rtpholdtimeout", "sendrpid", "outboundproxy",
    "callbackextension", "registertrying", "timert1", "timerb", "qualifyfreq",
    "constantssrc", "contactpermit", "contactdeny", "usereqphone", "textsupport",
    "faxdetect", "buggymwi", "auth", "fullname", "trunkname", "cid_number", "callingpres",
    "mohinterpret", "mohsuggest", "parkinglot", "hasvoicemail", "subscribemwi", "vmexten",
    "autoframing", "rtpkeepalive", "call-limit", "g726nonstandard", "ignoresdpversion",
    "allowtransfer", "dynamic",
)
PEER_KINDS = ("phone", "provider", "registration")


def _q(column: str) -> str:
    return f"`{column}`"


def check_peer_columns(values: Mapping[str, Any]) -> None:
    unknown = set(values) - set(SIPPEER_COLUMNS)
    if unknown:
        raise ValueError(f"sippeers has no column {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class SipPeer:
    id: int
    user_id: int
    kind: str
    values: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.values["name"])


@dataclass(frozen=True)
class MohClass:
    name: str
    mode: str | None
    directory: str | None
    application: str | None
    digit: str | None
    sort: str | None
    format: str | None
    stamp: int | None


@dataclass(frozen=True)
class SipTemplate:
    id: int
    host: str
    name: str
    overrides: str

    def override_values(self) -> dict[str, Any]:
        return dict(json.loads(self.overrides))


MOH = Table("musiconhold", MohClass, key="name", audit=True)
TEMPLATES = Table("sip_templates", SipTemplate, audit=True)
_SELECT_PEER = ("SELECT p.id, o.user_id, o.kind, "
                + ", ".join("p." + _q(c) for c in SIPPEER_COLUMNS)
                + " FROM sippeers p JOIN user_sip_peers o ON o.peer_id = p.id")


def _peer(row: dict[str, Any]) -> SipPeer:
    return SipPeer(row["id"], row["user_id"], row["kind"],
                   {c: row[c] for c in SIPPEER_COLUMNS})


class SIP:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    # -------------------------------------------------------------- peers (tenant data)

    async def create_peer(self, user_id: int, kind: str, values: Mapping[str, Any]) -> SipPeer:
        if kind not in PEER_KINDS:
            raise ValueError(f"kind is one of {PEER_KINDS}, got {kind!r}")
        check_peer_columns(values)
        if not values.get("name"):
            raise ValueError("a SIP peer needs a name")
        now = self._now()

        def create(txn: Txn) -> SipPeer:
            cols = list(values)
            _unique(txn, lambda: txn.execute(
                f"INSERT INTO sippeers ({', '.join(_q(c) for c in cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols]),
                f"a SIP peer named {values['name']!r}")
            peer_id = txn.lastrowid
            txn.execute("INSERT INTO user_sip_peers (peer_id, user_id, kind, created_at) "
                        "VALUES (?, ?, ?, ?)", (peer_id, user_id, kind, now))
            row = txn.one(_SELECT_PEER + " WHERE p.id = ?", (peer_id,))
            assert row is not None
            return _peer(row)
        return await self._db.run_interaction(create)

    async def get_peer(self, user_id: int, peer_id: int) -> SipPeer | None:
        def get(txn: Txn) -> SipPeer | None:
            row = txn.one(_SELECT_PEER + " WHERE p.id = ? AND o.user_id = ?", (peer_id, user_id))
            return None if row is None else _peer(row)
        return await self._db.run_interaction(get)

    async def list_peers(self, user_id: int, kind: str | None = None) -> list[SipPeer]:
        def read(txn: Txn) -> list[SipPeer]:
            sql = _SELECT_PEER + " WHERE o.user_id = ?"
            params: list[Any] = [user_id]
            if kind is not None:
                sql += " AND o.kind = ?"
                params.append(kind)
            return [_peer(r) for r in txn.all(sql + " ORDER BY p.id", params)]
        return await self._db.run_interaction(read)

    async def update_peer(self, user_id: int, peer_id: int, changes: Mapping[str, Any]) -> bool:
        check_peer_columns(changes)

        def update(txn: Txn) -> bool:
            owned = txn.scalar("SELECT COUNT(*) FROM user_sip_peers WHERE peer_id = ? "
                               "AND user_id = ?", (peer_id, user_id))
            if not owned:
                return False
            if changes:
                sets = ", ".join(f"{_q(c)} = ?" for c in changes)
                _unique(txn, lambda: txn.execute(f"UPDATE sippeers SET {sets} WHERE id = ?",
                                                 (*changes.values(), peer_id)), "that peer name")
            return True
        return await self._db.run_interaction(update)

    async def delete_peer(self, user_id: int, peer_id: int) -> bool:
        def delete(txn: Txn) -> bool:
            owned = txn.scalar("SELECT COUNT(*) FROM user_sip_peers WHERE peer_id = ? "
                               "AND user_id = ?", (peer_id, user_id))
            if not owned:
                return False
            txn.execute("DELETE FROM sippeers WHERE id = ?", (peer_id,))
            return True
        return await self._db.run_interaction(delete)

    # -------------------------------------------------------------- music on hold

    async def create_moh(self, name: str, *, user_id: int | None = None, description: str = "",
                         **fields: Any) -> MohClass:
        """A system class (``user_id`` None) or a tenant's own class."""
        def create(txn: Txn) -> MohClass:
            _unique(txn, lambda: MOH.insert(txn, {"name": name, "stamp": self._now(), **fields}),
                    f"a music-on-hold class {name!r}")
            if user_id is not None:
                txn.execute("INSERT INTO user_moh (name, user_id, description) VALUES (?, ?, ?)",
                            (name, user_id, description))
            return MOH.get(txn, name)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def set_moh_entries(self, name: str, entries: list[str], *,
                              user_id: int | None = None) -> None:
        def put(txn: Txn) -> None:
            _check_moh_owner(txn, name, user_id)
            txn.execute("DELETE FROM musiconhold_entry WHERE name = ?", (name,))
            txn.executemany("INSERT INTO musiconhold_entry (name, position, entry) "
                            "VALUES (?, ?, ?)", [(name, i, e) for i, e in enumerate(entries)])
        await self._db.run_interaction(put)

    async def moh_entries(self, name: str) -> list[str]:
        def read(txn: Txn) -> list[str]:
            return [r["entry"] for r in txn.all("SELECT entry FROM musiconhold_entry WHERE "
                                                "name = ? ORDER BY position", (name,))]
        return await self._db.run_interaction(read)

    async def list_moh(self, user_id: int | None = None) -> list[MohClass]:
        """System classes, plus the given tenant's own (never another tenant's)."""
        where = "name NOT IN (SELECT name FROM user_moh)"
        params: list[Any] = []
        if user_id is not None:
            where += " OR name IN (SELECT name FROM user_moh WHERE user_id = ?)"
            params.append(user_id)
        return await self._db.run_interaction(MOH.select, where, params, order="name")

    async def delete_moh(self, name: str, *, user_id: int | None = None) -> bool:
        def delete(txn: Txn) -> bool:
            try:
                _check_moh_owner(txn, name, user_id)
            except NotFound:
                return False
            return MOH.delete(txn, name)
        return await self._db.run_interaction(delete)

    # -------------------------------------------------------------- provider templates

    async def create_template(self, host: str, name: str, overrides: Mapping[str, Any]
                              ) -> SipTemplate:
        check_peer_columns(overrides)
        body = json.dumps(dict(overrides), sort_keys=True)

        def create(txn: Txn) -> SipTemplate:
            new_id = _unique(txn, lambda: TEMPLATES.insert(
                txn, {"host": host.lower(), "name": name, "overrides": body}),
                f"a template for {host!r}")
            return TEMPLATES.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def list_templates(self) -> list[SipTemplate]:
        return await self._db.run_interaction(TEMPLATES.select, order="name")

    async def template_for_host(self, host: str) -> SipTemplate | None:
        rows = await self._db.run_interaction(TEMPLATES.select, "host = ?", (host.lower(),))
        return rows[0] if rows else None

    async def update_template(self, template_id: int, *, name: str | None = None,
                              overrides: Mapping[str, Any] | None = None) -> bool:
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if overrides is not None:
            check_peer_columns(overrides)
            changes["overrides"] = json.dumps(dict(overrides), sort_keys=True)
        return await self._db.run_interaction(TEMPLATES.update, template_id, changes)

    async def delete_template(self, template_id: int) -> bool:
        return await self._db.run_interaction(TEMPLATES.delete, template_id)


def apply_template(values: Mapping[str, Any], template: SipTemplate | None) -> dict[str, Any]:
    """The tenant's peer values with the provider template's overrides laid over them."""
    merged = dict(values)
    if template is not None:
        merged.update(template.override_values())
    return merged


def _check_moh_owner(txn: Txn, name: str, user_id: int | None) -> None:
    owner = txn.scalar("SELECT user_id FROM user_moh WHERE name = ?", (name,))
    if owner is not None and owner != user_id:
        raise NotFound(f"no music-on-hold class {name!r} for this user")
    if owner is None and user_id is not None:
        raise NotFound(f"{name!r} is a system class; a tenant cannot change it")
