"""The operator's JSON/XML API (``/ai/api``) through real HTTP on both backends: trusted
addresses, HTTP Basic and its throttling and cache, every endpoint in JSON and XML checked
against the database, the journal of each change, partners held to their group, validation,
and text that stays text in both formats."""

from __future__ import annotations

import json
import time
from typing import Any
from xml.etree import ElementTree as ET

from tests.support.api import ADMIN, ApiClientCase, text
from tests.support.db import on_both_backends
from tests.support.web import ADMIN_HASH, PARTNER_HASH
from xvbd.passwords import hash_password, verify_password
from xvbd.web import apiformat
from xvbd.web.admin import api as api_module

UNIT = 10000
PARTNER = ("reseller", "partner-secret")


class ApiCase(ApiClientCase):
    async def admin_ready(self) -> None:
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)

    async def partner_ready(self, group_id: int, **fields: Any) -> None:
        await self.store.accounts.create_partner("reseller", PARTNER_HASH, group_id, **fields)


class UntrustedApiTests(ApiCase):
    web_config = "[CGI]\nTRUSTED_4_AI_DF = 10\\.1\\..*, 127\\.0\\.0\n"

    async def test_an_address_not_listed_is_refused_before_anything_else(self) -> None:
        await self.admin_ready()
        for path, fmt in (("/ai/api/whoami", "json"), ("/ai/api/users.xml", "xml"),
                          ("/ai/api/nope", "json"), ("/ai/api/users?format=xml", "xml"),
                          ("/ai/api/users?format=csv", "json")):
            for auth in (ADMIN, None, ("admin", "wrong")):
                answer = await self.call("GET", path, auth=auth)
                self.assertEqual(answer.code, 403, (path, answer.body))
                message = (answer.json["error"] if fmt == "json"
                           else text(answer.xml, "error"))
                self.assertIn("does not serve your address 127.0.0.1", message)
                self.assertIn("TRUSTED_4_AI_DF", message)
        # refused before the password was looked at: no failure counted
        self.assertEqual(await self.counters.hits("weblogin:ai:name:admin", 900), 0)
        answer = await self.call("POST", "/ai/api/users", json_body={
            "voice_number": "613", "access_code": "1", "group_id": 1})
        self.assertEqual(answer.code, 403)
        self.assertEqual(await self.store.accounts.list_users(), [])


UntrustedOnSQLite, UntrustedOnMariaDB = on_both_backends(UntrustedApiTests)


class EveryoneTrustedTests(ApiCase):
    web_config = "[CGI]\nTRUSTED_4_AI_DF = *\n"

    async def test_a_star_trusts_every_address(self) -> None:
        await self.admin_ready()
        answer = await self.call("GET", "/ai/api/whoami")
        self.assertEqual((answer.code, answer.json["kind"]), (200, "admin"))


StarOnSQLite, StarOnMariaDB = on_both_backends(EveryoneTrustedTests)


