"""The IVR tree a tenant builds: the tree at a glance, an extension's form (from its type's
settings class), add, edit, renumber, move and delete — within the group's limits, which are
the same the engine enforces on a call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.web.iweb import IRequest

from xvbd.engine.types import REGISTRY, SettingsError, load_builtin_types, read_settings, type_limit
from xvbd.store.accounts import Conflict, Group, NotFound
from xvbd.store.audit import acting
from xvbd.store.ivr import Extension
from xvbd.web.security import Refused, form, number_arg
from xvbd.web.tenant.base import ROOT, Tenant, TenantBase, app
from xvbd.web.tenant.lists import LIST_OF
from xvbd.web.tenant.settingsform import SPARE_ROWS, describe, form_values, parse

load_builtin_types()

#: Settings fields holding a list, and the group limit that caps how long it may be.
LIST_LIMITS = {"phones": ("max_followme_phones", "phones"),
               "conditions": ("max_gotoif_items", "conditions"),
               "rules": ("max_schedule_items", "schedule rules")}
NAME_LIMIT = 64


def type_choices(group: Group, limits: Mapping[str, int], counts: Mapping[str, int]
                 ) -> list[tuple[str, str, bool]]:
    """(type, label, allowed now) for every type, in the original's numbering."""
    out = []
    for kind in sorted(REGISTRY.values(), key=lambda k: k.number):
        limit = type_limit(group, limits, kind.name)
        allowed = limit < 0 or counts.get(kind.name, 0) < limit
        out.append((kind.name, f"{kind.number}. {kind.name}", allowed))
    return out


def limit_problem(group: Group, type_name: str, settings: Mapping[str, Any]) -> str:
    """'' when the settings are within the group's limits; else what is over."""
    for name, (attr, what) in LIST_LIMITS.items():
        limit = getattr(group, attr)
        items = settings.get(name) or ()
        if limit >= 0 and len(items) > limit:
            return f"Your plan allows at most {limit} {what} here; this has {len(items)}."
    tts = settings.get("tts") or ""
    if tts and not group.allow_tts:
        return "Your plan does not include spoken text (TTS); upload a greeting instead."
    if tts and group.max_tts_string_bytes > 0 and \
            len(tts.encode("utf-8")) > group.max_tts_string_bytes:
        return (f"The spoken text is longer than your plan's "
                f"{group.max_tts_string_bytes} bytes.")
    return ""


def summary(ext: Extension) -> str:
    """One line saying what an extension does (its non-default settings)."""
    kind = REGISTRY.get(ext.type)
    try:
        data = ext.settings_dict()
    except ValueError:
        return "(settings unreadable)"
    if kind is None:
        return "(a type this server does not know)"
    parts = []
    for f in describe(ext.type, kind.settings):
        value = data.get(f.name)
        if value in (None, "", [], (), f.default):
            continue
        if f.kind == "rows":
            parts.append(f"{len(value)} {f.label.lower()}")
        elif f.kind == "lines":
            parts.append(f"{f.label.lower()}: {', '.join(map(str, value[:3]))}"
                         + ("…" if len(value) > 3 else ""))
        else:
            parts.append(f"{f.label.lower()}: {value}")
    text = "; ".join(parts)
    return text if len(text) <= 100 else text[:99] + "…"


