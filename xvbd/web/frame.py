"""What every page of both webs shares: the page itself (with the notice a redirect
carried and the section it is in), the redirect after a change, the way to the login page,
the error page and the end of a session.  Each web says its root, its cookie and its
templates; its Klein app routes to these."""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn
from urllib.parse import quote, urlencode

from twisted.web.iweb import IRequest

from xvbd.store import Store
from xvbd.store.sessions import WebSession
from xvbd.web.security import (
    LOGIN_FORM_EXPIRED,
    Redirect,
    check_csrf,
    form,
    login_form_sent,
    login_form_token,
    secure_headers,
    session_id,
    set_cookie,
)
from xvbd.web.templating import Pages


class PageFrame:
    """The frame of one web (``/ai`` or ``/ui``)."""

    root: ClassVar[str]  # where the web is mounted
    cookie: ClassVar[str]  # its session cookie
    error_template: ClassVar[str]
    pages: Pages
    store: Store
    lifetime: int  # a session's life in seconds ([WEB] SESSION_TIMEOUT)

    def page(self, request: IRequest, template: str, who: Any, **context: Any) -> bytes:
        secure_headers(request)
        notice = request.args.get(b"done", [b""])[0].decode("utf-8", "replace")[:200]
        parts = request.path.decode("utf-8", "replace").split("/")
        here = parts[2] if len(parts) > 2 else ""
        return self.pages.render(template, who=who, root=self.root, notice=notice, here=here,
                                 **context)

    @staticmethod
    def done(location: str, message: str) -> Redirect:
        """Back to ``location`` (which may end in ``#anchor``) saying ``message``."""
        path, hash_, anchor = location.partition("#")
        sep = "&" if "?" in path else "?"
        return Redirect(f"{path}{sep}done={quote(message)}{hash_}{anchor}")

    def to_login(self, request: IRequest) -> Redirect:
        """To the login page, and back here after it."""
        target = request.uri.decode("utf-8", "replace")
        return Redirect(f"{self.root}/login?{urlencode({'next': target})}")

    def error_page(self, request: IRequest, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        return self.page(request, self.error_template, None, code=code, message=message)

    # ------------------------------------------------------------------ logging in

    @property
    def login_cookie(self) -> str:
        """The pre-login cookie the login form's CSRF token is bound to."""
        return self.cookie + "_login"

    def login_page(self, request: IRequest, template: str, code: int = 200,
                   **context: Any) -> bytes:
        """The login form, with its CSRF token (and the pre-login cookie it is bound to)."""
        if code != 200:
            request.setResponseCode(code)
        token = login_form_token(request, self.login_cookie, self.root)
        return self.page(request, template, None, login_token=token, **context)

    def login_form_refused(self, request: IRequest, data: dict[str, str]) -> str:
        """Why a login POST is refused before any password is looked at ('' when its CSRF
        token is the one of a form we gave this browser)."""
        if login_form_sent(request, self.login_cookie, self.root, data):
            return ""
        return LOGIN_FORM_EXPIRED

    async def start_session(self, request: IRequest, kind: str, principal: str) -> None:
        """A logged-in session under a fresh id: the one the browser came with (whoever
        set it) ends, and the login form's cookie is spent."""
        earlier = session_id(request, self.cookie)
        if earlier:
            await self.store.sessions.close(earlier)
        session = await self.store.sessions.open(kind, principal, self.lifetime)
        set_cookie(request, self.cookie, session.id, self.root, self.lifetime)
        set_cookie(request, self.login_cookie, "", self.root + "/login", 0)

    async def end_session(self, request: IRequest, session: WebSession | None) -> NoReturn:
        """Log out (a form's POST, with its CSRF token) and go to the login page."""
        if session is not None:
            check_csrf(session, form(request), request)
            await self.store.sessions.close(session.id)
        set_cookie(request, self.cookie, "", self.root, 0)
        raise Redirect(f"{self.root}/login")
