"""The lists some extensions keep: the employees of a company directory, the items and
phones of an auto-dialer (CallBlast) with their results, a poll's votes, the stored
variables, and what callers left (callback requests, typed digits).  Each is reached
through an extension of the tenant's own, and each row through its owner."""

from __future__ import annotations

import re
from typing import Any

from twisted.web.iweb import IRequest

from xvbd.engine.dialing import valid_phone
from xvbd.outbound.callblast import ItemSettings
from xvbd.store.accounts import Conflict, NotFound
from xvbd.store.audit import acting
from xvbd.store.callblast import CallblastItem, NotPausable
from xvbd.store.ivr import Extension
from xvbd.web.security import Refused, form, number_arg
from xvbd.web.tenant.base import ROOT, Tenant, TenantBase, app
from xvbd.web.tenant.settingsform import describe, form_values, parse

EMPLOYEE_NUMBER = re.compile(r"[0-9]{1,8}")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
MAX_NAME = 64
#: Which list page an extension type has.
LIST_OF = {"Directory": "employees", "CallBlast": "callblast", "Voting": "votes"}


def phones_of(text: str) -> tuple[list[str], str]:
    """Phones typed one per line (or separated by commas); '' or what is wrong."""
    phones = [p.strip() for p in re.split(r"[\s,;]+", text) if p.strip()]
    bad = [p for p in phones if not valid_phone(p)]
    if bad:
        return phones, (f"{bad[0]!r} is not a phone number: use digits, * # and + only "
                        "(up to 32).")
    return list(dict.fromkeys(phones)), ""


