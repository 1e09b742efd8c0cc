"""The operator's JSON and XML API under ``/ai/api``: the objects of the admin pages for
scripts (billing systems topping up balances, provisioning users).

Every request is checked in this order: the client address against ``[CGI]
TRUSTED_4_AI_DF`` (403), HTTP Basic with an admin's or a partner's login (401; throttled
with the login page's counters), then the route.  No cookie is read or set, so there is no
CSRF to check.  A partner is held to its group by the storage layer (``in_group=``), as in
the pages; the catalogue (tariffs, groups and their limits, partners, nodes, DIDs) is the
operator's to change, with the fields, store calls and refusals of the catalogue pages.
Answers are JSON, or XML for a path ending in ``.xml``, ``?format=xml`` or an
``Accept`` preferring XML; see ``docs/api.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.web.iweb import IRequest

from xvbd.passwords import needs_rehash
from xvbd.store.accounts import (
    Conflict,
    InsufficientBalance,
    NotFound,
    Partner,
    User,
)
from xvbd.store.audit import acting
from xvbd.store.cdr import CDRFilter, CDRKey
from xvbd.store.lockouts import Lockout
from xvbd.web import apiformat
from xvbd.web.admin import schemas
from xvbd.web.admin.base import COOKIE, ROOT, AdminBase, Staff, app, log
from xvbd.web.apirequest import (
    REALM,
    ApiError,
    Handler,
    ProvenLogins,
    basic_credentials,
    body_fields,
    endpoints,
    negotiate_format,
    plain,
    query_fields,
    serve,
    time_arg,
    unknown_endpoint,
    unknown_errors,
)
from xvbd.web.forms import Field, FieldError, parse_fields
from xvbd.web.security import client_address, password_matches
from xvbd.web.templating import money

#: How long a proven (login, password) is trusted without checking the hash again.
CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
MAX_LIMIT = 500
ID = "<int(max=999999999999999999):user_id>"
GROUP_ID = "<int(max=999999999999999999):group_id>"
TARIFF_ID = "<int(max=999999999999999999):tariff_id>"
PARTNER_ID = "<int(max=999999999999999999):partner_id>"
ITEM_NAMES = {"users": "user", "groups": "group", "tariffs": "tariff", "nodes": "node",
              "cdrs": "cdr", "entries": "entry", "dids": "did", "history": "op",
              "partners": "partner", "didattrs": "didattr", "lockouts": "lockout"}
TARIFF_MONEY = frozenset(f.name for f in schemas.TARIFF if f.kind == "money")
GROUP_FIELD = next(f for f in schemas.USER if f.name == "group_id")
PAGING = (Field("limit", "limit", "int", minimum=1, maximum=MAX_LIMIT),)
TYPE_LIMIT = (schemas.TYPE_LIMIT,)


#: Who is calling the API: the admin, or a partner held to its group (no session).
ApiCaller = Staff


endpoint = endpoints(app, "_api_serve", "api")


class ApiRoutes(AdminBase):
    """``/ai/api/...``: see ``docs/api.md``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_proven = ProvenLogins(CACHE_SECONDS, CACHE_SIZE)

    # ------------------------------------------------------------------ the frame

    async def _api_serve(self, request: IRequest, handler: Handler, kw: dict[str, Any]) -> bytes:
        async def work() -> Any:
            self._api_trusted(request)
            negotiate_format(request)
            return await handler(self, request, await self._api_caller(request), **kw)
        return await serve(request, ITEM_NAMES, work, "API request")

    def _api_trusted(self, request: IRequest) -> None:
        address = client_address(request)
        cgi = self.settings.cgi
        if not cgi.trusts(cgi.trusted_4_ai_df, address):
            raise ApiError(403, f"The API does not serve your address {address}; the "
                           "operator lists the addresses it serves in [CGI] TRUSTED_4_AI_DF.")

    async def _api_caller(self, request: IRequest) -> ApiCaller:
        """The admin or partner whose HTTP Basic credentials the request carries."""
        login, password = _basic(request)
        address = client_address(request)
        why = await self.guard.refused("ai", login, address)
        if why:
            raise ApiError(429, why, headers={"Retry-After": "900"})
        kind, name, stored, partner = await self._credentials(login)
        proven = self.api_proven
        key = proven.key(login, password)
        if not (kind and proven.holds(key, (kind, name), stored)):
            if not (kind and await password_matches(password, stored)):
                proven.forget(login)
                await self.guard.failed("ai", login, address)
                log.warn("failed API login as {login!r} from {address}", login=login,
                         address=address)
                raise ApiError(401, "Wrong login or password.",
                               headers={"WWW-Authenticate": REALM})
            await self.guard.succeeded("ai", login)
            if needs_rehash(stored):
                await self._rehash(kind, name, password)  # the next request proves it anew
            else:
                proven.remember(key, (kind, name), stored)
        return ApiCaller(kind, login if kind == "partner" else name, address, partner)

    # ------------------------------------------------------------------ who am I

    @endpoint("/api/whoami", ["GET"], "whoami")
    async def api_whoami(self, request: IRequest, who: ApiCaller) -> Any:
        query_fields(request, ())
        out: dict[str, Any] = {"kind": who.kind, "login": who.name, "address": who.address,
                               "group_id": who.group_id}
        if who.partner is not None:
            out["can_change_balance"] = bool(who.partner.can_change_balance)
            out.update(apiformat.money_fields("balance_limit", who.partner.balance_limit))
        return out

    # ------------------------------------------------------------------ users

    async def _api_user(self, who: ApiCaller, user_id: int) -> User:
        user = await self.store.accounts.get_user(user_id, in_group=who.group_id)
        if user is None:
            raise ApiError(404, f"There is no user {user_id}" +
                           ("" if who.is_admin else " in your group") + ".")
        return user

    @endpoint("/api/users", ["GET"], "users")
    async def api_users(self, request: IRequest, who: ApiCaller) -> Any:
        args = query_fields(request, (
            Field("phone", "phone", pattern=schemas.PHONE, pattern_help="digits, * # +"),
            Field("code", "code", pattern=schemas.CODE, pattern_help="1 to 16 digits"),
            Field("did", "did", pattern=schemas.PHONE, pattern_help="digits, * # +"),
            Field("group", "group", "int", minimum=1),
            Field("after", "after", "int", minimum=0), *PAGING))
        limit = args.get("limit", 50)
        group = args.get("group")
        if who.group_id is not None:
            if group is not None and group != who.group_id:
                return {"users": [], "next_after": None}
            group = who.group_id
        if args.get("did"):
            found = await self.store.accounts.find_user_by_did(args["did"])
            wanted = {"group_id": group, "voice_number": args.get("phone"),
                      "access_code": args.get("code")}
            if found is None or any(value and getattr(found, name) != value
                                    for name, value in wanted.items()):
                return {"users": [], "next_after": None}
            return {"users": [_user_out(found)], "next_after": None}
        users = await self.store.accounts.list_users(
            voice_number=args.get("phone") or None, access_code=args.get("code") or None,
            group_id=group, after_id=args.get("after", 0), limit=limit + 1)
        more = len(users) > limit
        users = users[:limit]
        return {"users": [_user_out(u) for u in users],
                "next_after": users[-1].id if more else None}

    def _api_user_fields(self, who: ApiCaller) -> tuple[Field, ...]:
        return tuple(f for f in schemas.USER if who.is_admin or f.name != "group_id")

    async def _api_group_in(self, who: ApiCaller, data: dict[str, Any]) -> dict[str, str]:
        """Errors about ``data``'s group: a partner's users stay in its group; the admin
        names a group that exists."""
        if "group_id" not in data:
            return {}
        raw = data["group_id"]
        if not who.is_admin:
            if str(raw).strip() == str(who.group_id):
                del data["group_id"]
                return {}
            return {"group_id": f"Group: a partner's users stay in its group "
                                f"({who.group_id}); leave group_id out."}
        try:
            group_id = GROUP_FIELD.parse(raw)
        except FieldError as exc:
            return {"group_id": str(exc)}
        if await self.store.accounts.get_group(int(group_id)) is None:
            return {"group_id": f"Group: there is no group {group_id}."}
        return {}

    @endpoint("/api/users", ["POST"], "user_create")
    async def api_user_create(self, request: IRequest, who: ApiCaller) -> Any:
        data = body_fields(request)
        fields = self._api_user_fields(who)
        errors = await self._api_group_in(who, data)
        errors = {**unknown_errors(fields, data, "a user"), **errors}
        group_id = who.group_id or data.get("group_id")
        group = await self.store.accounts.get_group(int(group_id)) if (
            group_id and not errors) else None
        defaults = {"status": "active", "max_inbound_calls": 0, "timezone": "UTC",
                    "language": (group.language if group else "") or "xvb.EN-Female"}
        values, bad = parse_fields(fields, {**defaults, **data})
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if errors:
            raise ApiError(400, "The user was not added: some fields are not right.", errors)
        group_id = who.group_id or values.pop("group_id")
        try:
            with acting(who.actor):
                user = await self.store.accounts.create_user(
                    values.pop("voice_number"), values.pop("access_code"), int(group_id),
                    **values)
        except Conflict as exc:
            raise ApiError(409, f"The user was not added: {exc}.",
                           {"access_code": str(exc)}) from None
        except ValueError as exc:
            raise ApiError(400, f"The user was not added: {exc}.") from None
        request.setResponseCode(201)
        request.setHeader(b"Location", f"{ROOT}/api/users/{user.id}".encode())
        return {"user": _user_out(user, [])}

    @endpoint(f"/api/users/{ID}", ["GET"], "user")
    async def api_user(self, request: IRequest, who: ApiCaller, user_id: int) -> Any:
        query_fields(request, ())
        user = await self._api_user(who, user_id)
        return {"user": _user_out(user, await self.store.accounts.user_dids(user.id))}

    @endpoint(f"/api/users/{ID}", ["PATCH", "POST"], "user_save")
    async def api_user_save(self, request: IRequest, who: ApiCaller, user_id: int) -> Any:
        user = await self._api_user(who, user_id)
        data = body_fields(request)
        fields = self._api_user_fields(who)
        errors = await self._api_group_in(who, data)
        errors = {**unknown_errors(fields, data, "a user"), **errors}
        values, bad = parse_fields(fields, data, partial=True)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if errors:
            raise ApiError(400, "The user was not changed: some fields are not right.", errors)
        if not values:
            raise ApiError(400, "Nothing to change: send at least one field of the user.")
        if "group_id" in values:
            values["group_id"] = int(values["group_id"])
        try:
            with acting(who.actor):
                found = await self.store.accounts.update_user(user.id, in_group=who.group_id,
                                                              **values)
        except Conflict as exc:
            raise ApiError(409, f"The user was not changed: {exc}.",
                           {"access_code": str(exc)}) from None
        except ValueError as exc:
            raise ApiError(400, f"The user was not changed: {exc}.") from None
        if not found:
            raise ApiError(404, f"There is no user {user_id}.")
        if values.get("status") == "locked" and user.status != "locked":
            await self.store.sessions.close_all("user", str(user.id))
        return await self.api_user(request, who, user_id)

    @endpoint(f"/api/users/{ID}", ["DELETE"], "user_delete_method")
    @endpoint(f"/api/users/{ID}/delete", ["POST"], "user_delete")
    async def api_user_delete(self, request: IRequest, who: ApiCaller, user_id: int) -> Any:
        user = await self._api_user(who, user_id)
        with acting(who.actor):
            deleted = await self.store.accounts.delete_user(user.id, in_group=who.group_id)
        if not deleted:
            raise ApiError(404, f"There is no user {user_id}.")
        await self.store.sessions.close_all("user", str(user.id))
        return {"deleted": True, "id": user.id}

    @endpoint(f"/api/users/{ID}/balance", ["POST"], "balance")
    async def api_balance(self, request: IRequest, who: ApiCaller, user_id: int) -> Any:
        user = await self._api_user(who, user_id)
        data = body_fields(request)
        errors = unknown_errors(schemas.BALANCE, data, "a balance change")
        values, bad = parse_fields(schemas.BALANCE, data)
        errors.update(bad)
        problem = who.balance_change_problem(None if "amount" in errors else values["amount"])
        if problem:
            errors["amount"] = problem
        if errors:
            raise ApiError(400, "The balance was not changed: some fields are not right.",
                           errors)
        amount = values["amount"]
        try:
            with acting(who.actor):
                balance = await self.store.accounts.change_balance(
                    user.id, amount, values["reason"], actor_kind=who.kind, actor=who.name,
                    in_group=who.group_id)
        except InsufficientBalance:
            fresh = await self._api_user(who, user_id)
            raise ApiError(409, f"The balance is {money(fresh.balance)}; a debit of "
                           f"{money(-amount)} would make it negative. Nothing was changed.",
                           {"amount": "Amount: more than the balance holds."}) from None
        except NotFound:
            raise ApiError(404, f"There is no user {user_id}.") from None
        return {"user_id": user.id, **apiformat.money_fields("amount", amount),
                **apiformat.money_fields("balance", balance)}

    @endpoint(f"/api/users/{ID}/balance-history", ["GET"], "balance_history")
    async def api_balance_history(self, request: IRequest, who: ApiCaller,
                                  user_id: int) -> Any:
        args = query_fields(request, PAGING)
        user = await self._api_user(who, user_id)
        ops = await self.store.accounts.balance_history(user.id, limit=args.get("limit", 50))
        return {"user_id": user.id, "history": [
            plain(op, money=("amount", "balance_after"), times=("created_at",))
            for op in ops]}

    @endpoint(f"/api/users/{ID}/dids/<did>", ["POST"], "did_assign")
    async def api_did_assign(self, request: IRequest, who: ApiCaller, user_id: int,
                             did: str) -> Any:
        user = await self._api_user(who, user_id)
        try:
            number = schemas.DID[0].parse(did)
        except FieldError as exc:
            raise ApiError(400, "The DID was not assigned.", {"did": str(exc)}) from None
        try:
            with acting(who.actor):
                added = await self.store.accounts.assign_did(number, user.id,
                                                             in_group=who.group_id)
        except Conflict:
            raise ApiError(409, f"The DID {number} belongs to a user already.",
                           {"did": "DID: taken"}) from None
        except NotFound:
            raise ApiError(404, f"There is no user {user_id}.") from None
        request.setResponseCode(201)
        return {"did": added.did, "user_id": added.user_id,
                **apiformat.time_fields("created_at", added.created_at)}

    @endpoint(f"/api/users/{ID}/dids/<did>", ["DELETE"], "did_release")
    @endpoint(f"/api/users/{ID}/dids/<did>/delete", ["POST"], "did_release_post")
    async def api_did_release(self, request: IRequest, who: ApiCaller, user_id: int,
                              did: str) -> Any:
        user = await self._api_user(who, user_id)
        with acting(who.actor):
            released = await self.store.accounts.release_did(did, user.id,
                                                             in_group=who.group_id)
        if not released:
            raise ApiError(404, f"The user {user.id} has no DID {did}.")
        return {"released": True, "did": did, "user_id": user.id}

    # ------------------------------------------------------------------ CDRs and journal

    @endpoint("/api/cdrs", ["GET"], "cdrs")
    async def api_cdrs(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        args = query_fields(request, (
            Field("from", "from", max_length=40), Field("to", "to", max_length=40),
            *(Field(n, n, max_length=64)
              for n in ("caller", "called", "type", "call_type", "node")),
            Field("access_code", "access_code", max_length=16),
            Field("before", "before", max_length=40), *PAGING))
        errors: dict[str, str] = {}
        start_from = time_arg(args, "from", errors)
        start_to = time_arg(args, "to", errors)
        before = None
        if args.get("before"):
            try:
                before = CDRKey.parse(args["before"])
            except ValueError:
                errors["before"] = ("before: the next_before of the previous page, like "
                                    "1764170000_42")
        if errors:
            raise ApiError(400, "Some filters are not right.", errors)
        flt = CDRFilter(start_from=start_from, start_to=start_to,
                        caller_id=args.get("caller") or None,
                        called_id=args.get("called") or None,
                        access_code=args.get("access_code") or None,
                        type=args.get("type") or None, call_type=args.get("call_type") or None,
                        server_id=args.get("node") or None)
        page = await self.store.cdrs.listing(flt, before=before, limit=args.get("limit", 50))
        return {"cdrs": [{**plain(r, money=("cost", "sys_cost"),
                                   times=("create_timestamp", "start_timestamp",
                                          "stop_timestamp", "process_timestamp")),
                          "duration": r.duration} for r in page.rows],
                "next_before": str(page.next) if page.next else None}

    @endpoint("/api/journal", ["GET"], "journal")
    async def api_journal(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        args = query_fields(request, (Field("before", "before", "int", minimum=1),
                                Field("user", "user", "int", minimum=1), *PAGING))
        limit = args.get("limit", 50)
        before = args.get("before")
        if "user" in args:
            entries = await self.store.journal.for_user(args["user"], before_id=before,
                                                        limit=limit + 1)
        else:
            entries = await self.store.journal.all(before_id=before, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return {"entries": [plain(e, times=("created_at",)) for e in entries],
                "next_before": entries[-1].id if more else None}

    # ------------------------------------------------------------------ lockouts

    @endpoint("/api/lockouts", ["GET"], "lockouts")
    async def api_lockouts(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"lockouts": [_lockout_out(lo) for lo in await self.store.lockouts.current()]}

    @endpoint("/api/lockouts/<int(max=999999999999999999):lockout_id>/lift", ["POST"],
              "lockout_lift")
    async def api_lockout_lift(self, request: IRequest, who: ApiCaller, lockout_id: int
                               ) -> Any:
        operator_only(who)
        with acting(who.actor):
            lifted = await self.store.lockouts.lift(lockout_id, who.name)
        if lifted is None:
            raise ApiError(404, f"Lockout {lockout_id} is not in force (it ended, or was "
                           "lifted already); GET /ai/api/lockouts lists the ones that are.")
        log.info("lockout {id} of {source} ({what}) lifted by {who} from {address} (API)",
                 id=lifted.id, source=lifted.source, what=lifted.what, who=who.name,
                 address=who.address)
        return _lockout_out(lifted)

    # ------------------------------------------------------------------ anything else

    @app.route("/api", methods=None, endpoint="api_unknown_root")
    @app.route("/api/", methods=None, endpoint="api_unknown_slash")
    @app.route("/api/<path:rest>", methods=None, endpoint="api_unknown")
    async def api_unknown(self, request: IRequest, rest: str = "") -> bytes:
        """No such endpoint (or not with this method): an answer in the API's format."""
        return await unknown_endpoint(request, ITEM_NAMES, self._api_trusted, self.app, ROOT,
                                      "api_unknown")


# ---------------------------------------------------------------------- requests


def _lockout_out(lockout: Lockout) -> dict[str, Any]:
    return {**plain(lockout, times=("started_at", "ends_at", "lifted_at")),
            "what": lockout.what}


def operator_only(who: ApiCaller) -> None:
    if not who.is_admin:
        raise ApiError(403, "This endpoint is the operator's; a partner manages the users of "
                       "its group only.")


def taken_error(kind: str, what: str, value: str, field: str) -> ApiError:
    """The 409 of a change that would repeat another object's unique name (the storage
    layer's :class:`Conflict`), naming the value as the storage layer does when adding."""
    message = f"{what} {value!r} already exists"
    return ApiError(409, f"The {kind} was not changed: {message}.", {field: message})


def _basic(request: IRequest) -> tuple[str, str]:
    return basic_credentials(request, cookie=COOKIE,
                             who="an admin's or a partner's login and password")


# ---------------------------------------------------------------------- answers


def _user_out(user: User, dids: Sequence[Any] | None = None) -> dict[str, Any]:
    """A user without their secrets (the PIN is said to be set or not, never given)."""
    out = plain(user, money=("balance",), times=("created_at", "updated_at"))
    del out["web_password_hash"]
    out["pin_set"] = bool(out.pop("pin_hash"))
    if dids is not None:
        out["dids"] = [d.did for d in dids]
    return out


def partner_out(partner: Partner) -> dict[str, Any]:
    """A partner without its password hash."""
    out = plain(partner, money=("balance_limit",), times=("created_at",))
    del out["password_hash"]
    return out
