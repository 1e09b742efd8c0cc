"""Extension types: one module each, registered by the name the CDR's TYPE shows.

A type is an object with ``name``, ``number`` (the original's numbering), ``settings`` (a
frozen dataclass checked by :func:`read_settings`) and ``async run(call, ext, settings,
walk) -> Next``.  Adding a type is one module here plus its import at the bottom.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.accounts import Group
    from xvbd.store.ivr import Extension


class SettingsError(ValueError):
    """An extension's settings are not what its type accepts; the message says which."""


@dataclass(frozen=True)
class Next:
    """Where the walk goes after an extension: ``up`` to the parent menu, ``hangup``, or
    ``goto`` another extension."""

    kind: str
    target: Extension | None = None

    UP: ClassVar[Next]
    HANGUP: ClassVar[Next]

    @staticmethod
    def goto(target: Extension) -> Next:
        return Next("goto", target)


Next.UP = Next("up")
Next.HANGUP = Next("hangup")


class ExtensionType(Protocol):
    name: str
    number: int
    settings: Any

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next: ...


REGISTRY: dict[str, ExtensionType] = {}


def register(kind: ExtensionType) -> ExtensionType:
    REGISTRY[kind.name] = kind
    return kind


def type_limit(group: Group, limits: Mapping[str, int], type_name: str) -> int:
    """How many extensions of a type the group allows (-1: any number): its per-type limit
    (``limits``), a Queue also held to the group's "Maximum Number of Queues"."""
    limit = limits.get(type_name, -1)
    if type_name == "Queue" and group.max_queues >= 0:
        limit = group.max_queues if limit < 0 else min(limit, group.max_queues)
    return limit


def extension_allowed(group: Group, limits: Mapping[str, int], tree: Tree,
                      ext: Extension) -> bool:
    """The group's per-type limit: -1 unlimited, 0 not allowed, N: the first N extensions
    of the type work (a limit lowered after they were made does not let the rest run)."""
    limit = type_limit(group, limits, ext.type)
    return limit < 0 or tree.rank(ext) < limit


def _check(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{name} must be a whole number, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{name} must be text, got {value!r}")
        return value
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name} must be a list, got {value!r}")
        return tuple(_check(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _check(name, value, inner[0])
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise SettingsError(f"{name} must be an object, got {value!r}")
        try:
            return read_settings(hint, value)
        except SettingsError as exc:
            raise SettingsError(f"{name}: {exc}") from None
    raise TypeError(f"settings field {name} has a type read_settings does not know: {hint}")


def within(default: int, low: int, high: int | None = None) -> Any:
    """A numeric setting that is ``low`` to ``high`` (no upper bound when None), checked by
    :func:`read_settings`."""
    return dataclasses.field(default=default, metadata={"range": (low, high)})


@cache
def _fields_of(cls: type) -> tuple[dict[str, Any], frozenset[str],
                                   dict[str, tuple[int, int | None]]]:
    fields = dataclasses.fields(cls)
    return (typing.get_type_hints(cls), frozenset(f.name for f in fields),
            {f.name: f.metadata["range"] for f in fields if "range" in f.metadata})


def read_settings(cls: type, data: dict[str, Any]) -> Any:
    """Build the settings dataclass ``cls`` from a JSON object: unknown keys, values of the
    wrong type and numbers out of their :func:`within` range are refused by name; checks
    across fields are the class's ``__post_init__``."""
    hints, names, ranges = _fields_of(cls)
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingsError(f"unknown setting {', '.join(unknown)} "
                            f"(accepted: {', '.join(sorted(names))})")
    values = {key: _check(key, value, hints[key]) for key, value in data.items()}
    for key, (low, high) in ranges.items():
        value = values.get(key)
        if value is not None and (value < low or (high is not None and value > high)):
            span = f"{low} or more" if high is None else f"{low} to {high}"
            raise SettingsError(f"{key} is {span}, got {value}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None


def settings_for(kind: ExtensionType, ext: Extension) -> Any:
    """The extension's settings, checked; the same text gives the same (immutable) object."""
    return settings_of(kind.settings, ext.settings)


@lru_cache(maxsize=65536)
def settings_of(cls: type, text: str) -> Any:
    """The settings dataclass ``cls`` from its stored JSON ``text`` (:class:`SettingsError`
    when it is not right); the same text gives the same (immutable) object."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"settings are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object")
    return read_settings(cls, data)


def load_builtin_types() -> None:
    """Import the modules that register the built-in types."""
    from xvbd.engine.types import (  # noqa: F401
        calendar_,
        callback,
        callblast,
        conference,
        datetime_,
        directory,
        disa,
        dtmf2email,
        followme,
        gotoif,
        multidialout,
        pause,
        playback,
        queue,
        schedule,
        variables,
        voicemail,
        voting,
        webrequest,
        webvar,
    )
