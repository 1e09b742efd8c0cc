"""CDR records in the original's text format.

One record per line: ``KEY=VALUE`` pairs joined by ``", "``, keys sorted, ``DATA=`` last
(its value may itself hold ``", "``).  A value never carries a line break, and a comma in a
value is written ``%2C`` (a ``%`` is ``%25``) so a caller id such as ``"a, TYPE=XVB"``
cannot forge a field.  Money is written in currency units with no trailing zeros.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from xvbd.store.cdr import INSERT_COLUMNS

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNITS = 10_000  # money is kept in 1/10000 of the currency unit


def clean(value: object) -> str:
    if type(value) is int:
        return str(value)
    text = str(value)
    if text.isprintable() and "," not in text and "%" not in text:
        return text  # the usual case: nothing to change
    text = _CONTROL.sub(" ", text)
    return text.replace("%", "%25").replace(",", "%2C")


def money(units: int) -> str:
    """1/10000 units as a plain decimal: 0, 0.1, 12.3456, -1.5."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS)
    text = f"{whole}.{frac:04d}".rstrip("0").rstrip(".")
    return sign + text


@dataclass(frozen=True)
class CDRRecord:
    """One line: ``fields`` (the KEY=VALUE part) and ``data`` (what follows DATA=)."""

    fields: dict[str, Any]
    data: str = ""
    record_id: str = ""
    cost: int = 0  # in 1/10000 units, as the COST field shows them
    sys_cost: int = 0

    def line(self) -> str:
        parts = [f"{key}={clean(self.fields[key])}" for key in sorted(self.fields)]
        if self.data:
            parts.append(f"DATA={_CONTROL.sub(' ', self.data)}")
        return ", ".join(parts)

    def row_values(self) -> tuple[Any, ...]:
        """The record as the ``cdrs`` table's insert values (the store's column order)."""
        row = self.row()
        return tuple(row[c] for c in INSERT_COLUMNS)

    def row(self) -> dict[str, Any]:
        """The record as a row of the ``cdrs`` table."""
        f = self.fields
        return {
            "record_id": self.record_id, "call_id": f.get("CALL_ID", ""),
            "server_id": f.get("SERVER_ID", ""), "subscr_id": int(f.get("SUBSCR_ID", 0) or 0),
            "access_code": str(f.get("ACCESS_CODE", "")), "caller_id": str(f.get("CALLER_ID", "")),
            "called_id": str(f.get("CALLED_ID", "")), "ext_number": str(f.get("EXT_NUMBER", "")),
            "type": str(f.get("TYPE", "")), "call_type": str(f.get("CALL_TYPE", "")),
            "create_timestamp": int(f.get("CREATE_TIMESTAMP", 0)),
            "start_timestamp": int(f.get("START_TIMESTAMP", 0)),
            "stop_timestamp": int(f.get("STOP_TIMESTAMP", 0)),
            "process_timestamp": int(f.get("PROCESS_TIMESTAMP", 0) or 0),
            "cost": self.cost, "sys_cost": self.sys_cost,
            "currency_id": int(f.get("CURRENCY_ID", 0) or 0), "data": self.data,
        }


def data_text(items: dict[str, Any]) -> str:
    """The ``DATA=`` part from key/value pairs, in the order given."""
    return ", ".join(f"{key}={clean(value)}" for key, value in items.items())


@dataclass
class CallCDR:
    """The records of one call: the common fields, one record per step, and the summary."""

    common: dict[str, Any]
    records: list[CDRRecord] = field(default_factory=list)

    def step(self, type_name: str, ext_number: str, start: int, stop: int,
             data: dict[str, Any] | None = None) -> CDRRecord:
        record = CDRRecord({**self.common, "TYPE": type_name, "EXT_NUMBER": ext_number,
                            "START_TIMESTAMP": start, "STOP_TIMESTAMP": stop,
                            "CREATE_TIMESTAMP": stop},
                           data_text(data) if data else "",
                           f"{self.common['CALL_ID']}:{len(self.records)}")
        self.records.append(record)
        return record

    def summary(self, *, call_type: str, start: int, stop: int, now: int, cost: int,
                sys_cost: int, currency_id: int, dtmf: str, result: str = "") -> CDRRecord:
        """The call's last record: ``DATA=DTMF=…`` (what was typed), then ``RESULT=`` for a
        call that did not end as served (BADPIN, ABANDONED …)."""
        data = f"DTMF={_CONTROL.sub(' ', dtmf)}"
        if result:
            data += f", RESULT={clean(result)}"
        record = CDRRecord({**self.common, "TYPE": "XVB", "CALL_TYPE": call_type,
                            "COST": money(cost), "SYS_COST": money(sys_cost),
                            "CURRENCY_ID": currency_id, "START_TIMESTAMP": start,
                            "STOP_TIMESTAMP": stop, "CREATE_TIMESTAMP": stop,
                            "PROCESS_TIMESTAMP": now},
                           data,
                           f"{self.common['CALL_ID']}:{len(self.records)}", cost, sys_cost)
        self.records.append(record)
        return record
