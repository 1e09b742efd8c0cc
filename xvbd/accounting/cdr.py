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
    if units == 0:
        return "0"  # most calls cost nothing
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS)
    text = f"{whole}.{frac:04d}".rstrip("0").rstrip(".")
    return sign + text


@dataclass(frozen=True)
class CDRRecord:
    """One line: ``fields`` (the KEY=VALUE part) and ``data`` (what follows DATA=).

    A record made by :class:`CallCDR` comes with its line and row already made (from the
    call's common part, made once per call); they are what :meth:`line` and :meth:`row`
    would make from ``fields``."""

    fields: dict[str, Any]
    data: str = ""
    record_id: str = ""
    cost: int = 0  # in 1/10000 units, as the COST field shows them
    sys_cost: int = 0
    made_line: str | None = field(default=None, compare=False, repr=False)
    made_values: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    def line(self) -> str:
        if self.made_line is not None:
            return self.made_line
        return _line([f"{key}={clean(self.fields[key])}" for key in sorted(self.fields)],
                     self.data)

    def row_values(self) -> tuple[Any, ...]:
        """The record as the ``cdrs`` table's insert values (the store's column order)."""
        if self.made_values is not None:
            return self.made_values
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


def _line(parts: list[str], data: str) -> str:
    if data:
        parts.append(f"DATA={_CONTROL.sub(' ', data)}")
    return ", ".join(parts)


#: The fields a call's records share (``Call._common``): a :class:`CallCDR` whose common
#: part has exactly these makes its records' lines and rows from a part made once.
COMMON_KEYS = frozenset({"ACCESS_CODE", "CALLED_ID", "CALLER_ID", "CALL_ID", "SERVER_ID",
                         "SUBSCR_ID"})


def _text(value: object) -> str:
    return str(value) if type(value) is int else clean(value)


@dataclass(frozen=True)
class _Common:
    """A call's common fields (exactly :data:`COMMON_KEYS`) as the pieces of its records'
    lines, in the order of sorted keys, and as its part of their rows."""

    head: str  # ACCESS_CODE, CALLED_ID, CALLER_ID, CALL_ID: every key before the rest
    server: str
    subscr: str
    row: tuple[Any, ...]  # call_id, server_id, subscr_id, access_code, caller_id, called_id

    @classmethod
    def of(cls, common: dict[str, Any]) -> _Common | None:
        if common.keys() != COMMON_KEYS:
            return None
        f = common
        return cls(f"ACCESS_CODE={_text(f['ACCESS_CODE'])}, CALLED_ID={_text(f['CALLED_ID'])}, "
                   f"CALLER_ID={_text(f['CALLER_ID'])}, CALL_ID={_text(f['CALL_ID'])}, ",
                   f"SERVER_ID={_text(f['SERVER_ID'])}", f"SUBSCR_ID={_text(f['SUBSCR_ID'])}",
                   (f["CALL_ID"], f["SERVER_ID"], int(f["SUBSCR_ID"] or 0),
                    str(f["ACCESS_CODE"]), str(f["CALLER_ID"]), str(f["CALLED_ID"])))

    def step_line(self, type_name: str, ext_number: str, start: int, stop: int,
                  data: str) -> str:
        stopped = _text(stop)
        return _line([f"{self.head}CREATE_TIMESTAMP={stopped}, EXT_NUMBER={_text(ext_number)}, "
                      f"{self.server}, START_TIMESTAMP={_text(start)}, "
                      f"STOP_TIMESTAMP={stopped}, {self.subscr}, TYPE={_text(type_name)}"], data)

    def summary_line(self, own: dict[str, Any], data: str) -> str:
        o = own
        stopped = _text(o["STOP_TIMESTAMP"])
        return _line([f"{self.head}CALL_TYPE={_text(o['CALL_TYPE'])}, COST={_text(o['COST'])}, "
                      f"CREATE_TIMESTAMP={stopped}, CURRENCY_ID={_text(o['CURRENCY_ID'])}, "
                      f"PROCESS_TIMESTAMP={_text(o['PROCESS_TIMESTAMP'])}, {self.server}, "
                      f"START_TIMESTAMP={_text(o['START_TIMESTAMP'])}, "
                      f"STOP_TIMESTAMP={stopped}, {self.subscr}, "
                      f"SYS_COST={_text(o['SYS_COST'])}, TYPE=XVB"], data)


def data_text(items: dict[str, Any]) -> str:
    """The ``DATA=`` part from key/value pairs, in the order given."""
    return ", ".join(f"{key}={clean(value)}" for key, value in items.items())


@dataclass
class CallCDR:
    """The records of one call: the common fields, one record per step, and the summary."""

    common: dict[str, Any]
    records: list[CDRRecord] = field(default_factory=list)
    _made: tuple[dict[str, Any], _Common | None] | None = field(default=None, repr=False)

    def _common_part(self) -> _Common | None:
        """The common part made from ``common`` (again whenever it is replaced)."""
        made, common = self._made, self.common
        if made is None or made[0] is not common:
            # the same fields again (the call's end sets them anew): the same part
            part = made[1] if made is not None and made[0] == common else _Common.of(common)
            made = self._made = (common, part)
        return made[1]

    def step(self, type_name: str, ext_number: str, start: int, stop: int,
             data: dict[str, Any] | None = None) -> CDRRecord:
        own = {"TYPE": type_name, "EXT_NUMBER": ext_number, "START_TIMESTAMP": start,
               "STOP_TIMESTAMP": stop, "CREATE_TIMESTAMP": stop}
        text = data_text(data) if data else ""
        record_id = f"{self.common['CALL_ID']}:{len(self.records)}"
        made = self._common_part()
        if made is None:
            record = CDRRecord({**self.common, **own}, text, record_id)
        else:
            record = CDRRecord(
                {**self.common, **own}, text, record_id,
                made_line=made.step_line(type_name, ext_number, start, stop, text),
                made_values=(record_id, *made.row, str(ext_number), str(type_name), "",
                             int(stop), int(start), int(stop), 0, 0, 0, 0, text))
        self.records.append(record)
        return record

    def summary(self, *, call_type: str, start: int, stop: int, now: int, cost: int,
                sys_cost: int, currency_id: int, dtmf: str, result: str = "",
                record_id: str = "") -> CDRRecord:
        """The call's last record: ``DATA=DTMF=…`` (what was typed), then ``RESULT=`` for a
        call that did not end as served (BADPIN, ABANDONED …).  ``record_id``: when not the
        next of this call's records (the summary of a cut call, written by another xvbd)."""
        data = f"DTMF={_CONTROL.sub(' ', dtmf)}"
        if result:
            data += f", RESULT={clean(result)}"
        own = {"TYPE": "XVB", "CALL_TYPE": call_type, "COST": money(cost),
               "SYS_COST": money(sys_cost), "CURRENCY_ID": currency_id,
               "START_TIMESTAMP": start, "STOP_TIMESTAMP": stop, "CREATE_TIMESTAMP": stop,
               "PROCESS_TIMESTAMP": now}
        record_id = record_id or f"{self.common['CALL_ID']}:{len(self.records)}"
        made = self._common_part()
        if made is None:
            record = CDRRecord({**self.common, **own}, data, record_id, cost, sys_cost)
        else:
            record = CDRRecord(
                {**self.common, **own}, data, record_id, cost, sys_cost,
                made_line=made.summary_line(own, data),
                made_values=(record_id, *made.row, "", "XVB", str(call_type), int(stop),
                             int(start), int(stop), int(now or 0), cost, sys_cost,
                             int(currency_id or 0), data))
        self.records.append(record)
        return record
