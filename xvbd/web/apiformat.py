"""The API's answers as JSON or XML: plain dicts, lists and scalars in, bytes out.

XML is built with ``xml.etree`` so text is always escaped; a key becomes an element name
only when it is a plain name (``balance``, ``max_phones``), otherwise the element is
``<item key="...">`` and the key is an attribute value, so no key can make markup.
Money is given twice (a decimal string and integer 1/10000 units) and times twice (Unix
seconds and ISO 8601 in UTC): :func:`money_fields` and :func:`time_fields`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from xvbd.web.templating import money

JSON_TYPE = b"application/json; charset=utf-8"
XML_TYPE = b"application/xml; charset=utf-8"

#: An element name we write as is: a letter or _, then letters, digits, _ . -; never a
#: name starting with "xml" (reserved) and never a prefix (no colon).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
#: Characters XML 1.0 cannot carry at all (not even escaped).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def money_fields(name: str, units: int | None) -> dict[str, Any]:
    """``{name: "12.50", name_units: 125000}``: the amount as text and in 1/10000 units."""
    value = int(units or 0)
    return {name: money(value), f"{name}_units": value}


def time_fields(name: str, seconds: int | float | None) -> dict[str, Any]:
    """``{name: 1764174719, name_iso: "2025-11-26T16:31:59Z"}`` (None when unset)."""
    if not seconds:
        return {name: None, f"{name}_iso": None}
    value = int(seconds)
    return {name: value, f"{name}_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(value))}


def to_json(value: Any) -> bytes:
    """UTF-8 JSON; ``<``, ``>`` and ``&`` written as escapes, so no answer is ever markup."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8")


def safe_name(key: str) -> bool:
    """May ``key`` be written as an element name as it is?"""
    return bool(_NAME.fullmatch(key)) and not key.lower().startswith("xml")


def to_xml(value: Any, root: str = "response",
           item_names: Mapping[str, str] | None = None) -> bytes:
    """UTF-8 XML with ``root`` as the document element.  A list's members are ``<item>``
    elements, or the name ``item_names`` gives for the list's key (``users`` → ``user``)."""
    if not safe_name(root):
        raise ValueError(f"not an element name: {root!r}")
    element = ET.Element(root)
    _fill(element, value, item_names or {})
    return ET.tostring(element, encoding="utf-8", xml_declaration=True)


def _child(parent: ET.Element, key: str) -> ET.Element:
    if safe_name(key):
        return ET.SubElement(parent, key)
    return ET.SubElement(parent, "item", {"key": _clean(key)})


def _fill(element: ET.Element, value: Any, item_names: Mapping[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, member in value.items():
            child = _child(element, str(key))
            if isinstance(member, list | tuple):
                name = item_names.get(str(key), "item")
                for entry in member:
                    _fill(ET.SubElement(child, name if safe_name(name) else "item"), entry,
                          item_names)
            else:
                _fill(child, member, item_names)
    elif isinstance(value, list | tuple):
        for entry in value:
            _fill(ET.SubElement(element, "item"), entry, item_names)
    elif value is None:
        element.set("nil", "true")
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = _clean(str(value))


def _clean(text: str) -> str:
    """Text XML can carry: characters XML 1.0 forbids become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def render(value: Any, fmt: str, item_names: Mapping[str, str] | None = None
           ) -> tuple[bytes, bytes]:
    """(body, content type) of ``value`` in ``fmt`` ('json' or 'xml')."""
    if fmt == "xml":
        return to_xml(value, item_names=item_names), XML_TYPE
    return to_json(value), JSON_TYPE
