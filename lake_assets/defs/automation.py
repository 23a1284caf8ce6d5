"""When the lake runs by itself: the daily collection schedule, the automation conditions that make the
trusted assets follow their raw inputs, the automation sensor that evaluates them, and the freshness
expectations.

- `daily_tmdb_collection` (a schedule, `LAKE_COLLECT_CRON`, UTC) collects today's `raw/tmdb_json`.
- `trusted/tmdb` and `trusted/filmes` carry `TRUSTED_FOLLOWS_RAW_RUNS`: requested once a run has
  updated their raw input, when every parent partition exists and its blocking checks passed.
- `trusted/tmdb:published_by_deadline` judges each day's first publish against that day's deadline
  (`LAKE_FRESHNESS_DEADLINE_CRON`), at the deadline (`deadline_sensor`) and in the run that publishes
  it; `trusted/filmes` has a `FreshnessPolicy`.

Everything here reads the environment once, when the code location loads. The design and what each
rule prevents: docs/automation.md.
"""

import datetime as dt
import warnings
from collections.abc import Iterable, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    AutomationContext,
    AutomationResult,
    BetaWarning,
    DagsterInstance,
    DefaultScheduleStatus,
    FreshnessPolicy,
    MetadataValue,
    PartitionsDefinition,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    partition_loading_context,
    schedule,
    sensor,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord, AssetCheckExecutionRecordStatus

# Dagster's own clock (test utilities can freeze it).
from dagster._time import get_current_timestamp

from lake_assets.defs import deadline, versions
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.settings import AutomationSettings
from lake_assets.lib import registry

RAW_TMDB = AssetKey(registry.RAW_TMDB.key)
RAW_FILMES = AssetKey(registry.RAW_FILMES.key)
TRUSTED_TMDB = AssetKey(registry.TRUSTED_TMDB.key)
TRUSTED_FILMES = AssetKey(registry.TRUSTED_FILMES.key)

COLLECT_SCHEDULE = "daily_tmdb_collection"
AUTOMATION_SENSOR = "lake_automation_sensor"
FRESHNESS_CHECK = "published_by_deadline"
DEADLINE_SENSOR = "deadline_sensor"
TIMEZONE = deadline.TIMEZONE


SETTINGS = AutomationSettings.from_env()  # read when the code location loads


# A parent partition counts as updated only when a run updated it, and not a run that also computed
# this asset. The raw-arrival sensor's registrations (runless) are left out on purpose: that sensor
# requests the trusted run for what it registers itself (run keys, contiguous ranges, files a
# backfill already read), so one arrival never gets two runs. Unlike eager(), a partition that is
# merely missing is no trigger either: it would fire when a registration fills its parent.
_PARENT_UPDATED_BY_A_RUN = (
    AutomationCondition.newly_updated()
    # any_new_update_has_run_tags() reads the updates since the previous tick by event id, and sees
    # none when the instance had no event at all at the previous tick (a fresh `make dev`): the
    # latest update coming from a run covers that first time. Neither is true for a runless update.
    & (AutomationCondition.any_new_update_has_run_tags() | AutomationCondition.executed_with_tags())
    & ~AutomationCondition.executed_with_root_target()
).with_label("updated_by_a_run")

