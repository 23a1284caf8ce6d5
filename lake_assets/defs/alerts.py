"""Alerts: one message to a Slack-compatible webhook (`LAKE_ALERT_WEBHOOK_URL`) per failure event.

- `run_failure_alerts`: a run failed. One message per run: its assets, partition(s), the cause (the
  failed blocking check, else the step's error) in one line, and a link to the run in the UI.
- `check_failure_alerts`: a run succeeded but a blocking check of WARN severity failed.
- `freshness_alerts`: an asset's `FreshnessPolicy` turned FAIL (trusted/filmes), polled from the
  freshness daemon's state records; or the deadline verdict of the day due in trusted/tmdb turned
  missing or late (once per change, whether a run or `deadline_sensor` recorded it).

The webhook URL is a secret: it is read through `EnvVar` and appears in no message, log line or error.
Messages never carry the values of the project's secret variables. A run gets the tag
`lake/alert_posted` once its messages went out, so a tick evaluated again after a daemon crash posts
nothing twice. With the variable unset the sensors start stopped, and each tick of a started one skips, saying why.
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from lake_assets.defs import deadline
from lake_assets.defs.automation import (
    DEADLINE_CHECK,
    FRESHNESS_CHECK,
    FRESHNESS_POLICIES,
    SETTINGS,
    TRUSTED_TMDB,
    current_time,
    deadline_history,
)
from lake_assets.defs.checks import QUALITY_REPORT
from lake_assets.defs.resources.webhook import WEBHOOK_VARIABLE, AlertDeliveryError, AlertWebhook
from lake_assets.defs.settings import Settings, secret_values

ALERTED_TAG = "lake/alert_posted"
RUN_FAILURE_SENSOR = "run_failure_alerts"
CHECK_FAILURE_SENSOR = "check_failure_alerts"
FRESHNESS_SENSOR = "freshness_alerts"
SOURCE = "lake_assets"
# Whatever reaches a message passes through `redact`: these variables' values never leave the process.
FRESHNESS_NAMES = {key.to_user_string() for key in FRESHNESS_POLICIES}
_CAUSE_CHARS = 300
_RANGE_START, _RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# Dagster's wrappers around the exception a step raised: the cause worth reading is inside.
_WRAPPERS = re.compile(r"^Dagster(Execution\w*|UserCode\w*)Error$")


def _default_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if WEBHOOK_VARIABLE in Settings.from_env().secrets_set else DefaultSensorStatus.STOPPED


# --- messages ---------------------------------------------------------------------------------


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """The message with every secret's value (settings.SECRET_VARIABLES) replaced by `***`."""
    for value in secret_values(environ):
        text = text.replace(value, "***")
    return text


def message(kind: str, subject: str, cause: str, link: str, report: str | None = None) -> str:
    """The alert line: `lake_assets: <kind> | <asset [partition]> | <cause: its first line> | <link>`,
    then `| report <uri>` when a contract check names the run's quality report."""
    line = " ".join(next((text for text in cause.splitlines() if text.strip()), cause).split())
    if len(line) > _CAUSE_CHARS:
        line = line[: _CAUSE_CHARS - 1] + "…"
    return redact(f"{SOURCE}: {kind} | {subject} | {line} | {link}" + (f" | report {report}" if report else ""))


def _report(evaluation: AssetCheckEvaluation) -> str | None:
    entry = evaluation.metadata.get(QUALITY_REPORT)
    return str(entry.value) if entry is not None else None


def run_subject(instance: DagsterInstance, run: DagsterRun) -> str:
    assets = set(run.asset_selection or ())
    if not assets:  # a run of a job or of `materialize()`: what it planned to materialise
        planned = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        # Entries of this type always carry a DagsterEvent with planned-materialisation data.
        assets = {entry.get_dagster_event().asset_materialization_planned_data.asset_key for entry in planned}
    if assets:
        what = ", ".join(sorted(key.to_user_string() for key in assets))
    elif run.asset_check_selection:
        what = ", ".join(sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in run.asset_check_selection))
    else:
        what = run.job_name
    partition = run.tags.get("dagster/partition")
    start, end = run.tags.get(_RANGE_START), run.tags.get(_RANGE_END)
    if partition is None and start:
        partition = start if start == end else f"{start}...{end}"
    return f"{what} [{partition}]" if partition else what


