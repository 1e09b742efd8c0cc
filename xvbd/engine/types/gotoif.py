"""Goto If (type 21): a branch per condition, the first that holds wins, else the default.

Conditions: the caller id starts with / matches a pattern; the time (days and hours, in the
tenant's timezone); a variable of the call or a stored variable equals a value; the leading
option of a poll is a value.  The group's "Maximum Number of GotoIf items in ext" limits them.
"""

from __future__ import annotations

import re
import re._parser as sre  # the stdlib's own parse of a pattern, to judge its cost
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, SettingsError, register
from xvbd.engine.when import TimeRange, local_time

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

KINDS = ("caller_prefix", "caller_regex", "time", "var", "stored", "vote")
#: A caller id longer than this matches no pattern (the check's cost stays bounded).
MAX_CALLER = 64
#: At most this many repeats of variable length (``*``, ``+``, ``?``, ``{m,n}``) in one pattern.
VARIABLE_REPEATS = 4
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def check_caller_pattern(text: str) -> None:
    """Refuse a pattern that could take the reactor seconds or more to check against a
    caller id (a tenant writes it, a caller chooses the text): no repeat or alternatives
    inside a repeat (``(\\d+)+``, ``(1|12)*``), no back-reference, at most
    :data:`VARIABLE_REPEATS` repeats of variable length.  What is left checks in
    polynomial time, and a caller id is short."""
    try:
        parsed = sre.parse(text)
    except re.error as exc:
        raise SettingsError(f"value is not a pattern: {exc}") from None
    variable = 0

    def walk(items: Any, in_repeat: bool) -> None:
        nonlocal variable
        for op, arg in items:
            if op in _REPEATS:
                if in_repeat:
                    raise SettingsError("a repeat inside a repeat (like (\\d+)+) can take "
                                        "minutes to check; write the pattern without nesting")
                variable += arg[0] != arg[1]
                walk(arg[2], True)
            elif op is sre.BRANCH:
                if in_repeat:
                    raise SettingsError("alternatives inside a repeat (like (1|12)*) can take "
                                        "minutes to check; write the pattern without them")
                for alternative in arg[1]:
                    walk(alternative, in_repeat)
            elif op is sre.SUBPATTERN:
                walk(arg[3], in_repeat)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                walk(arg[1], in_repeat)
            elif op is sre.ATOMIC_GROUP:
                walk(arg, in_repeat)
            elif op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
                raise SettingsError("a caller id pattern cannot refer back to a group")

    walk(parsed, False)
    if variable > VARIABLE_REPEATS:
        raise SettingsError(f"a caller id pattern has at most {VARIABLE_REPEATS} repeats of "
                            f"variable length (*, +, ?, {{m,n}}), got {variable}")


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
            check_caller_pattern(self.value)
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
        return len(caller) <= MAX_CALLER and re.fullmatch(condition.value, caller) is not None
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
