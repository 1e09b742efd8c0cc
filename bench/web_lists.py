"""The admin web's long lists over real HTTP: Users at 100,000 users and CDRs at 1,000,000
records, on SQLite or MariaDB.

    python bench/web_lists.py [--mysql] [--users 100000] [--cdrs 1000000] [--requests 20]
                              [--explain] [--keep]

1. Fills a fresh database (an SQLite file in a temporary directory, or with ``--mysql`` a new
   database on ``XVBD_TEST_MYSQL``, default mysql://root@127.0.0.1:3306) through the schema
   files: ``--users`` users in ``--groups`` groups (half of them on one public number, the
   others 100 to a number, a private DID for every tenth), then ``--cdrs`` CDR records of
   calls spread over ``--days`` days and written in about the order they started (a summary
   and 0-3 steps a call, a few busy users, four nodes), with ``executemany`` in one
   transaction per 20,000 rows.  Prints how long each took.
2. With ``--explain``, prints the query plan of the CDR list for each filter (first page and
   a deep one) and flags any plan that sorts or scans the table.
3. Starts the admin web (``WebRoot`` + ``AdminApp``, as the server builds them) in another
   process on a loopback port, logs in as the admin, and times ``--requests`` requests of
   each kind (each a new parameter where the kind has one; one more before, not counted):
   p50 / p95 / max in ms of the whole request as the client sees it (connection kept
   alive, the page read to its end).
4. Downloads the CSV export of one month (the filtered set of the list) and prints rows/s.

The web process has a CPU of its own; the client is this process.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import percentile  # noqa: E402

from xvbd.config import DatabaseURL, database_url  # noqa: E402
from xvbd.store import migrations  # noqa: E402
from xvbd.store.cdr import INSERT_COLUMNS, CDRFilter, CDRKey, _listing  # noqa: E402
from xvbd.store.db import Txn  # noqa: E402

BATCH = 20_000
NOW = 1_790_000_000  # the fill's "now": the newest call starts a little before
NODES = ("NODE-1", "NODE-2", "NODE-3", "NODE-4")
STEP_TYPES = ("Playback", "VoiceMail", "Queue", "FollowMe", "Conference", "Schedule",
              "DateTime", "Voting")
CALL_TYPES = ("incoming",) * 18 + ("callback", "callblast")
PASSWORD = "bench-secret"
SHARED_NUMBER = "613"


def voice_number(n: int) -> str:
    """Half the users share the one public number (as in the original's screens, where
    everyone is 613#<access code>); the others, a number for each 100."""
    return SHARED_NUMBER if n % 2 == 0 else f"3500{n // 200:04d}"


def access_code(n: int) -> str:
    return str(100000 + n)


def caller(n: int) -> str:
    return f"7916{n:07d}" if n % 10 else f"{n}@10.1.{n % 250}.{n % 200 + 2}"


# ------------------------------------------------------------------ the fill


def fill(url: DatabaseURL, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh database with the bench's users and CDRs; what the timings need to know."""
    conn = migrations.open_connection(url, create=True)
    dialect = migrations.dialect_for(url)

    def batch(statement: str, rows: list[tuple[Any, ...]]) -> None:
        cursor = conn.cursor()
        try:
            Txn(cursor, dialect).executemany(statement, rows)
            conn.commit()
        finally:
            cursor.close()

    from xvbd.passwords import hash_password, hash_pin

    batch(dialect.upsert("admins", ("login", "password_hash", "updated_at"), ("login",)),
          [("admin", hash_password(PASSWORD), NOW)])
    pin_hash = hash_pin("0000")  # one hash for every user: a PIN costs milliseconds
    began = time.perf_counter()
    batch("INSERT INTO user_groups (id, name, tariff_id) VALUES (?, ?, 1)",
          [(g, f"bench group {g}") for g in range(2, args.groups + 2)])
    for first in range(0, args.users, BATCH):
        numbers = range(first, min(first + BATCH, args.users))
        batch("INSERT INTO users (id, voice_number, access_code, pin_hash, name, group_id, "
              "balance, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              [(n + 1, voice_number(n), access_code(n), pin_hash,
                f"Bench user {n}", 2 + n % args.groups, n * 100, NOW, NOW) for n in numbers])
        batch("INSERT INTO dids (did, user_id, created_at) VALUES (?, ?, ?)",
              [(f"8800{n:07d}", n + 1, NOW) for n in numbers if n % 10 == 0])
    users_took = time.perf_counter() - began
    print(f"fill: {args.users:,} users in {args.groups} groups in {users_took:.1f} s",
          flush=True)

    rng = random.Random(615)
    busy = [rng.randrange(args.users) for _ in range(max(1, args.users // 100))]
    columns = INSERT_COLUMNS
    insert = (f"INSERT INTO cdrs ({', '.join(columns)}) "
              f"VALUES ({', '.join('?' for _ in columns)})")
    span = args.days * 86400
    began = time.perf_counter()
    rows: list[tuple[Any, ...]] = []
    made = calls = 0
    while made < args.cdrs:
        calls += 1
        user = rng.choice(busy) if rng.random() < 0.2 else rng.randrange(args.users)
        # calls end, and are written, in about the order they started, as on a live node
        start = NOW - span + int(made / args.cdrs * span) + rng.randrange(120)
        length = rng.randrange(5, 600)
        call_id = f"{calls:032x}"
        common = (call_id, NODES[calls % len(NODES)], user + 1, access_code(user),
                  caller(rng.randrange(200_000)), voice_number(user))
        steps = min(rng.randrange(4), args.cdrs - made - 1)
        at = start
        for step in range(steps):
            took = rng.randrange(1, max(2, length // (steps + 1)))
            rows.append((f"{call_id}:{step}", *common, f"9*{step}", rng.choice(STEP_TYPES),
                         "", at + took, at, at + took, 0, 0, 0, 0, ""))
            at += took
        cost = rng.randrange(0, 50_000)
        rows.append((f"{call_id}:{steps}", *common, "", "XVB", rng.choice(CALL_TYPES),
                     start + length, start, start + length, start + length, cost, cost // 2,
                     1, "DTMF=9w2 w8 3w6 #"))
        made += steps + 1
        if len(rows) >= BATCH:
            batch(insert, rows)
            rows = []
    if rows:
        batch(insert, rows)
    cdrs_took = time.perf_counter() - began
    print(f"fill: {made:,} CDRs ({calls:,} calls over {args.days} days) in {cdrs_took:.1f} s "
          f"({made / cdrs_took:,.0f} rows/s)", flush=True)
    if url.backend == "mysql":
        # InnoDB refreshes its statistics some seconds after a bulk load; a server in
        # service has them, so take them now rather than measure plans made without.
        cursor = conn.cursor()
        cursor.execute("ANALYZE TABLE users, dids, cdrs")
        cursor.fetchall()
        cursor.close()
    conn.close()
    return {"busy": busy, "rng": rng, "span": span}


# ------------------------------------------------------------------ the plans


class _Capture:
    """Stands in for a Txn: keeps the statement instead of running it."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self.statement = ""
        self.params: tuple[Any, ...] = ()

    def all(self, statement: str, params: Any = ()) -> list[Any]:
        self.statement, self.params = statement, tuple(params)
        return []


def explain(url: DatabaseURL, cases: list[tuple[str, CDRFilter]], oldest: CDRKey) -> None:
    """The plan of the list's query for each filter, its first page and a deep one; '!'
    marks a sort or a table scan.  SQLite is left without ANALYZE statistics, as a new
    database is."""
    conn = migrations.open_connection(url)
    dialect = migrations.dialect_for(url)
    cursor = conn.cursor()
    for label, flt in cases:
        deep = oldest if flt.start_from is None else CDRKey(flt.start_from + 43200, 10**15)
        for where, before in (("first", None), ("deep", deep)):
            capture = _Capture(dialect)
            _listing(capture, flt, before, 51)  # type: ignore[arg-type]
            if url.backend == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + capture.statement, capture.params)
                plan = "; ".join(str(row[-1]) for row in cursor.fetchall())
                bad = "TEMP B-TREE" in plan or plan == "SCAN cdrs"
            else:
                cursor.execute("EXPLAIN " + dialect.sql(capture.statement), capture.params)
                names = [d[0] for d in cursor.description]
                row = dict(zip(names, cursor.fetchone(), strict=False))
                plan = (f"{row['type']} key={row['key']} rows~{row['rows']} "
                        f"{row['Extra'] or ''}").strip()
                bad = "filesort" in plan or row["type"] == "ALL"
            print(f"  {'!' if bad else ' '} {label:<28} {where:<5} {plan}", flush=True)
    cursor.close()
    conn.close()


# ------------------------------------------------------------------ the web process


def serve(url_text: str) -> None:
    """The admin web on a loopback port over ``url_text``; prints ``listening PORT``."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from xvbd.config import parse_settings
    from xvbd.counters import LocalCounters
    from xvbd.store import Database, Store
    from xvbd.web.admin import AdminApp
    from xvbd.web.root import WebRoot, web_site

    r: Any = reactor
    db = Database(database_url(url_text), pool_max=4, reactor=r)
    db.start()
    settings = parse_settings("[COMMON]\nSERVER_ID = BENCH\n", "bench.conf")
    admin = AdminApp(settings, Store(db), LocalCounters(r))
    root = WebRoot(db, "BENCH", clock=r, admin=admin)
    port = r.listenTCP(0, web_site(root.app.resource()), interface="127.0.0.1")
    print(f"listening {port.getHost().port}", flush=True)
    r.addSystemEventTrigger("before", "shutdown", db.close)
    r.run()


class Client:
    """One kept-alive connection with the admin's session cookie."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body, headers)
        response = self.conn.getresponse()
        data = response.read()
        for value in response.headers.get_all("Set-Cookie") or []:
            if value.startswith("xvbd_ai="):
                self.cookie = value.split(";", 1)[0]
        return response.status, data

    def login(self) -> None:
        """As a browser: the login form (its CSRF token, bound to a pre-login cookie)."""
        self.conn.request("GET", "/ai/login")
        answer = self.conn.getresponse()
        token = re.search(rb'name="_csrf" value="([^"]+)"', answer.read())
        pre = [v.split(";", 1)[0] for v in answer.headers.get_all("Set-Cookie") or []]
        if answer.status != 200 or token is None or not pre:
            raise SystemExit(f"no login form on the bench web (HTTP {answer.status})")
        self.cookie = "; ".join(pre)
        status, _ = self.request("POST", "/ai/login", urlencode(
            {"login": "admin", "password": PASSWORD, "_csrf": token[1].decode()}))
        if status != 303 or not self.cookie:
            raise SystemExit(f"could not log in to the bench web (HTTP {status})")


def timed(client: Client, label: str, paths: Iterator[str], n: int) -> None:
    took: list[float] = []
    rows = 0
    client.request("GET", next(paths))  # warm: not counted
    for _ in range(n):
        path = next(paths)
        began = time.perf_counter()
        status, body = client.request("GET", path)
        took.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}: {body[:300]!r}")
        rows += body.count(b"<tr>") + body.count(b"<tr ") - 1
    print(f"  {label:<34} p50 {percentile(took, 0.5):7.1f}  p95 "
          f"{percentile(took, 0.95):7.1f}  max {max(took):7.1f} ms"
          f"   ({rows / n:.0f} rows a page)", flush=True)


def cycle(make: Callable[[int], str]) -> Iterator[str]:
    n = 0
    while True:
        yield make(n)
        n += 1


def measure(port: int, args: argparse.Namespace, facts: dict[str, Any]) -> None:
    client = Client(port)
    client.login()
    rng: random.Random = facts["rng"]
    busy: list[int] = facts["busy"]
    n = args.requests
    users = args.users
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 86400 * 3))
    month_from = time.strftime("%Y-%m-%d", time.gmtime(NOW - 86400 * 30))
    month_to = time.strftime("%Y-%m-%d", time.gmtime(NOW))
    deep = CDRKey(NOW - facts["span"] + 86400, 10**15)

    def q(path: str, **params: Any) -> str:
        return f"{path}?{urlencode(params)}"

    print("users (ms, whole request):", flush=True)
    timed(client, "first page", cycle(lambda i: "/ai/users"), n)
    timed(client, "by phone number (100 users)",
          cycle(lambda i: q("/ai/users",
                            phone=voice_number(rng.randrange(users // 2) * 2 + 1))), n)
    timed(client, f"by phone number ({users // 2:,} users)",
          cycle(lambda i: q("/ai/users", phone=SHARED_NUMBER)), n)
    timed(client, f"same, deep page ({users // 2:,} users)",
          cycle(lambda i: q("/ai/users", phone=SHARED_NUMBER,
                            after=users * 9 // 10 + rng.randrange(users // 20))), n)
    timed(client, "by DID",
          cycle(lambda i: q("/ai/users", phone=f"8800{rng.randrange(users) // 10 * 10:07d}")),
          n)
    timed(client, "by access code",
          cycle(lambda i: q("/ai/users", code=access_code(rng.randrange(users)))), n)
    timed(client, "by group",
          cycle(lambda i: q("/ai/users", group=2 + rng.randrange(args.groups))), n)
    timed(client, "deep keyset page (after 90%)",
          cycle(lambda i: q("/ai/users", after=users * 9 // 10 + rng.randrange(users // 20))),
          n)
    print("cdrs (ms, whole request):", flush=True)
    timed(client, "first page", cycle(lambda i: "/ai/cdrs"), n)
    timed(client, "one day", cycle(lambda i: q("/ai/cdrs", **{"from": day, "to": day})), n)
    timed(client, "caller id",
          cycle(lambda i: q("/ai/cdrs", caller=caller(rng.randrange(200_000)))), n)
    timed(client, "called number",
          cycle(lambda i: q("/ai/cdrs", called=voice_number(rng.randrange(users)))), n)
    timed(client, "access code (any user)",
          cycle(lambda i: q("/ai/cdrs", code=access_code(rng.randrange(users)))), n)
    timed(client, "access code (busy user)",
          cycle(lambda i: q("/ai/cdrs", code=access_code(rng.choice(busy)))), n)
    timed(client, "type", cycle(lambda i: q("/ai/cdrs", type=STEP_TYPES[i % 8])), n)
    timed(client, "call type callback", cycle(lambda i: q("/ai/cdrs", call_type="callback")),
          n)
    timed(client, "node", cycle(lambda i: q("/ai/cdrs", node=NODES[i % 4])), n)
    timed(client, "access code + one month",
          cycle(lambda i: q("/ai/cdrs", code=access_code(rng.choice(busy)),
                            **{"from": month_from, "to": month_to})), n)
    timed(client, "deep keyset page (oldest day)",
          cycle(lambda i: q("/ai/cdrs", before=str(CDRKey(deep.start_timestamp - i * 60,
                                                          deep.id)))), n)
    timed(client, "deep page, type + node",
          cycle(lambda i: q("/ai/cdrs", type="Queue", node=NODES[i % 4],
                            before=str(deep))), n)
    began = time.perf_counter()
    client.conn.request("GET", q("/ai/cdrs.csv", **{"from": month_from, "to": month_to}),
                        headers={"Cookie": client.cookie})
    response = client.conn.getresponse()
    lines = size = 0
    first = 0.0
    while chunk := response.read(1 << 16):
        if not first:
            first = time.perf_counter() - began
        lines += chunk.count(b"\n")
        size += len(chunk)
    took = time.perf_counter() - began
    print(f"csv export of one month: {lines - 1:,} rows, {size / 1e6:.1f} MB in {took:.2f} s "
          f"= {(lines - 1) / took:,.0f} rows/s (first bytes after {first * 1000:.0f} ms)",
          flush=True)


# ------------------------------------------------------------------ main


def filter_cases(facts: dict[str, Any]) -> list[tuple[str, CDRFilter]]:
    day = NOW - 3 * 86400
    code = access_code(facts["busy"][0])
    return [
        ("none", CDRFilter()),
        ("one day", CDRFilter(start_from=day, start_to=day + 86400)),
        ("caller", CDRFilter(caller_id=caller(5))),
        ("called", CDRFilter(called_id=voice_number(5))),
        ("access code", CDRFilter(access_code=code)),
        ("type", CDRFilter(type="Queue")),
        ("call type", CDRFilter(call_type="callback")),
        ("node", CDRFilter(server_id="NODE-2")),
        ("access code + day", CDRFilter(access_code=code, start_from=day, start_to=day + 86400)),
        ("caller + day", CDRFilter(caller_id=caller(5), start_from=day, start_to=day + 86400)),
        ("access code + type", CDRFilter(access_code=code, type="XVB")),
        ("caller + called", CDRFilter(caller_id=caller(5), called_id=voice_number(5))),
        ("type + call type + node", CDRFilter(type="XVB", call_type="callback",
                                              server_id="NODE-1")),
        ("every filter", CDRFilter(start_from=day, start_to=day + 86400, caller_id=caller(5),
                                   called_id=voice_number(5), access_code=code, type="XVB",
                                   call_type="incoming", server_id="NODE-1")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mysql", action="store_true", help="MariaDB instead of SQLite")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--explain", action="store_true", help="print the CDR list's plans")
    parser.add_argument("--no-web", action="store_true", help="fill (and explain) only")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
        return
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xvbd-web-bench-"))
    if args.mysql:
        server = os.environ.get("XVBD_TEST_MYSQL", "mysql://root@127.0.0.1:3306").rstrip("/")
        url_text = f"{server}/xvbd_web_bench_{os.getpid()}"
    else:
        url_text = f"sqlite:{work / 'bench.sqlite3'}"
    url = database_url(url_text)
    web = None
    try:
        migrations.upgrade(url)
        print(f"database: {url.backend}, schema {migrations.HEAD}", flush=True)
        facts = fill(url, args)
        if args.explain:
            print("plans of the CDR list ('!': sorts or scans):", flush=True)
            explain(url, filter_cases(facts), CDRKey(NOW - facts["span"] + 86400, 10**15))
        if args.no_web:
            return
        web = subprocess.Popen([sys.executable, __file__, "serve", url_text],
                               stdout=subprocess.PIPE, text=True)
        assert web.stdout is not None
        line = web.stdout.readline()
        if not line.startswith("listening "):
            raise SystemExit(f"the web did not start: {line!r}")
        measure(int(line.split()[1]), args, facts)
    finally:
        if web is not None:
            web.send_signal(signal.SIGTERM)
            web.wait(30)
        if args.keep:
            print(f"kept: {url_text}")
        else:
            if url.backend == "mysql":
                import pymysql

                conn = pymysql.connect(host=url.host, port=url.port, user=url.user,
                                       password=url.password)
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{url.name}`")
                conn.close()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
