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
from xvbd.web.security import Redirect, check_csrf, form, secure_headers, set_cookie
from xvbd.web.templating import Pages


class PageFrame:
    """The frame of one web (``/ai`` or ``/ui``)."""

    root: ClassVar[str]  # where the web is mounted
    cookie: ClassVar[str]  # its session cookie
    error_template: ClassVar[str]
    pages: Pages
    store: Store

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

    async def end_session(self, request: IRequest, session: WebSession | None) -> NoReturn:
        """Log out (a form's POST, with its CSRF token) and go to the login page."""
        if session is not None:
            check_csrf(session, form(request), request)
            await self.store.sessions.close(session.id)
        set_cookie(request, self.cookie, "", self.root, 0)
        raise Redirect(f"{self.root}/login")
