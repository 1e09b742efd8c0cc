"""The tenant's own pages: home (balance, tariff, plan limits), account settings (name,
e-mail for voicemail, time zone, web password, API keys) and the journal of their changes."""

from __future__ import annotations

from zoneinfo import available_timezones

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.mail.addresses import BadAddress, parse_addresses
from xvbd.passwords import hash_password
from xvbd.store.apikeys import SCOPES, ApiKey, TooManyKeys
from xvbd.store.audit import Actor, acting
from xvbd.store.outbox import ATTACH_FORMATS
from xvbd.web.forms import Field, parse_fields
from xvbd.web.security import Redirect, Refused, client_address, form
from xvbd.web.tenant.base import ROOT, Tenant, TenantBase, _secret_matches, app, log

PAGE = 50
MIN_PASSWORD = 8

#: The time zones a tenant may pick, read from the zone database once, at start (not on the
#: reactor thread of a request).
ZONES = frozenset(available_timezones()) | {"UTC"}

ACCOUNT = (
    Field("name", "Your name", max_length=255),
    Field("email", "E-mail for voicemail", max_length=255,
          help="New voicemail messages and Dtmf2Email digits are mailed here; several "
               "addresses separated by commas. Empty: no e-mail."),
    Field("timezone", "Time zone", max_length=64,
          help="Like Europe/Moscow; schedules and times on these pages use it."),
)

#: What the home page shows of the plan (group) limits: (attribute, label); -1 = no limit.
PLAN = (("max_extensions", "Extensions"), ("max_messages_total", "Messages kept"),
        ("max_messages_per_ext", "Messages per mailbox"),
        ("max_message_duration", "Longest message (s)"),
        ("max_greeting_duration", "Longest greeting (s)"),
        ("max_followme_phones", "Phones per extension"),
        ("max_schedule_items", "Schedule rules"), ("max_gotoif_items", "Conditions"),
        ("max_callblast_items", "Auto-dialer lists"), ("max_inbound_calls", "Calls at once"))


KEY_NAME = Field("name", "Key name", required=True, max_length=64,
                 help="What the key is for, like 'nightly export'.")
KEY_SCOPES = {"read": "read: GET only", "write": "write: read and change"}

RESET_GONE = ("This reset link has expired or was used already. Ask your provider for a new "
              "one, or log in if you have set your password.")


def password_problem(new: str, again: str) -> str:
    """What is wrong with a new web password ('' when nothing)."""
    if len(new) < MIN_PASSWORD or len(new) > 128:
        return f"A web password is {MIN_PASSWORD} to 128 characters."
    if new != again:
        return "The two new passwords differ; type the same one twice."
    if new.isdigit():
        return "A web password needs more than digits (a PIN is digits: keep them apart)."
    return ""


