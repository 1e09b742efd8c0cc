"""Hostile input through the real sockets, on both backends: an Asterisk that answers any
command of a call with garbage, and every state-changing route of both webs and both APIs
sent broken bodies.  The call ends with its record and one AGI line per command; each
request is served or politely refused (never a 500), and nothing logs a traceback."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from tests.peers.agi import Caller
from tests.support.api import ADMIN, ApiClientCase, basic
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.logs import Tracebacks
from tests.support.web import ADMIN_HASH
from xvbd.demo import seed_demo
from xvbd.passwords import hash_password
from xvbd.web.admin.base import app as admin_app
from xvbd.web.tenant.base import app as tenant_app

# What a broken or hostile Asterisk may answer a command with, and whether the call then
# leaves (an answer that leaves the command waiting for more: only the line's end ends it).
BAD_ANSWERS = [
    (b"garbage\n", False),
    (b"200 result=\xff\xfe\n", False),
    (b"200 result=99999999999999999999999999 endpos=-99999999999999999999\n", False),
    (b"200 result=1 (((( endpos=abc\n", False),
    (b"510 Invalid or unknown command\n", False),
    (b"520-Invalid command syntax.  Proper usage follows:\nUsage: nothing\n", True),
    (b"agi_request: evil\nagi_arg_1: 100\n\n", False),
    (b"200 result=" + b"7" * 5000 + b"\n", False),
    (b"\n\n\nHANGUP\n", True),
]

class HostileAsteriskTests(EngineCase):
    async def test_garbage_answered_to_any_command_of_a_call(self) -> None:
        """The demo's public number (code, PIN, menu, the voicemail), with one command of
        it answered badly, for each of the first commands and each bad answer."""
        await seed_demo(self.store)
        normal = await self.call(Caller(keys=["10001", "911", "1", "#"]), args=("613",))
        positions = range(min(len(normal.commands), 9))
        calls = 0
        with Tracebacks() as tracebacks:
            for at in positions:
                for answer, leaves in BAD_ANSWERS:
                    before = len([line for line in self.cdr_lines() if ", TYPE=XVB," in line])
                    peer = await self.call(Caller(keys=["10001", "911", "1", "#"],
                                                  answers={at: answer},
                                                  leave_after_answer=leaves), args=("613",))
                    calls += 1
                    where = f"command {at} ({peer.commands[at]!r}) answered {answer[:40]!r}"
                    # one line per command, never a second command before an answer
                    self.assertEqual(bytes(peer.received).count(b"\n"), len(peer.commands),
                                     where)
                    self.assertLessEqual(len(peer.commands), len(normal.commands) + 3, where)
                    summaries = [line for line in self.cdr_lines() if ", TYPE=XVB," in line]
                    self.assertEqual(len(summaries), before + 1, where)
        self.assertEqual(tracebacks, [])
        self.assertEqual(calls, len(positions) * len(BAD_ANSWERS))


HostileAsteriskOnSQLite, HostileAsteriskOnMariaDB = on_both_backends(HostileAsteriskTests)


# ------------------------------------------------------------------ the webs' bodies

def _filled(rule: str) -> str:
    """A route's path with every variable part given an id that exists (1) or a name."""
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>",
                  lambda m: "1" if m.group(1) in ("int", None) and "name" not in m.group(2)
                  else "x", rule)


