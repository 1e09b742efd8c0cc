"""The tenant's web (``/ui``): who is logged in (one user, by VoiceNumber + AccessCode and
their PIN or web password), the session with its CSRF token, the page frame, the refusals.

Every screen is a mixin of :class:`TenantBase` registering its routes on the one ``app``;
``xvbd.web.tenant.TenantApp`` puts them together.  Every read and change goes to the storage
layer with the logged-in user's id, so another tenant's objects are simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from klein import Klein
from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.config import Settings
from xvbd.counters import Counters
from xvbd.logs import logger
from xvbd.mediadirs import MediaDirs
from xvbd.passwords import secret_matches
from xvbd.store import Store
from xvbd.store.accounts import Group, User
from xvbd.store.apikeys import ApiKey
from xvbd.store.audit import Actor
from xvbd.store.sessions import WebSession
from xvbd.web.frame import PageFrame
from xvbd.web.security import (
    LoginGuard,
    Redirect,
    Refused,
    check_csrf,
    client_address,
    failure_code,
    form,
    redirect_answer,
    safe_next,
    session_id,
)
from xvbd.web.templating import Pages

log = logger("xvbd.web.tenant")

app = Klein()
COOKIE = "xvbd_ui"
ROOT = "/ui"
WRONG_LOGIN = ("Wrong phone number, access code or password. Until you set a web password, "
               "the PIN you use on the phone logs in here; once you have set one, only the "
               "web password does. Forgot it? Your provider can give you a reset link.")


@dataclass(frozen=True)
class Tenant:
    """The logged-in user, their group, and the session (or, in the API, the key)."""

    user: User
    group: Group
    address: str
    session: WebSession
    api_key: ApiKey | None = None  # the API key the request came with

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return f"{self.user.voice_number}#{self.user.access_code}"

    @property
    def actor(self) -> Actor:
        """Who the journal says changed things: the login, and the API key if one was used."""
        if self.api_key is not None:
            return Actor("user", f"{self.name} key {self.api_key.prefix}", self.address)
        return Actor("user", self.name, self.address)

    @property
    def csrf(self) -> str:
        return self.session.csrf_token

    @property
    def read_only(self) -> bool:
        return bool(self.user.read_only)


class TenantBase(PageFrame):
    """The frame every tenant page shares."""

    app = app
    root, cookie, error_template = ROOT, COOKIE, "tenant/error.html"

    def __init__(self, settings: Settings, store: Store, counters: Counters,
                 pages: Pages | None = None, directory: Any = None,
                 media: MediaDirs | None = None) -> None:
        self.settings = settings
        paths = settings.path
        self.media = media or MediaDirs(paths.media_dir, paths.tmp_dir, paths.media_group,
                                        deferToThread)
        self.directory = directory  # the engine's cache of trees, told of every change
        self.store = store
        self.pages = pages or Pages()
        self.guard = LoginGuard(counters)
        self.lifetime = settings.web.session_timeout

    # ------------------------------------------------------------------ who

    async def current(self, request: IRequest) -> Tenant | None:
        session = await self.store.sessions.get(session_id(request, COOKIE), self.lifetime)
        if session is None or session.kind != "user" or not session.principal.isdigit():
            return None
        user = await self.store.accounts.get_user(int(session.principal))
        if user is None or user.locked:
            await self.store.sessions.close(session.id)
            return None
        group = await self.store.accounts.get_group(user.group_id)
        if group is None:
            return None
        return Tenant(user, group, client_address(request), session)

    async def tenant(self, request: IRequest, *, change: bool = False) -> Tenant:
        """The logged-in tenant; a change (``change``) also needs the form's CSRF token and
        an account that is not read-only."""
        who = await self.current(request)
        if who is None:
            raise self.to_login(request)
        if change:
            check_csrf(who.session, form(request), request)
            if who.read_only:
                raise Refused(403, "Your account is read-only: you can look at everything "
                              "but not change it. Ask your provider to allow changes.")
        return who

    async def note(self, who: Tenant, kind: str, object_id: str, field: str, old: str,
                   new: str) -> None:
        """Journal a change the storage layer does not journal itself (files, variables)."""
        await self.store.journal.record(actor_kind="user", actor=who.name, address=who.address,
                                        user_id=who.id, object_kind=kind, object_id=object_id,
                                        field=field, old_value=old, new_value=new)

    def changed(self, who: Tenant) -> None:
        """The tenant's tree or account changed: calls in this process see it at once."""
        if self.directory is not None:
            self.directory.invalidate_user(who.id)

    # ------------------------------------------------------------------ pages

    # ------------------------------------------------------------------ login

    @app.route("/login", methods=["GET"])
    async def tenant_login_form(self, request: IRequest) -> bytes:
        return self.login_page(request, "tenant/login.html", error="", next=_next(request),
                               voice_number="", access_code="")

    @app.route("/login", methods=["POST"])
    async def tenant_login(self, request: IRequest) -> bytes:
        data = form(request)
        number = data.get("voice_number", "").strip()[:64]
        code = data.get("access_code", "").strip()[:32]
        secret = data.get("secret", "")
        address = client_address(request)
        name = f"{number}#{code}"
        why = self.login_form_refused(request, data)
        if why:
            return self.login_page(request, "tenant/login.html", 403, error=why,
                                   next=_next(request, data), voice_number=number,
                                   access_code=code)
        why = await self.guard.refused("ui", name, address)
        if not why:
            user = await self.store.accounts.find_user(number, code) if number and code \
                else None
            if user is not None and await _secret_matches(user, secret):
                await self.guard.succeeded("ui", name)
                if user.locked:
                    why = ("Your account is locked. Ask your provider to unlock it.")
                else:
                    await self.start_session(request, "user", str(user.id))
                    log.info("user {name} logged in to the web from {address}", name=name,
                             address=address)
                    raise Redirect(_next(request, data))
            else:
                await self.guard.failed("ui", name, address)
                log.warn("failed web login as {name!r} from {address}", name=name,
                         address=address)
                why = WRONG_LOGIN
        return self.login_page(request, "tenant/login.html", 401, error=why,
                               next=_next(request, data), voice_number=number,
                               access_code=code)

    @app.route("/logout", methods=["POST"])
    async def tenant_logout(self, request: IRequest) -> bytes:
        who = await self.current(request)
        await self.end_session(request, who.session if who is not None else None)

    # ------------------------------------------------------------------ refusals

    @app.handle_errors(Redirect)
    def tenant_redirected(self, request: IRequest, failure: Any) -> bytes:
        return redirect_answer(request, failure.value.location)

    @app.handle_errors(Refused)
    def tenant_refused(self, request: IRequest, failure: Any) -> bytes:
        return self.error_page(request, failure.value.code, failure.value.message)

    @app.handle_errors(Exception)
    def tenant_failed(self, request: IRequest, failure: Any) -> bytes:
        return self.error_page(request, *failure_code(request, failure))


async def _secret_matches(user: User, secret: str) -> bool:
    """The web password; the phone PIN only while the user has no web password yet (both
    hashes, checked off the reactor thread)."""
    if user.web_password_hash:
        return await secret_matches(secret, user.web_password_hash)
    return await secret_matches(secret, user.pin_hash)


def _next(request: IRequest, data: dict[str, str] | None = None) -> str:
    return safe_next(request, data, ROOT)
