"""User variable (type 19): the caller types digits into a named variable of the call.
Stored variable (type 22, the original's DBVar): a variable kept across calls, per tenant —
set from the caller's digits or from a value, or said back.

Both are read by Goto If and in typed (TTS) greetings as ``%VAR:name%`` / ``%DBVAR:name%``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
PROMPT = "vm-enter-num-to-call"  # "please enter the number …": a default prompt for digits


def _name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise SettingsError(f"a variable name is a letter then letters, digits or _, "
                            f"up to 32, got {name!r}")


@dataclass(frozen=True)
class UserVarSettings:
    name: str
    greeting: str = ""
    max_digits: int = within(16, 1, 64)
    timeout: int = within(5, 1, 60)

    def __post_init__(self) -> None:
        _name(self.name)


async def ask_digits(call: Call, greeting: str, max_digits: int, timeout: int) -> str:
    """Digits typed after a prompt (the extension's greeting has been played already)."""
    return await call.ask("silence/1" if greeting else PROMPT, timeout * 1000, max_digits)


class UserVarType:
    name = "UserVar"
    number = 19
    settings = UserVarSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        value = await ask_digits(call, settings.greeting, settings.max_digits, settings.timeout)
        call.variables[settings.name] = value
        call.step_data = {"NAME": settings.name, "VALUE": value}
        return Next.UP


@dataclass(frozen=True)
class StoredVarSettings:
    name: str
    mode: str = "input"  # "input": the caller's digits; "value": set to value; "say"
    value: str = ""
    greeting: str = ""
    max_digits: int = within(16, 1, 64)
    timeout: int = within(5, 1, 60)

    def __post_init__(self) -> None:
        _name(self.name)
        if self.mode not in ("input", "value", "say"):
            raise SettingsError(f"mode is input, value or say, got {self.mode!r}")


class StoredVarType:
    name = "DBVar"
    number = 22
    settings = StoredVarSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        features = call.engine.store.features
        if settings.mode == "say":
            value = await features.get_var(call.user.id, settings.name) or ""
            if value.isdigit():
                await call.channel.say_digits(value)
            call.step_data = {"NAME": settings.name, "SAID": value}
            return Next.UP
        if settings.mode == "input":
            value = await ask_digits(call, settings.greeting, settings.max_digits,
                                     settings.timeout)
        else:
            value = await expand(settings.value, call)
        await features.set_var(call.user.id, settings.name, value)
        call.step_data = {"NAME": settings.name, "VALUE": value}
        return Next.UP


_REFERENCE = re.compile(r"%(VAR|DBVAR):([A-Za-z][A-Za-z0-9_]{0,31})%|%(CALLERID|DID|AC)%")


def substitute(text: str, call: Call, stored: dict[str, str],
               encode: Callable[[str], str] | None = None) -> str:
    """``%VAR:x%`` (the call's), ``%DBVAR:x%`` (stored), ``%CALLERID%``, ``%DID%``, ``%AC%``;
    each value passed through ``encode`` when given (a URL's: URL-encoded)."""
    def value(match: re.Match[str]) -> str:
        if match[1] == "VAR":
            found = call.variables.get(match[2], "")
        elif match[1] == "DBVAR":
            found = stored.get(match[2], "")
        else:
            found = {"CALLERID": call.env.callerid, "DID": call.called_id,
                     "AC": call.access_code}[match[3]]
        return encode(found) if encode is not None else found
    return _REFERENCE.sub(value, text)


async def expand(text: str, call: Call, encode: Callable[[str], str] | None = None) -> str:
    """:func:`substitute` for a call; the stored variables are read only when ``text``
    names one."""
    if "%" not in text:
        return text
    stored: dict[str, str] = {}
    if "%DBVAR:" in text:
        assert call.user is not None
        stored = await call.engine.store.features.all_vars(call.user.id)
    return substitute(text, call, stored, encode)


register(UserVarType())
register(StoredVarType())
