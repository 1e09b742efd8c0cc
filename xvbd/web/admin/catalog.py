"""The operator's catalogue: Nodes (with their live stats), Tariffs, Groups (every limit,
per-type extension limits, features) and Partners."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.passwords import hash_password
from xvbd.store.accounts import Accounts, Conflict
from xvbd.store.audit import acting
from xvbd.web.admin import schemas
from xvbd.web.admin.base import ROOT, AdminBase, app, typed, with_choices
from xvbd.web.forms import FieldError, parse_fields
from xvbd.web.security import Refused, form, number_arg

#: The per-type limit a group has when it names none.
NO_TYPE_LIMIT = -1


async def node_in_use(accounts: Accounts, node_id: str) -> str:
    """Why the node may not be deleted ('' when it may)."""
    groups = [g.name for g in await accounts.list_groups() if g.server_id == node_id]
    return (f"Node {node_id} serves the groups {', '.join(groups)}; move them to another "
            "node first." if groups else "")


async def tariff_in_use(accounts: Accounts, tariff_id: int) -> str:
    """Why the tariff may not be deleted ('' when it may)."""
    groups = [g.name for g in await accounts.list_groups() if g.tariff_id == tariff_id]
    return (f"The groups {', '.join(groups)} use this tariff; give them another one first."
            if groups else "")


async def group_in_use(accounts: Accounts, group_id: int) -> str:
    """Why the group may not be deleted ('' when it may)."""
    if await accounts.list_users(group_id=group_id, limit=1):
        return "The group has users; move or delete them first."
    if any(p.group_id == group_id for p in await accounts.list_partners()):
        return "A partner manages this group; change or delete the partner first."
    return ""


class CatalogPages(AdminBase):
    # ------------------------------------------------------------------ nodes

    @app.route("/nodes", methods=["GET"])
    async def nodes(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.page(request, "admin/nodes.html", who,
                         nodes=await self.store.accounts.list_nodes())

    @app.route("/nodes/new", methods=["GET"])
    async def node_new(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.form_page(request, who, title="New node", fields=schemas.NODE,
                              values={"limit_calls": 0, "limit_la_1": 0, "limit_la_5": 0,
                                      "limit_la_10": 0}, action=f"{ROOT}/nodes/new",
                              back=f"{ROOT}/nodes")

    @app.route("/nodes/new", methods=["POST"])
    async def node_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        values, errors = parse_fields(schemas.NODE, form(request))
        if not errors and await self.store.accounts.get_node(values["id"]) is not None:
            errors["id"] = f"A node {values['id']} exists already."
        if errors:
            return self.form_page(request, who, title="New node", fields=schemas.NODE,
                                  values=form(request), errors=errors,
                                  action=f"{ROOT}/nodes/new", back=f"{ROOT}/nodes")
        with acting(who.actor):
            node_id = values.pop("id")
            await self.store.accounts.put_node(node_id, **values)
        raise self.done(f"{ROOT}/nodes", f"Node {node_id} added.")

    @app.route("/nodes/<node_id>", methods=["GET"])
    async def node(self, request: IRequest, node_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        node = await self.store.accounts.get_node(node_id)
        if node is None:
            raise Refused(404, f"There is no node {node_id}.")
        return self.form_page(request, who, title=f"Node {node_id}",
                              fields=schemas.NODE[1:], values=asdict(node),
                              action=f"{ROOT}/nodes/{node_id}", back=f"{ROOT}/nodes",
                              delete=f"{ROOT}/nodes/{node_id}/delete")

    @app.route("/nodes/<node_id>", methods=["POST"])
    async def node_save(self, request: IRequest, node_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        if await self.store.accounts.get_node(node_id) is None:
            raise Refused(404, f"There is no node {node_id}.")
        values, errors = parse_fields(schemas.NODE[1:], form(request))
        if errors:
            return self.form_page(request, who, title=f"Node {node_id}",
                                  fields=schemas.NODE[1:], values=form(request),
                                  errors=errors, action=f"{ROOT}/nodes/{node_id}",
                                  back=f"{ROOT}/nodes")
        with acting(who.actor):
            await self.store.accounts.put_node(node_id, **values)
        raise self.done(f"{ROOT}/nodes", f"Node {node_id} saved.")

    @app.route("/nodes/<node_id>/delete", methods=["POST"])
    async def node_delete(self, request: IRequest, node_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        why = await node_in_use(self.store.accounts, node_id)
        if why:
            raise Refused(409, why)
        with acting(who.actor):
            await self.store.accounts.delete_node(node_id)
        raise self.done(f"{ROOT}/nodes", f"Node {node_id} deleted.")

    # ------------------------------------------------------------------ tariffs

    @app.route("/tariffs", methods=["GET"])
    async def tariffs(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        currencies = {c.id: c for c in await self.store.accounts.list_currencies()}
        return self.page(request, "admin/tariffs.html", who, currencies=currencies,
                         tariffs=await self.store.accounts.list_tariffs())

    async def _tariff_form(self, request: IRequest, who: Any, title: str, values: Any,
                           action: str, errors: dict[str, str] | None = None,
                           delete: str = "") -> bytes:
        currencies = await self.store.accounts.list_currencies()
        fields = with_choices(schemas.TARIFF, currency_id=(
            (str(c.id), f"{c.code} — {c.name}") for c in currencies))
        return self.form_page(request, who, title=title, fields=fields, values=values,
                              action=action, errors=errors, back=f"{ROOT}/tariffs",
                              delete=delete)

    @app.route("/tariffs/new", methods=["GET"])
    async def tariff_new(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        zero = {f.name: 0 for f in schemas.TARIFF if f.kind == "money"}
        return await self._tariff_form(request, who, "New tariff", zero, f"{ROOT}/tariffs/new")

    @app.route("/tariffs/new", methods=["POST"])
    async def tariff_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        values, errors = parse_fields(schemas.TARIFF, form(request))
        if not errors:
            try:
                with acting(who.actor):
                    tariff = await self.store.accounts.create_tariff(**values)
                raise self.done(f"{ROOT}/tariffs", f"Tariff {tariff.name} added.")
            except Conflict as exc:
                errors["name"] = str(exc)
        return await self._tariff_form(request, who, "New tariff", typed(request),
                                       f"{ROOT}/tariffs/new", errors)

    @app.route("/tariffs/<tariff_id>", methods=["GET"])
    async def tariff(self, request: IRequest, tariff_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        tariff = await self.store.accounts.get_tariff(number_arg(tariff_id))
        if tariff is None:
            raise Refused(404, f"There is no tariff {tariff_id}.")
        return await self._tariff_form(request, who, f"Tariff {tariff.name}", asdict(tariff),
                                       f"{ROOT}/tariffs/{tariff.id}",
                                       delete=f"{ROOT}/tariffs/{tariff.id}/delete")

    @app.route("/tariffs/<tariff_id>", methods=["POST"])
    async def tariff_save(self, request: IRequest, tariff_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(tariff_id)
        values, errors = parse_fields(schemas.TARIFF, form(request))
        if not errors:
            try:
                with acting(who.actor):
                    found = await self.store.accounts.update_tariff(key, **values)
                if not found:
                    raise Refused(404, f"There is no tariff {tariff_id}.")
                raise self.done(f"{ROOT}/tariffs", f"Tariff {values['name']} saved.")
            except Conflict as exc:
                errors["name"] = str(exc)
        return await self._tariff_form(request, who, "Tariff", typed(request),
                                       f"{ROOT}/tariffs/{key}", errors)

    @app.route("/tariffs/<tariff_id>/delete", methods=["POST"])
    async def tariff_delete(self, request: IRequest, tariff_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(tariff_id)
        why = await tariff_in_use(self.store.accounts, key)
        if why:
            raise Refused(409, why)
        with acting(who.actor):
            await self.store.accounts.delete_tariff(key)
        raise self.done(f"{ROOT}/tariffs", "Tariff deleted.")

    # ------------------------------------------------------------------ groups

    @app.route("/groups", methods=["GET"])
    async def groups(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        tariffs = {t.id: t for t in await self.store.accounts.list_tariffs()}
        return self.page(request, "admin/groups.html", who, tariffs=tariffs,
                         groups=await self.store.accounts.list_groups())

    async def _group_fields(self) -> tuple[Any, ...]:
        tariffs = await self.store.accounts.list_tariffs()
        nodes = await self.store.accounts.list_nodes()
        return with_choices(schemas.GROUP, tariff_id=((str(t.id), t.name) for t in tariffs),
                            server_id=((n.id, n.id) for n in nodes))

    async def _group_form(self, request: IRequest, who: Any, title: str, values: Any,
                          limits: dict[str, int], action: str,
                          errors: dict[str, str] | None = None, delete: str = "") -> bytes:
        return self.form_page(request, who, title=title, fields=await self._group_fields(),
                              values=values, errors=errors, action=action, delete=delete,
                              back=f"{ROOT}/groups", template="admin/group.html",
                              types=schemas.type_names(), limits=limits)

    def _type_limits(self, data: dict[str, str], errors: dict[str, str]) -> dict[str, int]:
        limits: dict[str, int] = {}
        for name in schemas.type_names():
            raw = data.get(f"type:{name}", "").strip() or str(NO_TYPE_LIMIT)
            try:
                limits[name] = schemas.TYPE_LIMIT.parse(raw)
            except FieldError:
                errors[f"type:{name}"] = (f"{name}: -1 (no limit), 0 (not allowed) or a "
                                          f"number up to {schemas.INT_MAX}, got {raw!r}")
        return limits

    @app.route("/groups/new", methods=["GET"])
    async def group_new(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        defaults = {f.name: "" for f in schemas.GROUP}
        template = await self.store.accounts.get_group(1)
        if template is not None:
            defaults.update(asdict(template), name="")
        return await self._group_form(request, who, "New group", defaults, {},
                                      f"{ROOT}/groups/new")

    @app.route("/groups/new", methods=["POST"])
    async def group_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        data = form(request)
        values, errors = parse_fields(await self._group_fields(), data)
        limits = self._type_limits(data, errors)
        if not errors:
            try:
                with acting(who.actor):
                    name, tariff = values.pop("name"), int(values.pop("tariff_id"))
                    group = await self.store.accounts.create_group(name, tariff, **values)
                    for type_name, limit in limits.items():
                        if limit != NO_TYPE_LIMIT:
                            await self.store.accounts.set_type_limit(group.id, type_name, limit)
                raise self.done(f"{ROOT}/groups", f"Group {group.name} added.")
            except Conflict as exc:
                errors["name"] = str(exc)
        return await self._group_form(request, who, "New group", data, limits,
                                      f"{ROOT}/groups/new", errors)

    @app.route("/groups/<group_id>", methods=["GET"])
    async def group(self, request: IRequest, group_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        group = await self.store.accounts.get_group(number_arg(group_id))
        if group is None:
            raise Refused(404, f"There is no group {group_id}.")
        limits = await self.store.accounts.type_limits(group.id)
        return await self._group_form(request, who, f"Group {group.name}", asdict(group),
                                      limits, f"{ROOT}/groups/{group.id}",
                                      delete=f"{ROOT}/groups/{group.id}/delete")

    @app.route("/groups/<group_id>", methods=["POST"])
    async def group_save(self, request: IRequest, group_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(group_id)
        current = await self.store.accounts.get_group(key)
        if current is None:
            raise Refused(404, f"There is no group {group_id}.")
        data = form(request)
        values, errors = parse_fields(await self._group_fields(), data)
        limits = self._type_limits(data, errors)
        if not errors:
            try:
                before = await self.store.accounts.type_limits(key)
                with acting(who.actor):
                    values["tariff_id"] = int(values["tariff_id"])
                    await self.store.accounts.update_group(key, **values)
                    for type_name, limit in limits.items():
                        if before.get(type_name, NO_TYPE_LIMIT) != limit:
                            await self.store.accounts.set_type_limit(key, type_name, limit)
                raise self.done(f"{ROOT}/groups", f"Group {values['name']} saved.")
            except Conflict as exc:
                errors["name"] = str(exc)
        return await self._group_form(request, who, f"Group {current.name}", data, limits,
                                      f"{ROOT}/groups/{key}", errors)

    @app.route("/groups/<group_id>/delete", methods=["POST"])
    async def group_delete(self, request: IRequest, group_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(group_id)
        why = await group_in_use(self.store.accounts, key)
        if why:
            raise Refused(409, why)
        with acting(who.actor):
            await self.store.accounts.delete_group(key)
        raise self.done(f"{ROOT}/groups", "Group deleted.")

    # ------------------------------------------------------------------ partners

    async def _partner_fields(self) -> tuple[Any, ...]:
        groups = await self.store.accounts.list_groups()
        return with_choices(schemas.PARTNER,
                            group_id=((str(g.id), g.name) for g in groups))

    @app.route("/partners", methods=["GET"])
    async def partners(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        groups = {g.id: g for g in await self.store.accounts.list_groups()}
        return self.page(request, "admin/partners.html", who, groups=groups,
                         partners=await self.store.accounts.list_partners())

    @app.route("/partners/new", methods=["GET"])
    async def partner_new(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.form_page(request, who, title="New partner",
                              fields=await self._partner_fields(), values={"balance_limit": 0},
                              action=f"{ROOT}/partners/new", back=f"{ROOT}/partners")

    @app.route("/partners/new", methods=["POST"])
    async def partner_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        fields = await self._partner_fields()
        values, errors = parse_fields(fields, form(request))
        if not values.get("password") and "password" not in errors:
            errors["password"] = "A new partner needs a password."
        if not errors:
            secret: str = await deferToThread(hash_password, values.pop("password"))
            try:
                with acting(who.actor):
                    partner = await self.store.accounts.create_partner(
                        values.pop("login"), secret, int(values.pop("group_id")), **values)
                raise self.done(f"{ROOT}/partners", f"Partner {partner.login} added.")
            except Conflict as exc:
                errors["login"] = str(exc)
        return self.form_page(request, who, title="New partner", fields=fields,
                              values=typed(request), errors=errors,
                              action=f"{ROOT}/partners/new", back=f"{ROOT}/partners")

    @app.route("/partners/<partner_id>", methods=["GET"])
    async def partner(self, request: IRequest, partner_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        partner = await self.store.accounts.get_partner(number_arg(partner_id))
        if partner is None:
            raise Refused(404, f"There is no partner {partner_id}.")
        return self.form_page(request, who, title=f"Partner {partner.login}",
                              fields=await self._partner_fields(), values=asdict(partner),
                              action=f"{ROOT}/partners/{partner.id}", back=f"{ROOT}/partners",
                              delete=f"{ROOT}/partners/{partner.id}/delete")

    @app.route("/partners/<partner_id>", methods=["POST"])
    async def partner_save(self, request: IRequest, partner_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(partner_id)
        fields = await self._partner_fields()
        values, errors = parse_fields(fields, form(request))
        password = values.pop("password", "")
        if not errors:
            if password:
                values["password_hash"] = await deferToThread(hash_password, password)
            values["group_id"] = int(values["group_id"])
            before = await self.store.accounts.get_partner(key)
            try:
                with acting(who.actor):
                    if before is None or not await self.store.accounts.update_partner(
                            key, **values):
                        raise Refused(404, f"There is no partner {partner_id}.")
                if password or values["group_id"] != before.group_id:  # as the API does
                    await self.store.sessions.close_all("partner", str(key))
                raise self.done(f"{ROOT}/partners", f"Partner {values['login']} saved.")
            except Conflict as exc:
                errors["login"] = str(exc)
        return self.form_page(request, who, title="Partner", fields=fields,
                              values=typed(request), errors=errors,
                              action=f"{ROOT}/partners/{key}", back=f"{ROOT}/partners")

    @app.route("/partners/<partner_id>/delete", methods=["POST"])
    async def partner_delete(self, request: IRequest, partner_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        key = number_arg(partner_id)
        with acting(who.actor):
            await self.store.accounts.delete_partner(key)
        await self.store.sessions.close_all("partner", str(key))
        raise self.done(f"{ROOT}/partners", "Partner deleted.")
