"""Web variable (type 20, the original's WebVar): a call variable whose value is fetched
from a URL (text, or a value of a JSON answer), kept ``ttl`` seconds so callers do not each
fetch it again.

The URL takes the same references as WEB-Request's (URL-encoded), and the cache is per
tenant and URL as substituted, so a URL naming ``%CALLERID%`` is fetched per caller.  When
the fetch fails the variable gets ``fallback``; the CDR step says ``RESULT=OK``, ``CACHED``
or why not.  Goto If and typed greetings read it as ``%VAR:name%``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.netguard import WebFailure
from xvbd.engine.types import Next, register, within
from xvbd.engine.types.variables import _name
from xvbd.engine.types.webrequest import (
    check_json_path,
    check_url,
    expand_url,
    limits,
    reading,
    value_of,
)

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class WebVarSettings:
    name: str
    url: str
    json_path: str = ""
    ttl: int = within(60, 0, 86400)  # seconds a fetched value is kept (0: fetched each call)
    fallback: str = ""  # the value when the fetch fails

    def __post_init__(self) -> None:
        _name(self.name)
        check_url(self.url, "https://example.com/rate?from=%CALLERID%")
        check_json_path(self.json_path)


class WebVarType:
    name = "WebVar"
    number = 20
    settings = WebVarSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        web = call.engine.web
        url = await expand_url(settings.url, call)
        key = (call.user.id, url, settings.json_path)
        result = "OK"
        try:
            if web is None:
                raise WebFailure("OFF", "this xvbd has no web client")
            value = web.cached(key)
            if value is not None:
                result = "CACHED"
            else:
                max_bytes, seconds = limits(call)
                answer = await web.fetch(url, max_bytes=max_bytes, seconds=seconds)
                how = reading(answer, "json" if settings.json_path else "auto")
                if how == "audio":
                    raise WebFailure("BAD_TYPE", "the answer is audio, not a value")
                value = value_of(answer, how, settings.json_path)
                web.keep(key, value, settings.ttl)
        except WebFailure as failure:
            if web is not None:
                web.warn_once(ext, self.name, failure,
                              f"the variable {settings.name} got its fallback value")
            value, result = settings.fallback, failure.cause
        call.variables[settings.name] = value
        call.step_data = {"NAME": settings.name, "RESULT": result}
        return Next.UP


register(WebVarType())
