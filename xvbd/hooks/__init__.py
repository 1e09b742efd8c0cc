"""Hooks: Python modules a group lists (``hooks`` = ``skel, mycompany.cnam``) whose
``start(call)`` and ``stop(call)`` run at the start and the end of the group's calls.

A bare name is a module of this package (``skel`` is ``xvbd.hooks.skel``); a dotted name is
imported as written.  A hook may be a plain or an ``async`` function; one that fails or
cannot be imported is logged and the call goes on.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from xvbd.agi.protocol import Hangup
from xvbd.logs import logger

log = logger("xvbd.hooks")


class HookRunner:
    def __init__(self) -> None:
        self._modules: dict[str, ModuleType | None] = {}

    def load(self, names: str) -> list[ModuleType]:
        """The modules named in a group's ``hooks`` field (comma separated)."""
        out = []
        for name in (n.strip() for n in names.split(",")):
            if not name:
                continue
            if name not in self._modules:
                path = name if "." in name else f"xvbd.hooks.{name}"
                try:
                    self._modules[name] = importlib.import_module(path)
                except Exception:
                    log.failure("hook {name!r} cannot be loaded; calls go on without it",
                                name=name)
                    self._modules[name] = None
            module = self._modules[name]
            if module is not None:
                out.append(module)
        return out

    async def run(self, module: ModuleType, which: str, call: Any) -> None:
        fn = getattr(module, which, None)
        if fn is None:
            return
        try:
            result = fn(call)
            if inspect.isawaitable(result):
                await result
        except Hangup:
            pass  # the connection is gone: nothing more to say to Asterisk
        except Exception:
            log.failure("hook {hook}.{which} failed on call {call_id}; the call goes on",
                        hook=module.__name__, which=which, call_id=call.call_id,
                        access_code=call.access_code)
