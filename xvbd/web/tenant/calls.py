"""The tenant's call list: their own CDR records, newest first, in their time zone, with
filters (dates, caller, called number, type) and pages that stay fast however many calls
they have (read along the owner's index, a page after a page)."""

from __future__ import annotations

import time
from datetime import datetime

from twisted.web.iweb import IRequest

from xvbd.engine.types import REGISTRY
from xvbd.engine.when import zone as time_zone
from xvbd.store.cdr import CDRFilter, CDRKey
from xvbd.web.forms import FieldError, day_start, parse_day
from xvbd.web.security import form
from xvbd.web.tenant.base import TenantBase, app

PAGE = 50
TEXT = 64


class CallPages(TenantBase):
    @app.route("/calls", methods=["GET"])
    async def calls(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        args = {k: v.strip()[:TEXT] for k, v in form(request).items()}
        zone = time_zone(who.user.timezone)
        errors: dict[str, str] = {}
        days: dict[str, int | None] = {"from": None, "to": None}
        for name in days:
            if args.get(name):
                try:
                    day = parse_day(args[name], f"{name.capitalize()} date")
                except FieldError as exc:
                    errors[name] = str(exc)
                    continue
                days[name] = day_start(day, zone, after=name == "to")  # "to": the whole day
        kind = args.get("type", "")
        if kind and kind not in REGISTRY and kind != "XVB":
            errors["type"] = "Choose a type from the list."
        before = None
        if args.get("before"):
            try:
                before = CDRKey.parse(args["before"])
            except ValueError:
                errors["before"] = "This page link is damaged; start from the first page."
        rows, next_key = [], None
        if errors:
            request.setResponseCode(400)
        else:
            page = await self.store.cdrs.user_listing(
                who.id, CDRFilter(start_from=days["from"], start_to=days["to"],
                                  caller_id=args.get("caller") or None,
                                  called_id=args.get("called") or None, type=kind or None),
                before=before, limit=PAGE)
            rows, next_key = page.rows, page.next
        tariff = await self.store.accounts.get_tariff(who.group.tariff_id)
        currency = await self.store.accounts.get_currency(tariff.currency_id) \
            if tariff else None
        query = {k: args[k] for k in ("from", "to", "caller", "called", "type") if args.get(k)}
        return self.page(request, "tenant/calls.html", who, rows=rows, errors=errors,
                         query=query, next_key=str(next_key) if next_key else "",
                         types=["XVB", *sorted(REGISTRY)], zone=zone.key,
                         local=lambda ts: time.strftime(
                             "%Y-%m-%d %H:%M:%S", datetime.fromtimestamp(ts, zone).timetuple()),
                         currency=currency.name if currency else "")
