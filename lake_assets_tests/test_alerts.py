"""The alert sensors against real failures in a real instance, posting to a loopback HTTP server
that stands in for a Slack webhook (`lake_tools/fake_webhook.py`). Each sensor is evaluated the way
the daemon evaluates it, cursor carried from tick to tick; a tick is also evaluated again from an old
cursor, as after a daemon crash, and must post nothing twice."""

import asyncio
import datetime as dt

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    Failure,
    MetadataValue,
    asset,
    asset_check,
    build_sensor_context,
    materialize,
)
from dagster._core.test_utils import freeze_time

from lake_assets.defs.alerts import (
    ALERTED_TAG,
    check_failure_alerts,
    freshness_alerts,
    run_failure_alerts,
)
from lake_assets.defs.assets import raw
from lake_assets.defs.automation import TRUSTED_FILMES
from lake_assets.defs.checks import QUALITY_REPORT
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.resources.tmdb import TMDBResource
from lake_assets.defs.resources.webhook import AlertDeliveryError, AlertWebhook
from lake_assets_tests.test_automation import DAY, _at, _deadline_tick, _publish
from lake_tools.fake_webhook import FakeWebhook

UI = "http://dagster.example:3000"
SECRET = "tmdb-key-that-must-never-leave-0123"


@pytest.fixture
def hook():
    with FakeWebhook() as hook:
        yield hook


class Sensor:
    """One alert sensor ticking against an instance, with its cursor kept between ticks."""

    def __init__(self, definition, instance, webhook: AlertWebhook):
        self.definition, self.instance, self.webhook = definition, instance, webhook
        self.cursor = None
        self.tick()  # the first tick only places the cursor: what happened before is not news

    def tick(self, cursor: str | None = None):
        context = build_sensor_context(
            instance=self.instance,
            cursor=cursor or self.cursor,
            resources={"webhook": self.webhook},
            sensor_name=self.definition.name,
        )
        result = self.definition.evaluate_tick(context)
        if cursor is None:
            self.cursor = context.cursor
        return result


def _webhook(hook, **settings) -> AlertWebhook:
    return AlertWebhook(url=hook.url, ui_base_url=UI, **settings)


def _collect_past_day(instance, lake, day="2024-01-15"):
    """A real failure: raw/tmdb_json cannot collect a past day that has no raw files."""
    return materialize(
        [raw.tmdb_json],
        partition_key=day,
        instance=instance,
        resources={"lake": lake, "tmdb": TMDBResource(), "raw_io_manager": RawZoneIOManager(lake=lake)},
        raise_on_error=False,
    )


def test_a_failed_run_posts_one_message_with_asset_partition_cause_and_link(hook, instance, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKE_ALERT_WEBHOOK_URL", hook.url)
    sensor = Sensor(run_failure_alerts, instance, _webhook(hook))
    before = sensor.cursor

    result = _collect_past_day(instance, LakeResource(root=str(tmp_path / "lake")))
    assert not result.success
    sensor.tick()
    (text,) = hook.messages
    assert text.startswith(
        "lake_assets: run failed | raw/tmdb_json [2024-01-15] | raw__tmdb_json: raw/tmdb_json: 1 day(s) without"
    )
    assert "TMDB serves only today's data" in text
    assert text.endswith(f"| {UI}/runs/{result.run_id}")
    assert "\n" not in text and hook.secret not in text

    sensor.tick()
    sensor.tick(cursor=before)  # the same tick evaluated again (a crash before its cursor was saved)
    assert len(hook.messages) == 1
    assert instance.get_run_by_id(result.run_id).tags[ALERTED_TAG] == "1"


def test_the_cause_of_a_run_stopped_by_a_blocking_check_is_that_check(hook, instance):
    @asset(key=AssetKey(["raw", "contracted"]))
    def contracted() -> None:
        return None

    @asset_check(asset=contracted, blocking=True, description="rows have an id")
    def has_ids() -> AssetCheckResult:
        return AssetCheckResult(passed=False, description="3 rows without an id")

    @asset(deps=[contracted])
    def downstream() -> None:
        return None

    sensor = Sensor(run_failure_alerts, instance, _webhook(hook))
    result = materialize([contracted, has_ids, downstream], instance=instance, raise_on_error=False)
    assert not result.success
    sensor.tick()
    (text,) = hook.messages
    assert "| downstream, raw/contracted |" in text
    assert "| blocking check raw/contracted:has_ids failed: 3 rows without an id |" in text


def test_a_blocking_warn_posts_once_and_rejections_alone_do_not(hook, instance):
    """A successful run whose blocking check failed with WARN severity posts one message; a contract
    WARN whose only cause is rejected rows (no rule broken or warned) stays in the UI."""
    outcome = {"metadata": {}}

    @asset(key=AssetKey(["trusted", "contracted"]))
    def contracted() -> None:
        return None

    @asset_check(asset=contracted, blocking=True, name="contract")
    def contract() -> AssetCheckResult:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN, description="a warning", metadata=outcome["metadata"]
        )

    sensor = Sensor(check_failure_alerts, instance, _webhook(hook))
    report = "lake/trusted/_quality/contracted-20261207T100000-abcd1234.html"
    outcome["metadata"] = {"rules_broken": 0, "rules_warned": 1, "rejected_rows": 0, QUALITY_REPORT: MetadataValue.path(report)}
    assert materialize([contracted, contract], instance=instance).success
    sensor.tick()
    (text,) = hook.messages
    assert text.startswith("lake_assets: blocking check failed | trusted/contracted | contract failed: a warning |")
    assert text.endswith(f" | report {report}")  # the run's quality report, which the contract check names

    outcome["metadata"] = {"rules_broken": 0, "rules_warned": 0, "rejected_rows": 2}
    assert materialize([contracted, contract], instance=instance).success
    sensor.tick()
    assert len(hook.messages) == 1


