"""The admin's CDR screen through real HTTP on both backends: each filter narrows the rows,
keyset pages walk the whole set once (rows with the same start time too), the CSV export is
the filtered set, bad input is a 400 with a message, caller ids are shown as text, a client
that goes away stops the export, and partners are refused."""

from __future__ import annotations

import calendar
import csv
import html
import io
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from tests.support.db import on_both_backends
from tests.support.web import Browser, WebCase
from xvbd.store.cdr import CDRFilter, CDRKey, CDRRow

UNIT = 10000
DAY = calendar.timegm((2026, 3, 1, 0, 0, 0))  # 2026-03-01 00:00:00 UTC
HEADER = ["Start (UTC)", "Caller ID", "Duration", "Cost", "Currency", "Called number",
          "Access code", "Type", "Call type", "Extension", "Node", "Call ID"]


def record(n: int, start: int, **fields: Any) -> dict[str, Any]:
    """A CDR record; ``ext_number`` (x<n>) tells the rows apart on every screen."""
    return {"record_id": f"r{n}", "call_id": f"call{n}", "server_id": "NODE-1",
            "subscr_id": 0, "access_code": "", "caller_id": "2501", "called_id": "613",
            "ext_number": f"x{n}", "type": "Playback", "call_type": "",
            "create_timestamp": start + 16, "start_timestamp": start,
            "stop_timestamp": start + 16, **fields}


def table_rows(text: str) -> list[list[str]]:
    """The cells of the list's body rows, as text."""
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if len(cells) == 10:
            rows.append(cells)
    return rows


def exts(text: str) -> list[str]:
    return [row[8] for row in table_rows(text)]