class ApiTests(ApiCase):
    async def test_authentication_and_throttling(self) -> None:
        await self.admin_ready()
        answer = await self.call("GET", "/ai/api/whoami", auth=None)
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="xvbd"')
        self.assertIn("HTTP Basic", answer.json["error"])
        # the pages' session cookie is no way in
        browser = await self.admin_browser()
        cookie = next(c for c in browser.jar if c.name == "xvbd_ai")
        answer = await self.call("GET", "/ai/api/users", auth=None,
                                 headers={"Cookie": f"xvbd_ai={cookie.value}"})
        self.assertEqual(answer.code, 401)
        self.assertIn("does not use the web pages' login session", answer.json["error"])
        answer = await self.call("GET", "/ai/api/whoami",
                                 headers={"Authorization": "Basic !!notbase64"})
        self.assertEqual(answer.code, 401)
        self.assertIn("base64 of login:password", answer.json["error"])
        answer = await self.call("GET", "/ai/api/whoami.xml", auth=("nobody", "x"))
        self.assertEqual((answer.code, text(answer.xml, "error")),
                         (401, "Wrong login or password."))
        for _ in range(5):
            answer = await self.call("GET", "/ai/api/whoami", auth=("admin", "guess"))
            self.assertEqual(answer.code, 401)
        answer = await self.call("GET", "/ai/api/whoami")
        self.assertEqual(answer.code, 429)
        self.assertIn("Too many failed logins", answer.json["error"])
        self.assertEqual(answer.header("Retry-After"), "900")
        # the login page counts the same failures
        page = await self.browser().log_in("/ai/login", {"login": "admin",
                                                       "password": "admin-secret"})
        self.assertIn("Too many failed logins", page.text)
        await self.counters.reset("weblogin:ai:name:admin")
        answer = await self.call("GET", "/ai/api/whoami")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json, {"kind": "admin", "login": "admin",
                                       "address": "127.0.0.1", "group_id": None})

    async def test_proven_passwords_are_cached_briefly_and_forgotten(self) -> None:
        await self.admin_ready()

        checks = self.count_password_checks(api_module)
        now = [1000.0]
        self.admin_app.api_proven.clock = lambda: now[0]
        for _ in range(3):
            self.assertEqual((await self.call("GET", "/ai/api/whoami")).code, 200)
        self.assertEqual(len(checks), 1)
        self.assertFalse(any(b"admin-secret" in key[1] or "admin-secret" in key[0]
                             for key in self.admin_app.api_proven.keys()))
        now[0] += 61
        self.assertEqual((await self.call("GET", "/ai/api/whoami")).code, 200)
        self.assertEqual(len(checks), 2)
        # a failure forgets what was proven for that login
        self.assertEqual((await self.call("GET", "/ai/api/whoami",
                                          auth=("admin", "nope"))).code, 401)
        self.assertEqual((await self.call("GET", "/ai/api/whoami")).code, 200)
        self.assertEqual(len(checks), 4)
        # a new password: the old one is refused at once, though it was proven a moment ago
        await self.store.accounts.set_admin_password_hash("admin", hash_password("fresh-pw-1"))
        self.assertEqual((await self.call("GET", "/ai/api/whoami")).code, 401)
        self.assertEqual((await self.call("GET", "/ai/api/whoami",
                                          auth=("admin", "fresh-pw-1"))).code, 200)
        # a partner moved to another group is held to the new group on its next request
        first = await self.store.accounts.create_group("first", 1)
        second = await self.store.accounts.create_group("second", 1)
        await self.partner_ready(first.id)
        answer = await self.call("GET", "/ai/api/whoami", auth=PARTNER)
        self.assertEqual(answer.json["group_id"], first.id)
        partner = await self.store.accounts.find_partner("reseller")
        await self.store.accounts.update_partner(partner.id, group_id=second.id)
        answer = await self.call("GET", "/ai/api/whoami", auth=PARTNER)
        self.assertEqual(answer.json["group_id"], second.id)
        await self.store.accounts.delete_partner(partner.id)
        self.assertEqual((await self.call("GET", "/ai/api/whoami", auth=PARTNER)).code, 401)

    async def test_users_created_read_changed_topped_up_and_deleted(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        group = await acc.create_group("Office", 1, language="xvb.RU-Female")
        answer = await self.call("POST", "/ai/api/users", json_body={
            "voice_number": "613", "access_code": "10001", "pin": "1234", "name": "Ann",
            "group_id": group.id, "read_only": True})
        self.assertEqual(answer.code, 201, answer.body)
        made = answer.json["user"]
        user = await acc.find_user("613", "10001")
        self.assertEqual(answer.header("Location"), f"/ai/api/users/{user.id}")
        self.assertEqual((user.id, user.name, user.read_only, user.language, user.status,
                          user.group_id),
                         (made["id"], "Ann", True, "xvb.RU-Female", "active", group.id))
        self.assertTrue(verify_password("1234", user.pin_hash), "kept as its hash only")
        self.assertNotIn("1234", user.pin_hash)
        self.assertEqual((made["pin_set"], made["balance"], made["balance_units"],
                          made["dids"]), (True, "0.00", 0, []))
        self.assertNotIn("pin", made)
        self.assertNotIn("pin_hash", made)
        self.assertNotIn("web_password_hash", made)
        self.assertEqual(made["created_at"], user.created_at)
        self.assertEqual(made["created_at_iso"], time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(user.created_at)))
        # a form works as well as JSON
        answer = await self.call("POST", "/ai/api/users.xml", form={
            "voice_number": "613", "access_code": "10002", "group_id": group.id})
        self.assertEqual(answer.code, 201, answer.body)
        second = await acc.find_user("613", "10002")
        self.assertEqual(text(answer.xml, "user/id"), str(second.id))
        self.assertEqual(text(answer.xml, "user/read_only"), "false")
        # read: JSON and XML
        answer = await self.call("GET", f"/ai/api/users/{user.id}")
        self.assertEqual(answer.json["user"]["name"], "Ann")
        answer = await self.call("GET", f"/ai/api/users/{user.id}.xml")
        self.assertEqual((text(answer.xml, "user/voice_number"),
                          text(answer.xml, "user/access_code"),
                          text(answer.xml, "user/balance_units")), ("613", "10001", "0"))
        # a change (PATCH: only the fields named)
        answer = await self.call("PATCH", f"/ai/api/users/{user.id}",
                                 json_body={"name": "Ann Lee", "status": "locked"})
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(answer.json["user"]["status"], "locked")
        fresh = await acc.get_user(user.id)
        self.assertEqual((fresh.name, fresh.status, fresh.pin_hash),
                         ("Ann Lee", "locked", user.pin_hash))
        answer = await self.call("POST", f"/ai/api/users/{user.id}", form={"status": "active"})
        self.assertEqual((await acc.get_user(user.id)).status, "active")
        # the balance: a top-up, a debit too large, the history
        answer = await self.call("POST", f"/ai/api/users/{user.id}/balance",
                                 json_body={"amount": "25.50", "reason": "paid by card"})
        self.assertEqual(answer.json, {"user_id": user.id, "amount": "25.50",
                                       "amount_units": 255000, "balance": "25.50",
                                       "balance_units": 255000})
        answer = await self.call("POST", f"/ai/api/users/{user.id}/balance.xml",
                                 form={"amount": "-0.0333", "reason": "a call"})
        self.assertEqual((text(answer.xml, "balance"), text(answer.xml, "balance_units")),
                         ("25.4667", "254667"))
        answer = await self.call("POST", f"/ai/api/users/{user.id}/balance",
                                 json_body={"amount": -30, "reason": "refund"})
        self.assertEqual(answer.code, 409)
        self.assertIn("a debit of 30.00 would make it negative", answer.json["error"])
        self.assertEqual((await acc.get_user(user.id)).balance, 254667)
        answer = await self.call("GET", f"/ai/api/users/{user.id}/balance-history")
        ops = await acc.balance_history(user.id)
        self.assertEqual([(h["id"], h["amount_units"], h["balance_after"], h["reason"],
                           h["actor_kind"], h["actor"]) for h in answer.json["history"]],
                         [(o.id, o.amount, "25.4667" if o.amount < 0 else "25.50", o.reason,
                           "admin", "admin") for o in ops])
        answer = await self.call("GET", f"/ai/api/users/{user.id}/balance-history.xml?limit=1")
        self.assertEqual([text(op, "reason") for op in answer.xml.findall("history/op")],
                         ["a call"])
        # DIDs: assigned, taken, released
        answer = await self.call("POST", f"/ai/api/users/{user.id}/dids/3500")
        self.assertEqual((answer.code, answer.json["did"]), (201, "3500"))
        self.assertEqual((await acc.find_user_by_did("3500")).id, user.id)
        answer = await self.call("POST", f"/ai/api/users/{second.id}/dids/3500")
        self.assertEqual(answer.code, 409)
        answer = await self.call("GET", f"/ai/api/users/{user.id}.xml")
        self.assertEqual([d.text for d in answer.xml.findall("user/dids/did")], ["3500"])
        answer = await self.call("DELETE", f"/ai/api/users/{user.id}/dids/3500")
        self.assertEqual(answer.json, {"released": True, "did": "3500", "user_id": user.id})
        self.assertIsNone(await acc.find_user_by_did("3500"))
        answer = await self.call("POST", f"/ai/api/users/{user.id}/dids/3500/delete")
        self.assertEqual(answer.code, 404)
        # deleted, by either form
        answer = await self.call("DELETE", f"/ai/api/users/{user.id}")
        self.assertEqual(answer.json, {"deleted": True, "id": user.id})
        answer = await self.call("POST", f"/ai/api/users/{second.id}/delete.xml")
        self.assertEqual(text(answer.xml, "deleted"), "true")
        self.assertEqual(await acc.list_users(), [])
        self.assertEqual((await self.call("GET", f"/ai/api/users/{user.id}")).code, 404)
        # every change journaled as the API's caller, from its address
        entries = await self.store.journal.all(limit=500)
        self.assertEqual({(e.actor_kind, e.actor, e.address) for e in entries},
                         {("admin", "admin", "127.0.0.1")})
        changed = {(e.object_kind, e.object_id, e.field, e.old_value, e.new_value)
                   for e in entries}
        for row in (("users", str(user.id), "", "", "(created)"),
                    ("users", str(user.id), "name", "Ann", "Ann Lee"),
                    ("users", str(user.id), "status", "active", "locked"),
                    ("users", str(user.id), "balance", "0", "255000"),
                    ("dids", "3500", "", "", "(created)"),
                    ("dids", "3500", "", "(deleted)", ""),
                    ("users", str(user.id), "", "(deleted)", ""),
                    ("users", str(second.id), "", "(deleted)", "")):
            self.assertIn(row, changed)

    async def test_listing_users_filters_and_pages(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        office = await acc.create_group("Office", 1)
        home = await acc.create_group("Home", 1)
        made = [await acc.create_user("613", str(100 + i), office.id if i % 2 else home.id)
                for i in range(7)]
        await acc.create_user("700", "1", home.id)
        answer = await self.call("GET", "/ai/api/users?phone=613&limit=3")
        page = answer.json
        self.assertEqual([u["id"] for u in page["users"]], [u.id for u in made[:3]])
        self.assertEqual(page["next_after"], made[2].id)
        ids = [u["id"] for u in page["users"]]
        while page["next_after"] is not None:
            page = (await self.call(
                "GET", f"/ai/api/users?phone=613&limit=3&after={page['next_after']}")).json
            ids += [u["id"] for u in page["users"]]
        self.assertEqual(ids, [u.id for u in made])
        answer = await self.call("GET", f"/ai/api/users.xml?group={office.id}")
        self.assertEqual([int(text(u, "id")) for u in answer.xml.findall("users/user")],
                         [u.id for u in made if u.group_id == office.id])
        self.assertIsNotNone(answer.xml.find("next_after[@nil='true']"))
        answer = await self.call("GET", "/ai/api/users?code=104",
                                 headers={"Accept": "application/xml, */*;q=0.1"})
        self.assertEqual([text(u, "access_code") for u in answer.xml.findall("users/user")],
                         ["104"])
        answer = await self.call("GET", "/ai/api/users?code=104",
                                 headers={"Accept": "application/json, application/xml;q=0.5"})
        self.assertEqual([u["access_code"] for u in answer.json["users"]], ["104"])
        answer = await self.call("GET", "/ai/api/users?limit=501&phnoe=613&group=x")
        self.assertEqual(answer.code, 400)
        fields = answer.json["fields"]
        self.assertEqual(fields["limit"], "limit: at most 500, got 501")
        self.assertIn("phnoe: not a field of this endpoint's query", fields["phnoe"])
        self.assertEqual(fields["group"], "group: a whole number, got 'x'")
        answer = await self.call("GET", "/ai/api/users?format=csv")
        self.assertEqual(answer.code, 400)

    async def test_validation_errors_say_what_is_wrong(self) -> None:
        await self.admin_ready()
        group = await self.store.accounts.create_group("Office", 1)
        answer = await self.call("POST", "/ai/api/users", json_body={
            "voice_number": "613", "pin": "12ab", "group_id": 424242, "colour": "red",
            "max_inbound_calls": "many"})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["error"],
                         "The user was not added: some fields are not right.")
        fields = answer.json["fields"]
        self.assertEqual(fields["access_code"], "Access code is required")
        self.assertEqual(fields["pin"], "PIN: up to 16 digits (empty: none)")
        self.assertEqual(fields["group_id"], "Group: there is no group 424242.")
        self.assertIn("colour: not a field of a user", fields["colour"])
        self.assertEqual(fields["max_inbound_calls"],
                         "Maximum concurrent inbound calls: a whole number, got 'many'")
        answer = await self.call("POST", "/ai/api/users.xml", form={
            "voice_number": "61 3", "access_code": "1", "group_id": group.id})
        self.assertEqual(answer.code, 400)
        self.assertIn("Phone number (VoiceNumber): digits",
                      text(answer.xml, "fields/voice_number"))
        for body, content_type, code, message in (
                (b"{not json", "application/json", 400, "not valid JSON"),
                (b"[1, 2]", "application/json", 400, "must be a JSON object"),
                (b'{"name": ["a"]}', "application/json", 400, "not right"),
                (b"name=x", "text/plain", 415, "Send the fields as JSON"),
                (b"x" * (70 * 1024), "application/x-www-form-urlencoded", 413, "larger")):
            answer = await self.call("POST", "/ai/api/users", body=body,
                                     headers={"Content-Type": content_type})
            self.assertEqual(answer.code, code, body[:30])
            self.assertIn(message, answer.json["error"])
        self.assertEqual(await self.store.accounts.list_users(), [])
        user = await self.store.accounts.create_user("613", "1", group.id)
        await self.store.accounts.create_user("613", "2", group.id)
        answer = await self.call("PATCH", f"/ai/api/users/{user.id}",
                                 json_body={"access_code": "2"})
        self.assertEqual(answer.code, 409)
        self.assertIn("already exists", answer.json["fields"]["access_code"])
        answer = await self.call("PATCH", f"/ai/api/users/{user.id}", json_body={})
        self.assertEqual((answer.code, answer.json["error"]),
                         (400, "Nothing to change: send at least one field of the user."))
        answer = await self.call("POST", f"/ai/api/users/{user.id}/balance",
                                 json_body={"amount": "0", "reason": ""})
        self.assertEqual(answer.json["fields"], {"amount": "Amount: not zero.",
                                                 "reason": "Reason is required"})
        answer = await self.call("POST", f"/ai/api/users/{user.id}/dids/12%2034")
        self.assertEqual(answer.code, 400)
        self.assertIn("DID: digits", answer.json["fields"]["did"])

    async def test_markup_in_data_stays_data(self) -> None:
        await self.admin_ready()
        group = await self.store.accounts.create_group("Office", 1)
        name = "<script>alert(1)</script> & \"q\" ]]>"
        user = await self.store.accounts.create_user("613", "1", group.id, name=name)
        answer = await self.call("GET", f"/ai/api/users/{user.id}")
        self.assertNotIn(b"<script>", answer.body)
        self.assertEqual(answer.json["user"]["name"], name)
        self.assertEqual(answer.header("X-Content-Type-Options"), "nosniff")
        answer = await self.call("GET", f"/ai/api/users/{user.id}.xml")
        self.assertNotIn(b"<script>", answer.body)
        self.assertIn(b"&lt;script&gt;", answer.body)
        self.assertEqual(text(answer.xml, "user/name"), name)
        # a key can never become markup: a per-type limit named like an element
        await self.store.accounts.set_type_limit(group.id, 'Q"/><evil x="', 2)
        await self.store.accounts.set_type_limit(group.id, "xmlish", 3)
        await self.store.accounts.set_type_limit(group.id, "VoiceMail", 4)
        answer = await self.call("GET", f"/ai/api/groups/{group.id}.xml")
        limits = answer.xml.find("group/type_limits")
        self.assertIsNone(answer.xml.find(".//evil"))
        self.assertEqual({(c.tag, c.get("key"), c.text) for c in limits},
                         {("item", 'Q"/><evil x="', "2"), ("item", "xmlish", "3"),
                          ("VoiceMail", None, "4")})
        answer = await self.call("GET", f"/ai/api/groups/{group.id}")
        self.assertEqual(answer.json["group"]["type_limits"],
                         {'Q"/><evil x="': 2, "xmlish": 3, "VoiceMail": 4})

    async def test_catalogue_cdrs_and_journal(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        tariff = await acc.create_tariff("Basic", 1, ivr_minute=5000, monthly_fee=100 * UNIT)
        group = await acc.create_group("Office", tariff.id, max_phones=3, allow_tts=True)
        answer = await self.call("GET", "/ai/api/groups")
        self.assertEqual([(g["id"], g["name"]) for g in answer.json["groups"]],
                         [(g.id, g.name) for g in await acc.list_groups()])
        answer = await self.call("GET", f"/ai/api/groups/{group.id}.xml")
        self.assertEqual((text(answer.xml, "group/max_phones"),
                          text(answer.xml, "group/allow_tts"),
                          text(answer.xml, "group/tariff_id")), ("3", "true", str(tariff.id)))
        self.assertEqual((await self.call("GET", "/ai/api/groups/999999")).code, 404)
        answer = await self.call("GET", "/ai/api/tariffs")
        basic_ = next(t for t in answer.json["tariffs"] if t["name"] == "Basic")
        self.assertEqual((basic_["ivr_minute"], basic_["ivr_minute_units"],
                          basic_["monthly_fee"], basic_["currency"]),
                         ("0.50", 5000, "100.00", (await acc.get_currency(1)).code))
        answer = await self.call("GET", "/ai/api/tariffs.xml")
        self.assertEqual(sorted(text(t, "name") for t in answer.xml.findall("tariffs/tariff")),
                         sorted(t.name for t in await acc.list_tariffs()))
        answer = await self.call("GET", "/ai/api/nodes")
        self.assertEqual([n["id"] for n in answer.json["nodes"]],
                         [n.id for n in await acc.list_nodes()])
        # CDRs: filters by time (seconds or ISO 8601), caller; pages by next_before
        base = 1_764_100_000
        await self.store.cdrs.insert_many(
            {"record_id": f"r{i}", "call_id": f"c{i}", "type": "IVR", "subscr_id": 1,
             "access_code": "10001", "caller_id": "100" if i % 2 else "200",
             "called_id": "613", "create_timestamp": base + i * 60,
             "start_timestamp": base + i * 60, "stop_timestamp": base + i * 60 + 30,
             "cost": 333 * i} for i in range(6))
        answer = await self.call("GET", "/ai/api/cdrs?limit=2")
        page = answer.json
        self.assertEqual([c["record_id"] for c in page["cdrs"]], ["r5", "r4"])
        first = page["cdrs"][0]
        self.assertEqual((first["duration"], first["cost"], first["cost_units"],
                          first["start_timestamp"], first["start_timestamp_iso"]),
                         (30, "0.1665", 1665, base + 300,
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 300))))
        seen = [c["record_id"] for c in page["cdrs"]]
        while page["next_before"]:
            page = (await self.call(
                "GET", f"/ai/api/cdrs?limit=2&before={page['next_before']}")).json
            seen += [c["record_id"] for c in page["cdrs"]]
        self.assertEqual(seen, ["r5", "r4", "r3", "r2", "r1", "r0"])
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 120))
        answer = await self.call("GET", f"/ai/api/cdrs.xml?from={iso}&to={base + 300}"
                                        "&caller=100")
        self.assertEqual([text(c, "record_id") for c in answer.xml.findall("cdrs/cdr")],
                         ["r3"])
        answer = await self.call("GET", "/ai/api/cdrs?from=yesterday&before=x")
        self.assertEqual(answer.code, 400)
        self.assertEqual(set(answer.json["fields"]), {"from", "before"})
        # the journal: the admin's changes through the API, newest first, paged
        user = await acc.create_user("613", "1", group.id)
        await self.call("PATCH", f"/ai/api/users/{user.id}", json_body={"name": "A"})
        await self.call("PATCH", f"/ai/api/users/{user.id}", json_body={"name": "B"})
        answer = await self.call("GET", f"/ai/api/journal?user={user.id}&limit=1")
        page = answer.json
        entries = await self.store.journal.for_user(user.id)
        self.assertEqual([(e["id"], e["field"], e["new_value"], e["actor"])
                          for e in page["entries"]],
                         [(entries[0].id, "name", "B", "admin")])
        self.assertEqual(page["next_before"], entries[0].id)
        answer = await self.call("GET", f"/ai/api/journal.xml?before={page['next_before']}")
        self.assertEqual([int(text(e, "id")) for e in answer.xml.findall("entries/entry")],
                         [e.id for e in await self.store.journal.all(
                             before_id=entries[0].id)])

    async def test_unknown_endpoints_and_methods_answer_in_the_api_format(self) -> None:
        await self.admin_ready()
        answer = await self.call("GET", "/ai/api/nope")
        self.assertEqual(answer.code, 404)
        self.assertIn("There is no API endpoint /ai/api/nope", answer.json["error"])
        answer = await self.call("GET", "/ai/api/nope.xml")
        self.assertEqual(answer.code, 404)
        self.assertIn("There is no API endpoint", text(answer.xml, "error"))
        for path in ("/ai/api", "/ai/api/", "/ai/api/users/abc", "/ai/api/users/"):
            self.assertEqual((await self.call("GET", path)).code, 404, path)
        answer = await self.call("PUT", "/ai/api/users")
        self.assertEqual((answer.code, answer.header("Allow")), (405, "GET, POST"))
        self.assertIn("does not take PUT", answer.json["error"])

    async def test_a_fault_is_a_500_in_the_api_format_without_a_traceback(self) -> None:
        await self.admin_ready()

        async def broken() -> None:
            raise RuntimeError("the disk is on fire")

        self.patch(self.store.accounts, "list_groups", broken)
        answer = await self.call("GET", "/ai/api/groups.xml")
        self.assertEqual(answer.code, 500)
        self.assertIn("it is in the log", text(answer.xml, "error"))
        self.assertNotIn(b"fire", answer.body)
        self.assertNotIn(b"Traceback", answer.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


ApiOnSQLite, ApiOnMariaDB = on_both_backends(ApiTests)


class PartnerApiTests(ApiCase):
    async def test_a_partner_is_held_to_its_group(self) -> None:
        acc = self.store.accounts
        cheap = await acc.create_tariff("Cheap", 1)
        mine = await acc.create_group("mine", cheap.id)
        other = await acc.create_group("other", 1)
        alice = await acc.create_user("613", "1", mine.id)
        bob = await acc.create_user("613", "2", other.id)
        await acc.assign_did("3500", bob.id)
        await self.partner_ready(mine.id, can_change_balance=1, balance_limit=10 * UNIT)
        await self.admin_ready()
        answer = await self.call("GET", "/ai/api/whoami", auth=PARTNER)
        self.assertEqual(answer.json, {"kind": "partner", "login": "reseller",
                                       "address": "127.0.0.1", "group_id": mine.id,
                                       "can_change_balance": True, "balance_limit": "10.00",
                                       "balance_limit_units": 10 * UNIT})
        answer = await self.call("GET", "/ai/api/users", auth=PARTNER)
        self.assertEqual([u["id"] for u in answer.json["users"]], [alice.id])
        answer = await self.call("GET", "/ai/api/users?did=3500", auth=PARTNER)  # bob's
        self.assertEqual(answer.json["users"], [])
        answer = await self.call("GET", "/ai/api/users?did=3500")
        self.assertEqual([u["id"] for u in answer.json["users"]], [bob.id])
        answer = await self.call("GET", f"/ai/api/users?group={other.id}", auth=PARTNER)
        self.assertEqual(answer.json["users"], [])
        answer = await self.call("GET", "/ai/api/groups", auth=PARTNER)
        self.assertEqual([g["id"] for g in answer.json["groups"]], [mine.id])
        answer = await self.call("GET", "/ai/api/tariffs.xml", auth=PARTNER)
        self.assertEqual([text(t, "name") for t in answer.xml.findall("tariffs/tariff")],
                         ["Cheap"])
        self.assertEqual((await self.call("GET", f"/ai/api/groups/{mine.id}",
                                          auth=PARTNER)).code, 200)
        refusals: list[tuple[str, str, dict[str, str] | None, int]] = [
            ("GET", f"/ai/api/groups/{other.id}", None, 404)]
        for path in ("/ai/api/cdrs", "/ai/api/journal", "/ai/api/nodes",
                     "/ai/api/journal.xml?user=1"):
            refusals.append(("GET", path, None, 403))
        for method, path, body in (
                ("GET", "", None), ("GET", ".xml", None), ("PATCH", "", {"name": "x"}),
                ("POST", "", {"name": "x"}), ("GET", "/balance-history", None),
                ("POST", "/balance", {"amount": "1", "reason": "x"}),
                ("POST", "/dids/777", None), ("DELETE", "/dids/3500", None),
                ("POST", "/dids/3500/delete", None), ("POST", "/delete", None),
                ("DELETE", "", None)):
            refusals.append((method, f"/ai/api/users/{bob.id}{path}", body, 404))
        for method, path, body, code in refusals:
            answer = await self.call(method, path, auth=PARTNER, json_body=body)
            self.assertEqual(answer.code, code, (method, path, answer.body[:300]))
            self.assertIn("error", answer.json if not path.endswith(".xml") and
                          ".xml?" not in path else {"error": text(answer.xml, "error")})
        self.assertEqual(await acc.get_user(bob.id), bob)
        self.assertEqual((await acc.find_user_by_did("3500")).id, bob.id)
        self.assertEqual(await acc.balance_history(bob.id), [])
        # creating: always in its own group
        answer = await self.call("POST", "/ai/api/users", auth=PARTNER, json_body={
            "voice_number": "613", "access_code": "3", "group_id": other.id})
        self.assertEqual(answer.code, 400)
        self.assertIn("a partner's users stay in its group", answer.json["fields"]["group_id"])
        answer = await self.call("POST", "/ai/api/users", auth=PARTNER, json_body={
            "voice_number": "613", "access_code": "3", "name": "Carol"})
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual((await acc.find_user("613", "3")).group_id, mine.id)
        answer = await self.call("PATCH", f"/ai/api/users/{alice.id}", auth=PARTNER,
                                 json_body={"group_id": other.id})
        self.assertEqual(answer.code, 400)
        self.assertEqual((await acc.get_user(alice.id)).group_id, mine.id)
        # the balance: within the partner's limit only
        answer = await self.call("POST", f"/ai/api/users/{alice.id}/balance", auth=PARTNER,
                                 json_body={"amount": "10.01", "reason": "too much"})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["fields"]["amount"],
                         "Amount: at most 10.00 at a time for your partner account.")
        answer = await self.call("POST", f"/ai/api/users/{alice.id}/balance", auth=PARTNER,
                                 json_body={"amount": "-11", "reason": "too much"})
        self.assertEqual(answer.code, 400)
        answer = await self.call("POST", f"/ai/api/users/{alice.id}/balance", auth=PARTNER,
                                 form={"amount": "10", "reason": "top-up"})
        self.assertEqual((answer.code, answer.json["balance"]), (200, "10.00"))
        self.assertEqual((await acc.get_user(alice.id)).balance, 10 * UNIT)
        entry = (await self.store.journal.for_user(alice.id))[0]
        self.assertEqual((entry.actor_kind, entry.actor, entry.address, entry.field),
                         ("partner", "reseller", "127.0.0.1", "balance"))
        op = (await acc.balance_history(alice.id))[0]
        self.assertEqual((op.actor_kind, op.actor), ("partner", "reseller"))

    async def test_a_partner_without_balance_rights(self) -> None:
        mine = await self.store.accounts.create_group("mine", 1)
        alice = await self.store.accounts.create_user("613", "1", mine.id)
        await self.partner_ready(mine.id)
        answer = await self.call("POST", f"/ai/api/users/{alice.id}/balance.xml",
                                 auth=PARTNER, form={"amount": "1", "reason": "x"})
        self.assertEqual(answer.code, 403)
        self.assertEqual(text(answer.xml, "error"),
                         "Your partner account may not change balances.")
        self.assertEqual((await self.store.accounts.get_user(alice.id)).balance, 0)


