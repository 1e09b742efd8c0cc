"""The tenant's JSON/XML API (``/ui/api``) through real HTTP on both backends: trusted
addresses, NUMBER#CODE with the web password (not the PIN), the plan's API feature, the tree
built and changed with each type's settings and the plan's limits, messages, greetings,
variables, calls and journal — and another tenant reaching none of it."""

from __future__ import annotations

from typing import Any

from tests.support.api import ApiClientCase, text
from tests.support.db import on_both_backends
from xvbd.passwords import hash_password
from xvbd.store.accounts import User
from xvbd.web.tenant import api as api_module

PASSWORD = "api-secret-1"
HASH = hash_password(PASSWORD)


class TenantApiCase(ApiClientCase):
    async def tenant(self, code: str = "10001", **group: Any) -> tuple[User, tuple[str, str]]:
        acc = self.store.accounts
        gid = (await acc.create_group(f"g{code}", 1, allow_api=True, **group)).id
        user = await acc.create_user("613", code, gid, pin="4321", web_password_hash=HASH)
        return user, (f"613#{code}", PASSWORD)


class UntrustedTenantApiTests(TenantApiCase):
    web_config = "[CGI]\nTRUSTED_4_UI_DF = 10\\.1\\..*\n"

    async def test_an_address_not_listed_is_refused(self) -> None:
        _, auth = await self.tenant()
        for path in ("/ui/api/whoami", "/ui/api/extensions.xml", "/ui/api/nope"):
            answer = await self.call("GET", path, auth=auth)
            self.assertEqual(answer.code, 403, path)
            body = answer.json["error"] if not path.endswith(".xml") else \
                text(answer.xml, "error")
            self.assertIn("TRUSTED_4_UI_DF", body)
        # with no trusted proxy configured, what a client says it forwards counts for nothing
        answer = await self.call("GET", "/ui/api/whoami", auth=auth,
                                 headers={"X-Forwarded-For": "10.1.2.3"})
        self.assertEqual(answer.code, 403)


class ProxiedTenantApiTests(TenantApiCase):
    """Behind a proxy on 127.0.0.1 ([WEB] TRUSTED_PROXIES): the client is the last address
    of X-Forwarded-For that is not the proxy's, whatever the client wrote before it."""

    web_config = "[CGI]\nTRUSTED_4_UI_DF = 10\\.1\\..*\n[WEB]\nTRUSTED_PROXIES = 127.0.0.1\n"

    async def test_the_forwarded_address_counts_only_from_the_proxy(self) -> None:
        _, auth = await self.tenant()
        for forwarded, code in (("10.1.2.3", 200),  # the proxy says who the client is
                                ("10.1.2.3, 192.0.2.9", 403),  # the client forged the first
                                ("10.1.2.3, 127.0.0.1", 200),  # two proxies of ours
                                ("not-an-address", 403), ("", 403)):
            answer = await self.call("GET", "/ui/api/whoami", auth=auth,
                                     headers={"X-Forwarded-For": forwarded} if forwarded
                                     else {})
            self.assertEqual(answer.code, code, forwarded)


