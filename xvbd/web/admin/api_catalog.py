"""The operator's API for the catalogue (``/ai/api``): tariffs, groups with their per-type
limits, partners, nodes, DIDs and their languages — list, get, create, update, delete, the
same checks and refusals as the pages (``catalog.py``).  Every route but a partner's view
of its own group and tariff is the operator's.  The frame (who may call, formats, errors) is
:class:`~xvbd.web.admin.api.ApiRoutes`; see ``docs/api.md``."""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.passwords import hash_password
from xvbd.store.accounts import Conflict, Group, Partner, Tariff
from xvbd.store.audit import acting
from xvbd.web.admin import schemas
from xvbd.web.admin.api import (
    GROUP_ID,
    PAGING,
    PARTNER_ID,
    TARIFF_ID,
    TARIFF_MONEY,
    TYPE_LIMIT,
    ApiCaller,
    ApiRoutes,
    endpoint,
    operator_only,
    partner_out,
    taken_error,
)
from xvbd.web.admin.base import ROOT
from xvbd.web.admin.catalog import NO_TYPE_LIMIT, group_in_use, node_in_use, tariff_in_use
from xvbd.web.apirequest import ApiError, body_fields, plain, query_fields, unknown_errors
from xvbd.web.forms import Field, FieldError, parse_fields

UNCHANGED = "Nothing was changed."