TRUSTED_FOLLOWS_RAW_RUNS = (
    AutomationCondition.in_latest_time_window()
    & AutomationCondition.any_deps_match(_PARENT_UPDATED_BY_A_RUN | AutomationCondition.will_be_requested())
    .with_label("any_parent_updated_by_a_run")
    .since_last_handled()
    # Every parent partition of the run exists (raw/tmdb_json and trusted/tmdb share one partitions
    # definition, end_offset included, so "today" exists on both sides: dagster#34094 cannot arise).
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    # eager() ignores blocking checks: a failed one on a raw partition holds its trusted partition back.
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("trusted_follows_raw_runs")


class StaleDaysWithinBudget(AutomationCondition[AssetKey]):
    """The newest `budget` stale days of a daily asset: its code version changed, or its raw day has a
    new data version since the run read it (`versions.stale_days`, as the UI's staleness says). A code
    change over years of days is rebuilt a budget per tick, so it never floods the run queue."""

    def __init__(self, parent: AssetKey, code_version: str, budget: int):
        self.parent, self.code_version, self.budget = parent, code_version, budget

    @property
    def name(self) -> str:
        return f"stale_days(newest {self.budget} per tick)"

    @property
    def description(self) -> str:
        return f"A day whose code version or {self.parent.to_user_string()} data version changed since it was built"

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        candidates = context.candidate_subset
        stale = versions.stale_days(context.asset_graph_view.instance, context.key, self.parent, self.code_version)
        keys = candidates.expensively_compute_partition_keys() if stale else set()
        chosen = sorted((day for day in stale if day in keys), reverse=True)[: self.budget]
        return AutomationResult(context, candidates.compute_intersection_with_partition_keys(set(chosen)))


# Stale days not being built, whose parents are not being built and passed their blocking checks. A
# day whose last run failed waits for a person (its alert says why), as a failed collection does.
REBUILD_STALE_DAYS = (
    ~AutomationCondition.in_progress()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.execution_failed()
    & AutomationCondition.all_deps_blocking_checks_passed()
    & StaleDaysWithinBudget(RAW_TMDB, versions.code_version(registry.TRUSTED_TMDB), SETTINGS.stale_days_per_tick)
).with_label("rebuild_stale_days")


def filmes_freshness_policy(settings: AutomationSettings = SETTINGS) -> FreshnessPolicy:
    # filmes is a batch delivery, rebuilt only when a new filmes.csv lands: the policy says how
    # often one is expected. FreshnessPolicy ignores partitions, which is right for this table only.
    hours = settings.filmes_max_age_hours
    return FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=hours), warn_window=dt.timedelta(hours=hours * 0.75))


FRESHNESS_POLICIES = {TRUSTED_FILMES: filmes_freshness_policy()}
AUTOMATION_CONDITIONS = {
    TRUSTED_TMDB: (TRUSTED_FOLLOWS_RAW_RUNS | REBUILD_STALE_DAYS).with_label("follows_raw_runs_or_stale_days"),
    # One table, no days: a new code version rebuilds it at the next tick.
    TRUSTED_FILMES: (TRUSTED_FOLLOWS_RAW_RUNS | AutomationCondition.code_version_changed()).with_label(
        "follows_raw_runs_or_new_code"
    ),
}


def automated(assets: Iterable[AssetsDefinition]) -> list[AssetsDefinition]:
    """The assets with this module's automation conditions and freshness policies, so the asset modules
    describe data and this one says when it is computed."""

    def attributes(spec: AssetSpec) -> AssetSpec:
        if spec.key in AUTOMATION_CONDITIONS:
            spec = spec.replace_attributes(automation_condition=AUTOMATION_CONDITIONS[spec.key])
        if spec.key in FRESHNESS_POLICIES:
            spec = spec.replace_attributes(freshness_policy=FRESHNESS_POLICIES[spec.key])
        return spec

    return [asset.map_asset_specs(attributes) for asset in assets]


# --- the daily collection ----------------------------------------------------------------------