def state_changing_routes(app: Any, prefix: str) -> list[tuple[str, str]]:
    """Every POST, PUT, PATCH and DELETE route of a Klein app, deletions last (so that
    the other routes find the things they change) and no logging in or out."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.endswith(("/login", "/logout")):
            continue
        for method in (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            out.add((method, prefix + _filled(rule.rule)))
    return sorted(out, key=lambda r: (r[0] == "DELETE" or "/delete" in r[1], r))


NAMES = ["name", "number", "type", "settings", "greeting", "target", "amount", "balance",
         "login", "password", "pin", "id", "days", "start", "stop", "timezone", "phone",
         "phones", "email", "language", "limit", "value", "sql", "access_code",
         "voice_number", "tariff_id", "group_id", "max_calls", "parent", "key", "keys"]


def form_bodies(csrf: str) -> list[bytes]:
    token = f"_csrf={quote(csrf)}".encode()
    every = b"&".join(f"{n}=".encode() for n in NAMES)
    return [
        token,
        token + b"&" + b"&".join(f"{n}=%FF%FE%00".encode() for n in NAMES),
        token + b"&" + b"&".join(f"{n}={'9' * 40}".encode() for n in NAMES),
        token + b"&" + b"&".join(f"{n}=-1e309".encode() for n in NAMES),
        token + b"&" + every + b"&" + every,
        token + b"&" + b"&".join(f"{n}={quote('<script>x</script>' * 500)}".encode()
                                 for n in NAMES),
        token + b"&name=%ZZ&%%%=&&&==",
        token + b"&" + b"&".join(f"{n}%5B%5D=1".encode() for n in NAMES),
    ]


JSON_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b"\xff\xfe{}",
    b"[" * 5000 + b"]" * 5000,
    json.dumps({n: None for n in NAMES}).encode(),
    json.dumps({n: [] for n in NAMES}).encode(),
    json.dumps({n: {"$x": 1} for n in NAMES}).encode(),
    json.dumps({n: 10 ** 40 for n in NAMES}).encode(),
    json.dumps({n: "\u0000\ud7ff\U0010ffff" * 50 for n in NAMES}).encode(),
    b'{"amount": NaN, "balance": Infinity, "id": -Infinity}',
    json.dumps({"settings": {n: [1, {"a": None}] for n in NAMES}}).encode(),
]


class HostileBodiesTests(ApiClientCase):
    web_config = ("[CGI]\nTRUSTED_4_AI_DF = 127\\.0\\.0\\.1\nTRUSTED_4_UI_DF = "
                  "127\\.0\\.0\\.1\n")

    def setUp(self) -> None:
        super().setUp()
        self.answered: dict[int, int] = {}  # how many requests got each status code

    async def asserting(self, requests: list[tuple[str, str, bytes, dict[str, str]]],
                        session: Any = None) -> int:
        """Send each request; none may answer 500 or log a traceback.  How many went."""
        sent = 0
        with Tracebacks() as tracebacks:
            for method, path, body, headers in requests:
                if session is not None:
                    answer = await session.request(method, path, body, headers, follow=False)
                    code, text = answer.code, answer.text
                else:
                    reply = await self.call(method, path, body=body, headers=headers,
                                            auth=None)
                    code, text = reply.code, reply.body.decode("utf-8", "replace")
                sent += 1
                self.answered[code] = self.answered.get(code, 0) + 1
                self.assertLess(code, 500, f"{method} {path} {body[:60]!r}: {text[:300]}")
        self.assertEqual(tracebacks, [])
        return sent

    async def test_broken_forms_to_every_page_that_changes_something(self) -> None:
        """The tenant's pages first (the operator's may then delete the tenant)."""
        await seed_demo(self.store)
        self.tenant_media()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        user = await self.store.accounts.find_user("613", "10001")
        assert user is not None
        await self.store.accounts.update_user(user.id, web_password_hash=hash_password("w-1"))
        tenant = await self.tenant_browser("613", "10001", "w-1")
        csrf = (await tenant.get("/ui/")).csrf
        routes = [r for r in state_changing_routes(tenant_app, "/ui") if "/api/" not in r[1]]
        self.assertGreater(len(routes), 10)
        sent = await self.asserting(
            [(m, p, body, dict(form)) for m, p in routes for body in form_bodies(csrf)],
            tenant)
        admin = await self.admin_browser()
        csrf = (await admin.get("/ai/")).csrf
        routes = [r for r in state_changing_routes(admin_app, "/ai") if "/api/" not in r[1]]
        self.assertGreater(len(routes), 20)
        sent += await self.asserting(
            [(m, p, body, dict(form)) for m, p in routes for body in form_bodies(csrf)], admin)
        self.assertGreater(sent, 250)
        # the forms reached their pages: refused for what they hold, not for who sent them
        self.assertFalse({401, 403, 429} & set(self.answered), self.answered)
        self.assertGreater(self.answered.get(400, 0), sent // 3, self.answered)

    async def test_broken_bodies_to_every_api_call_that_changes_something(self) -> None:
        await seed_demo(self.store)
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        user = await self.store.accounts.find_user("613", "10001")
        assert user is not None
        await self.store.accounts.update_group(user.group_id, allow_api=True)
        await self.store.accounts.update_user(user.id, web_password_hash=hash_password("w-1"))
        requests = []
        for prefix, app, auth in (("/ui", tenant_app, ("613#10001", "w-1")),
                                  ("/ai", admin_app, ADMIN)):
            for method, path in state_changing_routes(app, prefix):
                if "/api/" not in path:
                    continue
                for body in JSON_BODIES:
                    requests.append((method, path, body, {
                        "Content-Type": "application/json", "Authorization": basic(*auth)}))
                requests.append((method, path, b"a=%FF&b", {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Authorization": basic(*auth)}))
        self.assertGreater(len(requests), 200)
        sent = await self.asserting(requests)
        self.assertFalse({401, 403, 429} & set(self.answered), self.answered)
        self.assertGreater(self.answered.get(400, 0), sent // 3, self.answered)

HostileBodiesOnSQLite, HostileBodiesOnMariaDB = on_both_backends(HostileBodiesTests)
