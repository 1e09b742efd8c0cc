"""The lists some extensions keep, through /ui on both backends: employees of a directory,
auto-dialer lists and their phones (with the plan's limits), a poll's votes, stored
variables and what callers left — and none of them reachable by another tenant."""

from __future__ import annotations

import json
from typing import Any

from tests.support.db import on_both_backends
from tests.support.web import Browser, WebCase
from xvbd.store.accounts import User


class TenantListsTests(WebCase):
    async def _tenant(self, code: str = "10001", **group: Any) -> tuple[User, Browser]:
        acc = self.store.accounts
        gid = (await acc.create_group(f"g{code}", 1, **group)).id
        user = await acc.create_user("613", code, gid, pin="4321")
        return user, await self.tenant_browser("613", code, "4321")

    async def test_employees_of_a_directory(self) -> None:
        user, browser = await self._tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        staff = await self.store.ivr.add_child(user.id, root.id, "5", "Directory", {})
        page = await browser.get(f"/ui/ivr/{staff.id}")
        self.assertIn(f'href="/ui/ivr/{staff.id}/employees"', page.text)
        await browser.get(f"/ui/ivr/{staff.id}/employees")
        page = await browser.post(f"/ui/ivr/{staff.id}/employees", {
            "number": "101", "name": "Ivanov", "phones": "79001112233\n+74951234567"})
        self.assertIn("Ivanov added as 101.", page.text)
        self.assertIn("keys 482668", page.text)
        page = await browser.post(f"/ui/ivr/{staff.id}/employees", {
            "number": "101", "name": "Petrov", "phones": "79001112234"})
        self.assertEqual(page.code, 400)
        self.assertIn("Number 101 belongs to another employee already.", page.text)
        page = await browser.post(f"/ui/ivr/{staff.id}/employees", {
            "number": "102", "name": "Petrov", "phones": "7900;rm -rf"})
        self.assertIn("is not a phone number", page.text)
        self.assertIn('value="Petrov"', page.text, "what was typed stays")
        (entry,) = await self.store.features.directory(user.id, staff.id)
        self.assertEqual(entry.phone_list(), ["79001112233", "+74951234567"])
        await browser.get(f"/ui/ivr/{staff.id}/employees")
        page = await browser.post(f"/ui/ivr/{staff.id}/employees/{entry.id}", {
            "number": "103", "name": "Ivanova", "phones": "79001112233"})
        self.assertIn("Ivanova saved.", page.text)
        (entry,) = await self.store.features.directory(user.id, staff.id)
        self.assertEqual((entry.number, entry.name, entry.name_keys), ("103", "Ivanova",
                                                                       "4826682"))
        page = await browser.post(f"/ui/ivr/{staff.id}/employees/{entry.id}", {"delete": "1"})
        self.assertIn("Employee removed.", page.text)
        self.assertEqual(await self.store.features.directory(user.id, staff.id), [])
        # a directory list is only for a Directory extension
        self.assertEqual((await browser.get(f"/ui/ivr/{root.id}/employees")).code, 404)

    async def test_auto_dialer_lists_phones_and_limits(self) -> None:
        user, browser = await self._tenant(max_callblast_phones=3, max_callblast_items=1)
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        blast = await self.store.ivr.add_child(user.id, root.id, "7", "CallBlast", {})
        page = await browser.get(f"/ui/ivr/{blast.id}/callblast")
        self.assertIn('name="retry_interval" value="600"', page.text)
        page = await browser.post(f"/ui/ivr/{blast.id}/callblast", {
            "name": "Debtors", "message": "user:remind", "phones": "79001, 79002\n79003\n79004",
            "days": "12345", "start": "10:00", "end": "19:00", "retries": "2",
            "retry_interval": "900", "ring_timeout": "30", "start_at": "0"})
        self.assertEqual(page.code, 400)
        self.assertIn("at most 3 phone(s)", page.text)
        page = await browser.post(f"/ui/ivr/{blast.id}/callblast", {
            "name": "Debtors", "phones": "79001", "days": "12345", "start": "25:00",
            "end": "19:00", "retries": "2", "retry_interval": "900", "ring_timeout": "30",
            "start_at": "0"})
        self.assertEqual(page.code, 400)
        page = await browser.post(f"/ui/ivr/{blast.id}/callblast", {
            "name": "Debtors", "message": "user:remind", "phones": "79001, 79002\n79001",
            "days": "12345", "start": "10:00", "end": "19:00", "retries": "2",
            "retry_interval": "900", "ring_timeout": "30", "start_at": "0"})
        self.assertIn("List added with 2 phone(s)", page.text)
        (item,) = await self.store.callblast.list_items(user.id, blast.id)
        self.assertEqual(json.loads(item.settings)["start"], "10:00")
        page = await browser.post(f"/ui/callblast/{item.id}/phones",
                                  {"phones": "79003\n79004"})
        self.assertEqual(page.code, 400)
        self.assertIn("1 added; then:", page.text)
        self.assertEqual(len(await self.store.callblast.phones(user.id, item.id)), 3)
        phone = (await self.store.callblast.phones(user.id, item.id))[0]
        await self.store.callblast.record_result(user.id, phone.id, "busy")
        page = await browser.get(f"/ui/callblast/{item.id}")
        self.assertIn("<td>busy</td>", page.text)
        # paused and resumed from the list's page, each change in the tenant's journal
        self.assertIn(f'action="/ui/callblast/{item.id}/pause"', page.text)
        page = await browser.post(f"/ui/callblast/{item.id}/pause")
        self.assertIn("List paused", page.text)
        self.assertIn("<strong>Paused</strong>", page.text)
        self.assertIn(f'action="/ui/callblast/{item.id}/resume"', page.text)
        self.assertNotIn(f'action="/ui/callblast/{item.id}/pause"', page.text)
        self.assertEqual((await self.store.callblast.get_item(user.id, item.id)).status,
                         "paused")
        page = await browser.post(f"/ui/callblast/{item.id}/resume")
        self.assertIn("List resumed: its phones are called within its hours.", page.text)
        self.assertEqual((await self.store.callblast.get_item(user.id, item.id)).status,
                         "active")
        changes = [(e.actor, e.object_kind, e.object_id, e.field, e.old_value, e.new_value)
                   for e in await self.store.journal.for_user(user.id) if e.field == "status"]
        self.assertEqual(sorted(changes), sorted([
            (f"{user.voice_number}#{user.access_code}", "callblast_items", str(item.id), "status", "active", "paused"),
            (f"{user.voice_number}#{user.access_code}", "callblast_items", str(item.id), "status", "paused", "active")]))
        page = await browser.post(f"/ui/ivr/{blast.id}/callblast", {
            "name": "Second", "phones": "79009", "days": "1234567", "start": "09:00",
            "end": "21:00", "retries": "0", "retry_interval": "600", "ring_timeout": "30",
            "start_at": "0"})
        self.assertIn("at most 1 item(s)", page.text)
        await browser.get(f"/ui/callblast/{item.id}")
        page = await browser.post(f"/ui/callblast/{item.id}/phones", {"delete": "999999"})
        self.assertEqual(page.code, 404, "no such phone in this list")
        await browser.get(f"/ui/callblast/{item.id}")
        page = await browser.post(f"/ui/callblast/{item.id}/phones", {"delete": str(phone.id)})
        self.assertIn("Phone removed.", page.text)
        self.assertEqual(len(await self.store.callblast.phones(user.id, item.id)), 2)
        page = await browser.post(f"/ui/callblast/{item.id}/delete")
        self.assertIn("List deleted.", page.text)
        self.assertEqual(await self.store.callblast.list_items(user.id), [])

    async def test_votes_variables_and_requests(self) -> None:
        user, browser = await self._tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        poll = await self.store.ivr.add_child(user.id, root.id, "3", "Voting",
                                              {"question": "system:q", "options": "123"})
        for caller, choice in (("a", "1"), ("b", "1"), ("c", "3")):
            await self.store.features.vote(user.id, poll.id, caller, choice)
        page = await browser.get(f"/ui/ivr/{poll.id}/votes")
        self.assertRegex(page.text, r"<td>1</td><td class=\"num\">2</td><td class=\"num\">66\.7")
        page = await browser.post(f"/ui/ivr/{poll.id}/votes/clear")
        self.assertIn("3 vote(s) cleared.", page.text)
        await self.store.features.request_callback(user.id, "79005550000", "2")
        await self.store.features.add_dtmf(user.id, "12345", caller_id="79005550001")
        page = await browser.get("/ui/variables")
        self.assertIn("79005550000", page.text)
        self.assertIn("12345", page.text)
        page = await browser.post("/ui/variables", {"name": "1bad", "value": "x"})
        self.assertEqual(page.code, 400)
        page = await browser.post("/ui/variables", {"name": "office_open", "value": "yes"})
        self.assertIn("office_open = yes", page.text)
        self.assertEqual(await self.store.features.get_var(user.id, "office_open"), "yes")
        page = await browser.post("/ui/variables", {"name": "office_open", "delete": "1"})
        self.assertIsNone(await self.store.features.get_var(user.id, "office_open"))
        (request,) = await self.store.features.callbacks(user.id)
        page = await browser.post(f"/ui/requests/callback/{request.id}/delete")
        self.assertIn("Deleted.", page.text)
        self.assertEqual(await self.store.features.callbacks(user.id), [])
        entries = await self.store.journal.for_user(user.id)
        self.assertTrue(any(e.object_kind == "variable" and e.new_value == "yes"
                            for e in entries))

    async def test_another_tenant_reaches_no_list_of_ours(self) -> None:
        alice, _ = await self._tenant("10001")
        _, mallory = await self._tenant("10002")
        root = await self.store.ivr.create_root(alice.id, "Playback", {})
        staff = await self.store.ivr.add_child(alice.id, root.id, "5", "Directory", {})
        entry = await self.store.features.add_directory_entry(alice.id, staff.id, "101",
                                                              "Ivanov", ["79001"])
        blast = await self.store.ivr.add_child(alice.id, root.id, "7", "CallBlast", {})
        item = await self.store.callblast.create_item(alice.id, blast.id, name="Secret list",
                                                      phones=["79001"])
        poll = await self.store.ivr.add_child(alice.id, root.id, "3", "Voting",
                                              {"question": "system:q"})
        await self.store.features.vote(alice.id, poll.id, "a", "1")
        callback = await self.store.features.request_callback(alice.id, "79005550000", "")
        digits = await self.store.features.add_dtmf(alice.id, "777", caller_id="x")
        await self.store.features.set_var(alice.id, "alice_secret", "42")
        csrf = (await mallory.get("/ui/")).csrf
        for path in (f"/ui/ivr/{staff.id}/employees", f"/ui/ivr/{blast.id}/callblast",
                     f"/ui/callblast/{item.id}", f"/ui/ivr/{poll.id}/votes"):
            self.assertEqual((await mallory.get(path)).code, 404, path)
        for path, fields in (
                (f"/ui/ivr/{staff.id}/employees", {"number": "9", "name": "x",
                                                   "phones": "1"}),
                (f"/ui/ivr/{staff.id}/employees/{entry.id}", {"delete": "1"}),
                (f"/ui/ivr/{blast.id}/callblast", {"phones": "1"}),
                (f"/ui/callblast/{item.id}/phones", {"phones": "79999"}),
                (f"/ui/callblast/{item.id}/pause", {}),
                (f"/ui/callblast/{item.id}/resume", {}),
                (f"/ui/callblast/{item.id}/delete", {}),
                (f"/ui/ivr/{poll.id}/votes/clear", {}),
                (f"/ui/requests/callback/{callback.id}/delete", {}),
                (f"/ui/requests/digits/{digits.id}/delete", {})):
            page = await mallory.post(path, fields, csrf=csrf)
            self.assertEqual(page.code, 404, path)
        page = await mallory.get("/ui/variables")
        self.assertNotIn("alice_secret", page.text)
        self.assertNotIn("79005550000", page.text)
        self.assertEqual(len(await self.store.features.directory(alice.id, staff.id)), 1)
        self.assertEqual(len(await self.store.callblast.phones(alice.id, item.id)), 1)
        self.assertEqual((await self.store.callblast.get_item(alice.id, item.id)).status,
                         "active")
        self.assertEqual(await self.store.features.vote_results(alice.id, poll.id), {"1": 1})
        self.assertEqual(len(await self.store.features.callbacks(alice.id)), 1)
        self.assertEqual(len(await self.store.features.dtmf_messages(alice.id)), 1)


TenantListsOnSQLite, TenantListsOnMariaDB = on_both_backends(TenantListsTests)
