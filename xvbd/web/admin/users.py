"""Users (search, create, edit, lock, read-only, balance top-up and debit, DIDs), Private
DIDs and DIDs attr.  A partner sees and manages the users of its group only: the storage
layer is asked with the partner's group, so another group's user is simply not found."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from twisted.web.iweb import IRequest

from xvbd.passwords import new_pin
from xvbd.store.accounts import Conflict, InsufficientBalance, NotFound, User
from xvbd.store.audit import acting
from xvbd.web.admin import schemas
from xvbd.web.admin.base import (
    ROOT,
    AdminBase,
    Principal,
    app,
    typed,
    with_choices,
)
from xvbd.web.forms import Field, parse_fields
from xvbd.web.security import Refused, form, number_arg
from xvbd.web.templating import money

PAGE = 50


class UserPages(AdminBase):
    async def _user_fields(self, who: Principal, *, new: bool = False) -> tuple[Field, ...]:
        """The user form's fields; the PIN only when adding a user (an existing user's PIN
        is set, generated or removed on its own form, and never shown)."""
        fields = tuple(f for f in schemas.USER if new or f.name != "pin")
        if not who.is_admin:  # a partner's users stay in its group
            return tuple(f for f in fields if f.name != "group_id")
        groups = await self.store.accounts.list_groups()
        return with_choices(fields, group_id=((str(g.id), g.name) for g in groups))

    async def _user(self, who: Principal, user_id: str) -> User:
        user = await self.store.accounts.get_user(number_arg(user_id), in_group=who.group_id)
        if user is None:
            raise Refused(404, f"There is no user {user_id}" +
                          ("" if who.is_admin else " in your group") + ".")
        return user

    # ------------------------------------------------------------------ list

    @app.route("/users", methods=["GET"])
    async def users(self, request: IRequest) -> bytes:
        who = await self.staff(request)
        args = {k: v.strip()[:64] for k, v in form(request).items()}
        phone, code = args.get("phone", ""), args.get("code", "")
        group = args.get("group", "")
        after = int(args["after"]) if args.get("after", "").isdigit() else 0
        group_id = who.group_id if who.group_id is not None else (
            int(group) if group.isdigit() else None)
        users: list[User] = []
        if phone and not code:
            by_did = await self.store.accounts.find_user_by_did(phone)
            if by_did is not None and (who.group_id is None or by_did.group_id == who.group_id):
                users.append(by_did)
        users += await self.store.accounts.list_users(
            voice_number=phone or None, access_code=code or None, group_id=group_id,
            after_id=after, limit=PAGE + 1)
        more = len(users) > PAGE
        users = users[:PAGE]
        groups = {g.id: g for g in await self.store.accounts.list_groups()}
        query = {k: v for k, v in (("phone", phone), ("code", code), ("group", group)) if v}
        return self.page(request, "admin/users.html", who, users=users, groups=groups,
                         query=query, next_after=users[-1].id if more and users else None)

    # ------------------------------------------------------------------ one user

    @app.route("/users/new", methods=["GET"])
    async def user_new(self, request: IRequest) -> bytes:
        who = await self.staff(request)
        values: dict[str, Any] = {"status": "active", "max_inbound_calls": 0,
                                  "timezone": "UTC", "language": "xvb.EN-Female"}
        return self.form_page(request, who, title="New user",
                              fields=await self._user_fields(who, new=True), values=values,
                              action=f"{ROOT}/users/new", back=f"{ROOT}/users")

    @app.route("/users/new", methods=["POST"])
    async def user_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, change=True)
        fields = await self._user_fields(who, new=True)
        values, errors = parse_fields(fields, form(request))
        group_id = who.group_id if who.group_id is not None else values.pop("group_id", None)
        if not errors:
            try:
                with acting(who.actor):
                    user = await self.store.accounts.create_user(
                        values.pop("voice_number"), values.pop("access_code"), int(group_id),
                        **values)
                raise self.done(f"{ROOT}/users/{user.id}", "User added.")
            except (Conflict, ValueError) as exc:
                errors["access_code"] = str(exc)
        return self.form_page(request, who, title="New user", fields=fields,
                              values=typed(request), errors=errors,
                              action=f"{ROOT}/users/new", back=f"{ROOT}/users")

    async def _user_page(self, request: IRequest, who: Principal, user: User,
                         values: Any = None, errors: dict[str, str] | None = None,
                         balance_error: str = "", pin_error: str = "",
                         new_pin: str = "", reset_link: str = "",
                         reset_until: int = 0) -> bytes:
        if errors or balance_error or pin_error:
            request.setResponseCode(400)
        group = await self.store.accounts.get_group(user.group_id)
        tariff = await self.store.accounts.get_tariff(group.tariff_id) if group else None
        currency = await self.store.accounts.get_currency(tariff.currency_id) if tariff else None
        fields = await self._user_fields(who)
        return self.page(
            request, "admin/user.html", who, user=user, group=group, tariff=tariff,
            currency=currency, fields=fields,
            values=values if values is not None else asdict(user), errors=errors or {},
            balance_error=balance_error, pin_error=pin_error, new_pin=new_pin,
            reset_link=reset_link, reset_until=reset_until,
            may_change_balance=who.is_admin or bool(who.partner and
                                                    who.partner.can_change_balance),
            dids=await self.store.accounts.user_dids(user.id),
            history=await self.store.accounts.balance_history(user.id, limit=20),
            journal=await self.store.journal.for_user(user.id, limit=20))

    @app.route("/users/<user_id>", methods=["GET"])
    async def user(self, request: IRequest, user_id: str) -> bytes:
        who = await self.staff(request)
        return await self._user_page(request, who, await self._user(who, user_id))

    @app.route("/users/<user_id>", methods=["POST"])
    async def user_save(self, request: IRequest, user_id: str) -> bytes:
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        values, errors = parse_fields(await self._user_fields(who), form(request))
        if not errors:
            if "group_id" in values:
                values["group_id"] = int(values["group_id"])
            try:
                with acting(who.actor):
                    await self.store.accounts.update_user(user.id, in_group=who.group_id,
                                                          **values)
                if values.get("status") == "locked" and user.status != "locked":
                    await self.store.sessions.close_all("user", str(user.id))
                raise self.done(f"{ROOT}/users/{user.id}", "User saved.")
            except (Conflict, ValueError) as exc:
                errors["access_code"] = str(exc)
        return await self._user_page(request, who, user, values=typed(request),
                                     errors=errors)

    @app.route("/users/<user_id>/pin", methods=["POST"])
    async def user_pin(self, request: IRequest, user_id: str) -> bytes:
        """Set the phone PIN to typed digits, generate one (shown on this answer only, never
        again), or remove it; journaled as changed, without its value."""
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        data = form(request)
        action, typed_pin = data.get("action", ""), data.get("pin", "").strip()
        shown = ""
        if action == "generate":
            pin = shown = new_pin()
        elif action == "remove":
            pin = ""
        elif action == "set" and typed_pin.isdigit() and len(typed_pin) <= 16:
            pin = typed_pin
        else:
            return await self._user_page(request, who, user, pin_error=(
                "PIN: type up to 16 digits and press Set, or press Generate or Remove."))
        with acting(who.actor):
            await self.store.accounts.update_user(user.id, in_group=who.group_id, pin=pin)
        if not shown:
            raise self.done(f"{ROOT}/users/{user.id}", "PIN set." if pin else "PIN removed.")
        fresh = await self._user(who, user_id)
        return await self._user_page(request, who, fresh, new_pin=shown)

    @app.route("/users/<user_id>/password-reset", methods=["POST"])
    async def user_password_reset(self, request: IRequest, user_id: str) -> bytes:
        """A one-time link for the user to set a new web password (there is no e-mail: the
        operator hands it on); shown on this answer only, and journaled."""
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        token, until = await self.store.password_resets.issue(user.id, who.name)
        await self.store.journal.record(
            actor_kind=who.kind, actor=who.name, address=who.address, user_id=user.id,
            object_kind="users", object_id=str(user.id), field="web password reset link",
            new_value=f"(issued, good until {time.strftime('%Y-%m-%d %H:%M', time.gmtime(until))}"
                      " UTC)")
        host = (request.getHeader("host") or "").strip() or "THIS-SERVER"
        scheme = "https" if request.isSecure() or (
            request.getHeader("x-forwarded-proto") or "") == "https" else "http"
        link = f"{scheme}://{host}/ui/login/reset/{token}"
        return await self._user_page(request, who, user, reset_link=link, reset_until=until)

    @app.route("/users/<user_id>/balance", methods=["POST"])
    async def user_balance(self, request: IRequest, user_id: str) -> bytes:
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        values, errors = parse_fields(schemas.BALANCE, form(request))
        problem = who.balance_change_problem(None if "amount" in errors else values["amount"])
        why = " ".join(filter(None, [problem, *errors.values()]))
        if not why:
            try:
                with acting(who.actor):
                    balance = await self.store.accounts.change_balance(
                        user.id, values["amount"], values["reason"], actor_kind=who.kind,
                        actor=who.name, in_group=who.group_id)
                raise self.done(f"{ROOT}/users/{user.id}",
                                f"Balance changed; it is {money(balance)} now.")
            except InsufficientBalance:
                why = (f"The balance is {money(user.balance)}; a debit of "
                       f"{money(-values['amount'])} would make it negative.")
            except NotFound:
                raise Refused(404, f"There is no user {user_id}.") from None
        return await self._user_page(request, who, user, balance_error=why)

    @app.route("/users/<user_id>/delete", methods=["POST"])
    async def user_delete(self, request: IRequest, user_id: str) -> bytes:
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        with acting(who.actor):
            await self.store.accounts.delete_user(user.id, in_group=who.group_id)
        await self.store.sessions.close_all("user", str(user.id))
        raise self.done(f"{ROOT}/users", f"User {user.voice_number}#{user.access_code} "
                        "deleted with everything they had.")

    @app.route("/users/<user_id>/dids", methods=["POST"])
    async def user_did_add(self, request: IRequest, user_id: str) -> bytes:
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        values, errors = parse_fields(schemas.DID[:1], form(request))
        why = " ".join(errors.values())
        if not why:
            try:
                with acting(who.actor):
                    await self.store.accounts.assign_did(values["did"], user.id,
                                                         in_group=who.group_id)
                raise self.done(f"{ROOT}/users/{user.id}", f"DID {values['did']} assigned.")
            except Conflict:
                why = f"The DID {values['did']} belongs to a user already."
        return await self._user_page(request, who, user, balance_error=why)

    @app.route("/users/<user_id>/dids/<did>/delete", methods=["POST"])
    async def user_did_release(self, request: IRequest, user_id: str, did: str) -> bytes:
        who = await self.staff(request, change=True)
        user = await self._user(who, user_id)
        with acting(who.actor):
            released = await self.store.accounts.release_did(did, user.id,
                                                             in_group=who.group_id)
        if not released:
            raise Refused(404, f"The user has no DID {did}.")
        raise self.done(f"{ROOT}/users/{user.id}", f"DID {did} released.")

    # ------------------------------------------------------------------ DIDs

    @app.route("/dids", methods=["GET"])
    async def dids(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        prefix = request.args.get(b"prefix", [b""])[0].decode("utf-8", "replace").strip()[:64]
        dids = await self.store.accounts.list_dids(prefix, limit=500)
        return self.page(request, "admin/dids.html", who, dids=dids, prefix=prefix)

    @app.route("/didattrs", methods=["GET"])
    async def did_attrs(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.page(request, "admin/didattrs.html", who, errors={}, values={},
                         attrs=await self.store.accounts.list_did_attrs(),
                         fields=schemas.DID_ATTR)

    @app.route("/didattrs", methods=["POST"])
    async def did_attr_save(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        values, errors = parse_fields(schemas.DID_ATTR, form(request))
        if errors:
            request.setResponseCode(400)
            return self.page(request, "admin/didattrs.html", who, errors=errors,
                             values=typed(request), fields=schemas.DID_ATTR,
                             attrs=await self.store.accounts.list_did_attrs())
        with acting(who.actor):
            await self.store.accounts.set_did_language(values["did"], values["language"])
        raise self.done(f"{ROOT}/didattrs", f"{values['did']} speaks {values['language']}.")

    @app.route("/didattrs/<did>/delete", methods=["POST"])
    async def did_attr_delete(self, request: IRequest, did: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        with acting(who.actor):
            await self.store.accounts.delete_did_attr(did)
        raise self.done(f"{ROOT}/didattrs", f"{did} removed.")

    # ------------------------------------------------------------------ journal

    @app.route("/journal", methods=["GET"])
    async def journal(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        before_raw = request.args.get(b"before", [b""])[0].decode("ascii", "replace")
        before = int(before_raw) if before_raw.isdigit() else None
        entries = await self.store.journal.all(before_id=before, limit=PAGE + 1)
        more = len(entries) > PAGE
        entries = entries[:PAGE]
        return self.page(request, "admin/journal.html", who, entries=entries,
                         next_before=entries[-1].id if more and entries else None)