def test_no_secret_reaches_a_message(hook, instance, monkeypatch):
    monkeypatch.setenv("TMDB_API_KEY", SECRET)

    @asset
    def leaky() -> None:
        raise Failure(f"GET https://api.themoviedb.org/3/movie/1?api_key={SECRET} failed")

    sensor = Sensor(run_failure_alerts, instance, _webhook(hook))
    materialize([leaky], instance=instance, raise_on_error=False)
    sensor.tick()
    (text,) = hook.messages
    assert SECRET not in text and "api_key=***" in text and hook.secret not in text


def test_the_due_days_deadline_alerts_once_per_verdict_missing_then_late(hook, instance):
    with freeze_time(_at(8, 0)):
        sensor = Sensor(freshness_alerts, instance, _webhook(hook))

    assert _deadline_tick(instance, _at(9, 30)).metadata["status"].value == "missing"
    with freeze_time(_at(9, 31)):
        sensor.tick()
        sensor.tick()  # still missing: no second message
    (text,) = hook.messages
    assert text.startswith(f"lake_assets: not fresh | trusted/tmdb [{DAY}] | published_by_deadline missing: Not published;")
    assert f"due by 09:00 UTC on {DAY}" in text and f"{UI}/assets/trusted/tmdb" in text

    _publish(instance, DAY, _at(10, 30))  # the run records "late"
    with freeze_time(_at(10, 31)):
        sensor.tick()
    assert len(hook.messages) == 2 and "published_by_deadline late: Published 1 h 30 min late" in hook.messages[1]

    next_day = (dt.date.fromisoformat(DAY) + dt.timedelta(days=1)).isoformat()
    _deadline_tick(instance, _at(9, 30, next_day))
    with freeze_time(_at(9, 31, next_day)):
        sensor.tick()
    assert len(hook.messages) == 3 and f"[{next_day}]" in hook.messages[2]


def test_an_alert_sensor_without_a_webhook_skips_and_says_why(instance, tmp_path):
    sensors = [Sensor(definition, instance, AlertWebhook()) for definition in (run_failure_alerts, freshness_alerts)]
    _collect_past_day(instance, LakeResource(root=str(tmp_path / "lake")))
    for sensor in sensors:
        result = sensor.tick()
        assert not result.run_requests  # a skipped tick in the UI, with its reason, not a green one
        assert "LAKE_ALERT_WEBHOOK_URL is unset" in (result.skip_message or ""), sensor.definition.name


def test_a_freshness_policy_turning_fail_posts_one_message(hook, instance):
    """trusted/filmes's FreshnessPolicy, evaluated by Dagster's freshness daemon over the project's
    definitions at frozen times."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._daemon.freshness import FreshnessDaemon

    @asset(key=TRUSTED_FILMES)
    def filmes_stand_in() -> None:
        return None

    target = InProcessTestWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="lake_assets.defs.definitions", attribute="defs"))
    )
    start = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    with WorkspaceProcessContext(instance, target) as workspace:
        daemon = FreshnessDaemon()

        def evaluate(when):
            with freeze_time(when):
                asyncio.run(daemon._evaluate_assets(workspace_process_context=workspace))

        with freeze_time(start):
            materialize([filmes_stand_in], instance=instance)
        evaluate(start + dt.timedelta(hours=1))
        sensor = Sensor(freshness_alerts, instance, _webhook(hook, attempts=1))
        evaluate(start + dt.timedelta(days=31))  # the default window is 30 days
        hook.fail_next(1, status=503)
        sensor.tick()  # the webhook is down: nothing posted, and the change is kept for the next tick
        assert hook.messages == []
        sensor.tick()
        evaluate(start + dt.timedelta(days=32))  # still failing: nothing new to say
        sensor.tick()
    (text,) = hook.messages
    assert (
        text == f"lake_assets: not fresh | trusted/filmes | freshness policy turned FAIL (was PASS) | {UI}/assets/trusted/filmes"
    )


def test_webhook_errors_are_retried_and_never_name_the_url(hook):
    webhook = _webhook(hook, attempts=2)
    hook.fail_next(1, status=500)
    webhook.post("hello")
    assert hook.messages == ["hello"] and hook.requests == 2

    wrong = AlertWebhook(url=hook.url + "-revoked", attempts=3)
    with pytest.raises(AlertDeliveryError) as error:
        wrong.post("hello")
    assert str(error.value) == "alert webhook (LAKE_ALERT_WEBHOOK_URL) did not take the message: HTTP 404"
    assert hook.requests == 3  # a 4xx other than 429 is not retried

    closed = AlertWebhook(url="http://127.0.0.1:9/services/" + hook.secret, attempts=1, timeout_s=2)
    with pytest.raises(AlertDeliveryError) as error:
        closed.post("hello")
    assert hook.secret not in str(error.value) and "127.0.0.1" not in str(error.value)
    assert error.value.__suppress_context__  # requests' own error, which names the URL, is not chained


def test_alerts_are_off_without_a_webhook(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("LAKE_ALERT_WEBHOOK_URL", raising=False)
    from lake_assets.defs.resources import alert_webhook_from_env

    webhook = alert_webhook_from_env()
    assert not webhook.enabled
    sensor = Sensor(run_failure_alerts, instance, webhook)
    result = _collect_past_day(instance, LakeResource(root=str(tmp_path / "lake")))
    sensor.tick()  # nothing to post to, and no error
    assert ALERTED_TAG not in instance.get_run_by_id(result.run_id).tags
