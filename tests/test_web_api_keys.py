"""API keys for the tenant API through real HTTP on both backends: made on the Account page
(shown once, only the hash kept), a read key that may only GET, a write key, revoked keys
and unknown ones refused with 401, another tenant's key reaching none of this tenant's data,
and the journal of it all."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from tests.support.api import ApiClientCase, basic
from tests.support.db import on_both_backends
from tests.support.web import Browser
from xvbd.passwords import hash_password
from xvbd.store.apikeys import MAX_LIVE_KEYS, PREFIX_LENGTH, USE_RESOLUTION, ApiKeys
from xvbd.store.db import Txn

PASSWORD = "api-secret-1"
HASH = hash_password(PASSWORD)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class ApiKeyTests(ApiClientCase):
    async def tenant(self, code: str = "10001") -> tuple[Any, Browser]:
        acc = self.store.accounts
        gid = (await acc.create_group(f"g{code}", 1, allow_api=True)).id
        user = await acc.create_user("613", code, gid, pin="4321", web_password_hash=HASH)
        return user, await self.tenant_browser("613", code, PASSWORD)

    async def make_key(self, browser: Browser, name: str, scope: str) -> str:
        await browser.get("/ui/account")
        page = await browser.post("/ui/account/api-keys", {"name": name, "scope": scope})
        self.assertEqual(page.code, 200, page.text)
        found = re.search(r'<code id="api-key">([^<]+)</code>', page.text)
        assert found, page.text
        return html.unescape(found[1])

    async def api(self, method: str, path: str, key: str, body: Any = None) -> Any:
        return await self.call(method, path, auth=None, headers=bearer(key), json_body=body)

    async def rows(self) -> list[dict[str, Any]]:
        def read(txn: Txn) -> list[dict[str, Any]]:
            return [dict(r) for r in txn.all("SELECT * FROM api_keys ORDER BY id")]
        return await self.db.run_interaction(read)

    async def test_a_key_is_shown_once_and_only_its_hash_is_kept(self) -> None:
        user, browser = await self.tenant()
        key = await self.make_key(browser, "nightly <export>", "read")
        self.assertTrue(key.startswith("xvb_") and len(key) >= 40, key)
        (row,) = await self.rows()
        self.assertEqual(row["key_hash"], hashlib.sha256(key.encode()).hexdigest())
        self.assertEqual((row["user_id"], row["name"], row["scope"], row["prefix"],
                          row["last_used_at"], row["revoked_at"]),
                         (user.id, "nightly <export>", "read", key[:PREFIX_LENGTH], 0, 0))
        self.assertNotIn(key, [str(v) for v in row.values()], "the key itself is kept nowhere")
        page = await browser.get("/ui/account")
        self.assertNotIn(key, page.text, "shown once: not on the next visit")
        self.assertIn(f"{key[:PREFIX_LENGTH]}…", page.text)
        self.assertIn("nightly &lt;export&gt;", page.text)
        self.assertIn("never", page.text)
        journal = await self.store.journal.for_user(user.id)
        self.assertIn(("api_keys", str(row["id"]), "(created)", "613#10001"),
                      [(e.object_kind, e.object_id, e.new_value, e.actor) for e in journal])
        self.assertNotIn(row["key_hash"], str(journal))

        # what a person typed wrong is said, and nothing is made
        for fields, said in (({"name": "x", "scope": "admin"}, "read (GET only) or write"),
                             ({"name": "", "scope": "read"}, "Key name"),
                             ({"name": "y" * 65, "scope": "write"}, "Key name")):
            await browser.get("/ui/account")
            page = await browser.post("/ui/account/api-keys", fields)
            self.assertEqual(page.code, 400, fields)
            self.assertIn(said, html.unescape(page.text), fields)
        page = await browser.post("/ui/account/api-keys", {"name": "z", "scope": "write"},
                                  csrf="forged")
        self.assertEqual(page.code, 403)
        self.assertEqual(len(await self.rows()), 1)

        for n in range(MAX_LIVE_KEYS - 1):
            await self.store.api_keys.create(user.id, f"k{n}", "read")
        await browser.get("/ui/account")
        page = await browser.post("/ui/account/api-keys", {"name": "one more", "scope": "read"})
        self.assertEqual(page.code, 400)
        self.assertIn("revoke one you no longer use", page.text)

    async def test_a_read_key_reads_and_a_write_key_writes(self) -> None:
        user, browser = await self.tenant()
        reader = await self.make_key(browser, "reader", "read")
        writer = await self.make_key(browser, "writer", "write")
        answer = await self.api("GET", "/ui/api/whoami", reader)
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual((answer.json["id"], answer.json["credential"]),
                         (user.id, {"kind": "key", "name": "reader",
                                    "prefix": reader[:PREFIX_LENGTH], "scope": "read"}))
        self.assertEqual((await self.call("HEAD", "/ui/api/extensions", auth=None,
                                          headers=bearer(reader))).code, 200)
        body = {"type": "Playback", "name": "Main", "settings": {"greeting": "system:hello"}}
        for method, path in (("POST", "/ui/api/extensions"), ("PUT", "/ui/api/variables/x"),
                             ("DELETE", "/ui/api/variables/x")):
            answer = await self.api(method, path, reader, body if method == "POST" else
                                    {"value": "1"} if method == "PUT" else None)
            self.assertEqual(answer.code, 403, (method, answer.body))
            self.assertIn(f"{reader[:PREFIX_LENGTH]}... (reader) is read-only",
                          answer.json["error"])
        self.assertEqual(await self.store.ivr.count(user.id), 0, "the read key changed nothing")

        answer = await self.api("POST", "/ui/api/extensions", writer, body)
        self.assertEqual(answer.code, 201, answer.body)
        ext_id = answer.json["extension"]["id"]
        answer = await self.api("GET", "/ui/api/extensions", reader)
        self.assertEqual([e["id"] for e in answer.json["extensions"]], [ext_id])
        journal = await self.store.journal.for_user(user.id)
        self.assertIn(("extensions", str(ext_id), f"613#10001 key {writer[:PREFIX_LENGTH]}"),
                      [(e.object_kind, e.object_id, e.actor) for e in journal],
                      "the journal names the key a change came with")
        # the web password still opens the API beside the keys
        answer = await self.call("GET", "/ui/api/whoami", auth=("613#10001", PASSWORD))
        self.assertEqual(answer.json["credential"], {"kind": "password"})

        used = {r["name"]: r["last_used_at"] for r in await self.rows()}
        self.assertTrue(used["reader"] > 0 and used["writer"] > 0, used)
        page = await browser.get("/ui/account")
        self.assertNotIn("never", page.text, "the list shows when each key was last used")

    async def test_a_revoked_or_unknown_key_is_refused(self) -> None:
        user, browser = await self.tenant()
        key = await self.make_key(browser, "old script", "write")
        (row,) = await self.rows()
        await browser.get("/ui/account")
        page = await browser.post(f"/ui/account/api-keys/{row['id']}/revoke", csrf="forged")
        self.assertEqual(page.code, 403)
        self.assertEqual((await self.api("GET", "/ui/api/whoami", key)).code, 200)
        await browser.get("/ui/account")
        page = await browser.post(f"/ui/account/api-keys/{row['id']}/revoke")
        self.assertEqual(page.code, 200)
        self.assertIn(f"API key {key[:PREFIX_LENGTH]}... revoked", html.unescape(page.text))
        self.assertNotIn("/revoke", page.text, "a revoked key has no Revoke button")
        answer = await self.api("GET", "/ui/api/whoami", key)
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.json["error"], f"The API key {key[:PREFIX_LENGTH]}... (old "
                         "script) was revoked; make a new one on your Account page.")
        self.assertEqual(answer.header("WWW-Authenticate"), 'Bearer realm="xvbd"')
        (after,) = await self.rows()
        self.assertGreater(after["revoked_at"], 0)
        journal = await self.store.journal.for_user(user.id)
        self.assertIn(("api_keys", str(row["id"]), "revoked_at", "0", str(after["revoked_at"])),
                      [(e.object_kind, e.object_id, e.field, e.old_value, e.new_value)
                       for e in journal])

        for wrong in ("xvb_" + "A" * 43, key[:-1] + ("B" if key[-1] != "B" else "C"),
                      "not-a-key", "", key[:PREFIX_LENGTH]):
            answer = await self.api("GET", "/ui/api/whoami", wrong)
            self.assertEqual(answer.code, 401, wrong)
            self.assertIn("This API key is not one of ours", answer.json["error"], wrong)
        answer = await self.call("GET", "/ui/api/whoami", auth=None,
                                 headers={"Authorization": basic("613#10001", "bad")})
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="xvbd"')

    async def test_another_tenants_key_never_reaches_this_tenants_data(self) -> None:
        alice, alice_browser = await self.tenant("10001")
        _, mallory_browser = await self.tenant("20002")
        alice_key = await self.make_key(alice_browser, "alice", "write")
        mallory_key = await self.make_key(mallory_browser, "mallory", "write")
        answer = await self.api("POST", "/ui/api/extensions", alice_key, {
            "type": "Playback", "name": "Alice", "settings": {"greeting": "system:hello"}})
        ext_id = answer.json["extension"]["id"]
        answer = await self.api("GET", "/ui/api/whoami", mallory_key)
        self.assertEqual(answer.json["access_code"], "20002")
        self.assertEqual((await self.api("GET", "/ui/api/extensions", mallory_key)).json,
                         {"extensions": []})
        for method, path, body in (("GET", f"/ui/api/extensions/{ext_id}", None),
                                   ("PATCH", f"/ui/api/extensions/{ext_id}", {"name": "pwned"}),
                                   ("DELETE", f"/ui/api/extensions/{ext_id}", None)):
            answer = await self.api(method, path, mallory_key, body)
            self.assertEqual(answer.code, 404, (method, answer.body))
        kept = await self.store.ivr.get(alice.id, ext_id)
        assert kept is not None
        self.assertEqual(kept.name, "Alice")
        # nor can mallory see or revoke alice's key from the pages
        alice_row = next(r for r in await self.rows() if r["name"] == "alice")
        page = await mallory_browser.get("/ui/account")
        self.assertNotIn(alice_key[:PREFIX_LENGTH], page.text)
        page = await mallory_browser.post(f"/ui/account/api-keys/{alice_row['id']}/revoke")
        self.assertEqual(page.code, 404)
        self.assertEqual((await self.api("GET", "/ui/api/whoami", alice_key)).code, 200)

    async def test_a_key_of_a_plan_without_the_api_is_refused(self) -> None:
        user, browser = await self.tenant()
        key = await self.make_key(browser, "k", "read")
        await self.store.accounts.update_group(user.group_id, allow_api=False)
        answer = await self.api("GET", "/ui/api/whoami", key)
        self.assertEqual(answer.code, 403)
        self.assertIn("Your plan does not include the API", answer.json["error"])
        page = await browser.get("/ui/account")
        self.assertNotIn("API keys", page.text)
        page = await browser.post("/ui/account/api-keys", {"name": "k2", "scope": "read"})
        self.assertEqual(page.code, 403)


class ApiKeyUseTests:
    """``last_used_at`` is written at most once a minute (a request is no write)."""

    store: Any
    db: Any

    async def test_last_used_moves_at_most_once_a_minute(self) -> None:
        now = [1_800_000_000.0]
        keys = ApiKeys(self.db, clock=lambda: now[0])
        gid = (await self.store.accounts.create_group("g", 1, allow_api=True)).id
        user = await self.store.accounts.create_user("613", "10001", gid, pin="4321")
        made, key = await keys.create(user.id, "k", "read")
        seen = []
        for step in (0, 30, USE_RESOLUTION - 1, USE_RESOLUTION, USE_RESOLUTION + 1):
            now[0] = 1_800_000_000.0 + step
            found = await keys.authenticate(key)
            assert found is not None and found.id == made.id
            seen.append(found.last_used_at)
        start = 1_800_000_000
        assert seen == [start, start, start, start + USE_RESOLUTION,
                        start + USE_RESOLUTION], seen
        await keys.revoke(user.id, made.id)
        now[0] += 3600
        found = await keys.authenticate(key)
        assert found is not None and found.revoked
        assert found.last_used_at == start + USE_RESOLUTION, "a revoked key's use is no use"
        assert await keys.revoke(user.id + 1, made.id) is None, "revoked only by its owner"
        assert await keys.of_user(user.id + 1) == []


ApiKeyOnSQLite, ApiKeyOnMariaDB = on_both_backends(ApiKeyTests)
ApiKeyUseOnSQLite, ApiKeyUseOnMariaDB = on_both_backends(ApiKeyUseTests)
