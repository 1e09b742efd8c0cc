"""What the call path reads from storage, cached in this process for a few seconds.

A busy node answers the same public numbers, users and trees over and over; a short-lived
cache keeps the database off the per-call path.  Loads of one key in flight are shared.
Changes made through the web call :meth:`Directory.invalidate_user`; other processes see
them when the entry expires (``ttl``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from xvbd.store import Store
from xvbd.store.accounts import Group, Node, Tariff, User
from xvbd.store.features import DirectoryEntry
from xvbd.store.ivr import Extension

T = TypeVar("T")


@dataclass
class Tree:
    """A tenant's extensions, by id and by path, with their children in number order."""

    extensions: list[Extension]
    by_id: dict[int, Extension] = field(init=False)
    by_path: dict[str, Extension] = field(init=False)
    _children: dict[int | None, list[Extension]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {e.id: e for e in self.extensions}
        self.by_path = {e.path: e for e in self.extensions}
        self._children = {}
        self._menus: dict[int, tuple[dict[str, Extension], int]] = {}
        self._ranks: dict[int, int] = {}
        for ext in self.extensions:
            self._children.setdefault(ext.parent_id, []).append(ext)
        for kids in self._children.values():
            kids.sort(key=lambda e: (len(e.number), e.number))

    @property
    def root(self) -> Extension | None:
        return self.by_path.get("")

    def children(self, ext: Extension) -> list[Extension]:
        return self._children.get(ext.id, [])

    def rank(self, ext: Extension) -> int:
        """0 for the tenant's first extension of this type (in tree order), 1 for the next…
        A group limit of N lets the first N of a type work."""
        ranks = self._ranks
        if not ranks:
            seen: dict[str, int] = {}
            for e in sorted(self.extensions, key=_tree_order):
                ranks[e.id] = seen.get(e.type, 0)
                seen[e.type] = ranks[e.id] + 1
        return ranks.get(ext.id, 0)

    def menu(self, ext: Extension) -> tuple[dict[str, Extension], int]:
        """The children by their numbers, and the longest number (0: no children)."""
        found = self._menus.get(ext.id)
        if found is None:
            children = {child.number: child for child in self.children(ext)}
            found = self._menus[ext.id] = (children, max(map(len, children), default=0))
        return found

    def parent(self, ext: Extension) -> Extension | None:
        return self.by_id.get(ext.parent_id) if ext.parent_id is not None else None


def _tree_order(ext: Extension) -> list[int]:
    return [int(part) for part in ext.path.split("*")] if ext.path else []


class Directory:
    def __init__(self, store: Store, clock: Any, ttl: float = 5.0,
                 max_entries: int = 200_000) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._loading: dict[tuple[Any, ...], list[Deferred[Any]]] = {}

    async def _cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        now = self.clock.seconds()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]  # type: ignore[no-any-return]
        waiting = self._loading.get(key)
        if waiting is not None:
            d: Deferred[T] = Deferred()
            waiting.append(d)
            return await d
        self._loading[key] = []
        try:
            value = await load()
        except Exception as exc:
            for d in self._loading.pop(key):
                d.errback(exc)
            raise
        if len(self._entries) >= self.max_entries:
            self._evict(now)
        self._entries[key] = (self.clock.seconds() + self.ttl, value)
        for d in self._loading.pop(key):
            d.callback(value)
        return value

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()

    def invalidate_user(self, user_id: int) -> None:
        """Forget everything cached about one tenant (its tree, its company directories and
        its user rows)."""
        for key in [k for k, (_, v) in self._entries.items()
                    if k[:2] in (("tree", user_id), ("dir", user_id)) or
                    (isinstance(v, User) and v.id == user_id)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    async def user_by_did(self, did: str) -> User | None:
        return await self._cached(("did", did),
                                  lambda: self.store.accounts.find_user_by_did(did))

    async def user_by_code(self, voice_number: str, access_code: str) -> User | None:
        return await self._cached(("code", voice_number, access_code),
                                  lambda: self.store.accounts.find_user(voice_number,
                                                                        access_code))

    async def public_language(self, number: str) -> str | None:
        return await self._cached(("lang", number),
                                  lambda: self.store.accounts.did_language(number))

    async def node(self, server_id: str) -> Node | None:
        return await self._cached(("node", server_id),
                                  lambda: self.store.accounts.get_node(server_id))

    async def group(self, group_id: int) -> Group | None:
        return await self._cached(("group", group_id),
                                  lambda: self.store.accounts.get_group(group_id))

    async def tariff(self, tariff_id: int) -> Tariff | None:
        return await self._cached(("tariff", tariff_id),
                                  lambda: self.store.accounts.get_tariff(tariff_id))

    async def type_limits(self, group_id: int) -> dict[str, int]:
        return await self._cached(("limits", group_id),
                                  lambda: self.store.accounts.type_limits(group_id))

    async def directory_entries(self, user_id: int, ext_id: int) -> list[DirectoryEntry]:
        """The employees of one Directory extension (the Directory type reads them on each
        visit; the tenant's web edits forget them at once)."""
        async def load() -> list[DirectoryEntry]:
            return await self.store.features.directory(user_id, ext_id)
        return await self._cached(("dir", user_id, ext_id), load)

    async def tree(self, user_id: int) -> Tree:
        async def load() -> Tree:
            return Tree(await self.store.ivr.tree(user_id))
        return await self._cached(("tree", user_id), load)
