"""The schedule, the automation conditions and the freshness check, evaluated by Dagster's own
evaluators against a real, persistent instance at chosen ("frozen") times. Raw partitions are
materialised by the real raw assets (the offline TMDB snapshot, the bundled filmes.csv) into a
temporary lake; trusted assets, which need Spark, are stood in for by assets of the same key where a
materialisation record is all the test needs."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetMaterialization,
    BackfillPolicy,
    Definitions,
    Failure,
    MaterializeResult,
    Output,
    RunRequest,
    SensorResult,
    SkipReason,
    asset,
    asset_check,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.test_utils import freeze_time

from lake_assets.defs import automation
from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.automation import (
    COLLECT_SCHEDULE,
    FRESHNESS_CHECK,
    RAW_TMDB,
    TRUSTED_FILMES,
    TRUSTED_TMDB,
    AutomationSettings,
    automated,
    deadline_check_spec,
    deadline_evaluations,
    deadline_sensor,
)
from lake_assets.defs.definitions import defs, resources_from_env
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.resources.tmdb import TMDBResource

ROOT = Path(__file__).resolve().parents[1]
DAY = "2024-03-10"
UTC = dt.UTC
FRESHNESS_KEY = AssetCheckKey(TRUSTED_TMDB, FRESHNESS_CHECK)
raw_ok = {"passed": True}


@asset_check(asset=raw.tmdb_json, blocking=True, description="test-only blocking check on the raw partition")
def raw_contract() -> AssetCheckResult:
    return AssetCheckResult(passed=raw_ok["passed"])


@asset(key=TRUSTED_TMDB, partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run())
def trusted_tmdb_stand_in() -> None:  # a materialisation record without Spark
    return None


@asset(key=TRUSTED_TMDB, partitions_def=daily_partitions, check_specs=[deadline_check_spec(daily_partitions)])
def trusted_tmdb_that_fails():  # a run of trusted/tmdb that fails, with the deadline check planned in it
    raise Failure("a broken run for one day")


@asset(key=TRUSTED_FILMES, deps=[raw.filmes_csv])
def trusted_filmes_stand_in() -> None:
    return None


# The project's assets with the project's conditions, plus a blocking check on the raw partition.
EVALUATED = Definitions(
    assets=automated([raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb]),
    asset_checks=[raw_contract],
    resources=resources_from_env(),  # bound, never used: nothing is executed through these definitions
)


@pytest.fixture
def lake(tmp_path) -> LakeResource:
    return LakeResource(root=str(tmp_path / "lake"))


class Ticks:
    """Successive automation ticks at chosen times, with the cursor carried as the sensor carries it.
    `at` returns everything requested (asset -> partitions, check -> []), minus the keys in `ignore`."""

    def __init__(self, instance, definitions=EVALUATED, ignore=()):
        self.instance, self.definitions, self.cursor, self.ignore = instance, definitions, None, set(ignore)

    def at(self, when: dt.datetime) -> dict[str, list]:
        result = evaluate_automation_conditions(
            defs=self.definitions, instance=self.instance, cursor=self.cursor, evaluation_time=when
        )
        self.cursor = result.cursor
        requested = {}
        for evaluated in result.results:
            key = evaluated.key
            if evaluated.true_subset.is_empty or key in self.ignore:
                continue
            if isinstance(key, AssetCheckKey):
                requested[key.to_user_string()] = []
            else:  # [] for an unpartitioned asset
                requested[key.to_user_string()] = sorted(p for p in result.get_requested_partitions(key) if p is not None)
        return requested


def _raw_tmdb_run(instance, lake, partition, *, check_passes=True, tags=None):
    """raw/tmdb_json collected by a run, as the schedule's run does (offline snapshot), with the test's
    blocking check in the same run."""
    raw_ok["passed"] = check_passes
    return materialize(
        [raw.tmdb_json, raw_contract],
        partition_key=partition,
        instance=instance,
        tags=tags,
        resources={"lake": lake, "tmdb": TMDBResource(), "raw_io_manager": RawZoneIOManager(lake=lake)},
        run_config={"ops": {"raw__tmdb_json": {"config": {"allow_past_date": True}}}},
        raise_on_error=False,
    )


def _at(hour: int, minute: int = 0, day: str = DAY) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


# --- the schedule ---------------------------------------------------------------------------------


def test_the_schedule_collects_todays_partition_once_a_day_at_the_configured_time(instance, lake):
    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def(COLLECT_SCHEDULE)
    assert schedule.cron_schedule == "0 6 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status.value == "RUNNING"

    with freeze_time(_at(6)):
        data = schedule.evaluate_tick(
            build_schedule_context(instance=instance, scheduled_execution_time=_at(6), repository_def=repo)
        )
    (request,) = data.run_requests
    assert isinstance(request, RunRequest)
    assert (request.partition_key, request.run_key) == (DAY, DAY)  # today's partition, one run per day
    assert repo.get_job(schedule.job_name).asset_layer.executable_asset_keys == {RAW_TMDB}

    # Its run happened: later ticks the same day (a cron that fires more often) collect nothing more.
    assert _raw_tmdb_run(instance, lake, DAY, tags={"dagster/schedule_name": COLLECT_SCHEDULE}).success
    later = _at(7)
    data = schedule.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=later, repository_def=repo))
    assert not data.run_requests and f"{DAY} was collected by this schedule already" in data.skip_message
    next_day = later + dt.timedelta(days=1)
    data = schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=next_day, repository_def=repo)
    )
    assert [r.partition_key for r in data.run_requests] == [next_day.date().isoformat()]

    before = dt.datetime(2023, 12, 31, 6, tzinfo=UTC)  # the test partitions start on 2024-01-01
    data = schedule.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=before, repository_def=repo))
    assert not data.run_requests and "before the first daily partition" in data.skip_message


def test_settings_come_from_the_environment_and_bad_values_are_refused_in_one_line():
    settings = AutomationSettings.from_env(
        {"LAKE_COLLECT_CRON": "30 5 * * *", "LAKE_AUTOMATION": "0", "LAKE_TICK_INTERVAL_S": "5"}
    )
    assert (settings.collect_cron, settings.enabled, settings.tick_interval_s) == ("30 5 * * *", False, 5)
    assert settings.default_status.value == "STOPPED" and settings.raw_sensor_default_status.value == "STOPPED"
    assert AutomationSettings.from_env({}).default_status.value == "RUNNING"
    assert AutomationSettings.from_env({"LAKE_RAW_SENSOR": "off"}).raw_sensor_default_status.value == "STOPPED"

    with pytest.raises(ValueError, match=r"^LAKE_COLLECT_CRON='every day': 'every day' is not a cron expression") as error:
        AutomationSettings.from_env({"LAKE_COLLECT_CRON": "every day"})
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"^LAKE_TICK_INTERVAL_S='0': .*greater than or equal to 1"):
        AutomationSettings.from_env({"LAKE_TICK_INTERVAL_S": "0"})
    with pytest.raises(ValueError, match=r"^LAKE_FILMES_MAX_AGE_HOURS="):
        AutomationSettings.from_env({"LAKE_FILMES_MAX_AGE_HOURS": "-1"})


def test_lake_automation_0_starts_the_schedule_and_sensors_stopped_and_the_cron_is_configurable():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKE_")}
    env.update(LAKE_AUTOMATION="0", LAKE_COLLECT_CRON="15 7 * * *", LAKE_FRESHNESS_DEADLINE_CRON="45 10 * * *")
    script = (
        "from lake_assets.defs.definitions import defs\n"
        "repo = defs.get_repository_def()\n"
        "for d in [*repo.schedule_defs, *repo.sensor_defs]: print(d.name, d.default_status.value)\n"
        "print('cron', repo.get_schedule_def('daily_tmdb_collection').cron_schedule)\n"
        "from lake_assets.defs.automation import SETTINGS; print('deadline', SETTINGS.freshness_deadline_cron)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["daily_tmdb_collection"] == "STOPPED"
    assert lines["lake_automation_sensor"] == "STOPPED" and lines["raw_arrivals_sensor"] == "STOPPED"
    # alerts follow LAKE_ALERT_WEBHOOK_URL, unset here
    assert lines["run_failure_alerts"] == lines["check_failure_alerts"] == lines["freshness_alerts"] == "STOPPED"
    assert (lines["cron"], lines["deadline"]) == ("15 7 * * *", "45 10 * * *")


def test_automation_is_on_by_default_in_the_deployment():
    repo = defs.get_repository_def()
    statuses = {d.name: d.default_status.value for d in repo.sensor_defs}
    assert statuses["lake_automation_sensor"] == "RUNNING"
    assert statuses["raw_arrivals_sensor"] == "RUNNING"
    graph = defs.resolve_asset_graph()
    assert graph.get(TRUSTED_TMDB).automation_condition is automation.AUTOMATION_CONDITIONS[TRUSTED_TMDB]
    assert graph.get(TRUSTED_FILMES).automation_condition is automation.AUTOMATION_CONDITIONS[TRUSTED_FILMES]
    assert automation.TRUSTED_FOLLOWS_RAW_RUNS in automation.AUTOMATION_CONDITIONS[TRUSTED_TMDB].children
    assert graph.get(RAW_TMDB).automation_condition is None  # collected by the schedule
    # dagster#34094 (eager() requesting a partition whose parent cannot exist) needs partitions that
    # differ: raw and trusted share one definition, end_offset included.
    assert graph.get(TRUSTED_TMDB).partitions_def == graph.get(RAW_TMDB).partitions_def
    # map_asset_specs kept everything else of the assets: policies, contract checks, pools
    assert graph.get(TRUSTED_TMDB).backfill_policy == BackfillPolicy.single_run()
    for original in (trusted.tmdb, trusted.filmes):
        automated_def = defs.get_assets_def(original.key)
        assert automated_def.check_keys == original.check_keys and automated_def.op.pool == original.op.pool
    assert graph.get(TRUSTED_FILMES).freshness_policy is not None


# --- automation conditions ------------------------------------------------------------------------


def test_trusted_tmdb_waits_for_its_raw_partition_and_follows_a_raw_run_once(instance, lake):
    ticks = Ticks(instance, ignore={FRESHNESS_KEY})  # its deadline passes between these ticks
    assert ticks.at(_at(6, 1)) == {}  # first evaluation
    assert ticks.at(_at(6, 2)) == {}  # today's raw partition is missing: nothing

    # The raw-arrival sensor registers files landed from outside (runless) and requests that trusted
    # run itself: automation leaves it alone.
    instance.report_runless_asset_event(AssetMaterialization(RAW_TMDB, partition=DAY))
    assert ticks.at(_at(6, 3)) == {}

    assert _raw_tmdb_run(instance, lake, DAY).success
    assert ticks.at(_at(6, 4)) == {"trusted/tmdb": [DAY]}  # exactly one request, for today
    assert ticks.at(_at(6, 5)) == {}
    assert ticks.at(_at(6, 6)) == {}

    # A new day: its partition appears on both sides, raw is missing, nothing is requested.
    next_day = (dt.date.fromisoformat(DAY) + dt.timedelta(days=1)).isoformat()
    assert ticks.at(_at(0, 1, next_day)) == {}
    assert ticks.at(_at(0, 2, next_day)) == {}
    # An old partition re-collected is outside the latest time window: a backfill's business.
    assert _raw_tmdb_run(instance, lake, "2024-03-01").success
    assert ticks.at(_at(0, 3, next_day)) == {}


def test_on_a_fresh_instance_the_first_raw_run_is_followed_too(instance, lake):
    ticks = Ticks(instance)
    assert ticks.at(_at(6, 1)) == {}  # no event at all in the instance yet
    assert _raw_tmdb_run(instance, lake, DAY).success
    assert ticks.at(_at(6, 2)) == {"trusted/tmdb": [DAY]}
    assert ticks.at(_at(6, 3)) == {}


def test_a_failed_blocking_check_on_the_raw_partition_holds_trusted_back(instance, lake):
    ticks = Ticks(instance)
    ticks.at(_at(6, 1))
    result = _raw_tmdb_run(instance, lake, DAY, check_passes=False)
    assert not result.success  # the blocking check failed the run; the raw partition was still recorded
    assert instance.fetch_materializations(RAW_TMDB, limit=1).records[0].partition_key == DAY
    assert ticks.at(_at(6, 2)) == {}
    assert ticks.at(_at(6, 3)) == {}

    assert _raw_tmdb_run(instance, lake, DAY, check_passes=True).success
    assert ticks.at(_at(6, 4)) == {"trusted/tmdb": [DAY]}


def test_trusted_filmes_follows_a_raw_filmes_run_but_not_a_run_that_built_both(instance, lake):
    ticks = Ticks(instance)
    assert ticks.at(_at(6, 1)) == {}
    assert ticks.at(_at(6, 2)) == {}  # raw/filmes_csv missing
    resources = {"raw_io_manager": RawZoneIOManager(lake=lake)}
    assert materialize([raw.filmes_csv], instance=instance, resources=resources).success
    assert ticks.at(_at(6, 3)) == {"trusted/filmes": []}
    assert ticks.at(_at(6, 4)) == {}

    # A filmes.csv landed from outside: the raw-arrival sensor registers it and requests the run itself.
    instance.report_runless_asset_event(AssetMaterialization(raw.filmes_csv.key))
    assert ticks.at(_at(6, 5)) == {}

    # `make run` (or a person) built raw and trusted in one run: nothing left to follow.
    assert materialize([raw.filmes_csv, trusted_filmes_stand_in], instance=instance, resources=resources).success
    assert ticks.at(_at(6, 6)) == {}


# --- freshness ------------------------------------------------------------------------------------


def _deadline_tick(instance, when: dt.datetime):
    """One tick of deadline_sensor at `when`; its verdict is recorded as the daemon records it."""
    with freeze_time(when):
        result = deadline_sensor(build_sensor_context(instance=instance))
    if isinstance(result, SkipReason):
        return result
    assert isinstance(result, SensorResult)
    (evaluation,) = result.asset_events
    instance.report_runless_asset_event(evaluation)
    return evaluation


@asset(key=TRUSTED_TMDB, partitions_def=daily_partitions, check_specs=[deadline_check_spec(daily_partitions)])
def trusted_tmdb_judged(context):  # publishes a day and judges its deadline, as trusted/tmdb does
    yield MaterializeResult()
    yield from deadline_evaluations(context.instance, context.partition_keys)
    yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(FRESHNESS_KEY))


def _publish(instance, day: str, when: dt.datetime):
    with freeze_time(when):
        assert materialize([trusted_tmdb_judged], instance=instance, partition_key=day).success


def _status(evaluation) -> str:
    return evaluation.metadata["status"].value


def test_a_day_missing_at_its_deadline_is_judged_with_no_run_then_late_when_published(instance):
    assert isinstance(_deadline_tick(instance, dt.datetime(2023, 12, 31, 10, tzinfo=UTC)), SkipReason)  # before day 1

    missing = _deadline_tick(instance, _at(9, 30))
    assert (missing.partition, _status(missing), missing.passed, missing.severity.value) == (DAY, "missing", False, "ERROR")
    assert missing.description == f"Not published; it was due by 09:00 UTC on {DAY}."
    assert "already recorded" in _deadline_tick(instance, _at(9, 31)).skip_message

    _publish(instance, DAY, _at(10, 30))  # the publishing run records the new verdict
    (record,) = instance.event_log_storage.get_asset_check_execution_history(
        FRESHNESS_KEY, limit=1, partition_filter=PartitionKeyFilter(key=DAY)
    )
    late = record.event.asset_check_evaluation
    assert (_status(late), late.passed, late.severity.value) == ("late", False, "WARN")
    assert late.metadata["minutes_late"].value == 90.0
    assert late.description.startswith(f"Published 1 h 30 min late, at {DAY} 10:30 UTC")
    assert "already recorded" in _deadline_tick(instance, _at(10, 31)).skip_message

    # A re-run later keeps the first publish: still 90 minutes late.
    _publish(instance, DAY, _at(15, 0))
    with freeze_time(_at(15, 5)):
        (again,) = deadline_evaluations(instance, [DAY])
    assert _status(again) == "late" and again.metadata["minutes_late"].value == 90.0


def test_a_day_published_before_its_deadline_passes_and_says_when(instance):
    next_day = (dt.date.fromisoformat(DAY) + dt.timedelta(days=1)).isoformat()
    _publish(instance, next_day, _at(6, 2, next_day))  # judged on time by its run as well
    # Before the deadline the day due is the previous one: that run restated it, missing.
    assert "missing, already recorded" in _deadline_tick(instance, _at(8, 0, next_day)).skip_message
    assert "on time, already recorded" in _deadline_tick(instance, _at(9, 1, next_day)).skip_message
    (record,) = instance.event_log_storage.get_asset_check_execution_history(
        FRESHNESS_KEY, limit=5, partition_filter=PartitionKeyFilter(key=next_day)
    )
    on_time = record.event.asset_check_evaluation
    assert (on_time.partition, _status(on_time), on_time.passed) == (next_day, "on time", True)
    assert on_time.description == f"Published at {next_day} 06:02 UTC, due by 09:00 UTC on {next_day}."


def test_a_failed_run_for_another_day_leaves_the_due_days_verdict_alone(instance):
    with freeze_time(_at(6, 0)):  # published by a run that does not judge it: the sensor does, at 09:00
        assert materialize([trusted_tmdb_stand_in], instance=instance, partition_key=DAY).success
    on_time = _deadline_tick(instance, _at(9, 5))
    assert on_time.passed and _status(on_time) == "on time"
    with freeze_time(_at(9, 10)):
        failed = materialize([trusted_tmdb_that_fails], instance=instance, partition_key="2024-02-01", raise_on_error=False)
    assert not failed.success
    history = instance.event_log_storage.get_asset_check_execution_history(
        FRESHNESS_KEY, limit=10, partition_filter=PartitionKeyFilter(key=DAY)
    )
    assert [record.status.value for record in history] == ["SUCCEEDED"]  # the failed run never touched DAY
    assert "already recorded" in _deadline_tick(instance, _at(9, 15)).skip_message


def test_a_run_judges_the_days_that_are_due_now_and_leaves_history_alone(instance):
    _publish(instance, DAY, _at(17, 25))
    _publish(instance, "2024-02-01", _at(17, 25))
    with freeze_time(_at(17, 26)):
        evaluations = deadline_evaluations(instance, [DAY, "2024-02-01", None])
    (today,) = evaluations  # a backfilled day of history is not judged again by a re-run
    assert (today.partition, _status(today), today.severity.value) == (DAY, "late", "WARN")
    assert today.metadata["minutes_late"].value == 8 * 60 + 25.0
    # A run of history alone restates the day that is due, last: Dagster shows a partitioned check's
    # latest result as its status, so the check keeps saying how the due day stands.
    with freeze_time(_at(17, 30)):
        (restated,) = deadline_evaluations(instance, ["2024-02-01"])
    assert restated.partition == DAY and _status(restated) == "late"
    next_day = (dt.date.fromisoformat(DAY) + dt.timedelta(days=1)).isoformat()
    with freeze_time(_at(8, 0, next_day)):  # before the deadline: today is not due yet, DAY still is
        days = [e.partition for e in deadline_evaluations(instance, [next_day, "2024-02-01"])]
    assert days == [next_day, DAY]
