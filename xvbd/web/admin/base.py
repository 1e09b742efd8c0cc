"""The operator's web (``/ai``): who is logged in (the admin, or a partner who sees only
the users of its group), the session and its CSRF token, the page frame, and the refusals.

Every screen is a mixin of :class:`AdminBase` registering its routes on the one ``app``;
``xvbd.web.admin.AdminApp`` puts them together.  A change is made inside ``acting(...)``,
so the storage layer journals it as the person's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from xvbd.config import Settings
from xvbd.counters import Counters
from xvbd.logs import logger
from xvbd.passwords import hash_password, needs_rehash
from xvbd.store import Store
from xvbd.store.accounts import Partner
from xvbd.store.audit import Actor
from xvbd.store.sessions import WebSession
from xvbd.web.forms import Field
from xvbd.web.frame import PageFrame
from xvbd.web.security import (
    LoginGuard,
    Redirect,
    Refused,
    check_csrf,
    client_address,
    failure_code,
    form,
    password_matches,
    redirect_answer,
    safe_next,
    session_id,
)
from xvbd.web.templating import Pages, money

log = logger("xvbd.web.admin")

app = Klein()
COOKIE = "xvbd_ai"
ROOT = "/ai"


@dataclass(frozen=True)
class Staff:
    """Who is asking: the admin (every object) or a partner (the users of one group); an
    API call is this, a page adds its session (:class:`Principal`)."""

    kind: str  # admin | partner
    name: str
    address: str
    partner: Partner | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def group_id(self) -> int | None:
        """The group a partner is held to; None for the admin (no limit)."""
        return self.partner.group_id if self.partner is not None else None

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, self.name, self.address)

    def balance_change_problem(self, amount: int | None) -> str:
        """What is wrong with changing a balance by ``amount`` (1/10000 units; None when the
        amount is already refused) for this staff member, "" when nothing; a partner
        without the right is refused (403) whatever the amount."""
        partner = self.partner
        if partner is not None and not partner.can_change_balance:
            raise Refused(403, "Your partner account may not change balances.")
        if amount is None:
            return ""
        if amount == 0:
            return "Amount: not zero."
        if partner is not None and partner.balance_limit and abs(amount) > partner.balance_limit:
            return (f"Amount: at most {money(partner.balance_limit)} at a time for your "
                    "partner account.")
        return ""


@dataclass(frozen=True)
class Principal(Staff):
    """Who is asking on the pages, and their session."""

    session: WebSession = field(kw_only=True)

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


class AdminBase(PageFrame):
    """The frame every operator page shares."""

    app = app
    root, cookie, error_template = ROOT, COOKIE, "admin/error.html"

    def __init__(self, settings: Settings, store: Store, counters: Counters,
                 pages: Pages | None = None) -> None:
        self.settings = settings
        self.store = store
        self.pages = pages or Pages()
        self.guard = LoginGuard(counters)
        self.lifetime = settings.web.session_timeout
        #: Told when a mail is queued again (the outbox's sender sends it at once).
        self.mail_queued: Callable[[], object] | None = None

    # ------------------------------------------------------------------ who

    async def principal(self, request: IRequest) -> Principal | None:
        session = await self.store.sessions.get(session_id(request, COOKIE), self.lifetime)
        if session is None or session.kind not in ("admin", "partner"):
            return None
        partner = None
        if session.kind == "partner":
            partner = await self.store.accounts.get_partner(int(session.principal))
            if partner is None:
                return None
            name = partner.login
        else:
            name = session.principal
        return Principal(session.kind, name, client_address(request), partner, session=session)

    async def staff(self, request: IRequest, *, admin: bool = False,
                    change: bool = False) -> Principal:
        """The logged-in admin or partner (``admin``: the admin only); a change (``change``)
        also needs the form's CSRF token."""
        who = await self.principal(request)
        if who is None:
            raise self.to_login(request)
        if admin and not who.is_admin:
            raise Refused(403, "This page is the operator's; a partner manages the users of "
                          "its group only.")
        if change:
            check_csrf(who.session, form(request), request)
        return who

    # ------------------------------------------------------------------ pages

    def form_page(self, request: IRequest, who: Principal, *, title: str, fields:
                  Sequence[Field], values: Mapping[str, Any], action: str,
                  errors: Mapping[str, str] | None = None, delete: str = "",
                  back: str = "", template: str = "admin/form.html",
                  **context: Any) -> bytes:
        """A form of ``fields`` in their sections (``template`` extends ``admin/form.html``
        with more of the form, given ``context``)."""
        if errors:
            request.setResponseCode(400)
        sections: dict[str, list[Field]] = {}
        for f in fields:
            sections.setdefault(f.section, []).append(f)
        return self.page(request, template, who, title=title, sections=sections,
                         values=values, action=action, errors=errors or {}, delete=delete,
                         back=back, **context)

    # ------------------------------------------------------------------ login

    @app.route("/login", methods=["GET"])
    async def login_form(self, request: IRequest) -> bytes:
        return self.login_page(request, "admin/login.html", error="", next=_next(request),
                               login="")

    @app.route("/login", methods=["POST"])
    async def login(self, request: IRequest) -> bytes:
        data = form(request)
        login, password = data.get("login", "").strip()[:64], data.get("password", "")
        address = client_address(request)
        why = self.login_form_refused(request, data)
        if why:
            return self.login_page(request, "admin/login.html", 403, error=why,
                                   next=_next(request, data), login=login)
        why = await self.guard.refused("ai", login, address)
        if not why:
            kind, principal, stored, _partner = await self._credentials(login)
            if kind and await password_matches(password, stored):
                await self.guard.succeeded("ai", login)
                if needs_rehash(stored):
                    await self._rehash(kind, principal, password)
                await self.start_session(request, kind, principal)
                log.info("{kind} {login} logged in to the admin web from {address}",
                         kind=kind, login=login, address=address)
                raise Redirect(_next(request, data))
            await self.guard.failed("ai", login, address)
            log.warn("failed admin web login as {login!r} from {address}", login=login,
                     address=address)
            why = "Wrong login or password."
        return self.login_page(request, "admin/login.html", 401, error=why,
                               next=_next(request, data), login=login)

    async def _credentials(self, login: str) -> tuple[str, str, str, Partner | None]:
        """(kind, principal, stored hash, the partner) of a login (the pages' and the
        API's); kind '' when unknown."""
        if not login:
            return "", "", "", None
        admin = await self.store.accounts.get_admin(login)
        if admin is not None:
            return "admin", admin.login, admin.password_hash, None
        partner = await self.store.accounts.find_partner(login)
        if partner is not None:
            return "partner", str(partner.id), partner.password_hash, partner
        return "", "", "", None

    async def _rehash(self, kind: str, principal: str, password: str) -> None:
        from twisted.internet.threads import deferToThread

        fresh: str = await deferToThread(hash_password, password)
        if kind == "admin":
            await self.store.accounts.set_admin_password_hash(principal, fresh)
        else:
            await self.store.accounts.update_partner(int(principal), password_hash=fresh)

    @app.route("/logout", methods=["POST"])
    async def logout(self, request: IRequest) -> bytes:
        who = await self.principal(request)
        await self.end_session(request, who.session if who is not None else None)

    @app.route("/", methods=["GET"])
    async def home(self, request: IRequest) -> bytes:
        who = await self.staff(request)
        raise Redirect(f"{ROOT}/users" if not who.is_admin else f"{ROOT}/nodes")

    # ------------------------------------------------------------------ refusals

    @app.handle_errors(Redirect)
    def redirected(self, request: IRequest, failure: Any) -> bytes:
        return redirect_answer(request, failure.value.location)

    @app.handle_errors(Refused)
    def refused(self, request: IRequest, failure: Any) -> bytes:
        return self.error_page(request, failure.value.code, failure.value.message)

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Any) -> bytes:
        return self.error_page(request, *failure_code(request, failure))


def _next(request: IRequest, data: dict[str, str] | None = None) -> str:
    return safe_next(request, data, ROOT)


def with_choices(fields: Sequence[Field], **choices: Iterable[tuple[str, str]]
                 ) -> tuple[Field, ...]:
    """``fields``, each one named in ``choices`` made a required choice of those
    ``(value, label)`` pairs (a tariff of the list, a group …)."""
    return tuple(replace(f, kind="choice", required=True, choices=tuple(choices[f.name]))
                 if f.name in choices else f for f in fields)


def typed(request: IRequest) -> dict[str, str]:
    """What the person typed, to show the form again (passwords and PINs are never sent
    back)."""
    return {k: v for k, v in form(request).items() if k not in ("password", "pin", "_csrf")}
