"""Schedule (type 5): where a call goes by the time and day, in the tenant's timezone.

Rules are tried in order, the first whose time range holds wins; a holiday goes to its own
target first; otherwise the default.  Targets are extension paths ('9', '9*3').  The group's
"Maximum Number of Schedule items in ext" limits the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.types import Next, SettingsError, register
from xvbd.engine.when import TimeRange, check_holidays, is_holiday, local_time

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class ScheduleRule:
    target: str
    days: str = "1234567"
    start: str = "00:00"
    end: str = "23:59"

    def __post_init__(self) -> None:
        TimeRange(self.days, self.start, self.end)


@dataclass(frozen=True)
class ScheduleSettings:
    greeting: str = ""
    rules: tuple[ScheduleRule, ...] = ()
    holidays: tuple[str, ...] = ()
    holiday_target: str = ""
    default: str = ""
    timezone: str = ""  # '' = the user's

    def __post_init__(self) -> None:
        check_holidays(self.holidays)
        if self.holidays and not self.holiday_target:
            raise SettingsError("holidays need a holiday_target")


def choose(settings: ScheduleSettings, moment: Any, max_rules: int) -> tuple[str, str]:
    """(why, target) for a moment: 'HOLIDAY', 'RULE=N' or 'DEFAULT'."""
    if settings.holidays and is_holiday(moment, settings.holidays):
        return "HOLIDAY", settings.holiday_target
    rules = settings.rules if max_rules < 0 else settings.rules[:max_rules]
    for n, rule in enumerate(rules, 1):
        if TimeRange(rule.days, rule.start, rule.end).matches(moment):
            return f"RULE={n}", rule.target
    return "DEFAULT", settings.default


class ScheduleType:
    name = "Schedule"
    number = 5
    settings = ScheduleSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None and call.group is not None
        moment = local_time(call.engine.clock.seconds(),
                            settings.timezone or call.user.timezone)
        why, target = choose(settings, moment, call.group.max_schedule_items)
        call.step_data = {"MATCH": why, "TARGET": target or "-"}
        found = tree.by_path.get(target) if target else None
        if found is None:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        return Next.goto(found)


register(ScheduleType())