PartnerApiOnSQLite, PartnerApiOnMariaDB = on_both_backends(PartnerApiTests)


class CatalogApiTests(ApiCase):
    """Tariffs, groups (with per-type limits), partners, nodes, DIDs and their language:
    created, read, changed and deleted through the API as the catalogue pages do."""

    async def journal(self) -> set[tuple[str, str, str, str, str]]:
        entries = await self.store.journal.all(limit=1000)
        self.assertEqual({(e.actor_kind, e.actor, e.address) for e in entries},
                         {("admin", "admin", "127.0.0.1")})
        return {(e.object_kind, e.object_id, e.field, e.old_value, e.new_value)
                for e in entries}

    async def test_tariffs_created_read_changed_and_deleted(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        answer = await self.call("POST", "/ai/api/tariffs", json_body={
            "name": "Basic", "currency_id": 2, "ivr_minute": "0.50", "monthly_fee": 100})
        self.assertEqual(answer.code, 201, answer.body)
        made = answer.json["tariff"]
        tariff = await acc.get_tariff(made["id"])
        self.assertEqual(answer.header("Location"), f"/ai/api/tariffs/{tariff.id}")
        self.assertEqual((tariff.name, tariff.currency_id, tariff.ivr_minute,
                          tariff.monthly_fee, tariff.daily_fee),
                         ("Basic", 2, 5000, 100 * UNIT, 0))
        self.assertEqual((made["ivr_minute"], made["ivr_minute_units"], made["monthly_fee"],
                          made["daily_fee_units"], made["currency"]),
                         ("0.50", 5000, "100.00", 0, "USD"))
        # XML, from a form
        answer = await self.call("POST", "/ai/api/tariffs.xml", form={
            "name": "Night", "currency_id": 1, "callback_call": "0,0333"})
        self.assertEqual(answer.code, 201, answer.body)
        night = await acc.get_tariff(int(text(answer.xml, "tariff/id")))
        self.assertEqual((night.name, night.callback_call), ("Night", 333))
        self.assertEqual((text(answer.xml, "tariff/callback_call"),
                          text(answer.xml, "tariff/callback_call_units"),
                          text(answer.xml, "tariff/currency")), ("0.0333", "333", "RUB"))
        answer = await self.call("GET", f"/ai/api/tariffs/{tariff.id}.xml")
        self.assertEqual((text(answer.xml, "tariff/name"),
                          text(answer.xml, "tariff/monthly_fee_units")), ("Basic", "1000000"))
        answer = await self.call("GET", f"/ai/api/tariffs/{tariff.id}")
        self.assertEqual(answer.json["tariff"], made)
        # changed: only the fields sent
        answer = await self.call("PATCH", f"/ai/api/tariffs/{tariff.id}",
                                 json_body={"ivr_call": "1.25", "name": "Basic 2"})
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual((answer.json["tariff"]["ivr_call"], answer.json["tariff"]["name"]),
                         ("1.25", "Basic 2"))
        fresh = await acc.get_tariff(tariff.id)
        self.assertEqual((fresh.name, fresh.ivr_call, fresh.ivr_minute, fresh.currency_id),
                         ("Basic 2", 12500, 5000, 2))
        answer = await self.call("POST", f"/ai/api/tariffs/{night.id}.xml",
                                 form={"daily_fee": "2"})
        self.assertEqual(text(answer.xml, "tariff/daily_fee"), "2.00")
        self.assertEqual((await acc.get_tariff(night.id)).daily_fee, 2 * UNIT)
        # refused: wrong fields, a name taken, nothing to change, unknown tariff
        answer = await self.call("POST", "/ai/api/tariffs", json_body={
            "currency_id": 9, "ivr_minute": "0.00001", "colour": "red", "daily_fee": -1})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["error"],
                         "The tariff was not added: some fields are not right.")
        fields = answer.json["fields"]
        self.assertEqual(fields["name"], "Name is required")
        self.assertIn("Currency: there is no currency 9 (they are: 1 (RUB)",
                      fields["currency_id"])
        self.assertEqual(fields["ivr_minute"],
                         "IVR: a minute: at most 4 digits after the point, got '0.00001'")
        self.assertEqual(fields["daily_fee"], "Daily fee: at least 0, got -1")
        self.assertIn("colour: not a field of a tariff", fields["colour"])
        answer = await self.call("POST", "/ai/api/tariffs", json_body={
            "name": "Night", "currency_id": 1})
        self.assertEqual(answer.code, 409)
        self.assertIn("already exists", answer.json["fields"]["name"])
        answer = await self.call("PATCH", f"/ai/api/tariffs/{tariff.id}",
                                 json_body={"name": "Night"})
        self.assertEqual(answer.code, 409)
        self.assertEqual(answer.json["fields"]["name"], "a tariff named 'Night' already exists")
        answer = await self.call("PATCH", f"/ai/api/tariffs/{tariff.id}", json_body={})
        self.assertEqual((answer.code, answer.json["error"]),
                         (400, "Nothing to change: send at least one field of the tariff."))
        self.assertEqual(await acc.get_tariff(tariff.id), fresh)
        self.assertEqual((await self.call("GET", "/ai/api/tariffs/999999")).code, 404)
        self.assertEqual((await self.call("PATCH", "/ai/api/tariffs/999999",
                                          json_body={"name": "x"})).code, 404)
        # a tariff a group uses stays
        await acc.create_group("Office", tariff.id)
        await acc.create_group("Home", tariff.id)
        answer = await self.call("DELETE", f"/ai/api/tariffs/{tariff.id}")
        self.assertEqual(answer.code, 409)
        self.assertEqual(answer.json["error"], "The groups Home, Office use this tariff; give "
                         "them another one first. Nothing was changed.")
        answer = await self.call("POST", f"/ai/api/tariffs/{tariff.id}/delete.xml")
        self.assertEqual(answer.code, 409)
        self.assertIn("use this tariff", text(answer.xml, "error"))
        self.assertIsNotNone(await acc.get_tariff(tariff.id))
        # deleted, by either form
        answer = await self.call("DELETE", f"/ai/api/tariffs/{night.id}")
        self.assertEqual(answer.json, {"deleted": True, "id": night.id})
        self.assertIsNone(await acc.get_tariff(night.id))
        self.assertEqual((await self.call("DELETE", f"/ai/api/tariffs/{night.id}")).code, 404)
        spare = await acc.create_tariff("Spare", 1)
        answer = await self.call("POST", f"/ai/api/tariffs/{spare.id}/delete")
        self.assertEqual(answer.json, {"deleted": True, "id": spare.id})
        self.assertIsNone(await acc.get_tariff(spare.id))
        changed = await self.journal()
        for row in (("tariffs", str(tariff.id), "", "", "(created)"),
                    ("tariffs", str(tariff.id), "name", "Basic", "Basic 2"),
                    ("tariffs", str(tariff.id), "ivr_call", "0", "12500"),
                    ("tariffs", str(night.id), "daily_fee", "0", "20000"),
                    ("tariffs", str(night.id), "", "(deleted)", ""),
                    ("tariffs", str(spare.id), "", "(deleted)", "")):
            self.assertIn(row, changed)

    async def test_groups_with_every_limit_and_feature_and_type_limits(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        tariff = await acc.create_tariff("Basic", 1)
        await acc.put_node("node2", limit_calls=0)
        answer = await self.call("POST", "/ai/api/groups", json_body={
            "name": "Office", "tariff_id": tariff.id, "server_id": "node2",
            "max_phones": 3, "allow_tts": False})
        self.assertEqual(answer.code, 201, answer.body)
        made = answer.json["group"]
        group = await acc.get_group(made["id"])
        self.assertEqual(answer.header("Location"), f"/ai/api/groups/{group.id}")
        self.assertEqual((group.name, group.tariff_id, group.server_id, group.max_phones,
                          group.allow_tts, group.language),
                         ("Office", tariff.id, "node2", 3, False, "xvb.EN-Female"))
        self.assertEqual((made["max_phones"], made["allow_tts"], made["type_limits"]),
                         (3, False, {}))
        answer = await self.call("POST", "/ai/api/groups.xml", form={
            "name": "Home", "tariff_id": tariff.id, "server_id": "DEFAULT_NODE",
            "allow_api": "yes"})
        self.assertEqual(answer.code, 201, answer.body)
        home = await acc.get_group(int(text(answer.xml, "group/id")))
        self.assertEqual((home.name, home.allow_api, text(answer.xml, "group/allow_api")),
                         ("Home", True, "true"))
        # every field of the group screen, changed at once
        body: dict[str, Any] = {}
        for number, field in enumerate(api_module.schemas.GROUP):
            if field.kind == "bool":
                body[field.name] = not getattr(group, field.name)
            elif field.kind == "int":
                body[field.name] = 10 + number
            else:
                body[field.name] = f"x{number}"
        body.update(name="Office 2", tariff_id=tariff.id, server_id="DEFAULT_NODE",
                    language="xvb.RU-Male")
        answer = await self.call("PATCH", f"/ai/api/groups/{group.id}", json_body=body)
        self.assertEqual(answer.code, 200, answer.body)
        fresh = await acc.get_group(group.id)
        for name, value in body.items():
            self.assertEqual(getattr(fresh, name), value, name)
            self.assertEqual(answer.json["group"][name], value, name)
        answer = await self.call("POST", f"/ai/api/groups/{group.id}.xml",
                                 form={"max_queues": "-1"})
        self.assertEqual(text(answer.xml, "group/max_queues"), "-1")
        self.assertEqual((await acc.get_group(group.id)).max_queues, -1)
        # refused
        answer = await self.call("POST", "/ai/api/groups", json_body={
            "tariff_id": 999999, "server_id": "nowhere", "max_phones": -2,
            "allow_tts": "perhaps", "colour": "red"})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["error"],
                         "The group was not added: some fields are not right.")
        self.assertEqual(answer.json["fields"], {
            "name": "Name is required", "tariff_id": "Tariff: there is no tariff 999999.",
            "server_id": "Node: there is no node nowhere.",
            "max_phones": "Maximum Number of phones: at least -1, got -2",
            "allow_tts": "TTS greetings: yes or no, got 'perhaps'",
            "colour": answer.json["fields"]["colour"]})
        self.assertIn("colour: not a field of a group", answer.json["fields"]["colour"])
        answer = await self.call("POST", "/ai/api/groups", json_body={
            "name": "Home", "tariff_id": tariff.id, "server_id": "DEFAULT_NODE"})
        self.assertEqual(answer.code, 409)
        answer = await self.call("PATCH", f"/ai/api/groups/{group.id}",
                                 json_body={"name": "Home"})
        self.assertEqual((answer.code, answer.json["fields"]["name"]),
                         (409, "a group named 'Home' already exists"))
        self.assertEqual((await acc.get_group(group.id)).name, "Office 2")
        self.assertEqual((await self.call("PATCH", "/ai/api/groups/999999",
                                          json_body={"name": "x"})).code, 404)
        # per-type limits
        answer = await self.call("PUT", f"/ai/api/groups/{group.id}/type-limits/VoiceMail",
                                 json_body={"max_count": 2})
        self.assertEqual(answer.json, {"group_id": group.id, "type_name": "VoiceMail",
                                       "max_count": 2})
        answer = await self.call("POST", f"/ai/api/groups/{group.id}/type-limits/Queue.xml",
                                 form={"max_count": "0"})
        self.assertEqual(text(answer.xml, "max_count"), "0")
        self.assertEqual(await acc.type_limits(group.id), {"VoiceMail": 2, "Queue": 0})
        answer = await self.call("GET", f"/ai/api/groups/{group.id}")
        self.assertEqual(answer.json["group"]["type_limits"], {"VoiceMail": 2, "Queue": 0})
        answer = await self.call("PUT", f"/ai/api/groups/{group.id}/type-limits/VoiceMail",
                                 json_body={"max_count": -2, "min_count": 1})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["fields"]["max_count"],
                         "Most extensions of the type: at least -1, got -2")
        self.assertIn("min_count: not a field of a type limit", answer.json["fields"]["min_count"])
        answer = await self.call("PUT", f"/ai/api/groups/{group.id}/type-limits/VoiceMail",
                                 json_body={})
        self.assertEqual(answer.json["fields"]["max_count"],
                         "Most extensions of the type is required")
        answer = await self.call("PUT", f"/ai/api/groups/{group.id}/type-limits/Nope",
                                 json_body={"max_count": 1})
        self.assertEqual(answer.code, 404)
        self.assertIn("There is no extension type Nope; the types are: Calendar, CallBlast",
                      answer.json["error"])
        self.assertEqual((await self.call("PUT", "/ai/api/groups/999999/type-limits/Queue",
                                          json_body={"max_count": 1})).code, 404)
        answer = await self.call("DELETE", f"/ai/api/groups/{group.id}/type-limits/VoiceMail")
        self.assertEqual(answer.json, {"group_id": group.id, "type_name": "VoiceMail",
                                       "max_count": -1})
        self.assertEqual((await acc.type_limits(group.id)).get("VoiceMail", -1), -1)
        answer = await self.call("POST",
                                 f"/ai/api/groups/{group.id}/type-limits/Queue/delete")
        self.assertEqual(answer.code, 200)
        self.assertEqual((await acc.type_limits(group.id)).get("Queue", -1), -1)
        # deleting: not while it has users or a partner
        user = await acc.create_user("613", "1", group.id)
        answer = await self.call("DELETE", f"/ai/api/groups/{group.id}")
        self.assertEqual((answer.code, answer.json["error"]),
                         (409, "The group has users; move or delete them first. Nothing was "
                          "changed."))
        await acc.delete_user(user.id)
        await self.partner_ready(group.id)
        answer = await self.call("POST", f"/ai/api/groups/{group.id}/delete.xml")
        self.assertEqual(answer.code, 409)
        self.assertIn("A partner manages this group", text(answer.xml, "error"))
        self.assertIsNotNone(await acc.get_group(group.id))
        await acc.delete_partner((await acc.find_partner("reseller")).id)
        answer = await self.call("DELETE", f"/ai/api/groups/{group.id}")
        self.assertEqual(answer.json, {"deleted": True, "id": group.id})
        self.assertIsNone(await acc.get_group(group.id))
        self.assertEqual((await self.call("DELETE", f"/ai/api/groups/{group.id}")).code, 404)
        changed = await self.journal()
        for row in (("user_groups", str(group.id), "", "", "(created)"),
                    ("user_groups", str(group.id), "name", "Office", "Office 2"),
                    ("user_groups", str(group.id), "max_phones", "3", str(body["max_phones"])),
                    ("user_groups", str(group.id), "allow_tts", "0", "1"),
                    ("user_groups", str(group.id), "type limit VoiceMail", "-1", "2"),
                    ("user_groups", str(group.id), "type limit VoiceMail", "2", "-1"),
                    ("user_groups", str(group.id), "type limit Queue", "0", "-1"),
                    ("user_groups", str(group.id), "", "(deleted)", "")):
            self.assertIn(row, changed)

    async def test_partners_and_their_passwords(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        office = await acc.create_group("Office", 1)
        home = await acc.create_group("Home", 1)
        bodies: list[bytes] = []
        call = self.call

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            answer = await call(*args, **kwargs)
            bodies.append(answer.body)
            return answer

        self.patch(self, "call", recorded)
        answer = await self.call("POST", "/ai/api/partners", json_body={
            "login": "seller", "password": "first-pass-1", "group_id": office.id,
            "description": "Acme", "can_change_balance": True, "balance_limit": "50"})
        self.assertEqual(answer.code, 201, answer.body)
        made = answer.json["partner"]
        partner = await acc.find_partner("seller")
        self.assertEqual(answer.header("Location"), f"/ai/api/partners/{partner.id}")
        self.assertEqual((partner.id, partner.group_id, partner.description,
                          partner.can_change_balance, partner.balance_limit),
                         (made["id"], office.id, "Acme", True, 50 * UNIT))
        self.assertEqual((made["balance_limit"], made["balance_limit_units"],
                          made["created_at"]), ("50.00", 50 * UNIT, partner.created_at))
        self.assertNotIn("password_hash", made)
        self.assertNotIn("first-pass-1", partner.password_hash)
        # the new partner can use the API with its password (hashed, not stored as is)
        answer = await self.call("GET", "/ai/api/whoami", auth=("seller", "first-pass-1"))
        self.assertEqual((answer.json["kind"], answer.json["group_id"]), ("partner", office.id))
        answer = await self.call("POST", "/ai/api/partners.xml", form={
            "login": "second", "password": "second-pass", "group_id": home.id})
        self.assertEqual(answer.code, 201, answer.body)
        second = await acc.find_partner("second")
        self.assertEqual((text(answer.xml, "partner/id"),
                          text(answer.xml, "partner/can_change_balance")),
                         (str(second.id), "false"))
        self.assertIsNone(answer.xml.find(".//password_hash"))
        answer = await self.call("GET", "/ai/api/partners")
        self.assertEqual([p["login"] for p in answer.json["partners"]], ["second", "seller"])
        answer = await self.call("GET", f"/ai/api/partners/{partner.id}.xml")
        self.assertEqual(text(answer.xml, "partner/description"), "Acme")
        # changed without a password: the hash stays
        answer = await self.call("PATCH", f"/ai/api/partners/{partner.id}",
                                 json_body={"group_id": home.id, "balance_limit": "0"})
        self.assertEqual(answer.code, 200, answer.body)
        fresh = await acc.get_partner(partner.id)
        self.assertEqual((fresh.group_id, fresh.balance_limit, fresh.password_hash),
                         (home.id, 0, partner.password_hash))
        # a new password
        answer = await self.call("POST", f"/ai/api/partners/{partner.id}",
                                 form={"password": "second-pass-2"})
        self.assertEqual(answer.code, 200, answer.body)
        renewed = (await acc.get_partner(partner.id)).password_hash
        self.assertNotEqual(renewed, partner.password_hash)
        self.assertEqual((await self.call("GET", "/ai/api/whoami",
                                          auth=("seller", "first-pass-1"))).code, 401)
        self.assertEqual((await self.call("GET", "/ai/api/whoami",
                                          auth=("seller", "second-pass-2"))).code, 200)
        # refused
        answer = await self.call("POST", "/ai/api/partners", json_body={
            "login": "bad login", "group_id": 999999, "balance_limit": "x", "role": "admin"})
        self.assertEqual(answer.code, 400)
        fields = answer.json["fields"]
        self.assertEqual(fields["login"], "Login: letters, digits, . _ @ -")
        self.assertEqual(fields["password"],
                         "A new partner needs a password (at least 8 characters).")
        self.assertEqual(fields["group_id"], "Group: there is no group 999999.")
        self.assertEqual(fields["balance_limit"],
                         "Largest single balance change: an amount like 12.50, got 'x'")
        self.assertIn("role: not a field of a partner", fields["role"])
        for password, message in (("short", "Password: at least 8 characters."),
                                  ("", "Password: at least 8 characters; leave the field "
                                       "out to keep the password.")):
            answer = await self.call("PATCH", f"/ai/api/partners/{partner.id}",
                                     json_body={"password": password})
            self.assertEqual((answer.code, answer.json["fields"]["password"]),
                             (400, message))
        answer = await self.call("POST", "/ai/api/partners", json_body={
            "login": "second", "password": "third-pass", "group_id": home.id})
        self.assertEqual(answer.code, 409)
        self.assertIn("already exists", answer.json["fields"]["login"])
        answer = await self.call("PATCH", f"/ai/api/partners/{partner.id}",
                                 json_body={"login": "second"})
        self.assertEqual((answer.code, answer.json["fields"]["login"]),
                         (409, "a partner 'second' already exists"))
        self.assertEqual((await acc.get_partner(partner.id)).login, "seller")
        self.assertEqual((await self.call("GET", "/ai/api/partners/999999")).code, 404)
        # deleted, by either form
        answer = await self.call("DELETE", f"/ai/api/partners/{partner.id}")
        self.assertEqual(answer.json, {"deleted": True, "id": partner.id})
        answer = await self.call("POST", f"/ai/api/partners/{second.id}/delete.xml")
        self.assertEqual(text(answer.xml, "deleted"), "true")
        self.assertEqual(await acc.list_partners(), [])
        self.assertEqual((await self.call("DELETE", f"/ai/api/partners/{partner.id}")).code,
                         404)
        changed = await self.journal()
        for row in (("partners", str(partner.id), "", "", "(created)"),
                    ("partners", str(partner.id), "group_id", str(office.id), str(home.id)),
                    ("partners", str(partner.id), "password_hash", "(changed)", "(changed)"),
                    ("partners", str(partner.id), "", "(deleted)", "")):
            self.assertIn(row, changed)
        everything = " ".join(" ".join(row) for row in changed)
        for secret in ("first-pass-1", "second-pass", "second-pass-2", "$"):
            self.assertNotIn(secret, everything)
        # nor in any answer: neither a password nor a hash (nor a piece of one)
        self.assertGreater(len(bodies), 15)
        for body in bodies:
            for secret in (b"first-pass-1", b"second-pass", b"password_hash",
                           partner.password_hash.encode(), renewed[-20:].encode(),
                           second.password_hash[-20:].encode(), b"$"):
                self.assertNotIn(secret, body)

    async def test_nodes_put_and_deleted(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        answer = await self.call("PUT", "/ai/api/nodes/node2", json_body={
            "asterisk_ip": "10.0.0.2", "limit_calls": 40, "limit_la_5": "2.5"})
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.header("Location"), "/ai/api/nodes/node2")
        node = await acc.get_node("node2")
        self.assertEqual((node.asterisk_ip, node.limit_calls, node.limit_la_5,
                          node.limit_la_1), ("10.0.0.2", 40, 2.5, 0))
        self.assertEqual((answer.json["node"]["limit_calls"], answer.json["node"]["stat_at"]),
                         (40, None))
        answer = await self.call("POST", "/ai/api/nodes/node2.xml",
                                 form={"comment": "second box"})
        self.assertEqual((answer.code, text(answer.xml, "node/comment"),
                          text(answer.xml, "node/limit_calls")), (200, "second box", "40"))
        self.assertEqual((await acc.get_node("node2")).comment, "second box")
        answer = await self.call("GET", "/ai/api/nodes/node2")
        self.assertEqual(answer.json["node"]["asterisk_ip"], "10.0.0.2")
        answer = await self.call("PUT", "/ai/api/nodes/node2",
                                 json_body={"limit_calls": -1, "speed": 9})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["fields"]["limit_calls"],
                         "Limit: calls: at least 0, got -1")
        self.assertIn("speed: not a field of a node", answer.json["fields"]["speed"])
        answer = await self.call("PUT", "/ai/api/nodes/bad%20id", json_body={})
        self.assertEqual(answer.code, 400)
        self.assertIn("letters, digits", answer.json["fields"]["id"])
        self.assertEqual((await self.call("GET", "/ai/api/nodes/nowhere")).code, 404)
        # a node serving a group stays
        group = await acc.create_group("Office", 1, server_id="node2")
        answer = await self.call("DELETE", "/ai/api/nodes/node2")
        self.assertEqual((answer.code, answer.json["error"]),
                         (409, "Node node2 serves the groups Office; move them to another "
                          "node first. Nothing was changed."))
        await acc.update_group(group.id, server_id="DEFAULT_NODE")
        answer = await self.call("DELETE", "/ai/api/nodes/node2.xml")
        self.assertEqual((answer.code, text(answer.xml, "deleted")), (200, "true"))
        self.assertIsNone(await acc.get_node("node2"))
        self.assertEqual((await self.call("POST", "/ai/api/nodes/node2/delete")).code, 404)
        changed = await self.journal()
        for row in (("nodes", "node2", "", "", "(created)"),
                    ("nodes", "node2", "comment", "", "second box"),
                    ("nodes", "node2", "", "(deleted)", "")):
            self.assertIn(row, changed)

    async def test_dids_and_their_language(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        group = await acc.create_group("Office", 1)
        user = await acc.create_user("613", "1", group.id)
        for did in ("3500", "3501", "4500"):
            await acc.assign_did(did, user.id)
        answer = await self.call("GET", "/ai/api/dids?prefix=35")
        made = {d.did: d.created_at for d in await acc.user_dids(user.id)}
        self.assertEqual(answer.json["dids"], [
            {"did": did, "user_id": user.id, **apiformat.time_fields("created_at", made[did])}
            for did in ("3500", "3501")])
        answer = await self.call("GET", "/ai/api/dids.xml?limit=2")
        self.assertEqual([text(d, "did") for d in answer.xml.findall("dids/did")],
                         ["3500", "3501"])
        answer = await self.call("GET", "/ai/api/dids?prefix=3%205&limit=0")
        self.assertEqual(set(answer.json["fields"]), {"prefix", "limit"})
        # the language a public number speaks
        answer = await self.call("PUT", "/ai/api/didattrs/74950001",
                                 json_body={"language": "xvb.RU-Female"})
        self.assertEqual((answer.code, answer.json),
                         (201, {"didattr": {"did": "74950001", "language": "xvb.RU-Female"}}))
        self.assertEqual(await acc.did_language("74950001"), "xvb.RU-Female")
        answer = await self.call("POST", "/ai/api/didattrs/74950001.xml",
                                 form={"language": "xvb.EN-Male"})
        self.assertEqual((answer.code, text(answer.xml, "didattr/language")),
                         (200, "xvb.EN-Male"))
        self.assertEqual(await acc.did_language("74950001"), "xvb.EN-Male")
        answer = await self.call("GET", "/ai/api/didattrs.xml")
        self.assertEqual([(text(a, "did"), text(a, "language"))
                          for a in answer.xml.findall("didattrs/didattr")],
                         [("74950001", "xvb.EN-Male")])
        answer = await self.call("PUT", "/ai/api/didattrs/7495%200001",
                                 json_body={"language": "no spaces!", "did": "1"})
        self.assertEqual(answer.code, 400)
        fields = answer.json["fields"]
        self.assertEqual(fields["language"], "Language: a language pack like xvb.EN-Female")
        self.assertEqual(fields["did"], "did: not a field of a DID's attributes (they are: "
                         "language)")
        answer = await self.call("PUT", "/ai/api/didattrs/74950002", json_body={})
        self.assertEqual(answer.json["fields"], {"language": "Language is required"})
        self.assertIsNone(await acc.did_language("74950002"))
        answer = await self.call("DELETE", "/ai/api/didattrs/74950001")
        self.assertEqual(answer.json, {"deleted": True, "did": "74950001"})
        self.assertIsNone(await acc.did_language("74950001"))
        answer = await self.call("POST", "/ai/api/didattrs/74950001/delete")
        self.assertEqual(answer.code, 404)
        changed = await self.journal()
        for row in (("did_attrs", "74950001", "", "", "(created)"),
                    ("did_attrs", "74950001", "language", "xvb.RU-Female", "xvb.EN-Male"),
                    ("did_attrs", "74950001", "", "(deleted)", "")):
            self.assertIn(row, changed)

    async def test_methods_not_taken_are_405_on_the_new_paths(self) -> None:
        await self.admin_ready()
        for method, path, allowed in (
                ("PUT", "/ai/api/tariffs/1", "GET, POST, PATCH, DELETE"),
                ("DELETE", "/ai/api/tariffs", "GET, POST"),
                ("GET", "/ai/api/groups/1/type-limits/Queue", "POST, PUT, DELETE"),
                ("PATCH", "/ai/api/nodes/DEFAULT_NODE", "GET, POST, PUT, DELETE"),
                ("PUT", "/ai/api/partners", "GET, POST"),
                ("POST", "/ai/api/dids", "GET"),
                ("GET", "/ai/api/didattrs/3500", "POST, PUT, DELETE")):
            answer = await self.call(method, path)
            self.assertEqual((answer.code, answer.header("Allow")), (405, allowed),
                             (method, path))
            self.assertIn(f"does not take {method}", answer.json["error"])

    async def test_a_partner_is_refused_every_catalogue_change(self) -> None:
        await self.admin_ready()
        acc = self.store.accounts
        mine = await acc.create_group("mine", 1)
        await self.partner_ready(mine.id)
        partner = await acc.find_partner("reseller")
        await acc.set_did_language("3500", "xvb.RU-Female")
        before = (await acc.list_tariffs(), await acc.list_groups(), await acc.list_nodes(),
                  await acc.list_partners(), await acc.list_did_attrs(),
                  await acc.type_limits(mine.id))
        group = f"/ai/api/groups/{mine.id}"
        for method, path, body in (
                ("POST", "/ai/api/tariffs", {"name": "x", "currency_id": 1}),
                ("GET", "/ai/api/tariffs/1", None),
                ("PATCH", "/ai/api/tariffs/1", {"name": "x"}),
                ("POST", "/ai/api/tariffs/1", {"name": "x"}),
                ("DELETE", "/ai/api/tariffs/1", None),
                ("POST", "/ai/api/tariffs/1/delete", None),
                ("POST", "/ai/api/groups", {"name": "x", "tariff_id": 1}),
                ("PATCH", group, {"max_phones": 99}),
                ("POST", group, {"max_phones": 99}),
                ("DELETE", group, None), ("POST", f"{group}/delete", None),
                ("PUT", f"{group}/type-limits/Queue", {"max_count": 5}),
                ("POST", f"{group}/type-limits/Queue", {"max_count": 5}),
                ("DELETE", f"{group}/type-limits/Queue", None),
                ("POST", f"{group}/type-limits/Queue/delete", None),
                ("GET", "/ai/api/partners", None),
                ("GET", f"/ai/api/partners/{partner.id}", None),
                ("POST", "/ai/api/partners", {"login": "x", "password": "x" * 9,
                                              "group_id": mine.id}),
                ("PATCH", f"/ai/api/partners/{partner.id}", {"can_change_balance": True}),
                ("POST", f"/ai/api/partners/{partner.id}", {"balance_limit": 0}),
                ("DELETE", f"/ai/api/partners/{partner.id}", None),
                ("POST", f"/ai/api/partners/{partner.id}/delete", None),
                ("GET", "/ai/api/nodes/DEFAULT_NODE", None),
                ("PUT", "/ai/api/nodes/DEFAULT_NODE", {"comment": "x"}),
                ("POST", "/ai/api/nodes/new", {"comment": "x"}),
                ("DELETE", "/ai/api/nodes/DEFAULT_NODE", None),
                ("POST", "/ai/api/nodes/DEFAULT_NODE/delete", None),
                ("GET", "/ai/api/dids", None), ("GET", "/ai/api/didattrs", None),
                ("PUT", "/ai/api/didattrs/3500", {"language": "x"}),
                ("POST", "/ai/api/didattrs/3500", {"language": "x"}),
                ("DELETE", "/ai/api/didattrs/3500", None),
                ("POST", "/ai/api/didattrs/3500/delete", None)):
            for suffix in ("", ".xml"):
                answer = await self.call(method, path + suffix, auth=PARTNER, json_body=body)
                self.assertEqual(answer.code, 403, (method, path, answer.body[:200]))
                message = (answer.json["error"] if not suffix
                           else text(answer.xml, "error"))
                self.assertIn("This endpoint is the operator's", message)
        after = (await acc.list_tariffs(), await acc.list_groups(), await acc.list_nodes(),
                 await acc.list_partners(), await acc.list_did_attrs(),
                 await acc.type_limits(mine.id))
        self.assertEqual(after, before)
        self.assertEqual(await self.store.journal.all(), [])
        # its own group it may still read
        answer = await self.call("GET", group, auth=PARTNER)
        self.assertEqual((answer.code, answer.json["group"]["id"]), (200, mine.id))


CatalogApiOnSQLite, CatalogApiOnMariaDB = on_both_backends(CatalogApiTests)


def test_xml_names_come_only_from_plain_keys() -> None:
    body = apiformat.to_xml({"a": 1, "b c": "x", "<evil/>": "y", "xmlns": "z",
                             "list": [1, None, True], "t": "\x00bad\x1f"},
                            item_names={"list": "n"})
    root = ET.fromstring(body)
    assert [(c.tag, c.get("key")) for c in root] == [
        ("a", None), ("item", "b c"), ("item", "<evil/>"), ("item", "xmlns"), ("list", None),
        ("t", None)]
    assert [(n.tag, n.text, n.get("nil")) for n in root.find("list")] == [
        ("n", "1", None), ("n", None, "true"), ("n", "true", None)]
    assert root.find("t").text == "\ufffdbad\ufffd"
    assert apiformat.to_json({"k": "</script>&"}) == b'{"k":"\\u003c/script\\u003e\\u0026"}'
    assert json.loads(apiformat.to_json({"k": "</script>&"})) == {"k": "</script>&"}
    assert apiformat.money_fields("b", -333) == {"b": "-0.0333", "b_units": -333}
    assert apiformat.time_fields("t", 0) == {"t": None, "t_iso": None}
    assert apiformat.time_fields("t", 86400) == {"t": 86400, "t_iso": "1970-01-02T00:00:00Z"}
