"""When the lake runs by itself: the daily collection schedule, the automation conditions that make the
trusted assets follow their raw inputs, the automation sensor that evaluates them, and the freshness
expectations.

- `daily_tmdb_collection` (a schedule, `LAKE_COLLECT_CRON`, UTC) collects today's `raw/tmdb_json`.
- `trusted/tmdb` and `trusted/filmes` carry `TRUSTED_FOLLOWS_RAW_RUNS`: requested once a run has
  updated their raw input, when every parent partition exists and its blocking checks passed.
- `trusted/tmdb:published_by_deadline` checks that today's partition exists by
  `LAKE_FRESHNESS_DEADLINE_CRON`; `trusted/filmes` has a `FreshnessPolicy`.

Everything here reads the environment once, when the code location loads. The design and what each
rule prevents: docs/automation.md.
"""

import datetime as dt
import os
from collections.abc import Iterable, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
    MetadataValue,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    asset_check,
    partition_loading_context,
    schedule,
)

# Dagster's own clock (test utilities can freeze it) and the cron arithmetic its freshness checks use.
from dagster._time import get_current_timestamp
from dagster._utils.schedules import get_latest_completed_cron_tick, is_valid_cron_string
from pydantic import BaseModel, Field, ValidationError, field_validator

from lake_assets.partitions import daily_partitions

RAW_TMDB = AssetKey(["raw", "tmdb_json"])
RAW_FILMES = AssetKey(["raw", "filmes_csv"])
TRUSTED_TMDB = AssetKey(["trusted", "tmdb"])
TRUSTED_FILMES = AssetKey(["trusted", "filmes"])

COLLECT_SCHEDULE = "daily_tmdb_collection"
AUTOMATION_SENSOR = "lake_automation_sensor"
FRESHNESS_CHECK = "published_by_deadline"
TIMEZONE = "UTC"  # the partitions' timezone: a partition key is a UTC collection date

_OFF = ("0", "false", "no", "off")


class AutomationSettings(BaseModel):
    """How the lake runs by itself; each field is one environment variable (README, "Running it every day")."""

    enabled: bool = Field(
        default=True,
        description="LAKE_AUTOMATION: the schedule, the automation sensor and the raw-arrival sensor start running "
        "with the deployment. 0 = they start stopped; each can still be turned on under Automation in the UI.",
    )
    raw_sensor: bool = Field(
        default=True,
        description="LAKE_RAW_SENSOR: with automation on, the raw-arrival sensor starts running too. 0 = it starts "
        "stopped (the end-to-end tests start it themselves).",
    )
    collect_cron: str = Field(
        default="0 6 * * *", description="LAKE_COLLECT_CRON: when raw/tmdb_json collects today's partition (cron, UTC)."
    )
    freshness_deadline_cron: str = Field(
        default="0 9 * * *",
        description="LAKE_FRESHNESS_DEADLINE_CRON: today's trusted/tmdb partition must be published by this time (cron, UTC).",
    )
    filmes_max_age_hours: float = Field(
        default=24 * 30,
        gt=0,
        le=24 * 366,
        description="LAKE_FILMES_MAX_AGE_HOURS: trusted/filmes fails its freshness policy when it was not rebuilt "
        "for this long, i.e. when the next filmes.csv delivery is overdue.",
    )
    tick_interval_s: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="LAKE_TICK_INTERVAL_S: seconds between evaluations of the automation sensor and the alert sensors.",
    )

    @field_validator("collect_cron", "freshness_deadline_cron")
    @classmethod
    def _a_cron(cls, value: str) -> str:
        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, UTC), e.g. '0 6 * * *'")
        return value

    @classmethod
    def from_env(cls, environ=os.environ) -> "AutomationSettings":
        variables = {
            "enabled": "LAKE_AUTOMATION",
            "raw_sensor": "LAKE_RAW_SENSOR",
            "collect_cron": "LAKE_COLLECT_CRON",
            "freshness_deadline_cron": "LAKE_FRESHNESS_DEADLINE_CRON",
            "filmes_max_age_hours": "LAKE_FILMES_MAX_AGE_HOURS",
            "tick_interval_s": "LAKE_TICK_INTERVAL_S",
        }
        values = {}
        for field, variable in variables.items():
            value = (environ.get(variable) or "").strip()
            if value:
                values[field] = value.lower() not in _OFF if cls.model_fields[field].annotation is bool else value
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            variable = variables[str(first["loc"][0])]
            # One line naming the variable, as every other bad setting of the project.
            reason = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"{variable}={environ.get(variable)!r}: {reason}") from None

    @property
    def default_status(self) -> DefaultSensorStatus:
        return DefaultSensorStatus.RUNNING if self.enabled else DefaultSensorStatus.STOPPED

    @property
    def raw_sensor_default_status(self) -> DefaultSensorStatus:
        return DefaultSensorStatus.RUNNING if self.enabled and self.raw_sensor else DefaultSensorStatus.STOPPED


