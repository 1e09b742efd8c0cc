"""The report runner below the web: the moment language of default periods, the text
checks, the period bound as parameters, and the database's own defences (SQLite's
authorizer, MariaDB's read-only transaction) holding when the text checks are bypassed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest

from tests.support.db import DatabaseCase, on_both_backends, report_account
from xvbd.store.report_runner import (
    CHUNK_BYTES,
    NO_ACCOUNT,
    READ_ONLY,
    Bounds,
    Column,
    Outcome,
    ReportRefused,
    Stopped,
    bind,
    check_grants,
    check_text,
    code_only,
    column,
    is_secret,
    run_report,
)
from xvbd.store.report_stream import (
    WINDOW,
    Handover,
    LiveRun,
    ReportResult,
    ReportRunner,
    ResultCache,
)
from xvbd.store.reports import Report, moment

NOW = datetime(2026, 3, 31, 15, 30, 20, tzinfo=UTC).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
        ) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(("text", "expected"), [
    ("now", int(NOW)),
    ("today", utc(2026, 3, 31)),
    ("yesterday", utc(2026, 3, 30)),
    ("tomorrow", utc(2026, 4, 1)),
    ("Today - 7d", utc(2026, 3, 24)),
    ("week_start", utc(2026, 3, 30)),  # a Monday
    ("month_start", utc(2026, 3, 1)),
    ("month_start-1mo", utc(2026, 2, 1)),
    ("today-1mo", utc(2026, 2, 28)),  # no 31 February: its last day
    ("year_start+2w", utc(2026, 1, 15)),
    ("now-90m", int(NOW) - 5400),
    ("today+8h+30m", utc(2026, 3, 31, 8, 30)),
    ("1700000000", 1700000000),
    ("2026-01-31", utc(2026, 1, 31)),
    ("2026-01-31 08:05", utc(2026, 1, 31, 8, 5)),
    ("2026-01-31T08:05:09", utc(2026, 1, 31, 8, 5, 9)),
])
def test_moments(text: str, expected: int) -> None:
    assert moment(text, NOW) == expected


def test_moments_count_days_on_the_local_calendar() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # summer time began 2026-03-29 02:00
    noon = datetime(2026, 3, 30, 12, tzinfo=berlin).timestamp()
    assert moment("yesterday", noon, berlin) == datetime(2026, 3, 29, tzinfo=berlin).timestamp()
    assert moment("today", noon, berlin) - moment("yesterday", noon, berlin) == 23 * 3600


@pytest.mark.parametrize("text", ["UNIX_TIMESTAMP(NOW())", "today-7", "last week", "",
                                  "2026-02-30", "now; DROP TABLE cdrs"])
def test_what_is_not_a_moment_is_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="today-7d"):
        moment(text, NOW)


def test_alignment_by_the_equals_sign() -> None:
    assert [(c.label, c.align) for c in map(column, ["=Node", "Calls=", "=Both=", "Plain",
                                                     "="])] == [
        ("Node", "left"), ("Calls", "right"), ("Both", "center"), ("Plain", "center"),
        ("=", "center")]


def test_code_only_blanks_literals_and_comments_but_not_mysql_executable_comments() -> None:
    sql = "SELECT 'a;b', \"c;d\", `e;f` -- g;h\n/* i;j */ /*!50000 DELETE */ # k;l"
    assert ";" not in code_only(sql, "mysql")
    assert "DELETE" in code_only(sql, "mysql")
    assert "DELETE" not in code_only(sql, "sqlite")
    # a backslash escapes a quote in MySQL only: the statement after it is seen
    assert "DELETE" not in code_only("SELECT 'x\\'; DELETE FROM t; '", "mysql")
    assert "DELETE" in code_only("SELECT 'x\\'; DELETE FROM t; '", "sqlite")
    assert "x" in code_only("SELECT 1 --x\n", "mysql")  # MySQL: -- needs a space


def test_a_statement_ending_in_a_quoted_name_is_kept_whole() -> None:
    assert check_text('SELECT 1 AS "=plain";  -- done\n', "sqlite") == 'SELECT 1 AS "=plain"'
    assert check_text("SELECT 'a;b'", "mysql") == "SELECT 'a;b'"


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_text_checks(backend: str) -> None:
    assert check_text("SELECT ';' AS x ;  ", backend) == "SELECT ';' AS x"
    assert check_text("WITH a AS (SELECT 1 AS n) SELECT n FROM a", backend)
    assert check_text("SELECT 'delete' AS word, last_update FROM t", backend)
    for sql in ("SELECT * INTO OUTFILE '/tmp/x' FROM cdrs", "SELECT 1; SELECT 2",
                "REPLACE INTO t VALUES (1)", "SELECT GET_LOCK('x', 1)"):
        with pytest.raises(ReportRefused):
            check_text(sql, backend)
    with pytest.raises(ReportRefused, match="admin passwords"):
        check_text("select * from `Admins`", backend)
    with pytest.raises(ReportRefused, match="one SELECT"):
        check_text("SHOW TABLES", backend)


def test_the_period_is_bound_never_pasted() -> None:
    sql = "SELECT '%' AS p FROM cdrs WHERE start_timestamp >= [% DATE_START %] AND x < [%date_stop%]"
    text, params = bind(sql, "mysql", 10, 20)
    assert text == ("SELECT '%%' AS p FROM cdrs WHERE start_timestamp >= %(date_start)s "
                    "AND x < %(date_stop)s")
    assert params == {"date_start": 10, "date_stop": 20}
    text, params = bind(sql, "sqlite", 10, 20)
    assert ":date_start" in text and ":date_stop" in text and "10" not in text
    assert bind("SELECT [% DAY(MAX(t)) %]", "sqlite", None, None)[0] == (
        "SELECT date((MAX(t)), 'unixepoch')")
    assert bind("SELECT [% TIME(t) %]", "mysql", None, None)[0] == "SELECT FROM_UNIXTIME(t)"
    with pytest.raises(ReportRefused, match="has no period"):
        bind("SELECT [% DATE_START %]", "sqlite", None, None)


def test_the_cache_keeps_a_result_for_its_ttl_and_forgets_an_edited_report() -> None:
    now = [0.0]
    cache = ResultCache(lambda: now[0])
    result = ReportResult((), (b"x",), Outcome(0, 1))
    cache.put((1, None, None, "csv", 10), 60, result, cache.generation(1))
    cache.put((2, None, None, "csv", 10), 0, result, cache.generation(2))
    assert cache.get((1, None, None, "csv", 10)) is result
    assert cache.get((2, None, None, "csv", 10)) is None
    now[0] = 60.0
    assert cache.get((1, None, None, "csv", 10)) is None
    # a run that began before an edit does not fill the cache after it
    generation = cache.generation(1)
    cache.forget(1)
    cache.put((1, None, None, "csv", 10), 60, result, generation)
    assert cache.get((1, None, None, "csv", 10)) is None


def test_secret_columns_by_name_whatever_a_pin_is_called() -> None:
    for table, name in (("users", "pin"), ("users", "pin_hash"), ("users", "web_password_hash"),
                        ("voicemail", "pins"), ("x", "web_pin"), ("sippeers", "md5secret"),
                        ("web_sessions", "id"), ("admins", "login"), ("x", "api_token"),
                        ("extensions", "settings")):
        assert is_secret(table, name), (table, name)
    for table, name in (("users", "access_code"), ("cdrs", "data"), ("x", "ping"),
                        ("x", "shipping"), ("sippeers", "session-timers"),
                        ("callblast_items", "settings")):
        assert not is_secret(table, name), (table, name)


def test_the_report_account_may_only_read_its_views() -> None:
    check_grants(["GRANT USAGE ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*AB'",
                  "GRANT SELECT ON `xvbd_reports`.* TO `r`@`%`"], "xvbd")
    for line in ("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
                 "GRANT SELECT ON `xvbd`.* TO `r`@`%`",  # xvbd's own tables: the secrets
                 "GRANT SELECT, INSERT ON `xvbd_reports`.* TO `r`@`%`",
                 "GRANT SELECT ON `xvbd_reports`.* TO `r`@`%` WITH GRANT OPTION",
                 "GRANT SELECT ON `mysql`.`user` TO `r`@`%`", "GRANT `admin_role` TO `r`@`%`"):
        with pytest.raises(ReportRefused, match="may do more than read the report views"):
            check_grants(["GRANT USAGE ON *.* TO `r`@`%`", line], "xvbd")


class Collect:
    """A reader that takes everything at once (the thread never waits)."""

    stopped = False

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []

    def put(self, item: tuple[str, object], deadline: float) -> None:
        self.items.append(item)

    @property
    def chunks(self) -> list[bytes]:
        return [v for k, v in self.items if k == "data"]  # type: ignore[misc]


class Lines:
    """Rows as tab-separated lines, the header first."""

    def head(self, columns: Sequence[Column]) -> str:
        return "\t".join(c.label for c in columns) + "\n"

    def row(self, values: Sequence[str]) -> str:
        return "\t".join(values) + "\n"


BIG = Bounds(rows=1_000_000, bytes=20 << 20, cell=64 * 1024, timeout=10)
MANY = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) "
        "SELECT a.n * 1000 + b.n AS n FROM c a, c b")  # a million rows on both
SLOW = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) "
        "SELECT COUNT(*) AS n FROM c a, c b, c d")


class RunnerDefenceTests(DatabaseCase):
    """What the database refuses or cuts, the text checks aside; on MariaDB through the
    report account that ``xvbd-admin reports-account`` makes."""

    def setUp(self) -> None:
        super().setUp()
        self.reports_url = report_account(self) if self.backend == "mysql" else self.url

    def _direct(self, sql: str, bounds: Bounds = BIG, url: object = None
                ) -> tuple[Outcome, list[list[str]], Collect]:
        out = Collect()
        outcome = run_report(url or self.reports_url, self.url.name, sql, None, None, Lines(),
                             bounds, out)
        lines = b"".join(out.chunks).decode().splitlines()
        return outcome, [line.split("\t") for line in lines], out

    async def _refused(self, sql: str, bounds: Bounds = BIG) -> str:
        try:
            await deferToThread(self._direct, sql, bounds)
        except ReportRefused as exc:
            return exc.message
        raise AssertionError(f"{sql!r} ran")

    async def test_writes_fail_in_the_database_itself(self) -> None:
        group = (await self.store.accounts.list_groups())[0]
        await self.store.accounts.create_user("613", "1", group.id)
        for sql in ("UPDATE users SET balance = 99", "DELETE FROM users",
                    "INSERT INTO did_attrs (did, language) VALUES ('1', 'x')"):
            said = await self._refused(sql)
            assert said == READ_ONLY or "may not read that" in said, (sql, said)
        users = await self.store.accounts.list_users()
        assert [u.balance for u in users] == [0]
        assert await self.store.accounts.did_language("1") in (None, "")

    async def test_secrets_never_come_back_however_spelled(self) -> None:
        user = await self.store.accounts.create_user("613", "1", 1, pin="4711",
                                                     web_password_hash="HASH-OF-THE-TENANT")
        await self.store.accounts.create_partner("p1", "HASH-OF-THE-PARTNER", 1)
        for sql in ("SELECT password_hash FROM partners", "SELECT x.* FROM admins x",
                    "SELECT 1 AS a, 2 AS b, 3 AS c UNION SELECT * FROM admins",
                    "SELECT COUNT(*) FROM web_sessions", "SELECT pin_hash FROM users",
                    "SELECT id, settings FROM extensions",
                    "SELECT u.pin_hash || '' AS x FROM users u" if self.backend == "sqlite"
                    else "SELECT CONCAT(u.pin_hash, '') AS x FROM users u"):
            said = await self._refused(sql)
            assert ("reports may not read" in said or "Unknown column" in said
                    or "doesn't exist" in said), (sql, said)
        # the CTE that renames every column: SQLite refuses it, MariaDB's view has no secret
        names = 16 if self.backend == "sqlite" else 14
        sql = (f"WITH t({', '.join(f'c{i}' for i in range(names))}) AS (SELECT * FROM users) "
               "SELECT * FROM t")
        if self.backend == "sqlite":
            said = await self._refused(sql)
            assert said.startswith("This report reads users.") and "hash;" in said, said
        else:
            outcome, lines, _ = await deferToThread(self._direct, sql)
            assert outcome.rows == 1 and lines[1][:3] == [str(user.id), "613", "1"]
            flat = "\t".join(lines[1])
            assert "4711" not in flat and "HASH-OF" not in flat
            outcome, lines, _ = await deferToThread(self._direct, "SELECT * FROM partners")
            assert outcome.rows == 1 and "HASH-OF" not in "\t".join(lines[1])

    async def test_the_server_grants_nothing_else_to_the_report_account(self) -> None:
        if self.backend != "mysql":
            raise SkipTest("SQLite: no accounts; the authorizer is the defence")
        for sql in ("SELECT User, Password FROM mysql.user", f"SELECT pin_hash FROM "
                    f"`{self.url.name}`.users", "SELECT * FROM information_schema.USER_PRIVILEGES "
                    "WHERE PRIVILEGE_TYPE <> 'USAGE'"):
            try:
                outcome, lines, _ = await deferToThread(self._direct, sql)
            except ReportRefused as exc:
                assert "may not read that" in exc.message, exc.message
            else:
                assert outcome.rows == 0, (sql, lines)
        # an administrator's URL as REPORTS_URL: refused before the report runs
        try:
            await deferToThread(self._direct, "SELECT 1 AS one", BIG, self.url)
        except ReportRefused as exc:
            assert "may do more than read the report views" in exc.message
        else:
            raise AssertionError("ran as the administrator")

    async def test_huge_values_are_cut_and_never_built(self) -> None:
        bounds = Bounds(rows=1000, bytes=2 << 20, cell=1024, timeout=10)
        huge = ("SELECT zeroblob(1000000000) AS z" if self.backend == "sqlite" else
                "SELECT REPEAT('x', 1000000000) AS z")
        try:  # SQLite: a value longer than the output may be is an error
            outcome, lines, _ = await deferToThread(self._direct, huge, bounds)
        except ReportRefused as exc:
            assert self.backend == "sqlite"
            assert "makes a value longer than 2097152 bytes" in exc.message, exc.message
        else:  # MariaDB: longer than max_allowed_packet is NULL
            assert self.backend == "mysql" and outcome.bytes < 4096, outcome
        wide = ("SELECT hex(zeroblob(5000)) AS w, 'short' AS s" if self.backend == "sqlite"
                else "SELECT REPEAT('0', 10000) AS w, 'short' AS s")
        outcome, lines, _ = await deferToThread(self._direct, wide, bounds)
        assert lines[1] == ["0" * 1024 + "…", "short"]
        assert (outcome.rows, outcome.cut_cells, outcome.stopped) == (1, 1, "")

    async def test_rows_and_bytes_stop_at_their_caps(self) -> None:
        outcome, lines, _ = await deferToThread(
            self._direct, "SELECT id AS n FROM currencies ORDER BY id",
            Bounds(rows=2, bytes=1 << 20, cell=100, timeout=10))
        assert (outcome.rows, outcome.stopped, lines[1:]) == (2, "rows", [["1"], ["2"]])
        outcome, lines, _ = await deferToThread(
            self._direct, "SELECT id AS n FROM currencies ORDER BY id LIMIT 3",
            Bounds(rows=3, bytes=1 << 20, cell=100, timeout=10))
        assert (outcome.rows, outcome.stopped) == (3, "")
        # a million rows, 100 KB allowed: the output stops under it, in chunks
        bounds = Bounds(rows=1_000_000, bytes=100_000, cell=100, timeout=10)
        outcome, lines, out = await deferToThread(self._direct, MANY, bounds)
        assert outcome.stopped == "bytes" and outcome.bytes <= 100_000
        assert outcome.bytes == sum(len(c) for c in out.chunks)
        assert len(lines) - 1 == outcome.rows > 10_000
        assert max(len(c) for c in out.chunks) < CHUNK_BYTES + 100

    async def test_a_slow_query_is_stopped_inside_the_database(self) -> None:
        said = await self._refused(SLOW, Bounds(rows=10, bytes=1 << 20, cell=100, timeout=1))
        assert said.startswith("This report ran longer than 1 s and was stopped"), said


RunnerDefenceOnSQLite, RunnerDefenceOnMariaDB = on_both_backends(RunnerDefenceTests)


def test_a_thread_hands_over_at_most_the_window_until_the_reader_writes() -> None:
    """Back-pressure: the thread blocks after WINDOW chunks; each ack lets one more go."""
    arrived: list[object] = []

    class Reactor:
        def callFromThread(self, f: object, *args: object) -> None:
            arrived.append(args[0])

    handover = Handover(Reactor())
    sent = threading.Event()

    def produce() -> None:
        for n in range(WINDOW + 3):
            handover.put(("data", bytes([n])), time.monotonic() + 30)
        sent.set()

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        for expected in range(WINDOW, WINDOW + 3):
            assert not sent.wait(0.3)  # blocked: the reader has not written anything more
            assert len(arrived) == expected
            handover.ack()
        assert sent.wait(10) and len(arrived) == WINDOW + 3
    finally:
        handover.stop()
        thread.join(10)
    handover2 = Handover(Reactor())
    for _ in range(WINDOW):
        handover2.put(("data", b""), time.monotonic() + 30)
    handover2.stop()  # the reader went away: the blocked thread ends at once
    with pytest.raises(Stopped):
        handover2.put(("data", b""), time.monotonic() + 30)


class RunnerTests(DatabaseCase):
    """The runner: a MariaDB without a report account refuses, one run per login, a big
    result streamed in chunks the reader takes."""

    def setUp(self) -> None:
        super().setUp()
        account = report_account(self) if self.backend == "mysql" else None
        self.runner = ReportRunner(self.url, reports_url=account, timeout=10)

    def _report(self, sql: str, name: str = "r") -> Report:
        return Report(id=1, name=name, sql_text=sql, default_start="", default_stop="",
                      cache_ttl=0, owner="admin", access="all", created_at=0, updated_at=0)

    async def test_mariadb_without_a_report_account_refuses_saying_how(self) -> None:
        if self.backend != "mysql":
            raise SkipTest("SQLite needs no report account")
        runner = ReportRunner(self.url, timeout=10)
        with pytest.raises(ReportRefused) as refused:
            await runner.start(self._report("SELECT 1 AS one"), None, None, operator="admin",
                               render=Lines(), bounds=BIG, kind="csv")
        assert refused.value.message == NO_ACCOUNT and refused.value.code == 503
        assert "xvbd-admin reports-account" in NO_ACCOUNT

    async def test_one_report_at_a_time_per_login_streamed_as_read(self) -> None:
        run = await self.runner.start(self._report(MANY, "many"), None, None,
                                      operator="admin", render=Lines(), bounds=BIG, kind="csv")
        assert isinstance(run, LiveRun) and [c.label for c in run.columns] == ["n"]
        with pytest.raises(ReportRefused) as refused:
            await self.runner.start(self._report("SELECT 1 AS one"), None, None,
                                    operator="admin", render=Lines(), bounds=BIG, kind="csv")
        assert refused.value.code == 429
        assert "Your report 'many' is still running" in refused.value.message
        other = await self.runner.start(self._report("SELECT 1 AS one"), None, None,
                                        operator="alice", render=Lines(), bounds=BIG,
                                        kind="csv")
        assert [c async for c in other.chunks()] == [b"one\n1\n"]
        # the reader takes chunk after chunk; never more than WINDOW wait for it
        chunks, most_waiting = 0, 0
        async for chunk in run.chunks():
            most_waiting = max(most_waiting, len(run.handover._items))
            assert len(chunk) < CHUNK_BYTES + 100
            chunks += 1
            run.ack()
            if chunks == 20:
                break
        assert most_waiting <= WINDOW
        run.stop()  # the browser went away: the thread ends, the login may run again
        await run.ended
        assert self.runner.running == {}
        again = await self.runner.start(self._report("SELECT 2 AS two"), None, None,
                                        operator="admin", render=Lines(), bounds=BIG,
                                        kind="csv")
        assert [c async for c in again.chunks()] == [b"two\n2\n"]
        assert again.outcome == Outcome(1, 6)


RunnerOnSQLite, RunnerOnMariaDB = on_both_backends(RunnerTests)
