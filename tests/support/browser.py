"""A real headless Chromium for browser tests of the web.

Chromium and chromedriver are Debian's packages (``bash .ci/services`` installs them);
Selenium drives them through ``chromedriver`` named by its path, so Selenium Manager is never
asked to find or download anything.  Selenium's calls block, so every one runs on a thread
(``deferToThread``) while the test's reactor serves the pages from :class:`WebCase`.

Each test gets its own browser with a fresh profile (so no cookies are shared between
tests), and screenshots of its steps (and of a failure) in
``$XVBD_TEST_ARTIFACTS/browser/<test name>-<step>.png`` (by default under the system's
temporary directory, ``/tmp/xvbd-test-artifacts``: never in the working copy).
"""

from __future__ import annotations

import functools
import glob
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import FailTest, SkipTest

from tests.support.web import WebCase
from xvbd.logs import logger

log = logger("tests.browser")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("XVBD_TEST_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "xvbd-test-artifacts") / "browser"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900")
#: Seconds a page may take to load after a click, and an element to appear.
WAIT = 10.0

T = TypeVar("T")

if TYPE_CHECKING:  # the mixin is run as a trial TestCase (see on_both_backends)
    from twisted.trial.unittest import TestCase as _TrialCase
else:
    _TrialCase = object


def missing() -> str:
    """Why a browser test cannot run here ('' when it can)."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        return (f"the browser tests need {' and '.join(absent)}: run `bash .ci/services` "
                "(it installs the Debian packages chromium and chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return ("the browser tests need Selenium: run `.venv/bin/pip install -e .[test]` "
                "and `bash .ci/services`")
    return ""


def require_browser() -> None:
    """Skip the test when there is no browser here; under CI (``CI=true``) fail it."""
    why = missing()
    if why and os.environ.get("CI") == "true":
        raise FailTest(why)
    if why:
        raise SkipTest(why)


class Chromium:
    """One headless Chromium and its chromedriver, for one test, with a small async API.

    Paths are of the site under test (``/ai/users``); fields are found by their ``name``.
    """

    def __init__(self, driver: Any, profile: Path, base: str, name: str) -> None:
        self.driver = driver
        self.profile = profile
        self.base = base
        self.name = name

    @classmethod
    def launch(cls, base: str, name: str) -> Chromium:
        """Start the browser (blocking: call it on a thread)."""
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        # Never let Selenium Manager look for (or download) a browser or a driver: the
        # driver's path is given; should anything still ask for it, it fails loudly.
        os.environ["SE_OFFLINE"] = "true"
        os.environ["SE_AVOID_STATS"] = "true"
        os.environ["SE_MANAGER_PATH"] = "/nonexistent/selenium-manager-is-not-used"
        profile = Path(tempfile.mkdtemp(prefix="xvbd-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        # An alert stays open until the test looks for it (the default would dismiss it).
        options.unhandled_prompt_behavior = "ignore"
        try:
            driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                      options=options)
        except BaseException:
            shutil.rmtree(profile, ignore_errors=True)
            raise
        driver.set_page_load_timeout(WAIT)
        return cls(driver, profile, base, name)

    def close(self) -> None:
        """Stop the browser and its driver and remove the profile (blocking)."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(driver, *args)`` on a thread: the reactor keeps serving the pages."""
        result: T = await deferToThread(fn, self.driver, *args)
        return result

    # ------------------------------------------------------------------ navigation

    async def go(self, path: str) -> None:
        await self.run(lambda d: d.get(self.base + path))

    async def path(self) -> str:
        """Where the browser is: the path and query of its address."""
        url = urlsplit(await self.run(lambda d: d.current_url))
        return url.path + (f"?{url.query}" if url.query else "")

    async def back(self) -> None:
        await self.run(_new_page, lambda d: d.back())

    async def press(self, label: str) -> None:
        """Click the button labelled ``label`` and wait for the page it leads to."""
        await self.run(_new_page, lambda d: _one(
            d, f"//button[normalize-space()={_literal(label)}]").click())

    async def follow(self, text: str) -> None:
        """Click the link reading ``text`` and wait for the page it leads to."""
        await self.run(_new_page, lambda d: _one(
            d, f"//a[normalize-space()={_literal(text)}]").click())

    # ------------------------------------------------------------------ forms

    async def fill(self, values: Mapping[str, str], within: str = "") -> None:
        """Type ``values`` into the fields of those names (a select: the option's label;
        a checkbox: '1' ticked, '' clear), in the element ``within`` (XPath) if given."""

        def fill(d: Any) -> None:
            from selenium.webdriver.support.ui import Select

            for name, value in values.items():
                element = _one(d, f"{within}//*[@name={_literal(name)}]")
                if element.tag_name == "select":
                    Select(element).select_by_visible_text(value)
                elif element.get_attribute("type") == "checkbox":
                    if element.is_selected() != bool(value):
                        element.click()
                else:
                    element.clear()
                    element.send_keys(value)

        await self.run(fill)

    async def value(self, name: str) -> str:
        """What the field ``name`` holds (a select: the selected option's label)."""

        def value(d: Any) -> str:
            from selenium.webdriver.support.ui import Select

            element = _one(d, f"//*[@name={_literal(name)}]")
            if element.tag_name == "select":
                return str(Select(element).first_selected_option.text)
            return str(element.get_attribute("value"))

        return await self.run(value)

    async def field_error(self, name: str) -> str:
        """The error shown next to the form field ``name`` ('' when none)."""

        def error(d: Any) -> str:
            from selenium.webdriver.common.by import By

            found = d.find_elements(By.XPATH, f"//*[@name={_literal(name)}]"
                                    "/following-sibling::div[@class='field-error']")
            return str(found[0].text) if found else ""

        return await self.run(error)

    # ------------------------------------------------------------------ what it shows

    async def text(self, css: str = "body") -> str:
        """The visible text of the first element matching ``css``."""
        from selenium.webdriver.common.by import By

        return await self.run(lambda d: str(d.find_element(By.CSS_SELECTOR, css).text))

    async def texts(self, css: str) -> list[str]:
        """The visible text of every element matching ``css``."""
        from selenium.webdriver.common.by import By

        return await self.run(lambda d: [str(e.text) for e in
                                         d.find_elements(By.CSS_SELECTOR, css)])

    async def rows(self, css: str = "main table") -> list[list[str]]:
        """The body rows of the table ``css``, each as its cells' visible text."""

        def rows(d: Any) -> list[list[str]]:
            from selenium.webdriver.common.by import By

            table = d.find_element(By.CSS_SELECTOR, css)
            found = [[str(c.text) for c in r.find_elements(By.TAG_NAME, "td")]
                     for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
            return [row for row in found if row]  # a heading row in an implied tbody

        return await self.run(rows)

    async def count(self, css: str) -> int:
        from selenium.webdriver.common.by import By

        return await self.run(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)))

    async def alert(self, wait: float = 0.0) -> str | None:
        """The text of an open alert/confirm dialog (waiting up to ``wait`` seconds for
        one to open), or None when there is none."""

        def alert(d: Any) -> str | None:
            from selenium.common.exceptions import NoAlertPresentException, TimeoutException
            from selenium.webdriver.support import expected_conditions as ec

            try:
                if wait:
                    _waiting(d, wait).until(ec.alert_is_present())
                return str(d.switch_to.alert.text)
            except (NoAlertPresentException, TimeoutException):
                return None

        return await self.run(alert)

    async def cookie(self, name: str) -> str | None:
        """The value of the cookie ``name`` the browser holds for this site."""
        found = await self.run(lambda d: d.get_cookie(name))
        return None if found is None else str(found["value"])

    async def refused_by_policy(self) -> list[str]:
        """What the browser refused to apply since the last look (a Content-Security-Policy
        violation: an inline style or script the pages' CSP forbids)."""
        logs = await self.run(lambda d: d.get_log("browser"))
        return [str(e["message"]) for e in logs if e.get("source") == "security"]

    # ------------------------------------------------------------------ screens

    async def phone(self, width: int = 390, height: int = 844) -> None:
        """Show pages as a phone of ``width`` x ``height`` CSS pixels does."""
        await self.run(lambda d: d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2, "mobile": True}))

    async def widths(self) -> tuple[int, int]:
        """(the page's scroll width, the screen's width): wider scrolls sideways.

        The screen's width is the smaller of ``innerWidth`` and the root's ``clientWidth``:
        on an emulated phone Chromium widens the layout viewport (and ``innerWidth``) to fit
        a page that is too wide, so ``innerWidth`` alone would never show the overflow.
        """
        got = await self.run(lambda d: d.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth, "
            "document.documentElement.clientWidth];"))
        return int(got[0]), min(int(got[1]), int(got[2]))

    async def wider_than_screen(self) -> list[str]:
        """What sticks out to the right of the screen, outside any box that scrolls or
        clips it (``tag#id.class`` and its right edge)."""
        return await self.run(lambda d: list(d.execute_script(_WIDE_ELEMENTS)))

    async def screenshot(self, step: str) -> Path:
        """Keep a PNG of the page as ``<ARTIFACTS>/<test>-<step>.png``."""
        path = ARTIFACTS / f"{self.name}-{_slug(step)}.png"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        saved = await self.run(lambda d: d.save_screenshot(str(path)))
        if not saved:
            raise AssertionError(f"the browser did not save the screenshot {path}")
        return path