SETTINGS = AutomationSettings.from_env()


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


def filmes_freshness_policy(settings: AutomationSettings = SETTINGS) -> FreshnessPolicy:
    # filmes is a batch delivery, rebuilt only when a new filmes.csv lands: the policy says how
    # often one is expected. FreshnessPolicy ignores partitions, which is right for this table only.
    hours = settings.filmes_max_age_hours
    return FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=hours), warn_window=dt.timedelta(hours=hours * 0.75))


FRESHNESS_POLICIES = {TRUSTED_FILMES: filmes_freshness_policy()}
AUTOMATION_CONDITIONS = {TRUSTED_TMDB: TRUSTED_FOLLOWS_RAW_RUNS, TRUSTED_FILMES: TRUSTED_FOLLOWS_RAW_RUNS}


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
automation_sensor = AutomationConditionSensorDefinition(
    name=AUTOMATION_SENSOR,
    target=AssetSelection.all(),
    default_status=SETTINGS.default_status,
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    description=(
        "Evaluates the automation conditions: trusted/tmdb and trusted/filmes follow a run that updated their raw "
        "input; trusted/tmdb:published_by_deadline runs at each freshness deadline."
    ),
)


# --- freshness ----------------------------------------------------------------------------------


def partition_freshness(instance: DagsterInstance, asset_key: AssetKey, deadline_cron: str, now: float) -> AssetCheckResult:
    """Whether the partition due by the latest deadline (the deadline's own UTC date, as the partitions
    have end_offset=1) has been materialised. Before the first partition is due, nothing is late."""
    deadline = get_latest_completed_cron_tick(deadline_cron, dt.datetime.fromtimestamp(now, dt.UTC), TIMEZONE)
    partition = todays_partition(deadline)
    metadata = {"deadline": MetadataValue.timestamp(deadline.timestamp()), "deadline_cron": deadline_cron}
    if partition is None:
        return AssetCheckResult(
            passed=True,
            metadata={**metadata, "partition": "none due"},
            description=f"No partition was due yet: the deadline of {deadline:%Y-%m-%d %H:%M} UTC precedes the first partition.",
        )
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1)
    published = records.records[0].timestamp if records.records else None
    metadata["partition"] = partition
    if published is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=f"{asset_key.to_user_string()} [{partition}] not published by its deadline, {deadline:%Y-%m-%d %H:%M} UTC.",
        )
    return AssetCheckResult(
        passed=True,
        metadata={**metadata, "published_at": MetadataValue.timestamp(published)},
        description=f"{asset_key.to_user_string()} [{partition}] published at {dt.datetime.fromtimestamp(published, dt.UTC):%Y-%m-%d %H:%M} UTC.",
    )


@asset_check(
    asset=TRUSTED_TMDB,
    name=FRESHNESS_CHECK,
    description=(
        f"Today's partition is published by {SETTINGS.freshness_deadline_cron} (UTC, LAKE_FRESHNESS_DEADLINE_CRON). "
        "Evaluated at each deadline and after every trusted/tmdb run, so a late partition turns it green."
    ),
    # Dagster's build_time_partition_freshness_checks fails its run before the first partition is due
    # (no partition window at the previous deadline); this check passes then, and names the partition.
    automation_condition=AutomationCondition.cron_tick_passed(SETTINGS.freshness_deadline_cron, TIMEZONE).since_last_handled(),
    metadata={"deadline_cron": SETTINGS.freshness_deadline_cron},
)
def tmdb_published_by_deadline(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return partition_freshness(context.instance, TRUSTED_TMDB, SETTINGS.freshness_deadline_cron, get_current_timestamp())


FRESHNESS_CHECKS: Sequence = [tmdb_published_by_deadline]
