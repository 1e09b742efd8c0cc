"""WEB-Request (type 6): fetch a URL during the call, keep or say what it answered.

The URL (and a POST's body) may hold ``%VAR:x%`` (a call variable), ``%DBVAR:x%`` (a stored
one), ``%CALLERID%``, ``%DID%`` and ``%AC%``, substituted URL-encoded.  The answer is read
as JSON (``json_path`` picks a value: ``a.b.0``), text, or audio, by ``answer`` (``auto``:
by its content type).  Text (or the JSON value) goes into the call variable ``variable``
and, with ``say``, is spoken by TTS where the group allows TTS; audio is converted and
played.  Then the walk goes to ``success`` (or back up), or on any failure to ``failure``
(or, with none, the caller hears an apology and goes back up).  The fetch is guarded and
capped by :mod:`xvbd.engine.webfetch`; the CDR step says ``RESULT=OK`` or why not.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from xvbd.engine import prompts
from xvbd.engine.netguard import WebFailure
from xvbd.engine.types import Next, SettingsError, register
from xvbd.engine.types.variables import NAME, expand
from xvbd.engine.webfetch import Answer

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

METHODS = ("GET", "POST")
ANSWERS = ("auto", "text", "json", "audio", "none")
#: The longest value kept in a call variable (what Asterisk takes in one as well).
VALUE_MAX = 1024
_PATH = re.compile(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*")
_TAG = re.compile(r"<[^>]{0,1000}>")
#: Said when the request failed and the extension has no failure branch.
SORRY = prompts.ERROR


def check_url(url: str, example: str) -> None:
    """What can be checked of a URL before its references are substituted."""
    if not url.strip() or len(url) > 2000:
        raise SettingsError(f"url is the address to fetch (up to 2000 characters), like "
                            f"{example}")
    if not url.strip().lower().startswith(("http://", "https://")):
        raise SettingsError(f"url starts with http:// or https://, like {example}; "
                            f"got {url[:60]!r}")


def check_json_path(path: str) -> None:
    if path and not _PATH.fullmatch(path):
        raise SettingsError(f"json_path is keys and list positions joined by dots, like "
                            f"data.items.0.name; got {path!r}")


def check_variable(name: str) -> None:
    if name and not NAME.fullmatch(name):
        raise SettingsError(f"variable is a letter then letters, digits or _, up to 32, "
                            f"got {name!r}")


@dataclass(frozen=True)
class WebRequestSettings:
    url: str
    greeting: str = ""
    method: str = "GET"
    body: str = ""  # a POST's body, with the same substitutions as the URL
    content_type: str = "application/x-www-form-urlencoded"
    answer: str = "auto"
    json_path: str = ""
    variable: str = ""  # the call variable the answer goes into ('' = none)
    say: bool = True  # speak a text answer (TTS, where the group allows it)
    success: str = ""  # the extension after an answer ('' = back up)
    failure: str = ""  # the extension after a failure ('' = an apology, then back up)

    def __post_init__(self) -> None:
        check_url(self.url, "https://example.com/notify?did=%DID%")
        if len(self.body) > 8000:
            raise SettingsError("body is at most 8000 characters")
        if self.method not in METHODS:
            raise SettingsError(f"method is GET or POST, got {self.method!r}")
        if self.answer not in ANSWERS:
            raise SettingsError(f"answer is one of {', '.join(ANSWERS)}, got {self.answer!r}")
        if "\n" in self.content_type or "\r" in self.content_type:
            raise SettingsError("content_type is one line")
        check_json_path(self.json_path)
        check_variable(self.variable)


def url_encoded(value: str) -> str:
    return quote(value, safe="")


async def expand_url(text: str, call: Call) -> str:
    """``text`` with its references substituted, each value URL-encoded."""
    return await expand(text, call, url_encoded)


def pick(data: Any, path: str) -> Any:
    """The value at ``path`` (dots between keys and list positions); KeyError if none."""
    for part in path.split(".") if path else ():
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise KeyError(part)
    return data


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def reading(answer: Answer, wanted: str) -> str:
    """How to read an answer ('json', 'text', 'audio'); BAD_TYPE when it is not that."""
    kind = answer.content_type
    is_json = kind == "application/json" or kind.endswith("+json")
    is_text = kind.startswith("text/") or kind == ""
    is_audio = kind.startswith("audio/") or kind == "application/ogg"
    if wanted == "auto":
        if is_json:
            return "json"
        if is_audio:
            return "audio"
        if is_text:
            return "text"
    elif (wanted == "json" and (is_json or kind == "text/plain")) or \
            (wanted == "text" and (is_text or is_json)) or (wanted == "audio" and is_audio):
        return wanted
    raise WebFailure("BAD_TYPE", f"the answer is {kind or 'of no content type'}, not "
                     f"{'something xvbd reads' if wanted == 'auto' else wanted}")


def value_of(answer: Answer, how: str, json_path: str) -> str:
    """The text of a JSON or text answer (JSON: the value at ``json_path``)."""
    if how == "json":
        try:
            data = json.loads(answer.text())
        except (ValueError, RecursionError) as exc:
            raise WebFailure("BAD_JSON", f"the answer is not JSON ({str(exc)[:80]})") from None
        try:
            return as_text(pick(data, json_path))[:VALUE_MAX]
        except KeyError as exc:
            raise WebFailure("NO_VALUE", f"the JSON answer has nothing at {json_path!r} "
                             f"(no {exc.args[0]!r})") from None
    text = answer.text()
    if "html" in answer.content_type:
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.split())[:VALUE_MAX]


def limits(call: Call) -> tuple[int, int]:
    assert call.group is not None
    return call.group.max_tts_download_bytes, call.group.max_web_request_seconds


async def say_text(call: Call, text: str) -> None:
    """Speak ``text`` where the group allows TTS, cut to its TTS string size."""
    from xvbd.engine.runner import play_greeting
    assert call.group is not None
    if not text or not call.group.allow_tts or call.engine.tts is None:
        return
    limit = call.group.max_tts_string_bytes
    if limit > 0:
        text = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    path = await call.engine.tts.file_for(text, call.language)
    if path:
        await play_greeting(call, f"file:{path}")


def branch(tree: Tree, path: str) -> Next:
    found = tree.by_path.get(path) if path else None
    return Next.goto(found) if found is not None else Next.UP


class WebRequestType:
    name = "WebRequest"
    number = 6
    settings = WebRequestSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        web = call.engine.web
        try:
            if web is None:
                raise WebFailure("OFF", "this xvbd has no web client")
            url = await expand_url(settings.url, call)
            body = None
            if settings.method == "POST":
                body = (await expand_url(settings.body, call)).encode("utf-8")
            max_bytes, seconds = limits(call)
            answer = await web.fetch(url, method=settings.method, body=body,
                                     content_type=settings.content_type,
                                     max_bytes=max_bytes, seconds=seconds)
            if settings.answer != "none":
                how = reading(answer, settings.answer)
                if how == "audio":
                    assert call.group is not None
                    sound = await web.sound_of(answer.body, call.group.max_announcement_duration)
                    from xvbd.engine.runner import play_greeting
                    await play_greeting(call, sound)
                else:
                    value = value_of(answer, how, settings.json_path)
                    if settings.variable:
                        call.variables[settings.variable] = value
                    if settings.say:
                        await say_text(call, value)
        except WebFailure as failure:
            call.step_data = {"RESULT": failure.cause}
            if web is not None:
                web.warn_once(ext, self.name, failure, "the call went on to the failure "
                              "branch" if settings.failure else "the caller heard an apology")
            if settings.failure:
                return branch(tree, settings.failure)
            await call.play(SORRY)
            return Next.UP
        call.step_data = {"RESULT": "OK"}
        return branch(tree, settings.success)


register(WebRequestType())
