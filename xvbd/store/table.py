"""Row <-> record mapping for one table, with the tenant scope built in.

A :class:`Table` knows its name, its record dataclass, its key column and, for tenant data,
its owner column.  Every read, update and delete of an owned table takes the owner as a
required keyword and puts it in the ``WHERE`` clause: there is no way to reach a tenant's
row by id alone.  Column names only ever come from the record's fields, never from input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property, lru_cache
from typing import Any, Generic, TypeVar

from xvbd.store.audit import journal_rows
from xvbd.store.db import Database, Row, Txn

R = TypeVar("R")

_UNSET: Any = object()


class _AnyOwner:
    def __repr__(self) -> str:
        return "ANY_OWNER"


#: Pass as ``owner=`` for the operator's views across every tenant; spelled out so a
#: cross-tenant read is visible where it is written.
ANY_OWNER: Any = _AnyOwner()


#: ``column STARTS_WITH`` with the parameter ``starts_with(prefix)``: a LIKE that treats the
#: prefix literally, the same on SQLite (which has no default escape) and MySQL.
STARTS_WITH = "LIKE ? ESCAPE '!'"


def starts_with(prefix: str) -> str:
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


#: Rows in one multi-row INSERT, largest first: a batch of any length is written in a few
#: statements of these sizes, so few distinct statements are ever prepared (and cached),
#: far below both engines' limits on parameters and statement length.
ROWS_PER_STATEMENT = (64, 16, 4, 1)


def chunks(rows: Sequence[R]) -> list[Sequence[R]]:
    """``rows`` cut into pieces of the :data:`ROWS_PER_STATEMENT` sizes, in order."""
    out: list[Sequence[R]] = []
    start, total = 0, len(rows)
    for size in ROWS_PER_STATEMENT:
        while total - start >= size:
            out.append(rows[start:start + size])
            start += size
    return out


class UnknownColumn(ValueError):
    """A change names a column the record does not have."""


@dataclass(frozen=True)
class Table(Generic[R]):
    name: str
    record: type[R]
    key: str = "id"
    owner: str | None = None
    #: Changes made on behalf of a person (``txn.actor``) are journaled, field by field.
    audit: bool = False
    #: Columns journaled as "changed" without their values.
    secret: frozenset[str] = frozenset()
    #: The column naming the tenant a row belongs to, for the journal (default: owner).
    tenant: str | None = None

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.record))  # type: ignore[arg-type]

    def check_columns(self, names: Sequence[str]) -> None:
        unknown = set(names) - set(self.columns)
        if unknown:
            raise UnknownColumn(f"{self.name} has no column {', '.join(sorted(unknown))}")

    @cached_property
    def flags(self) -> frozenset[str]:
        """Columns kept as SMALLINT 0/1 and shown as bool."""
        return frozenset(f.name for f in fields(self.record)  # type: ignore[arg-type]
                         if f.type in ("bool", bool))

    def to_record(self, row: Row) -> R:
        flags = self.flags
        return self.record(**{c: bool(row[c]) if c in flags else row[c] for c in self.columns})

    def _scope(self, owner: Any) -> tuple[str, tuple[Any, ...]]:
        if self.owner is None:
            if owner is not _UNSET:
                raise TypeError(f"{self.name} holds no tenant data; do not pass an owner")
            return "", ()
        if owner is _UNSET or owner is None:
            raise TypeError(f"{self.name} holds tenant data: pass owner=<user id>")
        if owner is ANY_OWNER:
            return "", ()
        return f" AND {self.owner} = ?", (owner,)

    def insert(self, txn: Txn, values: Mapping[str, Any]) -> int:
        """Insert one row; return the new autoincrement id (or 0 for natural keys)."""
        cols = tuple(values)
        txn.execute(self._insert_sql(cols), [values[c] for c in cols])
        new_id = txn.lastrowid if self.key == "id" else 0
        if self.audit and txn.actor is not None:
            key = values[self.key] if self.key in values else new_id  # a natural key: its own
            self._journal(txn, key, None, {**values, self.key: key})
        return new_id

    def insert_many(self, txn: Txn, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert rows that have the same columns, in few statements (:func:`chunks`); the
        new autoincrement ids, in order.  Where the database cannot promise consecutive
        ids for one statement's rows, or the rows differ, each row is inserted alone."""
        if not rows:
            return []
        cols = tuple(rows[0])
        if (len(rows) == 1 or self.key != "id" or self.key in cols
                or any(tuple(row) != cols for row in rows)
                or not txn.dialect.consecutive_ids(txn)):
            return [self.insert(txn, row) for row in rows]
        ids: list[int] = []
        for chunk in chunks(rows):
            txn.execute(self._insert_sql(cols, len(chunk)),
                        [row[c] for row in chunk for c in cols])
            first = txn.dialect.first_id(txn, len(chunk))
            ids.extend(range(first, first + len(chunk)))
        if self.audit and txn.actor is not None:
            for new_id, row in zip(ids, rows, strict=True):
                self._journal(txn, new_id, None, {**row, self.key: new_id})
        return ids

    def _journal(self, txn: Txn, key: Any, old: Mapping[str, Any] | None,
                 new: Mapping[str, Any] | None) -> None:
        assert txn.actor is not None
        column = self.tenant or self.owner
        row = new if new is not None else old
        user_id = row.get(column) if column and row else None
        journal_rows(txn, txn.actor, self.name, key, old, new,
                     int(user_id) if user_id is not None else None, self.secret,
                     frozenset({"updated_at", "created_at"}))

    def _row(self, txn: Txn, key: Any, scope: str, params: tuple[Any, ...]) -> Row | None:
        return txn.one(f"SELECT {', '.join(self.columns)} FROM {self.name} "
                       f"WHERE {self.key} = ?{scope}", (key, *params))

    @lru_cache(maxsize=256)  # noqa: B019 - tables live as long as the process
    def _insert_sql(self, cols: tuple[str, ...], rows: int = 1) -> str:
        self.check_columns(cols)
        row = f"({', '.join('?' for _ in cols)})"
        return f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES {', '.join([row] * rows)}"

    def get(self, txn: Txn, key: Any, *, owner: Any = _UNSET) -> R | None:
        row = self._row(txn, key, *self._scope(owner))
        return None if row is None else self.to_record(row)

    def select(self, txn: Txn, where: str = "1 = 1", params: Sequence[Any] = (), *,
               owner: Any = _UNSET, order: str | None = None, limit: int | None = None,
               offset: int = 0) -> list[R]:
        """Rows matching ``where`` (SQL written by us, values as ``?`` parameters)."""
        scope, scope_params = self._scope(owner)
        sql = f"SELECT {', '.join(self.columns)} FROM {self.name} WHERE ({where}){scope}"
        sql += f" ORDER BY {order or self.key}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [self.to_record(r) for r in txn.all(sql, (*params, *scope_params))]

    def count(self, txn: Txn, where: str = "1 = 1", params: Sequence[Any] = (), *,
              owner: Any = _UNSET) -> int:
        scope, scope_params = self._scope(owner)
        return int(txn.scalar(f"SELECT COUNT(*) FROM {self.name} WHERE ({where}){scope}",
                              (*params, *scope_params)))

    def update(self, txn: Txn, key: Any, changes: Mapping[str, Any], *,
               owner: Any = _UNSET) -> bool:
        """Change some columns of one row; False when no such row (for that owner)."""
        if not changes:
            return self.get(txn, key, owner=owner) is not None
        self.check_columns(list(changes))
        if self.key in changes or (self.owner and self.owner in changes):
            raise UnknownColumn(f"{self.name}: the key and the owner cannot be changed here")
        scope, params = self._scope(owner)
        audited = self.audit and txn.actor is not None
        old = self._row(txn, key, scope, params) if audited else None
        sets = ", ".join(f"{c} = ?" for c in changes)
        txn.execute(f"UPDATE {self.name} SET {sets} WHERE {self.key} = ?{scope}",
                    (*changes.values(), key, *params))
        if audited and old is not None:
            self._journal(txn, key, old, {**old, **changes})
        if txn.rowcount:
            return True
        if audited:  # the row was read just before
            return old is not None
        # MySQL counts only rows whose values changed: tell "same values" from "no row".
        return self.get(txn, key, owner=owner) is not None

    def delete_some_before(self, txn: Txn, column: str, cutoff: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest rows whose ``column`` is before ``cutoff``
        (by id, so each step is short; the same SQL on SQLite and MySQL)."""
        self.check_columns([column])
        last = txn.scalar(f"SELECT MAX(id) FROM (SELECT id FROM {self.name} WHERE {column} < ? "
                          f"ORDER BY id LIMIT {int(limit)}) oldest", (cutoff,))
        if last is None:
            return 0
        txn.execute(f"DELETE FROM {self.name} WHERE id <= ? AND {column} < ?", (last, cutoff))
        return txn.rowcount

    def delete(self, txn: Txn, key: Any, *, owner: Any = _UNSET) -> bool:
        scope, params = self._scope(owner)
        old = (self._row(txn, key, scope, params) if self.audit and txn.actor is not None
               else None)
        txn.execute(f"DELETE FROM {self.name} WHERE {self.key} = ?{scope}", (key, *params))
        deleted = txn.rowcount > 0
        if deleted and old is not None:
            self._journal(txn, key, old, None)
        return deleted


async def delete_all_before(db: Database, table: Table[Any], column: str, cutoff: int,
                            step: int) -> int:
    """Delete every row of ``table`` whose ``column`` is before ``cutoff``, ``step`` rows a
    transaction (:meth:`Table.delete_some_before`); returns how many."""
    total = 0
    while True:
        n = await db.run_interaction(table.delete_some_before, column, cutoff, step)
        total += n
        if n < step:
            return total