class AccountPages(TenantBase):
    @app.route("/", methods=["GET"])
    async def tenant_home(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        tariff = await self.store.accounts.get_tariff(who.group.tariff_id)
        currency = await self.store.accounts.get_currency(tariff.currency_id) \
            if tariff else None
        _, total, unread = await self.store.messages.counts(who.id)
        return self.page(
            request, "tenant/home.html", who, tariff=tariff, currency=currency,
            plan=[(label, getattr(who.group, attr)) for attr, label in PLAN],
            extensions=await self.store.ivr.count(who.id),
            messages=total, unread=unread,
            dids=await self.store.accounts.user_dids(who.id),
            history=await self.store.accounts.balance_history(who.id, limit=10))

    # ------------------------------------------------------------------ account

    @app.route("/account", methods=["GET"])
    async def account_page(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        return await self._account_page(request, who, self._account_values(who), {}, "")

    def _account_values(self, who: Tenant) -> dict[str, str]:
        return {"name": who.user.name, "email": who.user.email, "timezone": who.user.timezone}

    async def _account_page(self, request: IRequest, who: Tenant, values: dict[str, str],
                            errors: dict[str, str], password_error: str, *,
                            key_error: str = "", new_key: str = "",
                            made: ApiKey | None = None) -> bytes:
        if errors or password_error or key_error:
            request.setResponseCode(400)
        prefs = await self.store.outbox.prefs(who.id)
        keys = await self.store.api_keys.of_user(who.id) if who.group.allow_api else []
        return self.page(request, "tenant/account.html", who, fields=ACCOUNT, values=values,
                         errors=errors, password_error=password_error,
                         attach_as=values.get("attach_as", prefs.attach_as),
                         daily_stats=values.get("daily_stats", "1" if prefs.daily_stats
                                                else "") == "1",
                         attach_limit=who.group.max_email_attachment_bytes, keys=keys,
                         key_scopes=KEY_SCOPES, key_error=key_error, new_key=new_key,
                         made=made)

    @app.route("/account", methods=["POST"])
    async def account_save(self, request: IRequest) -> bytes:
        who = await self.tenant(request, change=True)
        data = form(request)
        values, errors = parse_fields(ACCOUNT, data)
        zone = values.get("timezone") or "UTC"
        if "timezone" not in errors and zone not in ZONES:
            errors["timezone"] = (f"Time zone: {zone!r} is not one this server knows; use a "
                                  "name like Europe/Moscow or America/New_York.")
        emails = ""
        if "email" not in errors:
            try:
                emails = ", ".join(parse_addresses(
                    values["email"], allow_local=self.settings.email.allow_local))
            except BadAddress as exc:
                errors["email"] = f"E-mail: {exc}."
        attach_as = data.get("attach_as", "wav")
        if attach_as not in ATTACH_FORMATS:
            errors["attach_as"] = "Recording in the mail: choose WAV or MP3."
        daily_stats = data.get("daily_stats", "") == "1"
        if errors:
            return await self._account_page(request, who, {k: data.get(k, "") for k in (
                "name", "email", "timezone", "attach_as", "daily_stats")}, errors, "")
        with acting(who.actor):
            await self.store.accounts.update_user(who.id, name=values["name"],
                                                  email=emails, timezone=zone)
            await self.store.outbox.set_prefs(who.id, attach_as=attach_as,
                                              daily_stats=daily_stats)
        self.changed(who)
        raise self.done(f"{ROOT}/account", "Saved.")

    @app.route("/account/password", methods=["POST"])
    async def password_save(self, request: IRequest) -> bytes:
        who = await self.tenant(request, change=True)
        data = form(request)
        current, new = data.get("current", ""), data.get("password", "")
        why = ""
        if not await _secret_matches(who.user, current):
            why = ("Your current web password is not right." if who.user.web_password_hash
                   else "Your current PIN is not right.")
        else:
            why = password_problem(new, data.get("again", ""))
        if why:
            return await self._account_page(request, who, self._account_values(who), {}, why)
        fresh: str = await deferToThread(hash_password, new)
        with acting(who.actor):
            await self.store.accounts.update_user(who.id, web_password_hash=fresh)
        await self.store.sessions.close_all("user", str(who.id))
        raise Redirect(f"{ROOT}/login?done=Password+set.+Log+in+with+it.")

    # ------------------------------------------------------------------ API keys

    @app.route("/account/api-keys", methods=["POST"])
    async def api_key_create(self, request: IRequest) -> bytes:
        """A new API key, shown on this answer once (it is kept only as a hash)."""
        who = await self.tenant(request, change=True)
        if not who.group.allow_api:
            raise Refused(403, "Your plan does not include the API; ask your provider.")
        data = form(request)
        values, errors = parse_fields((KEY_NAME,), data)
        scope = data.get("scope", "")
        why = errors.get("name", "")
        if not why and scope not in SCOPES:
            why = "Choose what the key may do: read (GET only) or write (read and change)."
        made = None
        if not why:
            try:
                with acting(who.actor):
                    made, key = await self.store.api_keys.create(who.id, values["name"], scope)
            except TooManyKeys as exc:
                why = str(exc)
        if why or made is None:
            return await self._account_page(request, who, self._account_values(who), {}, "",
                                            key_error=why)
        log.info("user {name} made API key {prefix} ({scope}) from {address}", name=who.name,
                 prefix=made.prefix, scope=made.scope, address=who.address)
        return await self._account_page(request, who, self._account_values(who), {}, "",
                                        new_key=key, made=made)

    @app.route("/account/api-keys/<int(max=999999999999999999):key_id>/revoke",
               methods=["POST"])
    async def api_key_revoke(self, request: IRequest, key_id: int) -> bytes:
        who = await self.tenant(request, change=True)
        with acting(who.actor):
            revoked = await self.store.api_keys.revoke(who.id, key_id)
        if revoked is None:
            raise Refused(404, "You have no such API key; the Account page lists yours.")
        log.info("user {name} revoked API key {prefix} from {address}", name=who.name,
                 prefix=revoked.prefix, address=who.address)
        raise self.done(f"{ROOT}/account", f"API key {revoked.prefix}... revoked: it no "
                        "longer opens the API.")

    # ------------------------------------------------------------------ a reset link

    @app.route("/login/reset/<token>", methods=["GET"])
    async def reset_form(self, request: IRequest, token: str) -> bytes:
        """The page of a reset link the operator gave: a new web password (under
        ``/login`` so that the login form's cookie and CSRF token serve it too)."""
        if await self.store.password_resets.valid(token) is None:
            raise Refused(410, RESET_GONE)
        return self.login_page(request, "tenant/reset.html", error="", token=token)

    @app.route("/login/reset/<token>", methods=["POST"])
    async def reset_save(self, request: IRequest, token: str) -> bytes:
        data = form(request)
        forged = self.login_form_refused(request, data)
        why = forged or password_problem(data.get("password", ""), data.get("again", ""))
        if why:
            if await self.store.password_resets.valid(token) is None:
                raise Refused(410, RESET_GONE)
            return self.login_page(request, "tenant/reset.html", 403 if forged else 400,
                                   error=why, token=token)
        user_id = await self.store.password_resets.spend(token)
        user = await self.store.accounts.get_user(user_id) if user_id is not None else None
        if user is None:
            raise Refused(410, RESET_GONE)
        fresh: str = await deferToThread(hash_password, data["password"])
        actor = Actor("user", f"{user.voice_number}#{user.access_code}", client_address(request))
        with acting(actor):
            await self.store.accounts.update_user(user.id, web_password_hash=fresh)
        await self.store.sessions.close_all("user", str(user.id))
        log.info("user {name} set a web password with a reset link from {address}",
                 name=actor.name, address=actor.address)
        raise Redirect(f"{ROOT}/login?done=Password+set.+Log+in+with+it.")

    # ------------------------------------------------------------------ journal

    @app.route("/journal", methods=["GET"])
    async def tenant_journal(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        raw = request.args.get(b"before", [b""])[0].decode("ascii", "replace")
        before = int(raw) if raw.isdigit() and len(raw) < 19 else None
        entries = await self.store.journal.for_user(who.id, before_id=before, limit=PAGE + 1)
        more = len(entries) > PAGE
        entries = entries[:PAGE]
        return self.page(request, "tenant/journal.html", who, entries=entries,
                         next_before=entries[-1].id if more and entries else None)


