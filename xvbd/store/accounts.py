"""The operator's objects: nodes, currencies, tariffs, groups, users, DIDs, partners, admins,
and the balance (changed only by one conditional UPDATE, never read-modify-write)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.passwords import hash_pin_off_reactor
from xvbd.store.audit import journal_rows
from xvbd.store.db import Database, Txn
from xvbd.store.table import ANY_OWNER, STARTS_WITH, Table, starts_with

USER_STATUSES = ("active", "locked")


class NotFound(LookupError):
    """No such object (for this owner)."""


class Conflict(ValueError):
    """The object would duplicate a unique value (an access code, a DID, a login …)."""


class InsufficientBalance(ValueError):
    """A debit larger than what the balance holds."""


@dataclass(frozen=True)
class Node:
    id: str
    download_ip: str
    asterisk_ip: str
    comment: str
    limit_calls: int
    limit_la_1: float
    limit_la_5: float
    limit_la_10: float
    stat_url: str
    stat_calls: int
    stat_la_1: float
    stat_la_5: float
    stat_la_10: float
    stat_at: int


@dataclass(frozen=True)
class Currency:
    id: int
    code: str
    name: str
    digits: int


@dataclass(frozen=True)
class Tariff:
    id: int
    name: str
    currency_id: int
    monthly_fee: int
    daily_fee: int
    ivr_minute: int
    ivr_call: int
    callblast_minute: int
    callblast_call: int
    callback_minute: int
    callback_call: int


@dataclass(frozen=True)
class Group:
    id: int
    name: str
    tariff_id: int
    server_id: str
    dialout_context: str
    conference_context: str
    language: str
    template_prefix: str
    sound_prefix: str
    preferred_codec: str
    phone_features: str
    hooks: str
    max_inbound_calls: int
    max_messages_per_ext: int
    max_messages_total: int
    max_extensions: int
    max_cid_filters: int
    max_routes: int
    max_peers: int
    max_registrations: int
    max_phones: int
    max_macros: int
    max_callblast_items: int
    max_gotoif_items: int
    max_followme_phones: int
    max_callblast_phones: int
    max_schedule_items: int
    max_podcasts: int
    max_calendar_events: int
    max_queues: int
    max_email_attachment_bytes: int
    max_tts_download_bytes: int
    max_tts_string_bytes: int
    max_call_duration: int
    max_message_duration: int
    max_name_duration: int
    max_greeting_duration: int
    max_announcement_duration: int
    max_retrydial_duration: int
    max_moh_duration: int
    allow_tts: bool
    allow_macros: bool
    allow_direct_dialout: bool
    allow_custom_routes: bool
    allow_phones: bool
    allow_custom_system_files: bool
    advanced_callblast: bool
    google_analytics: bool
    allow_api: bool
    allow_icecast: bool
    #: The longest a WEB-Request or web variable's fetch may take (migration 010).
    max_web_request_seconds: int = 10


@dataclass(frozen=True)
class User:
    id: int
    voice_number: str
    access_code: str
    name: str
    email: str
    language: str
    timezone: str
    group_id: int
    status: str
    read_only: bool
    balance: int
    max_inbound_calls: int
    web_password_hash: str
    pin_hash: str  # the phone PIN's scrypt hash (passwords.hash_pin); '' for no PIN
    created_at: int
    updated_at: int

    @property
    def locked(self) -> bool:
        return self.status != "active"

    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash)


@dataclass(frozen=True)
class Did:
    did: str
    user_id: int
    created_at: int


@dataclass(frozen=True)
class DidAttr:
    did: str
    language: str


@dataclass(frozen=True)
class Partner:
    id: int
    login: str
    password_hash: str
    group_id: int
    description: str
    can_change_balance: bool
    balance_limit: int
    created_at: int


@dataclass(frozen=True)
class Admin:
    login: str
    password_hash: str
    updated_at: int


@dataclass(frozen=True)
class BalanceOp:
    id: int
    user_id: int
    created_at: int
    amount: int
    balance_after: int
    reason: str
    actor_kind: str
    actor: str
    call_id: str


NODES = Table("nodes", Node, audit=True)
CURRENCIES = Table("currencies", Currency)
TARIFFS = Table("tariffs", Tariff, audit=True)
GROUPS = Table("user_groups", Group, audit=True)
USERS = Table("users", User, audit=True, tenant="id",
              secret=frozenset({"pin_hash", "web_password_hash"}))
DIDS = Table("dids", Did, key="did", owner="user_id", audit=True)
DID_ATTRS = Table("did_attrs", DidAttr, key="did", audit=True)
PARTNERS = Table("partners", Partner, audit=True,
                 secret=frozenset({"password_hash"}))
ADMINS = Table("admins", Admin, key="login", audit=True,
               secret=frozenset({"password_hash"}))
BALANCE_OPS = Table("balance_ops", BalanceOp, owner="user_id")


def _unique(txn: Txn, fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except Exception as exc:
        if txn.dialect.is_duplicate(exc):
            raise Conflict(f"{what} already exists") from None
        raise


def move_balance(txn: Txn, user_id: int, amount: int, now: int, reason: str, *,
                 actor_kind: str = "system", actor: str = "", call_id: str = "",
                 allow_overdraft: bool = False) -> int:
    """Add ``amount`` (negative: take) to a balance inside ``txn``: one conditional UPDATE
    (a debit the balance cannot pay raises :class:`InsufficientBalance`, unless
    ``allow_overdraft``), the movement in ``balance_ops`` and, when someone is acting, the
    journal; returns the new balance.  Every change of a balance goes through here."""
    guard = "" if allow_overdraft or amount >= 0 else " AND balance + ? >= 0"
    params: list[Any] = [amount, now, user_id]
    if guard:
        params.append(amount)
    txn.execute(f"UPDATE users SET balance = balance + ?, updated_at = ? WHERE id = ?{guard}",
                params)
    if txn.rowcount == 0:
        if USERS.get(txn, user_id) is None:
            raise NotFound(f"no user {user_id}")
        raise InsufficientBalance(f"user {user_id} cannot pay {-amount}")
    balance = int(txn.scalar("SELECT balance FROM users WHERE id = ?", (user_id,)))
    if txn.actor is not None:
        journal_rows(txn, txn.actor, "users", user_id, {"balance": balance - amount},
                     {"balance": balance}, user_id)
    BALANCE_OPS.insert(txn, {"user_id": user_id, "created_at": now, "amount": amount,
                             "balance_after": balance, "reason": reason,
                             "actor_kind": actor_kind, "actor": actor, "call_id": call_id})
    return balance


class Accounts:
    """Repository of the operator's objects."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    # -------------------------------------------------------------- nodes

    async def put_node(self, node_id: str, **fields: Any) -> Node:
        """Create the node or change the given fields of it."""
        def put(txn: Txn) -> Node:
            NODES.check_columns(list(fields))
            if NODES.get(txn, node_id) is None:
                NODES.insert(txn, {"id": node_id, **fields})
            else:
                NODES.update(txn, node_id, fields)
            node = NODES.get(txn, node_id)
            assert node is not None
            return node
        return await self._db.run_interaction(put)

    async def get_node(self, node_id: str) -> Node | None:
        return await self._db.run_interaction(NODES.get, node_id)

    async def list_nodes(self) -> list[Node]:
        return await self._db.run_interaction(NODES.select)

    async def record_node_stats(self, node_id: str, calls: int, la_1: float, la_5: float,
                                la_10: float) -> bool:
        return await self._db.run_interaction(
            NODES.update, node_id, {"stat_calls": calls, "stat_la_1": la_1, "stat_la_5": la_5,
                                    "stat_la_10": la_10, "stat_at": self._now()})

    async def delete_node(self, node_id: str) -> bool:
        return await self._db.run_interaction(NODES.delete, node_id)

    # -------------------------------------------------------------- currencies and tariffs

    async def list_currencies(self) -> list[Currency]:
        return await self._db.run_interaction(CURRENCIES.select)

    async def get_currency(self, currency_id: int) -> Currency | None:
        return await self._db.run_interaction(CURRENCIES.get, currency_id)

    async def create_tariff(self, name: str, currency_id: int, **prices: int) -> Tariff:
        def create(txn: Txn) -> Tariff:
            new_id = _unique(txn, lambda: TARIFFS.insert(
                txn, {"name": name, "currency_id": currency_id, **prices}),
                f"a tariff named {name!r}")
            return TARIFFS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get_tariff(self, tariff_id: int) -> Tariff | None:
        return await self._db.run_interaction(TARIFFS.get, tariff_id)

    async def list_tariffs(self) -> list[Tariff]:
        return await self._db.run_interaction(TARIFFS.select)

    async def update_tariff(self, tariff_id: int, **changes: Any) -> bool:
        """Change a tariff; :class:`Conflict` when its new name is another's."""
        return await self._db.run_interaction(_update_unique, TARIFFS, tariff_id, changes,
                                              "a tariff with that name")

    async def delete_tariff(self, tariff_id: int) -> bool:
        return await self._db.run_interaction(TARIFFS.delete, tariff_id)

    # -------------------------------------------------------------- groups

    async def create_group(self, name: str, tariff_id: int, **fields: Any) -> Group:
        def create(txn: Txn) -> Group:
            new_id = _unique(txn, lambda: GROUPS.insert(
                txn, {"name": name, "tariff_id": tariff_id, **fields}), f"a group named {name!r}")
            return GROUPS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get_group(self, group_id: int) -> Group | None:
        return await self._db.run_interaction(GROUPS.get, group_id)

    async def list_groups(self) -> list[Group]:
        return await self._db.run_interaction(GROUPS.select, order="name")

    async def update_group(self, group_id: int, **changes: Any) -> bool:
        """Change a group; :class:`Conflict` when its new name is another's."""
        return await self._db.run_interaction(_update_unique, GROUPS, group_id, changes,
                                              "a group with that name")

    async def delete_group(self, group_id: int) -> bool:
        return await self._db.run_interaction(GROUPS.delete, group_id)

    async def set_type_limit(self, group_id: int, type_name: str, max_count: int) -> None:
        """-1 unlimited, 0 not allowed, N at most N extensions of that type."""
        if max_count < -1:
            raise ValueError(f"a type limit is -1, 0 or a positive number, got {max_count}")

        def put(txn: Txn) -> None:
            before = (txn.scalar("SELECT max_count FROM group_type_limits "
                                 "WHERE group_id = ? AND type_name = ?", (group_id, type_name))
                      if txn.actor is not None else None)  # read only to be journaled
            txn.execute(txn.dialect.upsert("group_type_limits",
                                           ("group_id", "type_name", "max_count"),
                                           ("group_id", "type_name")),
                        (group_id, type_name, max_count))
            if txn.actor is not None:
                field = f"type limit {type_name}"
                journal_rows(txn, txn.actor, "user_groups", group_id,
                             {field: -1 if before is None else before}, {field: max_count},
                             None)
        await self._db.run_interaction(put)

    async def type_limits(self, group_id: int) -> dict[str, int]:
        def read(txn: Txn) -> dict[str, int]:
            rows = txn.all("SELECT type_name, max_count FROM group_type_limits "
                           "WHERE group_id = ?", (group_id,))
            return {r["type_name"]: int(r["max_count"]) for r in rows}
        return await self._db.run_interaction(read)

    # -------------------------------------------------------------- users

    async def create_user(self, voice_number: str, access_code: str, group_id: int,
                          **fields: Any) -> User:
        """A new user; ``pin`` (clear digits, '' for none) is stored as its hash only."""
        _check_user_fields({"voice_number": voice_number, "access_code": access_code, **fields})
        await _hash_pin_field(fields)
        now = self._now()

        def create(txn: Txn) -> User:
            new_id = _unique(txn, lambda: USERS.insert(txn, {
                "voice_number": voice_number, "access_code": access_code, "group_id": group_id,
                "created_at": now, "updated_at": now, **fields}),
                f"a user {voice_number}#{access_code}")
            return USERS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get_user(self, user_id: int, *, in_group: int | None = None) -> User | None:
        """The user; with ``in_group`` (a partner's view) only a user of that group."""
        def get(txn: Txn) -> User | None:
            return _user_in(txn, user_id, in_group)
        return await self._db.run_interaction(get)

    async def find_user(self, voice_number: str, access_code: str) -> User | None:
        def find(txn: Txn) -> User | None:
            rows = USERS.select(txn, "voice_number = ? AND access_code = ?",
                                (voice_number, access_code))
            return rows[0] if rows else None
        return await self._db.run_interaction(find)

    async def find_user_by_did(self, did: str) -> User | None:
        def find(txn: Txn) -> User | None:
            rows = USERS.select(txn, "id = (SELECT user_id FROM dids WHERE did = ?)", (did,))
            return rows[0] if rows else None
        return await self._db.run_interaction(find)

    async def list_users(self, *, voice_number: str | None = None,
                         access_code: str | None = None, group_id: int | None = None,
                         after_id: int = 0, limit: int = 50) -> list[User]:
        """Users matching every given filter, by id, ``limit`` after ``after_id`` (keyset)."""
        where: list[str] = ["id > ?"]
        params: list[Any] = [after_id]
        for column, value in (("voice_number", voice_number), ("access_code", access_code),
                              ("group_id", group_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return await self._db.run_interaction(USERS.select, " AND ".join(where), params,
                                              limit=limit)

    async def update_user(self, user_id: int, *, in_group: int | None = None,
                          **changes: Any) -> bool:
        """Change fields of a user (of ``in_group`` only, when given); False: no such user.
        A ``pin`` (clear digits, '' for none) is stored as its hash only."""
        if "balance" in changes:
            raise ValueError("the balance changes only through change_balance()")
        _check_user_fields(changes)
        await _hash_pin_field(changes)

        def update(txn: Txn) -> bool:
            if in_group is not None and _user_in(txn, user_id, in_group) is None:
                return False
            return bool(_unique(txn, lambda: USERS.update(
                txn, user_id, {**changes, "updated_at": self._now()}),
                "a user with that phone number and access code"))
        return await self._db.run_interaction(update)

    async def delete_user(self, user_id: int, *, in_group: int | None = None) -> bool:
        """Delete the user and everything they own, including the rows Asterisk reads
        (their SIP peers and music-on-hold classes), which hang off other tables."""
        def delete(txn: Txn) -> bool:
            if in_group is not None and _user_in(txn, user_id, in_group) is None:
                return False
            txn.execute("DELETE FROM sippeers WHERE id IN "
                        "(SELECT peer_id FROM user_sip_peers WHERE user_id = ?)", (user_id,))
            txn.execute("DELETE FROM musiconhold WHERE name IN "
                        "(SELECT name FROM user_moh WHERE user_id = ?)", (user_id,))
            txn.execute("DELETE FROM web_password_resets WHERE user_id = ?", (user_id,))
            return USERS.delete(txn, user_id)
        return await self._db.run_interaction(delete)

    async def change_balance(self, user_id: int, amount: int, reason: str, *,
                             actor_kind: str = "system", actor: str = "", call_id: str = "",
                             allow_overdraft: bool = False, in_group: int | None = None) -> int:
        """Add ``amount`` (negative: debit) in one conditional UPDATE; return the new
        balance.  A debit the balance cannot pay raises :class:`InsufficientBalance`."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("amount is an integer number of 1/10000 currency units")
        now = self._now()

        def change(txn: Txn) -> int:
            if in_group is not None and _user_in(txn, user_id, in_group) is None:
                raise NotFound(f"no user {user_id}")
            return move_balance(txn, user_id, amount, now, reason, actor_kind=actor_kind,
                                actor=actor, call_id=call_id, allow_overdraft=allow_overdraft)
        return await self._db.run_interaction(change)

    async def balance_history(self, user_id: int, limit: int = 50) -> list[BalanceOp]:
        return await self._db.run_interaction(BALANCE_OPS.select, owner=user_id,
                                              order="id DESC", limit=limit)

    # -------------------------------------------------------------- DIDs

    async def assign_did(self, did: str, user_id: int, *, in_group: int | None = None) -> Did:
        if not did or not did.strip() == did:
            raise ValueError(f"a DID is a number without spaces, got {did!r}")
        now = self._now()

        def add(txn: Txn) -> Did:
            if _user_in(txn, user_id, in_group) is None:
                raise NotFound(f"no user {user_id}")
            _unique(txn, lambda: DIDS.insert(
                txn, {"did": did, "user_id": user_id, "created_at": now}),
                f"the DID {did}")
            return Did(did, user_id, now)
        return await self._db.run_interaction(add)

    async def user_dids(self, user_id: int) -> list[Did]:
        return await self._db.run_interaction(DIDS.select, owner=user_id, order="did")

    async def list_dids(self, prefix: str = "", limit: int = 100) -> list[Did]:
        """Every private DID (operator's view), optionally starting with ``prefix``."""
        where, params = (f"did {STARTS_WITH}", [starts_with(prefix)]) if prefix else ("1 = 1", [])
        return await self._db.run_interaction(DIDS.select, where, params, owner=ANY_OWNER,
                                              order="did", limit=limit)

    async def release_did(self, did: str, user_id: int, *, in_group: int | None = None) -> bool:
        def release(txn: Txn) -> bool:
            if in_group is not None and _user_in(txn, user_id, in_group) is None:
                return False
            return DIDS.delete(txn, did, owner=user_id)
        return await self._db.run_interaction(release)

    async def set_did_language(self, did: str, language: str) -> None:
        def put(txn: Txn) -> None:
            before = DID_ATTRS.get(txn, did) if txn.actor is not None else None
            txn.execute(txn.dialect.upsert("did_attrs", ("did", "language"), ("did",)),
                        (did, language))
            if txn.actor is not None:
                journal_rows(txn, txn.actor, "did_attrs", did,
                             {"language": before.language} if before else None,
                             {"language": language}, None)
        await self._db.run_interaction(put)

    async def did_language(self, did: str) -> str | None:
        attr = await self._db.run_interaction(DID_ATTRS.get, did)
        return attr.language if attr else None

    async def list_did_attrs(self) -> list[DidAttr]:
        return await self._db.run_interaction(DID_ATTRS.select, order="did")

    async def delete_did_attr(self, did: str) -> bool:
        return await self._db.run_interaction(DID_ATTRS.delete, did)

    # -------------------------------------------------------------- partners and admins

    async def create_partner(self, login: str, password_hash: str, group_id: int,
                             **fields: Any) -> Partner:
        now = self._now()

        def create(txn: Txn) -> Partner:
            new_id = _unique(txn, lambda: PARTNERS.insert(txn, {
                "login": login, "password_hash": password_hash, "group_id": group_id,
                "created_at": now, **fields}), f"a partner {login!r}")
            return PARTNERS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get_partner(self, partner_id: int) -> Partner | None:
        return await self._db.run_interaction(PARTNERS.get, partner_id)

    async def find_partner(self, login: str) -> Partner | None:
        rows = await self._db.run_interaction(PARTNERS.select, "login = ?", (login,))
        return rows[0] if rows else None

    async def list_partners(self) -> list[Partner]:
        return await self._db.run_interaction(PARTNERS.select, order="login")

    async def update_partner(self, partner_id: int, **changes: Any) -> bool:
        """Change a partner; :class:`Conflict` when its new login is another's."""
        return await self._db.run_interaction(_update_unique, PARTNERS, partner_id, changes,
                                              "a partner with that login")

    async def delete_partner(self, partner_id: int) -> bool:
        return await self._db.run_interaction(PARTNERS.delete, partner_id)

    async def set_admin_password_hash(self, login: str, password_hash: str) -> None:
        now = self._now()

        def put(txn: Txn) -> None:
            txn.execute(txn.dialect.upsert("admins", ("login", "password_hash", "updated_at"),
                                           ("login",)), (login, password_hash, now))
        await self._db.run_interaction(put)

    async def get_admin(self, login: str) -> Admin | None:
        return await self._db.run_interaction(ADMINS.get, login)


def _update_unique(txn: Txn, table: Table[Any], key: Any, changes: dict[str, Any],
                   what: str) -> bool:
    """``table.update``; :class:`Conflict` (naming ``what``) when a unique column clashes."""
    return bool(_unique(txn, lambda: table.update(txn, key, changes), what))


def _user_in(txn: Txn, user_id: int, group_id: int | None) -> User | None:
    """The user, if they exist (and are in ``group_id``, when given)."""
    if group_id is None:
        return USERS.get(txn, user_id)
    rows = USERS.select(txn, "id = ? AND group_id = ?", (user_id, group_id))
    return rows[0] if rows else None


async def _hash_pin_field(fields: dict[str, Any]) -> None:
    """A clear ``pin`` among ``fields`` becomes ``pin_hash`` (hashed on a thread)."""
    if "pin_hash" in fields:
        raise ValueError("a PIN is given in clear as pin=, and stored as its hash only")
    if "pin" in fields:
        fields["pin_hash"] = await hash_pin_off_reactor(str(fields.pop("pin") or ""))


def _check_user_fields(fields: dict[str, Any]) -> None:
    for name in ("voice_number", "access_code"):
        if name in fields:
            value = fields[name]
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise ValueError(f"{name} must be a non-empty code without spaces, got {value!r}")
    pin = fields.get("pin")
    if pin is not None and (not isinstance(pin, str) or (pin and not pin.isdigit())
                            or len(pin) > 16):
        raise ValueError("a PIN is up to 16 digits (its value is not shown)")
    if "status" in fields and fields["status"] not in USER_STATUSES:
        raise ValueError(f"status must be {' or '.join(USER_STATUSES)}, got {fields['status']!r}")