def next_link(text: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', text)
    return html.unescape(match[1]) if match else None


class CdrWebTests(WebCase):
    async def _users(self) -> tuple[Any, Any]:
        alice = await self.store.accounts.create_user("613", "10001", 1)
        bob = await self.store.accounts.create_user("614", "10002", 1)
        return alice, bob

    async def _walk(self, browser: Browser, path: str) -> list[str]:
        """Every page from ``path`` on by its Next link: the rows' ext numbers in order."""
        seen: list[str] = []
        link: str | None = path
        pages = 0
        while link:
            page = await browser.get(link)
            self.assertEqual(page.code, 200, page.text[:500])
            seen += exts(page.text)
            link = next_link(page.text)
            pages += 1
            self.assertLess(pages, 50, "the pages never end")
        return seen

    async def test_the_list_shows_a_record_as_the_screen_does(self) -> None:
        alice, _ = await self._users()
        await self.store.cdrs.insert_many([
            record(1, DAY + 3723, subscr_id=alice.id, access_code="10001", type="XVB",
                   call_type="callback", cost=125000, currency_id=1, caller_id="igor.okunev",
                   called_id="613*10001*99", stop_timestamp=DAY + 3723 + 3 * 3600 + 4),
            record(2, DAY, caller_id="100")])
        browser = await self.admin_browser()
        page = await browser.get("/ai/cdrs")
        self.assertEqual(page.code, 200)
        self.assertEqual(table_rows(page.text), [
            ["2026-03-01 01:02:03", "igor.okunev", "03:00:04", "12.50 (RUB)", "613*10001*99",
             "10001", "XVB", "callback", "x1", "NODE-1"],
            ["2026-03-01 00:00:00", "100", "00:00:16", "", "613", "", "Playback", "", "x2",
             "NODE-1"]])
        self.assertIn(f'<a href="/ai/users/{alice.id}">10001</a>', page.text)
        self.assertIsNone(next_link(page.text))
        self.assertIn('href="/ai/cdrs.csv"', page.text)
        self.assertIn('<input type="date" name="from"', page.text)

    async def test_each_filter_narrows_the_rows(self) -> None:
        alice, bob = await self._users()
        a = {"subscr_id": alice.id, "access_code": "10001", "called_id": "613"}
        b = {"subscr_id": bob.id, "access_code": "10002", "called_id": "614"}
        rows = [
            record(1, DAY - 1, **a),                                     # 02-28 23:59:59
            record(2, DAY, **a, caller_id="7916", type="XVB", call_type="incoming"),
            record(3, DAY + 86399, **b, caller_id="7916"),               # 03-01 23:59:59
            record(4, DAY + 86400, **b, type="XVB", call_type="callback",
                   server_id="NODE-2"),                                  # 03-02 00:00:00
            record(5, DAY + 2 * 86400, **a, type="VoiceMail", server_id="NODE-2"),
            record(6, DAY + 3 * 86400, **b, caller_id="7916", type="XVB",
                   call_type="callblast"),
        ]
        await self.store.cdrs.insert_many(rows)
        browser = await self.admin_browser()
        newest_first = [r["ext_number"] for r in sorted(
            rows, key=lambda r: (r["start_timestamp"], r["record_id"]), reverse=True)]
        cases = [
            ("", lambda r: True),
            ("from=2026-03-01&to=2026-03-01",
             lambda r: DAY <= r["start_timestamp"] < DAY + 86400),
            ("from=2026-03-02", lambda r: r["start_timestamp"] >= DAY + 86400),
            ("to=2026-02-28", lambda r: r["start_timestamp"] < DAY),
            ("caller=7916", lambda r: r["caller_id"] == "7916"),
            ("called=614", lambda r: r["called_id"] == "614"),
            ("code=10001", lambda r: r["access_code"] == "10001"),
            ("type=XVB", lambda r: r["type"] == "XVB"),
            ("call_type=callback", lambda r: r["call_type"] == "callback"),
            ("node=NODE-2", lambda r: r["server_id"] == "NODE-2"),
            ("caller=7916&code=10002&type=XVB", lambda r: r["caller_id"] == "7916" and
             r["access_code"] == "10002" and r["type"] == "XVB"),
            ("code=10002&from=2026-03-01&to=2026-03-02",
             lambda r: r["access_code"] == "10002" and
             DAY <= r["start_timestamp"] < DAY + 2 * 86400),
            ("caller=nobody", lambda r: False),
        ]
        for query, wanted in cases:
            page = await browser.get(f"/ai/cdrs?{query}")
            self.assertEqual(page.code, 200, query)
            expected = [e for e in newest_first
                        if wanted(next(r for r in rows if r["ext_number"] == e))]
            self.assertEqual(exts(page.text), expected, query)
            if query:
                self.assertLess(len(expected), len(rows), query)
        page = await browser.get("/ai/cdrs?caller=nobody")
        self.assertIn("No CDRs match.", page.text)
        # the form shows what was asked
        page = await browser.get("/ai/cdrs?from=2026-03-01&call_type=callback&node=NODE-2")
        self.assertIn('name="from" value="2026-03-01"', page.text)
        self.assertIn('<option value="callback" selected>', page.text)
        self.assertIn('name="node" value="NODE-2"', page.text)

    async def test_keyset_pages_walk_the_whole_set_once(self) -> None:
        # 137 rows; runs of equal start times, one across each page boundary (50, 100)
        starts = ([DAY + n for n in range(40)] + [DAY + 100] * 25 +
                  [DAY + 200 + n // 3 for n in range(30)] + [DAY + 300] * 12 +
                  [DAY + 400 + n for n in range(30)])
        rows = [record(n, start, type="XVB" if n % 2 else "Playback")
                for n, start in enumerate(starts)]
        # inserted out of order: ids do not follow the start times
        await self.store.cdrs.insert_many(rows[70:] + rows[:70])
        stored = await self.store.cdrs.all(limit=1000)
        expected = [r.ext_number for r in sorted(
            stored, key=lambda r: (r.start_timestamp, r.id), reverse=True)]
        self.assertEqual(len(expected), 137)
        browser = await self.admin_browser()
        seen = await self._walk(browser, "/ai/cdrs")
        self.assertEqual(seen, expected, "every row once, newest first, ties by id")
        # the filter is kept from page to page
        odd = [e for e in expected if int(e[1:]) % 2]
        self.assertEqual(await self._walk(browser, "/ai/cdrs?type=XVB&from=2026-03-01"), odd)
        page = await browser.get("/ai/cdrs?type=XVB")
        self.assertIn("type=XVB", next_link(page.text) or "")
        # the store's pages, a few rows each, cross many runs of equal times
        for limit in (1, 7, 12):
            walked: list[str] = []
            before: CDRKey | None = None
            while True:
                result = await self.store.cdrs.listing(CDRFilter(), before=before, limit=limit)
                walked += [r.ext_number for r in result.rows]
                if result.next is None:
                    break
                before = result.next
            self.assertEqual(walked, expected, f"pages of {limit}")
        # a page reached from a link shows the way back to the newest
        second = await browser.get(next_link((await browser.get("/ai/cdrs")).text) or "")
        self.assertIn('href="/ai/cdrs">back to the newest</a>', second.text)

    async def test_csv_is_the_filtered_set(self) -> None:
        alice, _ = await self._users()
        rows = [record(n, DAY + (n // 4) * 60, subscr_id=alice.id, access_code="10001",
                       type="XVB" if n % 3 else "Queue", call_type="incoming",
                       cost=n * 1234, currency_id=1 if n % 2 else 2)
                for n in range(40)]
        rows.append(record(100, DAY + 5, type="XVB", caller_id='Иван, "boss"\nnext'))
        rows.append(record(101, DAY + 6, type="XVB", caller_id="=HYPERLINK(\"http://x\")",
                           called_id="+7916", access_code="@SUM(1)"))
        await self.store.cdrs.insert_many(rows)
        self.admin_app.export_batch = 7  # several batches, boundaries inside equal times
        browser = await self.admin_browser()
        page = await browser.get("/ai/cdrs.csv?type=XVB&to=2026-03-01&before=1_1")
        self.assertEqual(page.code, 200, page.text[:300])
        self.assertEqual(page.header("Content-Type"), "text/csv; charset=utf-8")
        self.assertEqual(page.header("Content-Disposition"),
                         'attachment; filename="cdrs-20260301.csv"')
        self.assertTrue(page.text.startswith("\ufeff"), "a BOM for spreadsheets")
        parsed = list(csv.reader(io.StringIO(page.text[1:], newline="")))
        self.assertEqual(parsed[0], HEADER)
        wanted = sorted((r for r in await self.store.cdrs.all(limit=1000) if r.type == "XVB"),
                        key=lambda r: (r.start_timestamp, r.id), reverse=True)
        self.assertEqual(len(wanted), 28)
        self.assertEqual([line[9] for line in parsed[1:]], [r.ext_number for r in wanted])
        by_ext = {line[9]: line for line in parsed[1:]}
        self.assertEqual(by_ext["x7"], ["2026-03-01 00:01:00", "2501", "00:00:16", "0.8638",
                                        "RUB", "613", "10001", "XVB", "incoming", "x7",
                                        "NODE-1", "call7"])
        self.assertEqual(by_ext["x8"][3:5], ["0.9872", "USD"])
        self.assertEqual(by_ext["x100"][1], 'Иван, "boss"\nnext', "quoted, not split")
        self.assertEqual(by_ext["x101"][1:2] + by_ext["x101"][5:7],
                         ["'=HYPERLINK(\"http://x\")", "'+7916", "'@SUM(1)"],
                         "never a formula in a spreadsheet")
        # the same filter on the screen has the same rows
        shown = await self._walk(browser, "/ai/cdrs?type=XVB&to=2026-03-01")
        self.assertEqual(shown, [r.ext_number for r in wanted])
        # an empty set is the header alone
        page = await browser.get("/ai/cdrs.csv?caller=nobody")
        self.assertEqual(page.text, "\ufeff" + ",".join(HEADER) + "\r\n")

    async def test_bad_filter_input_is_a_400_with_a_message(self) -> None:
        await self.store.cdrs.insert_many([record(1, DAY)])
        browser = await self.admin_browser()
        cases = [
            ("from=2026-02-30", "From date: a day as YYYY-MM-DD (like 2026-03-01), got "
                                "&#39;2026-02-30&#39;."),
            ("to=yesterday", "To date: a day as YYYY-MM-DD"),
            ("from=1969-12-31", "From date: a day as YYYY-MM-DD"),
            ("from=2026-03-02&to=2026-03-01", "To date: 2026-03-01 is before the from date "
                                              "2026-03-02; the range would be empty."),
            ("call_type=bogus", "Call type: one of incoming, callback, callblast (or any), got "
                                "&#39;bogus&#39;."),
            ("caller=a%0Ab", "Caller ID: no control characters or line breaks."),
            ("code=" + "1" * 33, "Access code: at most 32 characters, got 33."),
            ("before=12;DROP", "The page link is damaged"),
        ]
        for query, message in cases:
            for path in ("/ai/cdrs", "/ai/cdrs.csv"):
                if path.endswith(".csv") and query.startswith("before"):
                    continue  # the export is always the whole set
                page = await browser.get(f"{path}?{query}")
                self.assertEqual(page.code, 400, f"{path}?{query}")
                self.assertIn("text/html", page.header("Content-Type"))
                self.assertIn(message, page.text, f"{path}?{query}")
                self.assertNotIn("Traceback", page.text)
                self.assertEqual(table_rows(page.text), [], "no rows until it is corrected")
        page = await browser.get("/ai/cdrs?from=2026-02-30")
        self.assertIn('name="from" value="2026-02-30" aria-invalid="true"', page.text)
        page = await browser.get("/ai/cdrs?caller=%FF")
        self.assertEqual(page.code, 400)
        self.assertIn("the form is not UTF-8 text", page.text)

    async def test_a_caller_id_is_shown_as_text(self) -> None:
        await self.store.cdrs.insert_many([
            record(1, DAY, caller_id="<script>alert(1)</script>", called_id='"><b>x')])
        browser = await self.admin_browser()
        page = await browser.get("/ai/cdrs?caller=%3Cscript%3Ealert(1)%3C/script%3E")
        self.assertEqual(page.code, 200)
        self.assertNotIn("<script>", page.text)
        self.assertNotIn('"><b>', page.text)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page.text)
        self.assertEqual(table_rows(page.text)[0][1], "<script>alert(1)</script>")
        self.assertIn("caller=%3Cscript%3Ealert%281%29%3C%2Fscript%3E", page.text,
                      "the CSV link carries the filter URL-encoded")

    async def test_partners_and_strangers_are_refused(self) -> None:
        await self.store.cdrs.insert_many([record(1, DAY, caller_id="secret-caller")])
        partner = await self.partner_browser(1)
        for path in ("/ai/cdrs", "/ai/cdrs?caller=secret-caller", "/ai/cdrs.csv",
                     "/ai/cdrs.csv?type=Playback"):
            page = await partner.get(path)
            self.assertEqual(page.code, 403, path)
            self.assertIn("This page is the operator&#39;s", page.text)
            self.assertNotIn("secret-caller", page.text)
        stranger = self.browser()
        for path in ("/ai/cdrs", "/ai/cdrs.csv"):
            page = await stranger.get(path, follow=False)
            self.assertEqual(page.code, 303, path)
            self.assertTrue(page.header("Location").startswith("/ai/login?next="))

    async def test_a_client_that_goes_away_stops_the_export(self) -> None:
        await self.store.cdrs.insert_many([record(n, DAY + n) for n in range(100)])
        self.admin_app.export_batch = 10
        browser = await self.admin_browser()
        cookie = next(c for c in browser.jar if c.name == "xvbd_ai")
        reads: list[CDRKey | None] = []
        held: Deferred[None] = Deferred()
        batch = self.store.cdrs.batch

        async def counted(flt: CDRFilter, before: CDRKey | None, size: int) -> list[CDRRow]:
            reads.append(before)
            if len(reads) == 2:
                await held  # the second batch waits until the client has gone
            return await batch(flt, before, size)

        self.store.cdrs.batch = counted  # type: ignore[method-assign]
        client = _RawClient(f"GET /ai/cdrs.csv HTTP/1.1\r\nHost: x\r\n"
                            f"Cookie: xvbd_ai={cookie.value}\r\n\r\n".encode())
        port = self.listener.getHost().port
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        await client.first_rows
        self.assertIn(b"call99", client.data)
        self.assertNotIn(b"call89", client.data)
        client.transport.abortConnection()
        await client.closed
        await deferLater(reactor, 0.05, lambda: None)
        held.callback(None)  # had the export not stopped, it would go on from here
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(len(reads), 2, "no batch read after the client went away")
        # the export as a whole, for comparison: ten batches and an empty one
        self.store.cdrs.batch = batch  # type: ignore[method-assign]
        page = await browser.get("/ai/cdrs.csv")
        self.assertEqual(page.text.count("\r\n"), 101)

    async def test_a_client_that_reads_slowly_holds_the_export_back(self) -> None:
        # ~8.5 MB of CSV: more than the kernel's socket buffers hold (4 MB here)
        total = 16000
        await self.store.cdrs.insert_many(
            [record(n, DAY + n, caller_id=f"{n:05d}" + "7" * 250, called_id="8" * 250)
             for n in range(total)])
        self.admin_app.export_batch = 500
        browser = await self.admin_browser()
        cookie = next(c for c in browser.jar if c.name == "xvbd_ai")
        reads: list[CDRKey | None] = []
        batch = self.store.cdrs.batch

        async def counted(flt: CDRFilter, before: CDRKey | None, size: int) -> list[CDRRow]:
            reads.append(before)
            return await batch(flt, before, size)

        self.store.cdrs.batch = counted  # type: ignore[method-assign]
        client = _RawClient(f"GET /ai/cdrs.csv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            f"Cookie: xvbd_ai={cookie.value}\r\n\r\n".encode(), reading=False)
        port = self.listener.getHost().port
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        self.addCleanup(client.hang_up)
        steady = 0
        for _ in range(200):  # until the export has stopped reading (at most 20 s)
            before = len(reads)
            await deferLater(reactor, 0.1, lambda: None)
            steady = steady + 1 if len(reads) == before and reads else 0
            if steady == 5:
                break
        held = len(reads)
        self.assertLess(held, total // 500, "the export waits for a client that does not "
                                            "read, instead of holding the set in memory")
        client.read()
        await client.closed
        self.assertGreater(len(reads), held)
        body = client.data.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(body.count(b"7" * 250 + b",00:00:16"), total, "every row came")
        self.assertIn(b"call0\r\n", body)


class _RawClient(Protocol):
    """Sends one request and keeps what comes back; ``first_rows`` fires with the first
    CSV rows.  With ``reading=False`` it reads nothing until ``read()``."""

    def __init__(self, request: bytes, reading: bool = True) -> None:
        self.request = request
        self.reading = reading
        self.data = b""
        self.first_rows: Deferred[None] = Deferred()
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]
        if not self.reading:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def read(self) -> None:
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def hang_up(self) -> Deferred[None]:
        if not self.closed.called:
            self.transport.abortConnection()  # type: ignore[union-attr]
        return self.closed

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"call90" in self.data and not self.first_rows.called:
            self.first_rows.callback(None)

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(None)


CdrWebOnSQLite, CdrWebOnMariaDB = on_both_backends(CdrWebTests)