class ListPages(TenantBase):
    async def _ext_of(self, who: Tenant, ext_id: str | int, type_name: str) -> Extension:
        ext = await self.store.ivr.get(who.id, number_arg(ext_id))
        if ext is None or ext.type != type_name:
            raise Refused(404, f"You have no {type_name} extension {ext_id}.")
        return ext

    # ------------------------------------------------------------------ employees

    @app.route("/ivr/<ext_id>/employees", methods=["GET"])
    async def employees(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request)
        ext = await self._ext_of(who, ext_id, "Directory")
        return await self._employees_page(request, who, ext, "", {})

    async def _employees_page(self, request: IRequest, who: Tenant, ext: Extension,
                              error: str, values: dict[str, str]) -> bytes:
        if error:
            request.setResponseCode(400)
        rows = await self.store.features.directory(who.id, ext.id)
        return self.page(request, "tenant/employees.html", who, ext=ext, employees=rows,
                         error=error, values=values)

    def _employee(self, data: dict[str, str]) -> tuple[dict[str, Any], str]:
        number = data.get("number", "").strip()
        name = data.get("name", "").strip()[:MAX_NAME]
        phones, why = phones_of(data.get("phones", ""))
        if not EMPLOYEE_NUMBER.fullmatch(number):
            why = "An employee's number is 1-8 digits (what callers dial to reach them)."
        elif not name:
            why = "Type the employee's name: callers find them by its first letters."
        elif not phones and not why:
            why = "Give at least one phone to ring."
        recording = data.get("recording", "").strip()
        return {"number": number, "name": name, "phones": phones,
                "recording": recording}, why

    @app.route("/ivr/<ext_id>/employees", methods=["POST"])
    async def employee_add(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext_of(who, ext_id, "Directory")
        data = form(request)
        values, why = self._employee(data)
        if not why:
            try:
                with acting(who.actor):
                    await self.store.features.add_directory_entry(who.id, ext.id, **values)
                self.changed(who)  # calls hear the directory as it is now
                raise self.done(f"{ROOT}/ivr/{ext.id}/employees",
                                f"{values['name']} added as {values['number']}.")
            except Conflict:
                why = f"Number {values['number']} belongs to another employee already."
        return await self._employees_page(request, who, ext, why, data)

    @app.route("/ivr/<ext_id>/employees/<entry_id>", methods=["POST"])
    async def employee_save(self, request: IRequest, ext_id: str, entry_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext_of(who, ext_id, "Directory")
        data = form(request)
        entry = await self.store.features.directory_entry(who.id, number_arg(entry_id))
        if entry is None or entry.extension_id != ext.id:
            raise Refused(404, f"This directory has no employee {entry_id}.")
        if data.get("delete"):
            with acting(who.actor):
                await self.store.features.delete_directory_entry(who.id, entry.id)
            self.changed(who)  # calls hear the directory as it is now
            raise self.done(f"{ROOT}/ivr/{ext.id}/employees", "Employee removed.")
        values, why = self._employee(data)
        if not why:
            try:
                with acting(who.actor):
                    await self.store.features.update_directory_entry(who.id, entry.id,
                                                                     **values)
                self.changed(who)  # calls hear the directory as it is now
                raise self.done(f"{ROOT}/ivr/{ext.id}/employees", f"{values['name']} saved.")
            except Conflict:
                why = f"Number {values['number']} belongs to another employee already."
        return await self._employees_page(request, who, ext, why, data)

    # ------------------------------------------------------------------ callblast

    @app.route("/ivr/<ext_id>/callblast", methods=["GET"])
    async def callblast(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request)
        ext = await self._ext_of(who, ext_id, "CallBlast")
        return await self._callblast_page(request, who, ext, "", None)

    async def _callblast_page(self, request: IRequest, who: Tenant, ext: Extension,
                              error: str, data: dict[str, str] | None) -> bytes:
        if error:
            request.setResponseCode(400)
        items = await self.store.callblast.list_items(who.id, ext.id)
        phones = {i.id: await self.store.callblast.phones(who.id, i.id) for i in items}
        fields = describe("CallBlastItem", ItemSettings)
        values = form_values(fields, {}) if data is None else {
            f.name: data.get(f.name, "") for f in fields}
        return self.page(request, "tenant/callblast.html", who, ext=ext, items=items,
                         phones=phones, fields=fields, values=values, error=error,
                         typed=data or {})

    @app.route("/ivr/<ext_id>/callblast", methods=["POST"])
    async def callblast_add(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext_of(who, ext_id, "CallBlast")
        data = form(request)
        settings, why = parse("CallBlastItem", ItemSettings, data)
        phones, bad = phones_of(data.get("phones", ""))
        why = why or bad
        if not why:
            try:
                with acting(who.actor):
                    item = await self.store.callblast.create_item(
                        who.id, ext.id, name=data.get("name", "").strip()[:MAX_NAME],
                        message=data.get("message", "").strip()[:255], settings=settings,
                        phones=phones)
                raise self.done(f"{ROOT}/callblast/{item.id}",
                                f"List added with {len(phones)} phone(s); it is called "
                                "within its hours.")
            except (Conflict, NotFound) as exc:
                why = str(exc)[:1].upper() + str(exc)[1:] + "."
        return await self._callblast_page(request, who, ext, why, data)

    async def _item(self, who: Tenant, item_id: str | int) -> CallblastItem:
        item = await self.store.callblast.get_item(who.id, number_arg(item_id))
        if item is None:
            raise Refused(404, f"You have no auto-dialer list {item_id}.")
        return item

    @app.route("/callblast/<item_id>", methods=["GET"])
    async def callblast_item(self, request: IRequest, item_id: str) -> bytes:
        who = await self.tenant(request)
        return await self._item_page(request, who, await self._item(who, item_id), "")

    async def _item_page(self, request: IRequest, who: Tenant, item: CallblastItem,
                         error: str) -> bytes:
        if error:
            request.setResponseCode(400)
        return self.page(request, "tenant/callblast_item.html", who, item=item, error=error,
                         phones=await self.store.callblast.phones(who.id, item.id),
                         results=await self.store.callblast.results(who.id, item.id, 200))

    @app.route("/callblast/<item_id>/phones", methods=["POST"])
    async def callblast_phones(self, request: IRequest, item_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        item = await self._item(who, item_id)
        data = form(request)
        if data.get("delete", "").isdigit():
            await self.delete_phone(who, item, int(data["delete"]))
            raise self.done(f"{ROOT}/callblast/{item.id}", "Phone removed.")
        phones, why = phones_of(data.get("phones", ""))
        added = 0
        if not why:
            added, why = await self.add_phones(who, item, phones)
        if why:
            return await self._item_page(request, who, item, why)
        raise self.done(f"{ROOT}/callblast/{item.id}", f"{added} phone(s) added.")

    async def add_phones(self, who: Tenant, item: CallblastItem, phones: list[str]
                         ) -> tuple[int, str]:
        """Add ``phones`` to a list (one already there is skipped): how many were added, and
        '' or why the rest were not (the plan's limit)."""
        with acting(who.actor):
            added, limit = await self.store.callblast.add_phones(who.id, item.id, phones)
        return added, f"{added} added; then: {limit}." if limit else ""

    async def delete_phone(self, who: Tenant, item: CallblastItem, phone_id: int) -> None:
        """Remove a phone from a list (404 when the list has no such phone)."""
        with acting(who.actor):
            if not await self.store.callblast.delete_phone(who.id, phone_id, item.id):
                raise Refused(404, "This list has no such phone.")

    @app.route("/callblast/<item_id>/pause", methods=["POST"])
    async def callblast_pause(self, request: IRequest, item_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        item = await self.set_paused(who, await self._item(who, item_id), True)
        raise self.done(f"{ROOT}/callblast/{item.id}", "List paused: no new call is placed "
                        "until you resume it (calls ringing now end as they will).")

    @app.route("/callblast/<item_id>/resume", methods=["POST"])
    async def callblast_resume(self, request: IRequest, item_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        item = await self.set_paused(who, await self._item(who, item_id), False)
        raise self.done(f"{ROOT}/callblast/{item.id}", "List resumed: its phones are called "
                        "within its hours." if item.status == "active" else
                        "List resumed; every phone has been called already.")

    async def set_paused(self, who: Tenant, item: CallblastItem, paused: bool
                         ) -> CallblastItem:
        """Pause or resume a list as ``who`` (journaled); 409 for a list that has called
        all its phones."""
        try:
            with acting(who.actor):
                return await self.store.callblast.set_paused(who.id, item.id, paused)
        except NotPausable as exc:
            raise Refused(409, f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
        except NotFound:
            raise Refused(404, f"You have no auto-dialer list {item.id}.") from None

    @app.route("/callblast/<item_id>/delete", methods=["POST"])
    async def callblast_delete(self, request: IRequest, item_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        item = await self._item(who, item_id)
        with acting(who.actor):
            await self.store.callblast.delete_item(who.id, item.id)
        raise self.done(f"{ROOT}/ivr/{item.extension_id}/callblast", "List deleted.")

    # ------------------------------------------------------------------ votes

    @app.route("/ivr/<ext_id>/votes", methods=["GET"])
    async def votes(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request)
        ext = await self._ext_of(who, ext_id, "Voting")
        results = await self.store.features.vote_results(who.id, ext.id)
        options = str(ext.settings_dict().get("options", "12"))
        return self.page(request, "tenant/votes.html", who, ext=ext, options=options,
                         results=results, total=sum(results.values()))

    @app.route("/ivr/<ext_id>/votes/clear", methods=["POST"])
    async def votes_clear(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext_of(who, ext_id, "Voting")
        with acting(who.actor):
            cleared = await self.store.features.clear_votes(who.id, ext.id)
        await self.note(who, "votes", str(ext.id), "cleared", str(cleared), "")
        raise self.done(f"{ROOT}/ivr/{ext.id}/votes", f"{cleared} vote(s) cleared.")

    # ------------------------------------------------------------------ variables, requests

    @app.route("/variables", methods=["GET"])
    async def variables(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        return await self._variables_page(request, who, "")

    async def _variables_page(self, request: IRequest, who: Tenant, error: str) -> bytes:
        if error:
            request.setResponseCode(400)
        return self.page(request, "tenant/variables.html", who, error=error,
                         variables=await self.store.features.all_vars(who.id),
                         callbacks=await self.store.features.callbacks(who.id),
                         digits=await self.store.features.dtmf_messages(who.id, limit=100))

    @app.route("/variables", methods=["POST"])
    async def variable_save(self, request: IRequest) -> bytes:
        who = await self.tenant(request, change=True)
        data = form(request)
        name, value = data.get("name", "").strip(), data.get("value", "").strip()
        if not VAR_NAME.fullmatch(name):
            return await self._variables_page(request, who, "A variable's name is letters, "
                                              "digits and _ (up to 32), not starting with a "
                                              "digit.")
        if len(value) > 255:
            return await self._variables_page(request, who, "A value is at most 255 "
                                              "characters.")
        if data.get("delete"):
            await self.delete_variable(who, name)
            raise self.done(f"{ROOT}/variables", f"{name} deleted.")
        await self.set_variable(who, name, value)
        raise self.done(f"{ROOT}/variables", f"{name} = {value}")

    async def set_variable(self, who: Tenant, name: str, value: str) -> None:
        """Set a stored variable, journaled with what it was."""
        old = await self.store.features.get_var(who.id, name) or ""
        await self.store.features.set_var(who.id, name, value)
        await self.note(who, "variable", name, "value", old, value)

    async def delete_variable(self, who: Tenant, name: str) -> bool:
        """Delete a stored variable (False: there was none), journaled."""
        old = await self.store.features.get_var(who.id, name)
        if old is None or not await self.store.features.delete_var(who.id, name):
            return False
        await self.note(who, "variable", name, "value", old, "")
        return True

    @app.route("/requests/<kind>/<row_id>/delete", methods=["POST"])
    async def request_delete(self, request: IRequest, kind: str, row_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        number = number_arg(row_id)
        if kind == "callback":
            gone = await self.store.features.delete_callback(who.id, number)
        elif kind == "digits":
            gone = await self.store.features.delete_dtmf(who.id, number)
        else:
            raise Refused(404, "There is no such page.")
        if not gone:
            raise Refused(404, "You have no such request.")
        raise self.done(f"{ROOT}/variables", "Deleted.")