class IvrPages(TenantBase):
    async def _ext(self, who: Tenant, ext_id: str | int) -> Extension:
        ext = await self.store.ivr.get(who.id, number_arg(ext_id))
        if ext is None:
            raise Refused(404, f"You have no extension {ext_id}.")
        return ext

    async def _limits(self, who: Tenant, tree: list[Extension] | None = None
                      ) -> tuple[dict[str, int], dict[str, int]]:
        """The group's limits by type, and how many of each type the tenant has (counted in
        ``tree`` when the caller has it already)."""
        limits = await self.store.accounts.type_limits(who.group.id)
        counts: dict[str, int] = {}
        for ext in tree if tree is not None else await self.store.ivr.tree(who.id):
            counts[ext.type] = counts.get(ext.type, 0) + 1
        return limits, counts

    # ------------------------------------------------------------------ the tree

    @app.route("/ivr", methods=["GET"])
    async def ivr(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        tree = await self.store.ivr.tree(who.id)
        children: dict[int | None, list[Extension]] = {}
        for ext in tree:
            children.setdefault(ext.parent_id, []).append(ext)
        for kids in children.values():
            kids.sort(key=lambda e: (e.position, e.id))
        return self.page(request, "tenant/ivr.html", who, children=children,
                         summaries={e.id: summary(e) for e in tree}, total=len(tree))

    # ------------------------------------------------------------------ add

    @app.route("/ivr/new", methods=["GET"])
    async def ivr_new(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        parent_raw = _arg(request, "parent")
        parent = await self._ext(who, parent_raw) if parent_raw else None
        type_name = _arg(request, "type")
        if type_name and type_name not in REGISTRY:
            raise Refused(404, f"There is no extension type {type_name!r}.")
        if not type_name:
            limits, counts = await self._limits(who)
            return self.page(request, "tenant/ext_type.html", who, parent=parent,
                             types=type_choices(who.group, limits, counts))
        suggested = ""
        if parent is not None:
            taken = {e.number for e in await self.store.ivr.children(who.id, parent.id)}
            suggested = next((str(n) for n in range(1, 100) if str(n) not in taken), "")
        return await self._ext_form(request, who, type_name, parent=parent, values=None,
                                    number=suggested, name="")

    @app.route("/ivr/new", methods=["POST"])
    async def ivr_create(self, request: IRequest) -> bytes:
        who = await self.tenant(request, change=True)
        data = form(request)
        parent = await self._ext(who, data.get("parent", "")) if data.get("parent") else None
        type_name = data.get("type", "")
        kind = REGISTRY.get(type_name)
        if kind is None:
            raise Refused(400, f"There is no extension type {type_name!r}; choose one from "
                          "the list.")
        number = data.get("number", "").strip()
        name = data.get("name", "").strip()[:NAME_LIMIT]
        settings, why = parse(type_name, kind.settings, data)
        if not why:
            why = limit_problem(who.group, type_name, settings)
        if not why:
            why = await self._room_for(who, type_name)
        if not why and parent is None and await self.store.ivr.root(who.id) is not None:
            why = "You have a main menu already; add this extension under it."
        if not why:
            try:
                with acting(who.actor):
                    if parent is None:
                        ext = await self.store.ivr.create_root(who.id, type_name, settings,
                                                               name)
                    else:
                        ext = await self.store.ivr.add_child(who.id, parent.id, number,
                                                             type_name, settings, name)
                self.changed(who)
                raise self.done(f"{ROOT}/ivr#ext-{ext.id}",
                                f"Extension {ext.cdr_number} ({type_name}) added.")
            except Conflict:
                why = f"There is an extension {number} in this menu already; pick another number."
            except (NotFound, ValueError) as exc:
                why = _plain(str(exc))
        return await self._ext_form(request, who, type_name, parent=parent, values=settings,
                                    number=number, name=name, error=why)

    async def _room_for(self, who: Tenant, type_name: str) -> str:
        limits, counts = await self._limits(who)
        total = sum(counts.values())
        if who.group.max_extensions >= 0 and total >= who.group.max_extensions:
            return (f"Your plan allows {who.group.max_extensions} extensions and you have "
                    f"{total}; delete one first or ask your provider for more.")
        limit = type_limit(who.group, limits, type_name)
        if limit == 0:
            return f"Your plan does not include {type_name} extensions."
        if 0 < limit <= counts.get(type_name, 0):
            return f"Your plan allows {limit} {type_name} extensions and you have them all."
        return ""

    # ------------------------------------------------------------------ one extension

    async def _ext_form(self, request: IRequest, who: Tenant, type_name: str, *,
                        parent: Extension | None, values: Mapping[str, Any] | None,
                        number: str, name: str, ext: Extension | None = None,
                        error: str = "") -> bytes:
        if error:
            request.setResponseCode(400)
        kind = REGISTRY[type_name]
        fields = describe(type_name, kind.settings)
        shown = form_values(fields, values if values is not None else
                            (ext.settings_dict() if ext is not None else {}))
        tree = await self.store.ivr.tree(who.id)
        extras: dict[str, Any] = {}
        if ext is not None:
            extras["children"] = sorted((e for e in tree if e.parent_id == ext.id),
                                        key=lambda e: (e.position, e.id))
            extras["menus"] = [] if ext.parent_id is None else [
                e for e in tree if e.id != ext.id and not e.path.startswith(ext.path + "*")]
        extras["list_page"] = LIST_OF.get(type_name, "") if ext is not None else ""
        return self.page(request, "tenant/ext.html", who, ext=ext, type_name=type_name,
                         fields=fields, values=shown, parent=parent, number=number,
                         name=name, error=error, paths=[e.cdr_number for e in tree],
                         spare_rows=SPARE_ROWS,
                         greetings=await self.greeting_names(who), **extras)

    async def greeting_names(self, who: Tenant) -> list[str]:
        """The tenant's greeting references for the form's suggestions (see greetings)."""
        return []

    @app.route("/ivr/<ext_id>", methods=["GET"])
    async def ivr_ext(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request)
        ext = await self._ext(who, ext_id)
        if ext.type not in REGISTRY:
            raise Refused(409, f"Extension {ext.cdr_number} has a type this server does not "
                          f"know ({ext.type}); delete it or ask your provider.")
        parent = await self.store.ivr.get(who.id, ext.parent_id) if ext.parent_id else None
        return await self._ext_form(request, who, ext.type, parent=parent, values=None,
                                    number=ext.number, name=ext.name, ext=ext)

    @app.route("/ivr/<ext_id>", methods=["POST"])
    async def ivr_save(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext(who, ext_id)
        kind = REGISTRY.get(ext.type)
        if kind is None:
            raise Refused(409, f"Extension {ext.cdr_number} has a type this server does not "
                          "know; it cannot be edited here.")
        data = form(request)
        name = data.get("name", "").strip()[:NAME_LIMIT]
        number = data.get("number", ext.number).strip()
        settings, why = parse(ext.type, kind.settings, data)
        if not why:
            why = limit_problem(who.group, ext.type, settings)
        if not why:
            try:
                with acting(who.actor):  # the renumbering may be refused: first
                    if ext.parent_id is not None and number != ext.number:
                        ext = await self.store.ivr.renumber(who.id, ext.id, number)
                    await self.store.ivr.update(who.id, ext.id, name=name, settings=settings)
                self.changed(who)
                raise self.done(f"{ROOT}/ivr#ext-{ext.id}",
                                f"Extension {ext.cdr_number} saved.")
            except Conflict:
                why = f"There is an extension {number} in this menu already; pick another number."
            except (NotFound, ValueError) as exc:
                why = _plain(str(exc))
        parent = await self.store.ivr.get(who.id, ext.parent_id) if ext.parent_id else None
        return await self._ext_form(request, who, ext.type, parent=parent, values=settings,
                                    number=number, name=name, ext=ext, error=why)

    @app.route("/ivr/<ext_id>/move", methods=["POST"])
    async def ivr_move(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext(who, ext_id)
        data = form(request)
        target = await self._ext(who, data.get("parent", ""))
        number = data.get("number", "").strip() or ext.number
        try:
            with acting(who.actor):
                moved = await self.store.ivr.move(who.id, ext.id, target.id, number)
        except Conflict:
            raise Refused(409, f"The menu {target.cdr_number} has an extension {number} "
                          "already; pick another number.") from None
        except ValueError as exc:
            raise Refused(400, _plain(str(exc))) from None
        self.changed(who)
        raise self.done(f"{ROOT}/ivr#ext-{moved.id}",
                        f"Extension {ext.cdr_number} is {moved.cdr_number} now.")

    @app.route("/ivr/<ext_id>/delete", methods=["POST"])
    async def ivr_delete(self, request: IRequest, ext_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        ext = await self._ext(who, ext_id)
        with acting(who.actor):
            deleted = await self.store.ivr.delete(who.id, ext.id)
        self.changed(who)
        raise self.done(f"{ROOT}/ivr", f"Extension {ext.cdr_number} deleted"
                        + (" with everything under it." if deleted > 1 else "."))


def _arg(request: IRequest, name: str) -> str:
    return request.args.get(name.encode(), [b""])[0].decode("utf-8", "replace").strip()[:64]


def _plain(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def check_settings(type_name: str, settings: Mapping[str, Any]) -> str:
    """'' when ``type_name`` accepts ``settings`` (a JSON object); else why not (for the API)."""
    kind = REGISTRY.get(type_name)
    if kind is None:
        return f"there is no extension type {type_name!r}"
    try:
        read_settings(kind.settings, dict(settings))
    except SettingsError as exc:
        return str(exc)
    return ""
