"""The tenant's JSON/XML API under ``/ui/api``: their extensions, messages, greetings,
variables, calls and journal, for their own scripts.

Every request is checked in this order: the client address against ``[CGI]
TRUSTED_4_UI_DF`` (403); the credentials (401): an API key made on the Account page as
``Authorization: Bearer <key>``, or HTTP Basic with ``VOICENUMBER#ACCESSCODE`` and the web
password set there (the PIN is not enough for the API; throttled with the login page's
counters); the group's "API" feature (403); a read key on anything but GET or HEAD (403);
then the route.  Everything is read and
changed through the tenant's own id in the storage layer.  See ``docs/api.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.engine.types import SettingsError, read_settings
from xvbd.mail.addresses import BadAddress, parse_addresses
from xvbd.outbound.callblast import ItemSettings
from xvbd.store.accounts import Conflict, NotFound, User
from xvbd.store.apikeys import ApiKey
from xvbd.store.audit import acting
from xvbd.store.cdr import CDRFilter, CDRKey
from xvbd.store.ivr import Extension
from xvbd.web import apiformat
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
from xvbd.web.forms import Field, parse_fields
from xvbd.web.security import client_address, password_matches, secure_headers
from xvbd.web.tenant.account import ACCOUNT, ZONES
from xvbd.web.tenant.base import COOKIE, ROOT, Tenant, app, log
from xvbd.web.tenant.greetings import GreetingPages, list_greetings
from xvbd.web.tenant.ivr import IvrPages, check_settings, limit_problem
from xvbd.web.tenant.lists import VAR_NAME, ListPages, phones_of
from xvbd.web.tenant.messages import MessagePages, _as_wav

CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
MAX_LIMIT = 500
ITEM_NAMES = {"extensions": "extension", "messages": "message", "greetings": "greeting",
              "entries": "entry", "cdrs": "cdr", "variables": "variable", "phones": "phone",
              "dids": "did", "employees": "employee", "items": "item", "options": "option",
              "results": "result"}
EXT_ID = "<int(max=999999999999999999):ext_id>"
MSG_ID = "<int(max=999999999999999999):message_id>"
PAGING = (Field("limit", "limit", "int", minimum=1, maximum=MAX_LIMIT),
          Field("before", "before", "int", minimum=1))
BEARER_REALM = 'Bearer realm="xvbd"'
EXTENSION_FIELDS = frozenset({"parent_id", "number", "type", "name", "settings"})

endpoint = endpoints(app, "_tapi_serve", "tapi")


@dataclass(frozen=True)
class Audio:
    """An answer that is a sound (WAV), not JSON or XML."""

    body: bytes
    filename: str


def extension_out(ext: Extension) -> dict[str, Any]:
    out = plain(ext, times=("created_at", "updated_at"))
    out["number"] = ext.number
    out["cdr_number"] = ext.cdr_number
    out["settings"] = ext.settings_dict()
    return out


class TenantApi(ListPages, GreetingPages, MessagePages, IvrPages):
    """``/ui/api/...``: see ``docs/api.md``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tapi_proven = ProvenLogins(CACHE_SECONDS, CACHE_SIZE)

    async def _tapi_serve(self, request: IRequest, handler: Handler,
                          kw: dict[str, Any]) -> bytes:
        async def work() -> Any:
            self._tapi_trusted(request)
            negotiate_format(request)
            return await handler(self, request, await self._tapi_tenant(request), **kw)

        def sound(fmt: str, data: Any) -> bytes | None:
            if not isinstance(data, Audio):
                return None
            secure_headers(request, b"audio/wav")
            request.setHeader(b"Content-Disposition",
                              f'attachment; filename="{data.filename}"'.encode("ascii"))
            return data.body
        return await serve(request, ITEM_NAMES, work, "tenant API request", sound)

    def _tapi_trusted(self, request: IRequest) -> None:
        address = client_address(request)
        cgi = self.settings.cgi
        if not cgi.trusts(cgi.trusted_4_ui_df, address):
            raise ApiError(403, f"The API does not serve your address {address}; your "
                           "provider lists the addresses it serves in [CGI] TRUSTED_4_UI_DF.")

    async def _tapi_tenant(self, request: IRequest) -> Tenant:
        scheme, _, token = (request.getHeader("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            return await self._tapi_key_tenant(request, token.strip())
        login, password = basic_credentials(
            request, cookie=COOKIE,
            who="your phone number and access code as NUMBER#CODE and your web password, "
                "or an API key from your Account page as 'Authorization: Bearer <key>'")
        address = client_address(request)
        why = await self.guard.refused("ui", login, address)
        if why:
            raise ApiError(429, why, headers={"Retry-After": "900"})
        number, _, code = login.partition("#")
        user = await self.store.accounts.find_user(number, code) if code else None
        proven = self.tapi_proven
        key = proven.key(login, password)
        if not (user is not None and user.web_password_hash and
                proven.holds(key, user.id, user.web_password_hash)):
            if user is None or not await password_matches(password, user.web_password_hash):
                proven.forget(login)
                await self.guard.failed("ui", login, address)
                log.warn("failed tenant API login as {login!r} from {address}", login=login,
                         address=address)
                raise ApiError(401, "Wrong login or web password. The login is "
                               "NUMBER#CODE; the API takes the web password you set on the "
                               "Account page, not the PIN.",
                               headers={"WWW-Authenticate": REALM})
            await self.guard.succeeded("ui", login)
            proven.remember(key, user.id, user.web_password_hash)
        return await self._tapi_admitted(user, address)

    async def _tapi_admitted(self, user: User, address: str,
                             api_key: ApiKey | None = None) -> Tenant:
        """The tenant of proven credentials, unless their account or plan refuses the API."""
        if user.locked:
            raise ApiError(403, "Your account is locked; ask your provider.")
        group = await self.store.accounts.get_group(user.group_id)
        if group is None or not group.allow_api:
            raise ApiError(403, "Your plan does not include the API; ask your provider.")
        return Tenant(user, group, address, _API_SESSION, api_key)

    async def _tapi_key_tenant(self, request: IRequest, token: str) -> Tenant:
        """The tenant whose API key ``token`` is: 401 for a key unknown or revoked, 403 for
        a read key on a method that changes things."""
        address = client_address(request)
        key = await self.store.api_keys.authenticate(token)
        if key is None:
            log.warn("tenant API request with an unknown API key from {address}",
                     address=address)
            raise ApiError(401, "This API key is not one of ours: send 'Authorization: "
                           "Bearer' and the whole key shown when it was made on your "
                           "Account page, or make a new one there.",
                           headers={"WWW-Authenticate": BEARER_REALM})
        if key.revoked:
            raise ApiError(401, f"The API key {key.prefix}... ({key.name}) was revoked; make "
                           "a new one on your Account page.",
                           headers={"WWW-Authenticate": BEARER_REALM})
        user = await self.store.accounts.get_user(key.user_id)
        if user is None:
            raise ApiError(401, "This API key's account is gone.",
                           headers={"WWW-Authenticate": BEARER_REALM})
        who = await self._tapi_admitted(user, address, key)
        if not key.writes and request.method not in (b"GET", b"HEAD"):
            raise ApiError(403, f"The API key {key.prefix}... ({key.name}) is read-only: it "
                           "may only GET. Use a write key to change things (make one on "
                           "your Account page).")
        return who

    @staticmethod
    def _tapi_writable(who: Tenant) -> None:
        if who.read_only:
            raise ApiError(403, "Your account is read-only: you can read everything but not "
                           "change it.")

    # ------------------------------------------------------------------ account

    @endpoint("/api/whoami", ["GET"], "whoami")
    async def tapi_whoami(self, request: IRequest, who: Tenant) -> Any:
        query_fields(request, ())
        user = who.user
        out: dict[str, Any] = {"id": user.id, "voice_number": user.voice_number,
                               "access_code": user.access_code, "name": user.name,
                               "email": user.email, "timezone": user.timezone,
                               "read_only": bool(user.read_only), "group": who.group.name}
        key = who.api_key
        out["credential"] = ({"kind": "key", "name": key.name, "prefix": key.prefix,
                              "scope": key.scope} if key is not None
                             else {"kind": "password"})
        out.update(apiformat.money_fields("balance", user.balance))
        out["dids"] = [d.did for d in await self.store.accounts.user_dids(user.id)]
        out["limits"] = {name: getattr(who.group, name) for name in (
            "max_extensions", "max_messages_total", "max_messages_per_ext",
            "max_followme_phones", "max_schedule_items", "max_gotoif_items",
            "max_callblast_items", "max_callblast_phones", "max_greeting_duration")}
        return out

    # ------------------------------------------------------------------ extensions

    @endpoint("/api/extensions", ["GET"], "extensions")
    async def tapi_extensions(self, request: IRequest, who: Tenant) -> Any:
        query_fields(request, ())
        return {"extensions": [extension_out(e) for e in await self.store.ivr.tree(who.id)]}

    @endpoint(f"/api/extensions/{EXT_ID}", ["GET"], "extension")
    async def tapi_extension(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        query_fields(request, ())
        return {"extension": extension_out(await self._ext(who, ext_id))}

    def _tapi_extension_body(self, request: IRequest) -> dict[str, Any]:
        data = body_fields(request, nested=frozenset({"settings"}))
        unknown = sorted(set(data) - EXTENSION_FIELDS)
        if unknown:
            raise ApiError(400, "Some fields are not right.", {
                k: f"{k}: not a field of an extension (they are: "
                   f"{', '.join(sorted(EXTENSION_FIELDS))})" for k in unknown})
        if "settings" in data and not isinstance(data["settings"], dict):
            raise ApiError(400, "settings must be a JSON object.",
                           {"settings": "a JSON object of the type's settings"})
        return data

    @endpoint("/api/extensions", ["POST"], "extension_create")
    async def tapi_extension_create(self, request: IRequest, who: Tenant) -> Any:
        self._tapi_writable(who)
        data = self._tapi_extension_body(request)
        type_name, settings = str(data.get("type", "")), data.get("settings") or {}
        why = check_settings(type_name, settings) or limit_problem(who.group, type_name,
                                                                   settings)
        if not why:
            why = await self._room_for(who, type_name)
        if why:
            raise ApiError(400, f"The extension was not added: {why}",
                           {"settings" if "setting" in why else "type": why})
        parent_id = data.get("parent_id")
        try:
            with acting(who.actor):
                if parent_id in (None, ""):
                    if await self.store.ivr.root(who.id) is not None:
                        raise ApiError(409, "You have a main menu already; give parent_id.")
                    ext = await self.store.ivr.create_root(who.id, type_name, settings,
                                                           str(data.get("name", ""))[:64])
                else:
                    parent = await self._ext(who, _int(parent_id, "parent_id"))
                    ext = await self.store.ivr.add_child(
                        who.id, parent.id, str(data.get("number", "")), type_name, settings,
                        str(data.get("name", ""))[:64])
        except Conflict as exc:
            raise ApiError(409, f"The extension was not added: {exc}.") from None
        except (NotFound, ValueError) as exc:
            raise ApiError(400, f"The extension was not added: {exc}.") from None
        self.changed(who)
        request.setResponseCode(201)
        request.setHeader(b"Location", f"{ROOT}/api/extensions/{ext.id}".encode())
        return {"extension": extension_out(ext)}

    @endpoint(f"/api/extensions/{EXT_ID}", ["PATCH", "POST"], "extension_save")
    async def tapi_extension_save(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        self._tapi_writable(who)
        ext = await self._ext(who, ext_id)
        data = self._tapi_extension_body(request)
        if "type" in data and data["type"] != ext.type:
            raise ApiError(400, "An extension's type does not change; delete it and add "
                           "one of the other type.", {"type": "the type stays"})
        settings = data.get("settings")
        if settings is not None:
            why = check_settings(ext.type, settings) or limit_problem(who.group, ext.type,
                                                                      settings)
            if why:
                raise ApiError(400, f"The extension was not changed: {why}",
                               {"settings": why})
        moves = "parent_id" in data or "number" in data
        if moves and ext.parent_id is None:
            raise ApiError(400, "The main menu has no number and does not move.")
        parent_id = _int(data.get("parent_id") or ext.parent_id, "parent_id") if moves else 0
        try:
            with acting(who.actor):  # the move may be refused: first
                if moves:
                    await self.store.ivr.move(who.id, ext.id, parent_id,
                                              str(data.get("number", ext.number)))
                await self.store.ivr.update(
                    who.id, ext.id, settings=settings,
                    name=str(data["name"])[:64] if "name" in data else None)
        except Conflict as exc:
            raise ApiError(409, f"The extension was not changed: {exc}.") from None
        except (NotFound, ValueError) as exc:
            raise ApiError(400, f"The extension was not changed: {exc}.") from None
        self.changed(who)
        return {"extension": extension_out(await self._ext(who, ext.id))}

    @endpoint(f"/api/extensions/{EXT_ID}", ["DELETE"], "extension_delete")
    async def tapi_extension_delete(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        self._tapi_writable(who)
        ext = await self._ext(who, ext_id)
        with acting(who.actor):
            deleted = await self.store.ivr.delete(who.id, ext.id)
        self.changed(who)
        return {"deleted": deleted}

    # ------------------------------------------------------------------ messages

    @endpoint("/api/messages", ["GET"], "messages")
    async def tapi_messages(self, request: IRequest, who: Tenant) -> Any:
        args = query_fields(request, (*PAGING, Field("unread", "unread", "bool")))
        limit = args.get("limit", 50)
        rows = await self.store.messages.list(who.id, unread_only=bool(args.get("unread")),
                                              before_id=args.get("before"), limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"messages": [_message_out(m) for m in rows],
                "next_before": rows[-1].id if more else None}

    @endpoint(f"/api/messages/{MSG_ID}", ["PATCH", "POST"], "message_save")
    async def tapi_message_save(self, request: IRequest, who: Tenant, message_id: int) -> Any:
        self._tapi_writable(who)
        message = await self._message(who, message_id)
        data = body_fields(request)
        if set(data) != {"is_read"} or str(data["is_read"]).lower() not in (
                "true", "false", "1", "0"):
            raise ApiError(400, "Send is_read: true or false.", {"is_read": "true or false"})
        read = str(data["is_read"]).lower() in ("true", "1")
        with acting(who.actor):
            await self.store.messages.mark_read(who.id, message.id, read)
        return {"message": _message_out(await self.store.messages.get(who.id, message.id))}

    @endpoint(f"/api/messages/{MSG_ID}", ["DELETE"], "message_delete")
    async def tapi_message_delete(self, request: IRequest, who: Tenant,
                                  message_id: int) -> Any:
        self._tapi_writable(who)
        await self.delete_message(who, message_id)
        return {"deleted": 1}

    # ------------------------------------------------------------------ greetings, variables

    @endpoint("/api/greetings", ["GET"], "greetings")
    async def tapi_greetings(self, request: IRequest, who: Tenant) -> Any:
        query_fields(request, ())
        found = await deferToThread(list_greetings, self._dir(who), self._format(who))
        return {"greetings": [{"name": g.name, "reference": g.reference, "seconds": g.seconds,
                               "bytes": g.size} for g in found]}

    @endpoint("/api/variables", ["GET"], "variables")
    async def tapi_variables(self, request: IRequest, who: Tenant) -> Any:
        query_fields(request, ())
        values = await self.store.features.all_vars(who.id)
        return {"variables": [{"name": k, "value": v} for k, v in sorted(values.items())]}

    # ------------------------------------------------------------------ calls, journal

    @endpoint("/api/cdrs", ["GET"], "cdrs")
    async def tapi_cdrs(self, request: IRequest, who: Tenant) -> Any:
        args = query_fields(request, (
            Field("limit", "limit", "int", minimum=1, maximum=MAX_LIMIT),
            Field("before", "before", max_length=40), Field("from", "from", max_length=40),
            Field("to", "to", max_length=40), Field("caller", "caller", max_length=64),
            Field("called", "called", max_length=64), Field("type", "type", max_length=32)))
        errors: dict[str, str] = {}
        start, stop = time_arg(args, "from", errors), time_arg(args, "to", errors)
        if errors:
            raise ApiError(400, "Some query parameters are not right.", errors)
        limit = args.get("limit", 50)
        try:
            before = CDRKey.parse(args["before"]) if args.get("before") else None
        except ValueError as exc:
            raise ApiError(400, str(exc), {"before": "the next_before of the last page"}) \
                from None
        page = await self.store.cdrs.user_listing(
            who.id, CDRFilter(start_from=start, start_to=stop, caller_id=args.get("caller"),
                              called_id=args.get("called"), type=args.get("type")),
            before=before, limit=limit)
        return {"cdrs": [_cdr_out(r) for r in page.rows],
                "next_before": str(page.next) if page.next else None}

    @endpoint("/api/journal", ["GET"], "journal")
    async def tapi_journal(self, request: IRequest, who: Tenant) -> Any:
        args = query_fields(request, PAGING)
        limit = args.get("limit", 50)
        entries = await self.store.journal.for_user(who.id, before_id=args.get("before"),
                                                    limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return {"entries": [plain(e, times=("created_at",)) for e in entries],
                "next_before": entries[-1].id if more else None}

    @endpoint(f"/api/messages/{MSG_ID}/audio", ["GET"], "message_audio")
    async def tapi_message_audio(self, request: IRequest, who: Tenant, message_id: int) -> Any:
        """The recording as WAV (marks the message read, as playing it on the page does)."""
        message = await self._message(who, message_id)
        body = await deferToThread(_as_wav, await self._file(who, message),
                                   message.file_format)
        if body is None:
            raise ApiError(404, "This message's recording is missing or cannot be read.")
        if not message.is_read and not who.read_only:
            await self.store.messages.mark_read(who.id, message.id)
        return Audio(body, f"message-{message.id}.wav")

    # ------------------------------------------------------------------ account

    @endpoint("/api/account", ["PATCH", "POST"], "account_save")
    async def tapi_account_save(self, request: IRequest, who: Tenant) -> Any:
        self._tapi_writable(who)
        data = body_fields(request)
        errors = unknown_errors(ACCOUNT, data, "your account")
        values, bad = parse_fields(ACCOUNT, data, partial=True)
        errors.update(bad)
        zone = values.get("timezone")
        if zone is not None and zone and zone not in ZONES:
            errors["timezone"] = (f"timezone: {zone!r} is not one this server knows; use a "
                                  "name like Europe/Moscow")
        if values.get("email") is not None and "email" not in errors:
            try:
                values["email"] = ", ".join(parse_addresses(
                    values["email"], allow_local=self.settings.email.allow_local))
            except BadAddress as exc:
                errors["email"] = f"email: {exc}"
        if errors:
            raise ApiError(400, "Your account was not changed: some fields are not right.",
                           errors)
        if not values:
            raise ApiError(400, "Nothing to change: send name, email or timezone.")
        with acting(who.actor):
            await self.store.accounts.update_user(who.id, **values)
        self.changed(who)
        fresh = await self.store.accounts.get_user(who.id)
        assert fresh is not None
        return await self.tapi_whoami(request, Tenant(fresh, who.group, who.address,
                                                      who.session, who.api_key))

    # ------------------------------------------------------------------ lists of extensions

    @endpoint(f"/api/extensions/{EXT_ID}/employees", ["GET"], "employees")
    async def tapi_employees(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        query_fields(request, ())
        ext = await self._ext_of(who, ext_id, "Directory")
        return {"employees": [_employee_out(e) for e in
                              await self.store.features.directory(who.id, ext.id)]}

    def _tapi_employee(self, request: IRequest) -> dict[str, Any]:
        data = body_fields(request, nested=frozenset({"phones"}))
        phones = data.get("phones", [])
        text = "\n".join(map(str, phones)) if isinstance(phones, list) else str(phones)
        values, why = self._employee({"number": str(data.get("number", "")),
                                      "name": str(data.get("name", "")),
                                      "phones": text,
                                      "recording": str(data.get("recording", ""))})
        unknown = sorted(set(data) - {"number", "name", "phones", "recording"})
        if unknown:
            why = f"not fields of an employee: {', '.join(unknown)}"
        if why:
            raise ApiError(400, f"The employee was not saved: {why}")
        return values

    @endpoint(f"/api/extensions/{EXT_ID}/employees", ["POST"], "employee_add")
    async def tapi_employee_add(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        self._tapi_writable(who)
        ext = await self._ext_of(who, ext_id, "Directory")
        values = self._tapi_employee(request)
        try:
            with acting(who.actor):
                entry = await self.store.features.add_directory_entry(who.id, ext.id, **values)
            self.changed(who)  # calls hear the directory as it is now
        except Conflict:
            raise ApiError(409, f"Number {values['number']} belongs to another employee "
                           "already.") from None
        request.setResponseCode(201)
        return {"employee": _employee_out(entry)}

    async def _tapi_entry(self, who: Tenant, entry_id: int) -> Any:
        entry = await self.store.features.directory_entry(who.id, entry_id)
        if entry is None:
            raise ApiError(404, f"You have no employee {entry_id}.")
        return entry

    @endpoint("/api/employees/<int(max=999999999999999999):entry_id>", ["PATCH", "POST"],
              "employee_save")
    async def tapi_employee_save(self, request: IRequest, who: Tenant, entry_id: int) -> Any:
        self._tapi_writable(who)
        entry = await self._tapi_entry(who, entry_id)
        values = self._tapi_employee(request)
        try:
            with acting(who.actor):
                await self.store.features.update_directory_entry(who.id, entry.id, **values)
            self.changed(who)  # calls hear the directory as it is now
        except Conflict:
            raise ApiError(409, f"Number {values['number']} belongs to another employee "
                           "already.") from None
        return {"employee": _employee_out(await self._tapi_entry(who, entry.id))}

    @endpoint("/api/employees/<int(max=999999999999999999):entry_id>", ["DELETE"],
              "employee_delete")
    async def tapi_employee_delete(self, request: IRequest, who: Tenant, entry_id: int) -> Any:
        self._tapi_writable(who)
        entry = await self._tapi_entry(who, entry_id)
        with acting(who.actor):
            await self.store.features.delete_directory_entry(who.id, entry.id)
        self.changed(who)  # calls hear the directory as it is now
        return {"deleted": 1}

    @endpoint(f"/api/extensions/{EXT_ID}/callblast", ["GET"], "callblast")
    async def tapi_callblast(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        query_fields(request, ())
        ext = await self._ext_of(who, ext_id, "CallBlast")
        items = await self.store.callblast.list_items(who.id, ext.id)
        return {"items": [await self._tapi_item_out(who, i) for i in items]}

    async def _tapi_item_out(self, who: Tenant, item: Any) -> dict[str, Any]:
        out = plain(item, times=("created_at", "updated_at"))
        out["settings"] = json.loads(item.settings or "{}")
        out["phones"] = [plain(p, times=("last_attempt_at", "next_attempt_at"))
                         for p in await self.store.callblast.phones(who.id, item.id)]
        for phone in out["phones"]:
            for private in ("locked_by", "locked_until", "user_id"):
                phone.pop(private, None)
        return out

    @endpoint(f"/api/extensions/{EXT_ID}/callblast", ["POST"], "callblast_add")
    async def tapi_callblast_add(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        self._tapi_writable(who)
        ext = await self._ext_of(who, ext_id, "CallBlast")
        data = body_fields(request, nested=frozenset({"settings", "phones"}))
        unknown = sorted(set(data) - {"name", "message", "settings", "phones"})
        settings = data.get("settings") or {}
        phones_in = data.get("phones") or []
        why = f"not fields of a list: {', '.join(unknown)}" if unknown else ""
        if not why and (not isinstance(settings, dict) or not isinstance(phones_in, list)):
            why = "settings is a JSON object and phones a list of numbers"
        if not why:
            try:
                read_settings(ItemSettings, settings)
            except SettingsError as exc:
                why = str(exc)
        phones, bad = phones_of("\n".join(map(str, phones_in)))
        why = why or bad
        if why:
            raise ApiError(400, f"The list was not added: {why}")
        try:
            with acting(who.actor):
                item = await self.store.callblast.create_item(
                    who.id, ext.id, name=str(data.get("name", ""))[:64],
                    message=str(data.get("message", ""))[:255], settings=settings,
                    phones=phones)
        except Conflict as exc:
            raise ApiError(409, f"The list was not added: {exc}.") from None
        request.setResponseCode(201)
        return {"item": await self._tapi_item_out(who, item)}

    @endpoint("/api/callblast/<int(max=999999999999999999):item_id>", ["GET"], "item")
    async def tapi_item(self, request: IRequest, who: Tenant, item_id: int) -> Any:
        query_fields(request, ())
        item = await self._item(who, item_id)
        out = await self._tapi_item_out(who, item)
        out["results"] = [plain(r, times=("created_at",)) for r in
                          await self.store.callblast.results(who.id, item.id, 500)]
        return {"item": out}

    @endpoint("/api/callblast/<int(max=999999999999999999):item_id>", ["PATCH", "POST"],
              "item_save")
    async def tapi_item_save(self, request: IRequest, who: Tenant, item_id: int) -> Any:
        self._tapi_writable(who)
        item = await self._item(who, item_id)
        data = body_fields(request)
        wanted = str(data.get("status", ""))
        if set(data) != {"status"} or wanted not in ("paused", "active"):
            raise ApiError(400, "Send status: paused (no new call is placed) or active "
                           "(called again within its hours).",
                           {"status": "paused or active"})
        item = await self.set_paused(who, item, wanted == "paused")
        return {"item": await self._tapi_item_out(who, item)}

    @endpoint("/api/callblast/<int(max=999999999999999999):item_id>/phones", ["POST"],
              "item_phones")
    async def tapi_item_phones(self, request: IRequest, who: Tenant, item_id: int) -> Any:
        self._tapi_writable(who)
        item = await self._item(who, item_id)
        data = body_fields(request, nested=frozenset({"phones"}))
        phones_in = data.get("phones")
        if set(data) != {"phones"} or not isinstance(phones_in, list):
            raise ApiError(400, "Send phones: a list of numbers.", {"phones": "a list"})
        phones, why = phones_of("\n".join(map(str, phones_in)))
        if why:
            raise ApiError(400, why, {"phones": why})
        added, why = await self.add_phones(who, item, phones)
        if why:
            raise ApiError(409, why)
        return {"added": added, "item": await self._tapi_item_out(who, item)}

    @endpoint("/api/callblast/<int(max=999999999999999999):item_id>/phones/"
              "<int(max=999999999999999999):phone_id>", ["DELETE"], "item_phone_delete")
    async def tapi_item_phone_delete(self, request: IRequest, who: Tenant, item_id: int,
                                     phone_id: int) -> Any:
        self._tapi_writable(who)
        await self.delete_phone(who, await self._item(who, item_id), phone_id)
        return {"deleted": 1}

    @endpoint("/api/callblast/<int(max=999999999999999999):item_id>", ["DELETE"],
              "item_delete")
    async def tapi_item_delete(self, request: IRequest, who: Tenant, item_id: int) -> Any:
        self._tapi_writable(who)
        item = await self._item(who, item_id)
        with acting(who.actor):
            await self.store.callblast.delete_item(who.id, item.id)
        return {"deleted": 1}

    @endpoint(f"/api/extensions/{EXT_ID}/votes", ["GET"], "votes")
    async def tapi_votes(self, request: IRequest, who: Tenant, ext_id: int) -> Any:
        query_fields(request, ())
        ext = await self._ext_of(who, ext_id, "Voting")
        results = await self.store.features.vote_results(who.id, ext.id)
        options = str(ext.settings_dict().get("options", "12"))
        return {"total": sum(results.values()),
                "options": [{"key": k, "votes": results.get(k, 0)} for k in options]}

    @endpoint("/api/variables/<name>", ["PUT", "POST"], "variable_set")
    async def tapi_variable_set(self, request: IRequest, who: Tenant, name: str) -> Any:
        self._tapi_writable(who)
        data = body_fields(request)
        value = str(data.get("value", ""))
        if not VAR_NAME.fullmatch(name) or set(data) != {"value"} or len(value) > 255:
            raise ApiError(400, "A variable's name is letters, digits and _ (up to 32, not "
                           "starting with a digit); send value (up to 255 characters).")
        await self.set_variable(who, name, value)
        return {"variable": {"name": name, "value": value}}

    @endpoint("/api/variables/<name>", ["DELETE"], "variable_delete")
    async def tapi_variable_delete(self, request: IRequest, who: Tenant, name: str) -> Any:
        self._tapi_writable(who)
        if not await self.delete_variable(who, name):
            raise ApiError(404, f"You have no variable {name}.")
        return {"deleted": 1}

    # ------------------------------------------------------------------ anything else

    @app.route("/api", methods=None, endpoint="tapi_unknown_root")
    @app.route("/api/", methods=None, endpoint="tapi_unknown_slash")
    @app.route("/api/<path:rest>", methods=None, endpoint="tapi_unknown")
    async def tapi_unknown(self, request: IRequest, rest: str = "") -> bytes:
        """No such endpoint (or not with this method): an answer in the API's format."""
        return await unknown_endpoint(request, ITEM_NAMES, self._tapi_trusted, self.app,
                                      ROOT, "tapi_unknown")


def _int(value: Any, name: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise ApiError(400, f"{name} is an extension's id (a number).", {name: "a number"})
    return int(text)


def _employee_out(entry: Any) -> dict[str, Any]:
    out = plain(entry)
    out["phones"] = entry.phone_list()
    out.pop("user_id", None)
    return out


def _message_out(message: Any) -> dict[str, Any]:
    out = plain(message, times=("created_at", "emailed_at"))
    del out["file_name"]  # where it is on the server is not the tenant's business
    out["audio"] = f"{ROOT}/api/messages/{message.id}/audio"
    return out


def _cdr_out(row: Any) -> dict[str, Any]:
    out = plain(row, money=("cost",), times=("create_timestamp", "start_timestamp",
                                             "stop_timestamp", "process_timestamp"))
    for private in ("sys_cost", "server_id", "subscr_id"):
        out.pop(private, None)
    out["duration"] = row.duration
    return out


_API_SESSION: Any = None  # the API has no web session: Tenant.session is unused there