class BrowserCase(WebCase, _TrialCase):
    """Mixin: :class:`WebCase` and ``await self.chromium()``, a browser for this test,
    stopped after it; a failing test leaves a screenshot of where it failed."""

    def setUp(self) -> None:
        require_browser()
        super().setUp()
        self.ui: Chromium | None = None
        self.artifact_name = f"{type(self).__name__}.{self._testMethodName}"
        for old in ARTIFACTS.glob(f"{glob.escape(self.artifact_name)}-*.png"):
            old.unlink(missing_ok=True)  # the artifacts say what the last run saw
        method = getattr(self, self._testMethodName)
        setattr(self, self._testMethodName, self._watched(method))

    def _watched(self, method: Callable[[], Any]) -> Callable[[], Any]:
        """``method``, with a screenshot of the page when it fails."""

        @functools.wraps(method)
        async def watched() -> None:
            try:
                result = method()
                if inspect.isawaitable(result):
                    await result
            except BaseException:
                if self.ui is not None:
                    try:
                        await self.ui.screenshot("failure")
                    except Exception as exc:
                        log.warn("no screenshot of the failure: {error}", error=str(exc))
                raise

        return watched

    async def chromium(self) -> Chromium:
        """This test's browser on ``self.base`` (started once, stopped after the test)."""
        if self.ui is None:
            ui = await deferToThread(Chromium.launch, self.base, self.artifact_name)
            self.addCleanup(deferToThread, ui.close)
            self.ui = ui
        return self.ui


