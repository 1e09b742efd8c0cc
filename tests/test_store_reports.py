"""The report runner below the web: the moment language of default periods, the text
checks, the period bound as parameters, and the database's own defences (SQLite's
authorizer, MariaDB's read-only transaction) holding when the text checks are bypassed."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest

from tests.support.db import DatabaseCase, on_both_backends
from xvbd.store.report_runner import (
    READ_ONLY,
    ReportRefused,
    ReportResult,
    ResultCache,
    bind,
    check_text,
    code_only,
    column,
    run_mysql,
    run_sqlite,
)
from xvbd.store.reports import moment

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
    result = ReportResult((), [], False, 10)
    cache.put((1, None, None, 10), 60, result, cache.generation(1))
    cache.put((2, None, None, 10), 0, result, cache.generation(2))
    assert cache.get((1, None, None, 10)) is result
    assert cache.get((2, None, None, 10)) is None
    now[0] = 60.0
    assert cache.get((1, None, None, 10)) is None
    # a run that began before an edit does not fill the cache after it
    generation = cache.generation(1)
    cache.forget(1)
    cache.put((1, None, None, 10), 60, result, generation)
    assert cache.get((1, None, None, 10)) is None


class RunnerDefenceTests(DatabaseCase):
    """The database refuses what the text checks would have caught, had they been fooled."""

    def _direct(self, sql: str, limit: int = 100, timeout: float = 5
                ) -> tuple[tuple[str, ...], list[tuple[str, ...]], bool]:
        if self.url.backend == "sqlite":
            return run_sqlite(str(self.url.path), sql, {}, limit, timeout)
        return run_mysql(self.url, sql, {}, limit, timeout)

    async def _refused(self, sql: str) -> str:
        try:
            await deferToThread(self._direct, sql)
        except ReportRefused as exc:
            return exc.message
        raise AssertionError(f"{sql!r} ran")

    async def test_writes_fail_in_the_database_itself(self) -> None:
        group = (await self.store.accounts.list_groups())[0]
        await self.store.accounts.create_user("613", "1", group.id)
        for sql in ("UPDATE users SET balance = 99", "DELETE FROM users",
                    "INSERT INTO did_attrs (did, language) VALUES ('1', 'x')"):
            assert await self._refused(sql) == READ_ONLY, sql
        users = await self.store.accounts.list_users()
        assert [u.balance for u in users] == [0]
        assert await self.store.accounts.did_language("1") in (None, "")

    async def test_sqlite_refuses_secrets_however_spelled(self) -> None:
        if self.url.backend != "sqlite":
            raise SkipTest("MariaDB: the REPORTS_URL user's grants are the defence "
                           "(documented)")
        for sql in ("SELECT password_hash FROM partners", "SELECT x.* FROM admins x",
                    "SELECT 1 AS a, 2 AS b, 3 AS c UNION SELECT * FROM admins",
                    "SELECT COUNT(*) FROM web_sessions"):
            assert "reports may not read" in await self._refused(sql), sql

    async def test_rows_are_cut_at_the_limit(self) -> None:
        names, rows, cut = await deferToThread(
            self._direct, "SELECT id AS n FROM currencies ORDER BY id", 2)
        assert (names, rows, cut) == (("n",), [("1",), ("2",)], True)
        names, rows, cut = await deferToThread(
            self._direct, "SELECT id AS n FROM currencies ORDER BY id", 3)
        assert (len(rows), cut) == (3, False)


RunnerDefenceOnSQLite, RunnerDefenceOnMariaDB = on_both_backends(RunnerDefenceTests)