class CatalogApi(ApiRoutes):
    """``/ai/api/{tariffs,groups,partners,nodes,dids,didattrs}``."""

    # ------------------------------------------------------------------ catalogue

    @endpoint("/api/groups", ["GET"], "groups")
    async def api_groups(self, request: IRequest, who: ApiCaller) -> Any:
        query_fields(request, ())
        groups = await self.store.accounts.list_groups()
        return {"groups": [plain(g) for g in groups
                           if who.group_id is None or g.id == who.group_id]}

    @endpoint(f"/api/groups/{GROUP_ID}", ["GET"], "group")
    async def api_group(self, request: IRequest, who: ApiCaller, group_id: int) -> Any:
        query_fields(request, ())
        group = await self.store.accounts.get_group(group_id)
        if group is None or (who.group_id is not None and group.id != who.group_id):
            raise ApiError(404, f"There is no group {group_id}" +
                           ("" if who.is_admin else " of yours") + ".")
        return await self._api_group_out(group)

    @endpoint("/api/tariffs", ["GET"], "tariffs")
    async def api_tariffs(self, request: IRequest, who: ApiCaller) -> Any:
        query_fields(request, ())
        tariffs = await self.store.accounts.list_tariffs()
        if who.group_id is not None:
            group = await self.store.accounts.get_group(who.group_id)
            tariffs = [t for t in tariffs if group is not None and t.id == group.tariff_id]
        currencies = {c.id: c.code for c in await self.store.accounts.list_currencies()}
        return {"tariffs": [{**plain(t, money=TARIFF_MONEY),
                             "currency": currencies.get(t.currency_id, "")} for t in tariffs]}

    @endpoint("/api/nodes", ["GET"], "nodes")
    async def api_nodes(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"nodes": [plain(n, times=("stat_at",))
                          for n in await self.store.accounts.list_nodes()]}

    # ------------------------------------------------------------------ catalogue: tariffs

    async def _api_tariff_out(self, tariff: Tariff) -> dict[str, Any]:
        currency = await self.store.accounts.get_currency(tariff.currency_id)
        return {**plain(tariff, money=TARIFF_MONEY),
                "currency": currency.code if currency else ""}

    async def _api_tariff_values(self, data: dict[str, Any], *, partial: bool,
                                 what: str) -> dict[str, Any]:
        """The tariff's fields of ``data`` (a new tariff's prices default to 0)."""
        errors = unknown_errors(schemas.TARIFF, data, "a tariff")
        given = data if partial else {**{n: 0 for n in TARIFF_MONEY}, **data}
        values, bad = parse_fields(schemas.TARIFF, given, partial=partial)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if "currency_id" in values and "currency_id" not in errors:
            currencies = await self.store.accounts.list_currencies()
            if values["currency_id"] not in {c.id for c in currencies}:
                known = ", ".join(f"{c.id} ({c.code})" for c in currencies)
                errors["currency_id"] = (f"Currency: there is no currency "
                                         f"{values['currency_id']} (they are: {known}).")
        if errors:
            raise ApiError(400, f"The tariff was not {what}: some fields are not right.",
                           errors)
        return values

    async def _api_tariff(self, tariff_id: int) -> Tariff:
        tariff = await self.store.accounts.get_tariff(tariff_id)
        if tariff is None:
            raise ApiError(404, f"There is no tariff {tariff_id}.")
        return tariff

    @endpoint("/api/tariffs", ["POST"], "tariff_create")
    async def api_tariff_create(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        values = await self._api_tariff_values(body_fields(request), partial=False,
                                               what="added")
        try:
            with acting(who.actor):
                tariff = await self.store.accounts.create_tariff(**values)
        except Conflict as exc:
            raise ApiError(409, f"The tariff was not added: {exc}.",
                           {"name": str(exc)}) from None
        request.setResponseCode(201)
        request.setHeader(b"Location", f"{ROOT}/api/tariffs/{tariff.id}".encode())
        return {"tariff": await self._api_tariff_out(tariff)}

    @endpoint(f"/api/tariffs/{TARIFF_ID}", ["GET"], "tariff")
    async def api_tariff(self, request: IRequest, who: ApiCaller, tariff_id: int) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"tariff": await self._api_tariff_out(await self._api_tariff(tariff_id))}

    @endpoint(f"/api/tariffs/{TARIFF_ID}", ["PATCH", "POST"], "tariff_save")
    async def api_tariff_save(self, request: IRequest, who: ApiCaller, tariff_id: int) -> Any:
        operator_only(who)
        tariff = await self._api_tariff(tariff_id)
        values = await self._api_tariff_values(body_fields(request), partial=True,
                                               what="changed")
        if not values:
            raise ApiError(400, "Nothing to change: send at least one field of the tariff.")
        try:
            with acting(who.actor):
                found = await self.store.accounts.update_tariff(tariff.id, **values)
        except Conflict:
            raise taken_error("tariff", "a tariff named", values["name"], "name") from None
        if not found:
            raise ApiError(404, f"There is no tariff {tariff_id}.")
        return {"tariff": await self._api_tariff_out(await self._api_tariff(tariff_id))}

    @endpoint(f"/api/tariffs/{TARIFF_ID}", ["DELETE"], "tariff_delete")
    @endpoint(f"/api/tariffs/{TARIFF_ID}/delete", ["POST"], "tariff_delete_post")
    async def api_tariff_delete(self, request: IRequest, who: ApiCaller,
                                tariff_id: int) -> Any:
        operator_only(who)
        tariff = await self._api_tariff(tariff_id)
        why = await tariff_in_use(self.store.accounts, tariff.id)
        if why:
            raise ApiError(409, f"{why} {UNCHANGED}")
        with acting(who.actor):
            deleted = await self.store.accounts.delete_tariff(tariff.id)
        if not deleted:
            raise ApiError(404, f"There is no tariff {tariff_id}.")
        return {"deleted": True, "id": tariff.id}

    # ------------------------------------------------------------------ catalogue: groups

    async def _api_group_values(self, data: dict[str, Any], *, partial: bool,
                                what: str) -> dict[str, Any]:
        """The group's fields of ``data``: a new group needs its required fields, the
        others keep the database's defaults; the tariff and the node must exist."""
        errors = unknown_errors(schemas.GROUP, data, "a group")
        fields = schemas.GROUP if partial else tuple(
            f for f in schemas.GROUP if f.required or f.name in data)
        values, bad = parse_fields(fields, data, partial=partial)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if "tariff_id" in values and "tariff_id" not in errors:
            if await self.store.accounts.get_tariff(values["tariff_id"]) is None:
                errors["tariff_id"] = f"Tariff: there is no tariff {values['tariff_id']}."
        if "server_id" in values and "server_id" not in errors:
            if await self.store.accounts.get_node(values["server_id"]) is None:
                errors["server_id"] = f"Node: there is no node {values['server_id']}."
        if errors:
            raise ApiError(400, f"The group was not {what}: some fields are not right.",
                           errors)
        return values

    async def _api_group_out(self, group: Group) -> dict[str, Any]:
        return {"group": {**plain(group),
                          "type_limits": await self.store.accounts.type_limits(group.id)}}

    async def _api_group(self, group_id: int) -> Group:
        group = await self.store.accounts.get_group(group_id)
        if group is None:
            raise ApiError(404, f"There is no group {group_id}.")
        return group

    @endpoint("/api/groups", ["POST"], "group_create")
    async def api_group_create(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        values = await self._api_group_values(body_fields(request), partial=False,
                                              what="added")
        try:
            with acting(who.actor):
                group = await self.store.accounts.create_group(
                    values.pop("name"), values.pop("tariff_id"), **values)
        except Conflict as exc:
            raise ApiError(409, f"The group was not added: {exc}.",
                           {"name": str(exc)}) from None
        request.setResponseCode(201)
        request.setHeader(b"Location", f"{ROOT}/api/groups/{group.id}".encode())
        return await self._api_group_out(group)

    @endpoint(f"/api/groups/{GROUP_ID}", ["PATCH", "POST"], "group_save")
    async def api_group_save(self, request: IRequest, who: ApiCaller, group_id: int) -> Any:
        operator_only(who)
        group = await self._api_group(group_id)
        values = await self._api_group_values(body_fields(request), partial=True,
                                              what="changed")
        if not values:
            raise ApiError(400, "Nothing to change: send at least one field of the group.")
        try:
            with acting(who.actor):
                found = await self.store.accounts.update_group(group.id, **values)
        except Conflict:
            raise taken_error("group", "a group named", values["name"], "name") from None
        if not found:
            raise ApiError(404, f"There is no group {group_id}.")
        return await self._api_group_out(await self._api_group(group_id))

    @endpoint(f"/api/groups/{GROUP_ID}", ["DELETE"], "group_delete")
    @endpoint(f"/api/groups/{GROUP_ID}/delete", ["POST"], "group_delete_post")
    async def api_group_delete(self, request: IRequest, who: ApiCaller, group_id: int) -> Any:
        operator_only(who)
        group = await self._api_group(group_id)
        why = await group_in_use(self.store.accounts, group.id)
        if why:
            raise ApiError(409, f"{why} {UNCHANGED}")
        with acting(who.actor):
            deleted = await self.store.accounts.delete_group(group.id)
        if not deleted:
            raise ApiError(404, f"There is no group {group_id}.")
        return {"deleted": True, "id": group.id}

    def _api_type_name(self, type_name: str) -> str:
        names = schemas.type_names()
        if type_name not in names:
            raise ApiError(404, f"There is no extension type {type_name}; the types are: "
                           f"{', '.join(names)}.")
        return type_name

    @endpoint(f"/api/groups/{GROUP_ID}/type-limits/<type_name>", ["PUT", "POST"],
              "type_limit_set")
    async def api_type_limit_set(self, request: IRequest, who: ApiCaller, group_id: int,
                                 type_name: str) -> Any:
        operator_only(who)
        group = await self._api_group(group_id)
        name = self._api_type_name(type_name)
        data = body_fields(request)
        errors = unknown_errors(TYPE_LIMIT, data, "a type limit")
        values, bad = parse_fields(TYPE_LIMIT, data)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if errors:
            raise ApiError(400, "The type limit was not set: some fields are not right.",
                           errors)
        with acting(who.actor):
            await self.store.accounts.set_type_limit(group.id, name, values["max_count"])
        return {"group_id": group.id, "type_name": name, "max_count": values["max_count"]}

    @endpoint(f"/api/groups/{GROUP_ID}/type-limits/<type_name>", ["DELETE"],
              "type_limit_delete")
    @endpoint(f"/api/groups/{GROUP_ID}/type-limits/<type_name>/delete", ["POST"],
              "type_limit_delete_post")
    async def api_type_limit_delete(self, request: IRequest, who: ApiCaller, group_id: int,
                                    type_name: str) -> Any:
        operator_only(who)
        group = await self._api_group(group_id)
        name = self._api_type_name(type_name)
        before = await self.store.accounts.type_limits(group.id)
        if before.get(name, NO_TYPE_LIMIT) != NO_TYPE_LIMIT:
            with acting(who.actor):
                await self.store.accounts.set_type_limit(group.id, name, NO_TYPE_LIMIT)
        return {"group_id": group.id, "type_name": name, "max_count": NO_TYPE_LIMIT}

    # ------------------------------------------------------------------ catalogue: partners

    async def _api_partner(self, partner_id: int) -> Partner:
        partner = await self.store.accounts.get_partner(partner_id)
        if partner is None:
            raise ApiError(404, f"There is no partner {partner_id}.")
        return partner

    async def _api_partner_values(self, data: dict[str, Any], *, partial: bool,
                                  what: str) -> dict[str, Any]:
        """The partner's fields of ``data``, its password replaced by the hash (made off
        the reactor thread); a new partner needs a password."""
        errors = unknown_errors(schemas.PARTNER, data, "a partner")
        given = data if partial else {"balance_limit": 0, **data}
        values, bad = parse_fields(schemas.PARTNER, given, partial=partial)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        password = values.pop("password", "")
        if "password" not in errors:
            if not password and not partial:
                errors["password"] = "A new partner needs a password (at least 8 characters)."
            elif "password" in data and not password:
                errors["password"] = ("Password: at least 8 characters; leave the field out "
                                      "to keep the password.")
        if "group_id" in values and "group_id" not in errors:
            if await self.store.accounts.get_group(values["group_id"]) is None:
                errors["group_id"] = f"Group: there is no group {values['group_id']}."
        if errors:
            raise ApiError(400, f"The partner was not {what}: some fields are not right.",
                           errors)
        if password:
            values["password_hash"] = await deferToThread(hash_password, password)
        return values

    @endpoint("/api/partners", ["GET"], "partners")
    async def api_partners(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"partners": [partner_out(p)
                             for p in await self.store.accounts.list_partners()]}

    @endpoint("/api/partners", ["POST"], "partner_create")
    async def api_partner_create(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        values = await self._api_partner_values(body_fields(request), partial=False,
                                                what="added")
        try:
            with acting(who.actor):
                partner = await self.store.accounts.create_partner(
                    values.pop("login"), values.pop("password_hash"), values.pop("group_id"),
                    **values)
        except Conflict as exc:
            raise ApiError(409, f"The partner was not added: {exc}.",
                           {"login": str(exc)}) from None
        request.setResponseCode(201)
        request.setHeader(b"Location", f"{ROOT}/api/partners/{partner.id}".encode())
        return {"partner": partner_out(partner)}

    @endpoint(f"/api/partners/{PARTNER_ID}", ["GET"], "partner")
    async def api_partner(self, request: IRequest, who: ApiCaller, partner_id: int) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"partner": partner_out(await self._api_partner(partner_id))}

    @endpoint(f"/api/partners/{PARTNER_ID}", ["PATCH", "POST"], "partner_save")
    async def api_partner_save(self, request: IRequest, who: ApiCaller,
                               partner_id: int) -> Any:
        operator_only(who)
        partner = await self._api_partner(partner_id)
        values = await self._api_partner_values(body_fields(request), partial=True,
                                                what="changed")
        if not values:
            raise ApiError(400, "Nothing to change: send at least one field of the partner.")
        try:
            with acting(who.actor):
                found = await self.store.accounts.update_partner(partner.id, **values)
        except Conflict:
            raise taken_error("partner", "a partner", values["login"], "login") from None
        if not found:
            raise ApiError(404, f"There is no partner {partner_id}.")
        moved = values.get("group_id", partner.group_id) != partner.group_id
        if "password_hash" in values or moved:
            await self.store.sessions.close_all("partner", str(partner.id))
        return {"partner": partner_out(await self._api_partner(partner_id))}

    @endpoint(f"/api/partners/{PARTNER_ID}", ["DELETE"], "partner_delete")
    @endpoint(f"/api/partners/{PARTNER_ID}/delete", ["POST"], "partner_delete_post")
    async def api_partner_delete(self, request: IRequest, who: ApiCaller,
                                 partner_id: int) -> Any:
        operator_only(who)
        partner = await self._api_partner(partner_id)
        with acting(who.actor):
            deleted = await self.store.accounts.delete_partner(partner.id)
        if not deleted:
            raise ApiError(404, f"There is no partner {partner_id}.")
        await self.store.sessions.close_all("partner", str(partner.id))
        return {"deleted": True, "id": partner.id}

    # ------------------------------------------------------------------ catalogue: nodes

    def _api_node_id(self, node_id: str) -> str:
        try:
            return str(schemas.NODE[0].parse(node_id))
        except FieldError as exc:
            raise ApiError(400, "That is not a node id.", {"id": str(exc)}) from None

    @endpoint("/api/nodes/<node_id>", ["GET"], "node")
    async def api_node(self, request: IRequest, who: ApiCaller, node_id: str) -> Any:
        operator_only(who)
        query_fields(request, ())
        node = await self.store.accounts.get_node(node_id)
        if node is None:
            raise ApiError(404, f"There is no node {node_id}.")
        return {"node": plain(node, times=("stat_at",))}

    @endpoint("/api/nodes/<node_id>", ["PUT", "POST"], "node_put")
    async def api_node_put(self, request: IRequest, who: ApiCaller, node_id: str) -> Any:
        operator_only(who)
        key = self._api_node_id(node_id)
        data = body_fields(request)
        fields = schemas.NODE[1:]
        errors = unknown_errors(fields, data, "a node")
        values, bad = parse_fields(fields, data, partial=True)
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if errors:
            raise ApiError(400, "The node was not saved: some fields are not right.", errors)
        new = await self.store.accounts.get_node(key) is None
        if new:
            values = {"limit_calls": 0, "limit_la_1": 0, "limit_la_5": 0, "limit_la_10": 0,
                      **values}
        elif not values:
            raise ApiError(400, "Nothing to change: send at least one field of the node.")
        with acting(who.actor):
            node = await self.store.accounts.put_node(key, **values)
        if new:
            request.setResponseCode(201)
            request.setHeader(b"Location", f"{ROOT}/api/nodes/{key}".encode())
        return {"node": plain(node, times=("stat_at",))}

    @endpoint("/api/nodes/<node_id>", ["DELETE"], "node_delete")
    @endpoint("/api/nodes/<node_id>/delete", ["POST"], "node_delete_post")
    async def api_node_delete(self, request: IRequest, who: ApiCaller, node_id: str) -> Any:
        operator_only(who)
        if await self.store.accounts.get_node(node_id) is None:
            raise ApiError(404, f"There is no node {node_id}.")
        why = await node_in_use(self.store.accounts, node_id)
        if why:
            raise ApiError(409, f"{why} {UNCHANGED}")
        with acting(who.actor):
            deleted = await self.store.accounts.delete_node(node_id)
        if not deleted:
            raise ApiError(404, f"There is no node {node_id}.")
        return {"deleted": True, "id": node_id}

    # ------------------------------------------------------------------ DIDs and their language

    @endpoint("/api/dids", ["GET"], "dids")
    async def api_dids(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        args = query_fields(request, (
            Field("prefix", "prefix", pattern=schemas.PHONE, pattern_help="digits, * # +"),
            *PAGING))
        dids = await self.store.accounts.list_dids(args.get("prefix", ""),
                                                   limit=args.get("limit", 100))
        return {"dids": [plain(d, times=("created_at",)) for d in dids]}

    @endpoint("/api/didattrs", ["GET"], "did_attrs")
    async def api_did_attrs(self, request: IRequest, who: ApiCaller) -> Any:
        operator_only(who)
        query_fields(request, ())
        return {"didattrs": [plain(a) for a in await self.store.accounts.list_did_attrs()]}

    @endpoint("/api/didattrs/<did>", ["PUT", "POST"], "did_attr_put")
    async def api_did_attr_put(self, request: IRequest, who: ApiCaller, did: str) -> Any:
        operator_only(who)
        data = body_fields(request)
        fields = schemas.DID_ATTR[1:]
        errors = unknown_errors(fields, data, "a DID's attributes")
        values, bad = parse_fields(schemas.DID_ATTR, {**data, "did": did})
        errors.update({k: v for k, v in bad.items() if k not in errors})
        if errors:
            raise ApiError(400, "The DID's language was not set: some fields are not right.",
                           errors)
        new = await self.store.accounts.did_language(values["did"]) is None
        with acting(who.actor):
            await self.store.accounts.set_did_language(values["did"], values["language"])
        if new:
            request.setResponseCode(201)
        return {"didattr": {"did": values["did"], "language": values["language"]}}

    @endpoint("/api/didattrs/<did>", ["DELETE"], "did_attr_delete")
    @endpoint("/api/didattrs/<did>/delete", ["POST"], "did_attr_delete_post")
    async def api_did_attr_delete(self, request: IRequest, who: ApiCaller, did: str) -> Any:
        operator_only(who)
        with acting(who.actor):
            deleted = await self.store.accounts.delete_did_attr(did)
        if not deleted:
            raise ApiError(404, f"The DID {did} has no language of its own.")
        return {"deleted": True, "did": did}

