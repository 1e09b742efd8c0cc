"""A client for the JSON/XML APIs in HTTP tests: HTTP Basic, a JSON or form body, and
the answer parsed as JSON or XML; no cookies (an API answer never sets one)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from io import BytesIO
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

from twisted.internet import reactor
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from tests.support.web import WebCase

ADMIN = ("admin", "admin-secret")


@dataclass
class Answer:
    code: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str:
        return str((self.headers.getRawHeaders(name) or [""])[0])

    @property
    def json(self) -> Any:
        assert self.header("Content-Type").startswith("application/json"), self.body[:300]
        return json.loads(self.body)

    @property
    def xml(self) -> ET.Element:
        assert self.header("Content-Type").startswith("application/xml"), self.body[:300]
        return ET.fromstring(self.body)


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


class ApiClientCase(WebCase):
    """A WebCase with an HTTP client for the APIs (no cookies unless a test sends one)."""

    async def call(self, method: str, path: str, *, auth: tuple[str, str] | None = ADMIN,
                   json_body: Any = None, form: dict[str, Any] | None = None,
                   body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs.setdefault("Authorization", basic(*auth))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode({k: str(v) for k, v in form.items()}).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        response = await Agent(reactor).request(
            method.encode(), (self.base + path).encode(),
            Headers({k: [v] for k, v in hdrs.items()}), producer)
        answer = Answer(response.code, response.headers, await readBody(response))
        self.assertIsNone(response.headers.getRawHeaders("Set-Cookie"), path)
        return answer


    def count_password_checks(self, module: Any) -> list[str]:
        """The passwords ``module`` checks with its slow hash from now on (the check itself
        still runs), to see when a proven login is taken on trust."""
        checks: list[str] = []
        real = module.password_matches

        async def counted(password: str, stored: str) -> bool:
            checks.append(password)
            return bool(await real(password, stored))
        self.patch(module, "password_matches", counted)  # type: ignore[attr-defined]
        return checks


def text(element: ET.Element, path: str) -> str:
    found = element.find(path)
    assert found is not None, (path, ET.tostring(element)[:300])
    return found.text or ""