class TenantApiTests(TenantApiCase):
    async def test_credentials_pin_refused_plan_feature_and_throttle(self) -> None:
        user, auth = await self.tenant()
        answer = await self.call("GET", "/ui/api/whoami", auth=None)
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="xvbd"')
        answer = await self.call("GET", "/ui/api/whoami", auth=("613#10001", "4321"))
        self.assertEqual(answer.code, 401)
        self.assertIn("not the PIN", answer.json["error"])
        answer = await self.call("GET", "/ui/api/whoami", auth=auth)
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual((answer.json["access_code"], answer.json["balance_units"]),
                         ("10001", 0))
        answer = await self.call("GET", "/ui/api/whoami.xml", auth=auth)
        self.assertEqual(text(answer.xml, "voice_number"), "613")
        await self.store.accounts.update_group(user.group_id, allow_api=False)
        answer = await self.call("GET", "/ui/api/whoami", auth=auth)
        self.assertEqual(answer.code, 403)
        self.assertIn("Your plan does not include the API", answer.json["error"])
        await self.store.accounts.update_group(user.group_id, allow_api=True)
        self.assertEqual((await self.call("GET", "/ui/api/nope?format=csv", auth=auth)).code,
                         400, "no such endpoint, and a format the API does not write")
        # a password proven a moment ago is proven no more after a wrong one for the login
        checks = self.count_password_checks(api_module)
        for expected in (200, 200, 401, 200):
            answer = await self.call("GET", "/ui/api/whoami",
                                     auth=auth if expected == 200 else ("613#10001", "bad"))
            self.assertEqual(answer.code, expected)
        self.assertEqual(checks, ["bad", PASSWORD], "proven twice before; after: checked")
        for _ in range(5):
            await self.call("GET", "/ui/api/whoami", auth=("613#10001", "wrong"))
        answer = await self.call("GET", "/ui/api/whoami", auth=auth)
        self.assertEqual(answer.code, 429)

    async def test_a_caller_pattern_that_could_stall_the_server_is_refused(self) -> None:
        _, auth = await self.tenant()
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Playback", "settings": {"greeting": "system:hello"}})
        root = answer.json["extension"]
        for pattern, said in ((r"(\d+)+x", "a repeat inside a repeat"),
                              ("(1|12)*5", "alternatives inside a repeat"),
                              (r"(7)\1", "cannot refer back"),
                              (r"\d*1?2?\d*\d*", "at most 4 repeats of variable length"),
                              ("(", "value is not a pattern")):
            answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
                "type": "GotoIf", "parent_id": root["id"], "number": "3", "settings": {
                    "conditions": [{"kind": "caller_regex", "value": pattern,
                                    "target": "1"}]}})
            self.assertEqual(answer.code, 400, pattern)
            self.assertIn(said, str(answer.json), pattern)
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "GotoIf", "parent_id": root["id"], "number": "3", "settings": {
                "conditions": [{"kind": "caller_regex", "value": r"(?:8|\+7)(495|499)\d{7}",
                                "target": "1"}]}})
        self.assertEqual(answer.code, 201, answer.body)

    async def test_web_requests_and_web_variables_through_the_api(self) -> None:
        _, auth = await self.tenant()
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Playback", "settings": {"greeting": "system:hello"}})
        root = answer.json["extension"]
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "WebRequest", "parent_id": root["id"], "number": "1", "settings": {
                "url": "https://example.com/n?c=%CALLERID%&v=%VAR:code%", "method": "POST",
                "body": "{\"did\": \"%DID%\"}", "content_type": "application/json",
                "answer": "text", "variable": "notice", "failure": "2"}})
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.json["extension"]["settings"]["variable"], "notice")
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "WebVar", "parent_id": root["id"], "number": "2", "settings": {
                "name": "rate", "url": "https://example.com/rate", "json_path": "data.rate",
                "ttl": 60}})
        self.assertEqual(answer.code, 201, answer.body)
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Calendar", "parent_id": root["id"], "number": "4", "settings": {
                "url": "https://example.com/office.ics", "on": "1", "off": "2",
                "events": [{"keyword": "holiday", "target": "2"}], "cache_seconds": 60}})
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual(answer.json["extension"]["settings"]["events"],
                         [{"keyword": "holiday", "target": "2"}])
        for kind, settings, said in (
                ("WebRequest", {"url": "file:///etc/passwd"}, "url starts with http://"),
                ("WebRequest", {"url": "http://x/", "method": "PUT"}, "method is GET or POST"),
                ("WebRequest", {"url": "http://x/", "answer": "xml"}, "answer is one of"),
                ("WebRequest", {"url": "http://x/", "json_path": "a..b"}, "json_path is keys"),
                ("WebRequest", {"url": "http://x/", "variable": "1x"}, "variable is a letter"),
                ("WebVar", {"name": "r", "url": "http://x/", "ttl": -1}, "ttl is 0 to 86400"),
                ("WebVar", {"url": "http://x/"}, "name"),
                ("Calendar", {"url": "webcal://x/a.ics"}, "url starts with http://"),
                ("Calendar", {"url": "http://x/a.ics", "cache_seconds": 90000},
                 "cache_seconds is 0 to 86400"),
                ("Calendar", {"url": "http://x/a.ics", "events": [{"target": "1"}]},
                 "keyword")):
            answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
                "type": kind, "parent_id": root["id"], "number": "3", "settings": settings})
            self.assertEqual(answer.code, 400, (kind, settings))
            self.assertIn(said, str(answer.json), (kind, settings))

    async def test_numbers_out_of_their_range_are_refused_for_every_type(self) -> None:
        _, auth = await self.tenant()
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Playback", "settings": {"greeting": "system:hello"}})
        root = answer.json["extension"]
        for kind, settings, said in (
                ("DBVar", {"name": "x", "mode": "input", "timeout": -1},
                 "timeout is 1 to 60, got -1"),
                ("Voting", {"options": "12", "timeout": 0}, "timeout is 1 to 60, got 0"),
                ("MultiDialout", {"phones": ["1"], "ring_seconds": 700},
                 "ring_seconds is 0 to 600, got 700"),
                ("Pause", {"seconds": 61}, "seconds is 1 to 60, got 61")):
            answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
                "type": kind, "parent_id": root["id"], "number": "3", "settings": settings})
            self.assertEqual(answer.code, 400, kind)
            self.assertIn(said, str(answer.json), kind)

    async def test_build_and_change_the_tree(self) -> None:
        _, auth = await self.tenant(max_followme_phones=2)
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Playback", "name": "Main", "settings": {"greeting": "system:hello"}})
        self.assertEqual(answer.code, 201, answer.body)
        root = answer.json["extension"]
        self.assertEqual((root["cdr_number"], root["settings"]),
                         ("0", {"greeting": "system:hello"}))
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "FollowMe", "parent_id": root["id"], "number": "3",
            "settings": {"phones": ["1", "2", "3"]}})
        self.assertEqual(answer.code, 400)
        self.assertIn("at most 2 phones", answer.json["error"])
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "FollowMe", "parent_id": root["id"], "number": "3",
            "settings": {"phones": ["79001"], "colour": "red"}})
        self.assertEqual(answer.code, 400)
        self.assertIn("unknown setting colour", answer.json["error"])
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "FollowMe", "parent_id": root["id"], "number": "3",
            "settings": {"phones": ["79001", "79002"]}})
        self.assertEqual(answer.code, 201, answer.body)
        follow = answer.json["extension"]
        answer = await self.call("POST", "/ui/api/extensions", auth=auth, json_body={
            "type": "Pause", "parent_id": root["id"], "number": "3"})
        self.assertEqual(answer.code, 409)
        answer = await self.call("PATCH", f"/ui/api/extensions/{follow['id']}", auth=auth,
                                 json_body={"number": "4", "settings": {"phones": ["79003"],
                                                                        "mode": "parallel"}})
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual((answer.json["extension"]["path"],
                          answer.json["extension"]["settings"]["mode"]), ("4", "parallel"))
        answer = await self.call("PATCH", f"/ui/api/extensions/{root['id']}", auth=auth,
                                 json_body={"name": "Renamed", "number": "1"})
        self.assertEqual(answer.code, 400)
        self.assertIn("The main menu has no number", answer.json["error"])
        answer = await self.call("GET", f"/ui/api/extensions/{root['id']}", auth=auth)
        self.assertEqual(answer.json["extension"]["name"], "Main", "a refusal changes nothing")
        answer = await self.call("GET", "/ui/api/extensions.xml", auth=auth)
        self.assertEqual([e.findtext("cdr_number") for e in answer.xml.iter("extension")],
                         ["0", "4"])
        answer = await self.call("DELETE", f"/ui/api/extensions/{root['id']}", auth=auth)
        self.assertEqual(answer.json, {"deleted": 2})
        journal = await self.call("GET", "/ui/api/journal", auth=auth)
        self.assertTrue(any(e["actor"] == "613#10001" for e in journal.json["entries"]))
        gone = {e["object_id"] for e in journal.json["entries"]
                if e["object_kind"] == "extensions" and e["new_value"] == "" and
                e["old_value"] == "(deleted)"}
        self.assertEqual(gone, {str(root["id"]), str(follow["id"])}, "each deletion journaled")
        self.assertEqual((await self.call("GET", "/ui/api/nope", auth=auth)).code, 404)
        answer = await self.call("PUT", "/ui/api/extensions", auth=auth)
        self.assertEqual((answer.code, answer.header("Allow")), (405, "GET, POST"))

    async def test_read_only_messages_and_the_rest(self) -> None:
        user, auth = await self.tenant()
        message = await self.store.messages.add(
            user.id, extension_id=None, file_name="/nowhere/m1", file_format="wav",
            duration=3, caller_id="79001234567")
        await self.store.features.set_var(user.id, "open", "yes")
        answer = await self.call("GET", "/ui/api/messages", auth=auth)
        (got,) = answer.json["messages"]
        self.assertEqual((got["caller_id"], got["is_read"]), ("79001234567", False))
        self.assertNotIn("file_name", got)
        answer = await self.call("PATCH", f"/ui/api/messages/{message.id}", auth=auth,
                                 json_body={"is_read": True})
        self.assertTrue(answer.json["message"]["is_read"])
        answer = await self.call("GET", "/ui/api/variables", auth=auth)
        self.assertEqual(answer.json["variables"], [{"name": "open", "value": "yes"}])
        self.assertEqual((await self.call("GET", "/ui/api/greetings", auth=auth)).json,
                         {"greetings": []})
        await self.store.cdrs.insert_many([
            {"record_id": f"r{n}", "call_id": f"c{n}", "subscr_id": owner,
             "caller_id": caller, "called_id": "613", "type": "Playback",
             "create_timestamp": 1767225600 + n, "start_timestamp": 1767225600 + n,
             "stop_timestamp": 1767225660 + n, "cost": 5000}
            for n, owner, caller in ((1, user.id, "a"), (2, user.id, "b"), (3, user.id, "c"),
                                     (4, user.id + 1000, "not-mine"))])
        answer = await self.call("GET", "/ui/api/cdrs?limit=2", auth=auth)
        first = answer.json
        self.assertEqual([r["caller_id"] for r in first["cdrs"]], ["c", "b"])
        self.assertEqual((first["cdrs"][0]["cost"], first["cdrs"][0]["duration"]), ("0.50", 60))
        self.assertNotIn("subscr_id", first["cdrs"][0])
        answer = await self.call("GET", f"/ui/api/cdrs?limit=2&before={first['next_before']}",
                                 auth=auth)
        self.assertEqual(([r["caller_id"] for r in answer.json["cdrs"]],
                          answer.json["next_before"]), (["a"], None))
        await self.store.accounts.update_user(user.id, read_only=True)
        answer = await self.call("POST", "/ui/api/extensions", auth=auth,
                                 json_body={"type": "Playback"})
        self.assertEqual(answer.code, 403)
        self.assertIn("read-only", answer.json["error"])
        await self.store.accounts.update_user(user.id, read_only=False)
        # a recording whose row points outside the tenant's directory is never touched
        answer = await self.call("DELETE", f"/ui/api/messages/{message.id}", auth=auth)
        self.assertEqual(answer.code, 404, answer.body)
        self.assertIn("not available", answer.json["error"])

    async def test_account_lists_variables_and_a_recording(self) -> None:
        user, auth = await self.tenant(max_callblast_phones=2)
        answer = await self.call("PATCH", "/ui/api/account", auth=auth,
                                 json_body={"email": "vm@acme.example", "colour": "red"})
        self.assertEqual(answer.code, 400)
        self.assertIn("colour", answer.json["fields"])
        answer = await self.call("PATCH", "/ui/api/account", auth=auth,
                                 json_body={"email": "vm@acme.example",
                                            "timezone": "Europe/Moscow"})
        self.assertEqual((answer.json["email"], answer.json["timezone"]),
                         ("vm@acme.example", "Europe/Moscow"))
        answer = await self.call("PATCH", "/ui/api/account", auth=auth,
                                 json_body={"email": "vm@acme.example, nobody"})
        self.assertEqual(answer.code, 400)
        self.assertEqual(answer.json["fields"]["email"], "email: 'nobody' is not a mail "
                         "address; write it like name@example.com")
        answer = await self.call("PATCH", "/ui/api/account", auth=auth,
                                 json_body={"email": "vm@acme.example;Boss@ACME.example"})
        self.assertEqual(answer.json["email"], "vm@acme.example, Boss@acme.example")
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        staff = await self.store.ivr.add_child(user.id, root.id, "5", "Directory", {})
        blast = await self.store.ivr.add_child(user.id, root.id, "7", "CallBlast", {})
        poll = await self.store.ivr.add_child(user.id, root.id, "3", "Voting",
                                              {"question": "system:q", "options": "12"})
        await self.store.features.vote(user.id, poll.id, "a", "2")
        # employees
        answer = await self.call("POST", f"/ui/api/extensions/{staff.id}/employees",
                                 auth=auth, json_body={"number": "101", "name": "Ivanov",
                                                       "phones": ["79001", "79002"]})
        self.assertEqual(answer.code, 201, answer.body)
        employee = answer.json["employee"]
        self.assertEqual((employee["name_keys"], employee["phones"]), ("482668",
                                                                       ["79001", "79002"]))
        answer = await self.call("PATCH", f"/ui/api/employees/{employee['id']}", auth=auth,
                                 json_body={"number": "102", "name": "Petrov",
                                            "phones": ["79003"]})
        self.assertEqual(answer.json["employee"]["number"], "102")
        answer = await self.call("POST", f"/ui/api/extensions/{root.id}/employees",
                                 auth=auth, json_body={"number": "1", "name": "x",
                                                       "phones": ["1"]})
        self.assertEqual(answer.code, 404, "a directory list is a Directory's only")
        answer = await self.call("GET", f"/ui/api/extensions/{staff.id}/employees.xml",
                                 auth=auth)
        self.assertEqual([e.findtext("name") for e in answer.xml.iter("employee")], ["Petrov"])
        # an auto-dialer list and its phones, within the plan
        answer = await self.call("POST", f"/ui/api/extensions/{blast.id}/callblast",
                                 auth=auth, json_body={"name": "Debtors", "phones": ["79001"],
                                                       "settings": {"start": "10:00"}})
        self.assertEqual(answer.code, 201, answer.body)
        item = answer.json["item"]
        self.assertEqual((item["settings"], [p["phone"] for p in item["phones"]]),
                         ({"start": "10:00"}, ["79001"]))
        answer = await self.call("POST", f"/ui/api/callblast/{item['id']}/phones", auth=auth,
                                 json_body={"phones": ["79002", "79003"]})
        self.assertEqual(answer.code, 409)
        self.assertIn("1 added; then:", answer.json["error"])
        answer = await self.call("GET", f"/ui/api/callblast/{item['id']}", auth=auth)
        self.assertEqual(len(answer.json["item"]["phones"]), 2)
        self.assertNotIn("locked_by", answer.json["item"]["phones"][0])
        phone_id = answer.json["item"]["phones"][0]["id"]
        answer = await self.call("DELETE", f"/ui/api/callblast/{item['id']}/phones/{phone_id}",
                                 auth=auth)
        self.assertEqual(answer.json, {"deleted": 1})
        # paused and resumed (journaled); only those two states can be asked for
        answer = await self.call("PATCH", f"/ui/api/callblast/{item['id']}", auth=auth,
                                 json_body={"status": "paused"})
        self.assertEqual((answer.code, answer.json["item"]["status"]), (200, "paused"),
                         answer.body)
        self.assertEqual((await self.store.callblast.get_item(user.id, item["id"])).status,
                         "paused")
        for body in ({"status": "done"}, {"status": "paused", "name": "x"}, {}):
            answer = await self.call("PATCH", f"/ui/api/callblast/{item['id']}", auth=auth,
                                     json_body=body)
            self.assertEqual(answer.code, 400, body)
            self.assertIn("Send status: paused", answer.json["error"])
        answer = await self.call("PATCH", f"/ui/api/callblast/{item['id']}", auth=auth,
                                 json_body={"status": "active"})
        self.assertEqual(answer.json["item"]["status"], "active")
        self.assertIn(("status", "paused", "active"), [
            (e.field, e.old_value, e.new_value) for e in
            await self.store.journal.for_user(user.id) if e.object_kind == "callblast_items"])
        for phone in await self.store.callblast.phones(user.id, item["id"]):
            await self.store.callblast.record_result(user.id, phone.id, "answered")
        await self.store.callblast.update_item(user.id, item["id"], status="done")
        answer = await self.call("PATCH", f"/ui/api/callblast/{item['id']}", auth=auth,
                                 json_body={"status": "paused"})
        self.assertEqual(answer.code, 409)
        self.assertIn("called all its phones", answer.json["error"])
        # votes, variables
        answer = await self.call("GET", f"/ui/api/extensions/{poll.id}/votes", auth=auth)
        self.assertEqual(answer.json, {"total": 1, "options": [{"key": "1", "votes": 0},
                                                              {"key": "2", "votes": 1}]})
        answer = await self.call("PUT", "/ui/api/variables/office_open", auth=auth,
                                 json_body={"value": "no"})
        self.assertEqual(answer.json, {"variable": {"name": "office_open", "value": "no"}})
        self.assertEqual(await self.store.features.get_var(user.id, "office_open"), "no")
        answer = await self.call("DELETE", "/ui/api/variables/office_open", auth=auth)
        self.assertEqual(answer.json, {"deleted": 1})
        self.assertEqual((await self.call("DELETE", "/ui/api/variables/office_open",
                                          auth=auth)).code, 404)
        # a recording, as WAV, for a script that collects voicemail
        folder = self.tenant_media() / "u" / str(user.id) / "messages"
        folder.mkdir(parents=True)
        (folder / "m1.wav").write_bytes(b"RIFF" + b"\0" * 100)
        message = await self.store.messages.add(user.id, extension_id=None,
                                                file_name=str(folder / "m1"),
                                                file_format="wav", duration=1)
        answer = await self.call("GET", f"/ui/api/messages/{message.id}/audio", auth=auth)
        self.assertEqual((answer.code, answer.header("Content-Type"), answer.body[:4]),
                         (200, "audio/wav", b"RIFF"))
        self.assertTrue((await self.store.messages.get(user.id, message.id)).is_read)  # type: ignore[union-attr]

    async def test_another_tenant_reaches_nothing(self) -> None:
        alice, _ = await self.tenant("10001")
        _, mallory = await self.tenant("10002")
        root = await self.store.ivr.create_root(alice.id, "Playback", {}, name="Alice")
        message = await self.store.messages.add(alice.id, extension_id=None,
                                                file_name="/x/m", file_format="wav",
                                                duration=1, caller_id="79009990000")
        staff = await self.store.ivr.add_child(alice.id, root.id, "5", "Directory", {})
        entry = await self.store.features.add_directory_entry(alice.id, staff.id, "101",
                                                              "Ivanov", ["79001"])
        blast = await self.store.ivr.add_child(alice.id, root.id, "7", "CallBlast", {})
        item = await self.store.callblast.create_item(alice.id, blast.id, phones=["79001"])
        (phone,) = await self.store.callblast.phones(alice.id, item.id)
        await self.store.features.set_var(alice.id, "secret", "1")
        for method, path, body in (
                ("GET", f"/ui/api/messages/{message.id}/audio", None),
                ("GET", f"/ui/api/extensions/{staff.id}/employees", None),
                ("POST", f"/ui/api/extensions/{staff.id}/employees",
                 {"number": "9", "name": "x", "phones": ["1"]}),
                ("PATCH", f"/ui/api/employees/{entry.id}",
                 {"number": "9", "name": "x", "phones": ["1"]}),
                ("DELETE", f"/ui/api/employees/{entry.id}", None),
                ("GET", f"/ui/api/extensions/{blast.id}/callblast", None),
                ("GET", f"/ui/api/callblast/{item.id}", None),
                ("POST", f"/ui/api/callblast/{item.id}/phones", {"phones": ["7"]}),
                ("DELETE", f"/ui/api/callblast/{item.id}/phones/{phone.id}", None),
                ("PATCH", f"/ui/api/callblast/{item.id}", {"status": "paused"}),
                ("DELETE", f"/ui/api/callblast/{item.id}", None),
                ("GET", f"/ui/api/extensions/{root.id}/votes", None),
                ("GET", f"/ui/api/extensions/{root.id}", None),
                ("PATCH", f"/ui/api/extensions/{root.id}", {"name": "pwned"}),
                ("DELETE", f"/ui/api/extensions/{root.id}", None),
                ("POST", "/ui/api/extensions", {"type": "Pause", "parent_id": root.id,
                                                "number": "1"}),
                ("PATCH", f"/ui/api/messages/{message.id}", {"is_read": True}),
                ("DELETE", f"/ui/api/messages/{message.id}", None)):
            answer = await self.call(method, path, auth=mallory, json_body=body)
            self.assertEqual(answer.code, 404, (method, path, answer.body))
        self.assertEqual((await self.call("GET", "/ui/api/extensions", auth=mallory)).json,
                         {"extensions": []})
        self.assertEqual((await self.call("GET", "/ui/api/messages", auth=mallory)).json[
            "messages"], [])
        self.assertEqual((await self.call("GET", "/ui/api/variables", auth=mallory)).json,
                         {"variables": []})
        self.assertEqual(len(await self.store.features.directory(alice.id, staff.id)), 1)
        self.assertEqual(len(await self.store.callblast.phones(alice.id, item.id)), 1)
        self.assertEqual((await self.store.callblast.get_item(alice.id, item.id)).status,
                         "active")
        kept = await self.store.ivr.get(alice.id, root.id)
        assert kept is not None
        self.assertEqual(kept.name, "Alice")
        self.assertFalse((await self.store.messages.get(alice.id, message.id)).is_read)  # type: ignore[union-attr]


UntrustedTenantApiOnSQLite, UntrustedTenantApiOnMariaDB = on_both_backends(
    UntrustedTenantApiTests)
TenantApiOnSQLite, TenantApiOnMariaDB = on_both_backends(TenantApiTests)
ProxiedTenantApiOnSQLite, ProxiedTenantApiOnMariaDB = on_both_backends(ProxiedTenantApiTests)
