"""The deadline rule on its own (lake_assets/defs/deadline.py): plain datetimes, no Dagster instance."""

import datetime as dt

import pytest

from lake_assets.defs import deadline
from lake_assets.defs.deadline import Status

UTC = dt.UTC


def _at(day: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), UTC)


@pytest.mark.parametrize(
    "cron, words",
    [("0 9 * * *", "09:00 UTC"), ("30 6 * * *", "06:30 UTC"), ("0 9 * * 1-5", "the first tick of cron `0 9 * * 1-5` (UTC)")],
)
def test_the_deadline_in_words(cron, words):
    assert deadline.in_words(cron) == words


def test_a_days_deadline_is_the_first_tick_on_that_date_and_the_due_day_turns_at_it():
    assert deadline.deadline_of("2024-03-10", "0 9 * * *") == _at("2024-03-10", 9)
    assert deadline.deadline_of("2024-03-10", "0 0 * * *") == _at("2024-03-10", 0)  # midnight belongs to its day
    assert deadline.due_day("0 9 * * *", _at("2024-03-10", 8, 59)) == "2024-03-09"
    assert deadline.due_day("0 9 * * *", _at("2024-03-10", 9, 0)) == "2024-03-10"


@pytest.mark.parametrize(
    "published, now, status, sentence",
    [
        (
            _at("2024-03-10", 6, 2),
            _at("2024-03-10", 12),
            Status.ON_TIME,
            "Published at 2024-03-10 06:02 UTC, due by 09:00 UTC on 2024-03-10.",
        ),
        (
            _at("2024-03-10", 9),
            _at("2024-03-10", 12),
            Status.ON_TIME,
            "Published at 2024-03-10 09:00 UTC, due by 09:00 UTC on 2024-03-10.",
        ),
        (
            _at("2024-03-12", 10, 30),
            _at("2024-03-12", 11),
            Status.LATE,
            "Published 2 d 1 h 30 min late, at 2024-03-12 10:30 UTC; it was due by 09:00 UTC on 2024-03-10.",
        ),
        (None, _at("2024-03-10", 9, 1), Status.MISSING, "Not published; it was due by 09:00 UTC on 2024-03-10."),
        (None, _at("2024-03-10", 8), Status.NOT_DUE, "Not published yet; due by 09:00 UTC on 2024-03-10."),
    ],
)
def test_the_verdict_reads_the_first_publish_only(published, now, status, sentence):
    verdict = deadline.judge("2024-03-10", "0 9 * * *", published, now)
    assert verdict.status is status and verdict.sentence("09:00 UTC") == sentence
    assert (verdict.late_by is not None) == (status is Status.LATE)
