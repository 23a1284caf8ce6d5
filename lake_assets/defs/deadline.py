"""The publishing deadline of a daily partition: when a day is due, and whether its first publish met it.

A day's deadline is the first tick of the deadline cron on that UTC date (09:00 UTC by default). The
verdict depends on the first publish only: a re-run later that day does not make a late day look
on time, nor an on-time day look late.
"""

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

# Dagster's cron arithmetic, so the deadline and the schedules agree on every cron string.
from dagster._utils.schedules import get_latest_completed_cron_tick, get_next_cron_tick

TIMEZONE = "UTC"  # a partition key is a UTC collection date


class Status(StrEnum):
    ON_TIME = "on time"
    LATE = "late"
    MISSING = "missing"  # not published, and its deadline has passed
    NOT_DUE = "not due"  # not published, and its deadline is still ahead


@dataclass(frozen=True)
class Verdict:
    day: str
    deadline: dt.datetime
    status: Status
    first_published: dt.datetime | None

    @property
    def late_by(self) -> dt.timedelta | None:
        if self.first_published is None or self.status is not Status.LATE:
            return None
        return self.first_published - self.deadline

    def sentence(self, deadline_words: str) -> str:
        """What a person reads in the UI: the verdict, the times, and by how much."""
        due = f"due by {deadline_words} on {self.day}"
        if self.status is Status.ON_TIME:
            return f"Published at {_clock(self.first_published)}, {due}."
        if self.status is Status.LATE:
            return f"Published {_duration(self.late_by)} late, at {_clock(self.first_published)}; it was {due}."
        if self.status is Status.MISSING:
            return f"Not published; it was {due}."
        return f"Not published yet; {due}."


def deadline_of(day: str, cron: str) -> dt.datetime:
    """The first tick of `cron` on the UTC date `day`."""
    midnight = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)
    return get_next_cron_tick(cron, midnight - dt.timedelta(seconds=1), TIMEZONE)


def due_day(cron: str, now: dt.datetime) -> str:
    """The latest day whose deadline has passed at `now`: today after today's deadline, else yesterday."""
    return get_latest_completed_cron_tick(cron, now, TIMEZONE).astimezone(dt.UTC).date().isoformat()


def judge(day: str, cron: str, first_published: dt.datetime | None, now: dt.datetime) -> Verdict:
    deadline = deadline_of(day, cron)
    if first_published is not None:
        status = Status.ON_TIME if first_published <= deadline else Status.LATE
    else:
        status = Status.MISSING if now >= deadline else Status.NOT_DUE
    return Verdict(day, deadline, status, first_published)


def in_words(cron: str) -> str:
    """`0 9 * * *` -> `09:00 UTC`; any other shape stays a cron string, said as one."""
    daily = re.fullmatch(r"(\d{1,2}) (\d{1,2}) \* \* \*", cron.strip())
    if daily:
        minute, hour = (int(n) for n in daily.groups())
        return f"{hour:02d}:{minute:02d} UTC"
    return f"the first tick of cron `{cron}` (UTC)"


def _clock(when: dt.datetime | None) -> str:
    return f"{when.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if when else "?"


def _duration(delta: dt.timedelta | None) -> str:
    minutes = int((delta or dt.timedelta()).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = (
        [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * (bool(minutes) or not days and not hours)
    )
    return " ".join(parts)