def _new_page(driver: Any, action: Callable[[Any], Any]) -> None:
    """``action(driver)``, then wait until the browser shows the page it led to.

    The page is marked before; the next page's window has no mark.  (Waiting for the old
    ``<html>`` to go stale races with the navigation: chromedriver may then answer "node
    does not belong to the document" instead of "stale".)
    """
    from selenium.common.exceptions import UnexpectedAlertPresentException, WebDriverException

    driver.execute_script("window.xvbdPageBefore = true;")
    action(driver)

    def arrived(d: Any) -> bool:
        try:
            return bool(d.execute_script("return window.xvbdPageBefore !== true && "
                                         "document.readyState === 'complete';"))
        except UnexpectedAlertPresentException:
            raise
        except WebDriverException:
            return False  # the old page is going and the new one not there yet

    _waiting(driver).until(arrived, "the click did not lead to a new page")


def _waiting(driver: Any, timeout: float = WAIT) -> Any:
    """A wait that looks every 20 ms (Selenium's default, 0.5 s, would slow every step)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.02)


def _one(driver: Any, xpath: str) -> Any:
    """The element at ``xpath``, waited for; an error names what was looked for."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    try:
        return _waiting(driver).until(ec.presence_of_element_located((By.XPATH, xpath)))
    except TimeoutException:
        raise AssertionError(f"no element {xpath} on {driver.current_url}") from None


def _literal(text: str) -> str:
    """``text`` as an XPath string literal."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "step"


_WIDE_ELEMENTS = """
const screen = Math.min(window.innerWidth, document.documentElement.clientWidth);
const clipped = e => {
  for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true;
  }
  return false;
};
const out = [];
for (const e of document.querySelectorAll('body *')) {
  if (clipped(e)) continue;
  const r = e.getBoundingClientRect();
  const scrolls = getComputedStyle(e).overflowX !== 'visible';
  const right = scrolls ? r.right : Math.max(r.right, r.left + e.scrollWidth);
  if (right > screen + 0.5) {
    const cls = typeof e.className === 'string' && e.className ? '.' + e.className.trim().replace(/ +/g, '.') : '';
    out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + cls + ' right=' + Math.round(right));
  }
}
return out.slice(0, 20);
"""