def _check_evaluations(instance: DagsterInstance, run_id: str) -> Iterator[AssetCheckEvaluation]:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        yield entry.get_dagster_event().asset_check_evaluation_data


def _check_name(evaluation: AssetCheckEvaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"


def _check_partition(evaluation: AssetCheckEvaluation) -> str | None:
    if evaluation.partition:
        return evaluation.partition
    value = evaluation.metadata.get("partition")
    return str(value.value) if value is not None else None


def _step_error(instance: DagsterInstance, run_id: str) -> str | None:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = entry.get_dagster_event().step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return f"{entry.step_key}: {data.user_failure_data.description}"
        error = data.error
        while error is not None and error.cause is not None and _WRAPPERS.match(error.cls_name or ""):
            error = error.cause
        if error is not None:
            return f"{entry.step_key}: {error.message.strip() or error.cls_name}"
    return None


def failed_run_message(instance: DagsterInstance, run: DagsterRun, webhook: AlertWebhook) -> str:
    blocking = [e for e in _check_evaluations(instance, run.run_id) if not e.passed and e.blocking]
    if blocking:
        first = blocking[0]
        partition = _check_partition(first)
        cause = f"blocking check {_check_name(first)}{f' [{partition}]' if partition else ''} failed"
        if first.description:
            cause += f": {first.description}"
        if len(blocking) > 1:
            cause += f" (+{len(blocking) - 1} more failed blocking check(s))"
        report = _report(first)
    else:
        report = None
        step_error = _step_error(instance, run.run_id)
        if step_error is not None:
            cause = step_error
        else:
            failures = instance.all_logs(run.run_id, of_type=DagsterEventType.PIPELINE_FAILURE)
            cause = failures[-1].message if failures and failures[-1].message else "the run failed before any step ran"
    return message("run failed", run_subject(instance, run), cause, webhook.run_link(run.run_id), report)


def failed_check_messages(instance: DagsterInstance, run: DagsterRun, webhook: AlertWebhook) -> list[str]:
    """For a run that succeeded: its failed blocking checks (WARN severity does not fail a run). The
    deadline check is alerted on by `freshness_alerts`, for the day that is due only."""
    messages = []
    for evaluation in _check_evaluations(instance, run.run_id):
        if evaluation.passed or not evaluation.blocking or _rejections_only(evaluation):
            continue
        partition = _check_partition(evaluation)
        subject = evaluation.asset_key.to_user_string() + (f" [{partition}]" if partition else "")
        cause = f"{evaluation.check_name} failed" + (f": {evaluation.description}" if evaluation.description else "")
        messages.append(message("blocking check failed", subject, cause, webhook.run_link(run.run_id), _report(evaluation)))
    return messages


def _rejections_only(evaluation: AssetCheckEvaluation) -> bool:
    """A contract WARN whose only cause is rejected rows: shown in the UI, not posted. Rows set aside
    within the contract's bound are expected; its `rejected_at_most_*` rule posts when they are not."""
    counts = [evaluation.metadata.get(name) for name in ("rules_broken", "rules_warned")]
    return all(count is not None and count.value == 0 for count in counts)


def deadline_state(instance: DagsterInstance) -> tuple[str, str | None, str]:
    """(due day, the deadline check's status for it or None, its description), from its latest result."""
    day = deadline.due_day(SETTINGS.freshness_deadline_cron, current_time())
    history = deadline_history(instance, day, limit=1)
    evaluation = history[0].event.asset_check_evaluation if history and history[0].event is not None else None
    if evaluation is None or evaluation.passed:
        return day, None, ""
    status = evaluation.metadata.get("status")
    return day, str(status.value) if status is not None else "failed", evaluation.description or ""


def _post_once(context: RunStatusSensorContext, webhook: AlertWebhook, messages: Iterable[str]) -> None:
    run = context.dagster_run
    if ALERTED_TAG in run.tags:
        return  # this tick is evaluated again: its messages went out already
    messages = list(messages)
    for text in messages:
        webhook.post(text)
    if messages:
        context.instance.add_run_tags(run.run_id, {ALERTED_TAG: str(len(messages))})
        context.log.info(f"posted {len(messages)} alert(s) for run {run.run_id}")


# --- sensors ----------------------------------------------------------------------------------


@run_failure_sensor(
    name=RUN_FAILURE_SENSOR,
    # Runs started with `dagster asset materialize` have no code location: only this catches them.
    monitor_all_code_locations=True,
    default_status=_default_status(),
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    description="Posts one message per failed run to LAKE_ALERT_WEBHOOK_URL: assets, partition, cause, link.",
)
def run_failure_alerts(context: RunFailureSensorContext, webhook: AlertWebhook) -> SkipReason | None:
    if not webhook.enabled:
        return SkipReason(f"alerts are off ({WEBHOOK_VARIABLE} is unset): run {context.dagster_run.run_id} failed, not posted")
    _post_once(context, webhook, [failed_run_message(context.instance, context.dagster_run, webhook)])
    return None


@run_status_sensor(
    name=CHECK_FAILURE_SENSOR,
    run_status=DagsterRunStatus.SUCCESS,
    monitor_all_code_locations=True,
    default_status=_default_status(),
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    description="Posts to LAKE_ALERT_WEBHOOK_URL the failed blocking checks of successful runs.",
)
def check_failure_alerts(context: RunStatusSensorContext, webhook: AlertWebhook) -> SkipReason | None:
    if not webhook.enabled:
        return SkipReason(f"alerts are off ({WEBHOOK_VARIABLE} is unset): run {context.dagster_run.run_id} not looked at")
    _post_once(context, webhook, failed_check_messages(context.instance, context.dagster_run, webhook))
    return None


@sensor(
    name=FRESHNESS_SENSOR,
    default_status=_default_status(),
    minimum_interval_seconds=SETTINGS.tick_interval_s,
    description="Posts to LAKE_ALERT_WEBHOOK_URL when trusted/filmes' freshness policy turns FAIL, or the day due "
    "in trusted/tmdb is missing or late at its deadline.",
)
def freshness_alerts(context: SensorEvaluationContext, webhook: AlertWebhook) -> SkipReason:
    if not webhook.enabled:
        return SkipReason(f"alerts are off ({WEBHOOK_VARIABLE} is unset): nothing looked at")
    # The cursor holds the states this sensor last posted, so each turn is posted once: a policy that
    # turns FAIL, and the due day's deadline verdict (missing, then late) as it changes.
    records = context.instance.get_freshness_state_records(list(FRESHNESS_POLICIES))
    states = {key.to_user_string(): record.freshness_state.value for key, record in records.items()}
    day, status, description = deadline_state(context.instance)
    deadline_key = f"{DEADLINE_CHECK.to_user_string()}[{day}]"
    if status is not None:
        states[deadline_key] = status
    if context.cursor is None:
        context.update_cursor(json.dumps(states, sort_keys=True))
        return SkipReason("started: alerting on freshness changes from now on")
    seen = json.loads(context.cursor)
    texts = {}
    for name, state in sorted(states.items()):
        if name == deadline_key and state != seen.get(name):
            cause = f"{FRESHNESS_CHECK} {state}: {description}"
            texts[name] = message(
                "not fresh", f"{TRUSTED_TMDB.to_user_string()} [{day}]", cause, webhook.asset_link(TRUSTED_TMDB)
            )
        elif name in FRESHNESS_NAMES and state == "FAIL" and seen.get(name) != "FAIL":
            cause = f"freshness policy turned FAIL (was {seen.get(name, 'UNKNOWN')})"
            texts[name] = message("not fresh", name, cause, webhook.asset_link(AssetKey.from_user_string(name)))
    posted, failed = 0, None
    for name, text in texts.items():
        try:
            webhook.post(text)
            posted += 1
        except AlertDeliveryError as error:
            states[name] = seen.get(name, "UNKNOWN")  # still news at the next tick
            failed = error
            context.log.error(f"{error}; trying again next tick")
    context.update_cursor(json.dumps(states, sort_keys=True))
    return SkipReason(f"{posted} freshness alert(s) posted" + (f"; the webhook failed: {failed}" if failed else ""))


ALERT_SENSORS = [run_failure_alerts, check_failure_alerts, freshness_alerts]
