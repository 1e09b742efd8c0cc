"""Goto If (type 21): a branch per condition, the first that holds wins, else the default.

Conditions: the caller id starts with / matches a pattern; the time (days and hours, in the
tenant's timezone); a variable of the call or a stored variable equals a value; the leading
option of a poll is a value.  The group's "Maximum Number of GotoIf items in ext" limits them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, SettingsError, register
from xvbd.engine.when import TimeRange, local_time

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

KINDS = ("caller_prefix", "caller_regex", "time", "var", "stored", "vote")


@dataclass(frozen=True)
class Condition:
    kind: str
    target: str
    value: str = ""  # the prefix, pattern, variable's value or the vote's option
    name: str = ""  # the variable's name, or the poll's extension path
    days: str = "1234567"
    start: str = "00:00"
    end: str = "23:59"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingsError(f"kind is one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "caller_regex":
            if len(self.value) > 200:
                raise SettingsError("a caller id pattern is at most 200 characters")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise SettingsError(f"value is not a pattern: {exc}") from None
        if self.kind == "time":
            TimeRange(self.days, self.start, self.end)
        if self.kind in ("var", "stored", "vote") and not self.name:
            raise SettingsError(f"a {self.kind} condition needs a name")


@dataclass(frozen=True)
class GotoIfSettings:
    greeting: str = ""
    conditions: tuple[Condition, ...] = ()
    default: str = ""


async def holds(call: Call, condition: Condition, tree: Tree) -> bool:
    assert call.user is not None
    caller = call.env.callerid
    if condition.kind == "caller_prefix":
        return caller.startswith(condition.value)
    if condition.kind == "caller_regex":
        return re.fullmatch(condition.value, caller) is not None
    if condition.kind == "time":
        moment = local_time(call.engine.clock.seconds(), call.user.timezone)
        return TimeRange(condition.days, condition.start, condition.end).matches(moment)
    if condition.kind == "var":
        return call.variables.get(condition.name) == condition.value
    features = call.engine.store.features
    if condition.kind == "stored":
        return await features.get_var(call.user.id, condition.name) == condition.value
    poll = tree.by_path.get(condition.name)
    if poll is None:
        return False
    results = await features.vote_results(call.user.id, poll.id)
    if not results:
        return False
    leader = max(sorted(results), key=lambda option: results[option])
    return leader == condition.value


class GotoIfType:
    name = "GotoIf"
    number = 21
    settings = GotoIfSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None
        limit = call.group.max_gotoif_items
        conditions = settings.conditions if limit < 0 else settings.conditions[:limit]
        target, why = settings.default, "DEFAULT"
        for n, condition in enumerate(conditions, 1):
            if await holds(call, condition, tree):
                target, why = condition.target, f"CONDITION={n}"
                break
        call.step_data = {"MATCH": why, "TARGET": target or "-"}
        found = tree.by_path.get(target) if target else None
        return Next.goto(found) if found is not None else Next.UP


register(GotoIfType())