@schedule(
    name=COLLECT_SCHEDULE,
    cron_schedule=SETTINGS.collect_cron,
    execution_timezone=TIMEZONE,
    target=AssetSelection.assets(RAW_TMDB),
    default_status=DefaultScheduleStatus.RUNNING if SETTINGS.enabled else DefaultScheduleStatus.STOPPED,
    description=(
        f"Collects today's raw/tmdb_json partition at {SETTINGS.collect_cron} (UTC, LAKE_COLLECT_CRON); trusted/tmdb "
        f"follows through {AUTOMATION_SENSOR}. One collection per day, however often the cron fires."
    ),
)
def daily_tmdb_collection(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    partition = todays_partition(when)
    if partition is None:
        return SkipReason(f"{when:%Y-%m-%d} is before the first daily partition ({daily_partitions.start:%Y-%m-%d})")
    # One collection per day however often the cron fires (a schedule's run key only deduplicates
    # within one tick). A failed one is not retried by the schedule: its alert asks a person.
    earlier = context.instance.get_run_records(
        RunsFilter(tags={"dagster/schedule_name": COLLECT_SCHEDULE, "dagster/partition": partition}), limit=1
    )
    if earlier:
        run = earlier[0].dagster_run
        return SkipReason(f"{partition} was collected by this schedule already (run {run.run_id}, {run.status.value})")
    return RunRequest(run_key=partition, partition_key=partition)


def todays_partition(when: dt.datetime) -> str | None:
    """The partition collected at `when`: its UTC date, if the daily partitions include it."""
    key = when.astimezone(dt.UTC).date().isoformat()
    with partition_loading_context(effective_dt=when):
        return key if daily_partitions.has_partition_key(key) else None


# --- declarative automation --------------------------------------------------------------------

# The default automation sensor Dagster would create is stopped; this one runs unless LAKE_AUTOMATION=0.
# Evaluating in the code server is beta in Dagster; the warning says only that.
warnings.filterwarnings("ignore", message="Parameter `use_user_code_server`", category=BetaWarning)
automation_sensor = AutomationConditionSensorDefinition(
    name=AUTOMATION_SENSOR,
    target=AssetSelection.all(),
    default_status=SETTINGS.default_status,
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    # StaleDaysWithinBudget is this project's own Python: it runs where the code is.
    use_user_code_server=True,
    description=(
        "Evaluates the automation conditions: trusted/tmdb and trusted/filmes follow a run that updated their raw input, "
        f"and stale days (code or raw data version changed) are rebuilt, at most {SETTINGS.stale_days_per_tick} a tick."
    ),
)


# --- freshness ----------------------------------------------------------------------------------

# Each day of trusted/tmdb is judged against its own deadline (lake_assets/defs/deadline.py). The check is
# partitioned like the asset, so a failed run for another day never touches the day that is due. It
# is judged in two places, never in a run of its own: by the run that publishes a day that is due
# (or soon due), and by `deadline_sensor` at the deadline, whether or not any run happens.
DEADLINE_WORDS = deadline.in_words(SETTINGS.freshness_deadline_cron)
DEADLINE_CHECK = AssetCheckKey(TRUSTED_TMDB, FRESHNESS_CHECK)


def deadline_check_spec(partitions_def: PartitionsDefinition) -> AssetCheckSpec:
    return AssetCheckSpec(
        FRESHNESS_CHECK,
        asset=TRUSTED_TMDB,
        description=(
            f"Each day's partition is first published by {DEADLINE_WORDS} that day (LAKE_FRESHNESS_DEADLINE_CRON). "
            f"Late is WARN, with how late; missing at the deadline is {SETTINGS.missing_severity.upper()} "
            "(LAKE_FRESHNESS_SEVERITY). Judged at the deadline by deadline_sensor, and by the run that publishes the day."
        ),
        partitions_def=partitions_def,
        metadata={"deadline": DEADLINE_WORDS, "deadline_cron": SETTINGS.freshness_deadline_cron},
    )


def first_published(instance: DagsterInstance, asset_key: AssetKey, day: str) -> dt.datetime | None:
    """When the day was first materialised: a re-run does not move it."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day]), limit=1, ascending=True
    ).records
    return dt.datetime.fromtimestamp(records[0].timestamp, dt.UTC) if records else None


def _latest_materialization(instance: DagsterInstance, day: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The day's current version, which the verdict is about: the UI colours the day by it."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=TRUSTED_TMDB, asset_partitions=[day]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp
    )


def deadline_evaluation(instance: DagsterInstance, day: str, now: dt.datetime) -> AssetCheckEvaluation:
    verdict = deadline.judge(day, SETTINGS.freshness_deadline_cron, first_published(instance, TRUSTED_TMDB, day), now)
    missing = verdict.status is deadline.Status.MISSING
    severity = AssetCheckSeverity(SETTINGS.missing_severity.upper()) if missing else AssetCheckSeverity.WARN
    late = verdict.late_by
    metadata = {
        "status": verdict.status.value,
        "deadline": MetadataValue.timestamp(verdict.deadline),
        "minutes_late": round(late.total_seconds() / 60, 1) if late else 0.0,
    }
    if verdict.first_published:
        metadata["first_published_at"] = MetadataValue.timestamp(verdict.first_published)
    return AssetCheckEvaluation(
        asset_key=TRUSTED_TMDB,
        check_name=FRESHNESS_CHECK,
        passed=verdict.status is deadline.Status.ON_TIME,
        severity=severity,
        description=verdict.sentence(DEADLINE_WORDS),
        metadata=metadata,
        partition=day,
        target_materialization_data=_latest_materialization(instance, day),
    )


def deadline_evaluations(instance: DagsterInstance, days: Iterable[str | None]) -> list[AssetCheckEvaluation]:
    """A trusted/tmdb run's verdicts, yielded whether the run publishes or fails.

    The days of the run that are due now or later are judged; older days were judged when their
    deadlines passed, and a backfill of history does not change a first publish. The day that is due
    comes last, restated if the run did not write it: Dagster shows a partitioned check's latest result
    (by record id) as the check's status, so a run for a past day must not leave its own day there.
    It is not restated while another run is publishing that day: that run's result, recorded in the
    row it planned earlier, would then sit below a stale one."""
    now = current_time()
    due = deadline.due_day(SETTINGS.freshness_deadline_cron, now)
    ours = sorted({day for day in days if day is not None and day >= due})
    with partition_loading_context(effective_dt=now):
        restate = due not in ours and daily_partitions.has_partition_key(due)
    restate = restate and not _being_published(instance, deadline_history(instance, due))
    ordered = [day for day in ours if day != due] + ([due] if due in ours or restate else [])
    return [deadline_evaluation(instance, day, now) for day in ordered]


def deadline_history(instance: DagsterInstance, day: str, limit: int = 5) -> Sequence[AssetCheckExecutionRecord]:
    """The deadline check's records for one day, newest (by record id, as the UI orders them) first."""
    return instance.event_log_storage.get_asset_check_execution_history(
        DEADLINE_CHECK, limit=limit, partition_filter=PartitionKeyFilter(key=day)
    )


def _being_published(instance: DagsterInstance, history: Sequence[AssetCheckExecutionRecord]) -> bool:
    """A run that planned this day's verdict is still going (a failed run's plan stays PLANNED)."""
    for record in history:
        if record.status is AssetCheckExecutionRecordStatus.PLANNED:
            run = instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                return True
    return False


@sensor(
    name=DEADLINE_SENSOR,
    default_status=SETTINGS.default_status,
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    description=(
        f"Records trusted/tmdb:published_by_deadline for the day that is due once its deadline ({DEADLINE_WORDS}) "
        "passes, with no run; the run that publishes the day records any later change."
    ),
)
def deadline_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    now = current_time()
    day = deadline.due_day(SETTINGS.freshness_deadline_cron, now)
    with partition_loading_context(effective_dt=now):
        if not daily_partitions.has_partition_key(day):
            return SkipReason(f"no day is due yet: {day} precedes the first daily partition")
    history = deadline_history(context.instance, day, limit=20)
    latest = history[0] if history else None
    if _being_published(context.instance, history):
        return SkipReason(f"{day}: a run is publishing it and will judge it")
    evaluation = deadline_evaluation(context.instance, day, now)
    status = evaluation.metadata["status"]
    said = latest.event.asset_check_evaluation if latest is not None and latest.event is not None else None
    if said is not None and said.metadata.get("status") == status:
        return SkipReason(f"{day}: {status.value}, already recorded")
    # Dagster stores one runless result per check and day (a unique key on run id and partition):
    # after this sensor's verdict, the run that publishes the day records the next one.
    if any(record.run_id == "" for record in history):
        return SkipReason(f"{day}: now {status.value}; the run that publishes it records that, as this sensor spoke already")
    return SensorResult(asset_events=[evaluation])


def current_time() -> dt.datetime:
    """Now, on Dagster's clock (which its test utilities can freeze)."""
    return dt.datetime.fromtimestamp(get_current_timestamp(), dt.UTC)
