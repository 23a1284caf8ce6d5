"""Arrivals by content: the raw-arrival sensor compares data versions, so identical bytes request
nothing and a change in any day, however old, requests exactly that day. Listing mode runs on a
local lake and on the test S3 (SeaweedFS); event mode on moto's server, whose S3 sends real bucket
notifications into its SQS (URL-encoded keys and the test event included, as AWS's does)."""

import datetime as dt
import json
import logging
import uuid
from types import SimpleNamespace

import boto3
import pytest

from lake_assets.defs import sensors
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.lib.raw_events import parse
from lake_assets.lib.raw_listing import RESCAN_INTERVAL_S
from lake_assets_tests.test_sensors import RAW_FILMES, RECORDS, Daemon, _partitions, _targets, settle
from lake_tools.moto_glue import DEV_CREDENTIALS, REGION
from lake_tools.s3_events import wire
from lake_tools.seed_history import seed

TODAY = dt.datetime.now(dt.UTC).date()
OLD_DAY = (TODAY - dt.timedelta(days=90)).isoformat()


@pytest.fixture(autouse=True)
def local_time_resolution(request, monkeypatch):
    """As in test_sensors: a local lake's modification times are exact, S3's are whole seconds."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    if params.get("lake") != "s3" and "events" not in request.fixturenames:
        monkeypatch.setattr(sensors, "MODIFIED_RESOLUTION_S", 0.1)


@pytest.fixture
def tick_log():
    """What a tick logs (the UI shows it under the sensor's tick), kept for the test to read."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(f"tick-{uuid.uuid4().hex[:6]}")
    logger.addHandler(Keep())
    logger.propagate = False
    logger.records = records  # type: ignore[attr-defined]
    return logger


def _warnings(log) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno >= logging.WARNING]


def _old_history(lake):
    """Ten days ending 85 days ago, registered by a first tick."""
    seed(lake, TODAY - dt.timedelta(days=94), 10, RECORDS)


# --- listing mode ----------------------------------------------------------------------------------


def test_relanding_identical_bytes_requests_nothing(lake, instance):
    storage = lake.storage("raw")
    _old_history(lake)
    folder = f"raw/tmdb/dt={TODAY.isoformat()}"
    storage.put_bytes(b'{"id": 1}\n', f"{folder}/a.jsonl")
    settle()
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    assert len(_partitions(events)) == 11 and requests

    # The same bytes again: today's file in place, an old day's files under new names (a re-landing by a
    # tool that names files its own way), and filmes.csv in place after a first landing.
    storage.put_bytes(b'{"id": 1}\n', f"{folder}/a.jsonl")
    old = f"raw/tmdb/dt={OLD_DAY}"
    for obj in [o for o in storage.list(old + "/") if not o.key.rsplit("/", 1)[1].startswith("_")]:
        storage.put_bytes(storage.get_bytes(obj.key) or b"", f"{old}/relanded-{obj.key.rsplit('/', 1)[1]}")
        storage.delete([obj.key])
    settle()
    assert daemon.tick() == ([], [])
    assert daemon.tick(dt.datetime.now(dt.UTC).timestamp() + RESCAN_INTERVAL_S) == ([], [])  # the full rescan agrees


def test_a_changed_file_in_a_day_90_days_old_requests_that_day_at_the_rescan(lake, instance):
    storage = lake.storage("raw")
    _old_history(lake)
    settle()
    daemon = Daemon(instance, lake)
    daemon.tick()
    (victim,) = [o.key for o in storage.list(f"raw/tmdb/dt={OLD_DAY}/") if o.key.endswith(".jsonl")]
    storage.put_bytes(b'{"id": 7, "title": "changed"}\n', victim)  # replaced in place
    settle()
    assert daemon.tick() == ([], [])  # an old folder that already existed: not listed before the rescan
    events, requests = daemon.tick(dt.datetime.now(dt.UTC).timestamp() + RESCAN_INTERVAL_S)
    assert _partitions(events) == [OLD_DAY]
    assert _targets(requests) == [("trusted/tmdb", OLD_DAY)]


def test_a_deleted_raw_file_is_reported_with_its_key(lake, instance, tick_log):
    storage = lake.storage("raw")
    folder = f"raw/tmdb/dt={TODAY.isoformat()}"
    storage.put_bytes(b'{"id": 1}\n', f"{folder}/a.jsonl")
    storage.put_bytes(b'{"id": 2}\n', f"{folder}/b.jsonl")
    settle()
    daemon = Daemon(instance, lake, log=tick_log)
    daemon.tick()
    storage.delete([f"{folder}/b.jsonl"])
    events, requests = daemon.tick()
    (warning,) = _warnings(tick_log)
    assert f"{folder}/b.jsonl" in warning and "rebuilt from the 1 left" in warning
    assert _partitions(events) == [TODAY.isoformat()] and events[0].metadata["deleted_files"].value == [f"{folder}/b.jsonl"]
    assert len(requests) == 1

    storage.delete([f"{folder}/a.jsonl"])  # the last data file: nothing to rebuild from
    assert daemon.tick() == ([], [])
    assert f"{folder}/a.jsonl" in _warnings(tick_log)[-1] and "keeps its last version" in _warnings(tick_log)[-1]


# --- event mode, on moto's S3 and SQS ----------------------------------------------------------------


@pytest.fixture
def events(moto_glue):
    """A raw bucket on moto whose object notifications go to an SQS queue, and a lake on it that reads
    them (LAKE_RAW_EVENTS_QUEUE)."""
    options = {"endpoint_url": moto_glue.endpoint_url, "region_name": REGION}
    keys = {
        "aws_access_key_id": DEV_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DEV_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    s3, sqs = boto3.client("s3", **options, **keys), boto3.client("sqs", **options, **keys)
    bucket = f"raw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    url = wire(s3, sqs, bucket, f"q-{bucket}", prefix="lake/raw/")
    lake = LakeResource(root=f"s3://{bucket}/lake", s3_path_style=True, raw_events_queue=url, **options, **keys)
    return SimpleNamespace(lake=lake, s3=s3, sqs=sqs, bucket=bucket, url=url, queue=lake.raw_events())


def _in_queue(events) -> tuple[int, int]:
    """(visible, in flight) messages, as SQS counts them."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = events.sqs.get_queue_attributes(QueueUrl=events.url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


def test_events_request_exactly_the_changed_day_on_the_next_tick(events, instance, listings):
    _old_history(events.lake)
    settle()
    daemon = Daemon(instance, events.lake, queue=events.queue)
    first, _ = daemon.tick()  # the first tick lists everything once: the reconcile
    assert len(_partitions(first)) == 10
    daemon.tick()  # deletes the messages the first tick read

    key = f"lake/raw/tmdb/dt={OLD_DAY}/a new file.jsonl"  # a space: S3 sends it as '+'
    events.s3.put_object(Bucket=events.bucket, Key=key, Body=b'{"id": 500}\n')
    settle()
    listings.clear()
    registered, requests = daemon.tick()
    assert _partitions(registered) == [OLD_DAY] and _targets(requests) == [("trusted/tmdb", OLD_DAY)]
    # No listing of the bucket: one listing of the touched day's folder.
    assert [c["prefix"] for c in listings] == [f"raw/tmdb/dt={OLD_DAY}/"]


def test_identical_bytes_duplicates_and_reordered_events_request_nothing(events, instance):
    storage = events.lake.storage("raw")
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={OLD_DAY}/a.jsonl")
    settle()
    daemon = Daemon(instance, events.lake, queue=events.queue)
    assert _partitions(daemon.tick()[0]) == [OLD_DAY]
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={OLD_DAY}/a.jsonl")  # re-landed as it was
    # A duplicate of a past event, and one out of order (a removal older than the object now there).
    record = {
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": events.bucket}, "object": {"key": f"lake/raw/tmdb/dt%3D{OLD_DAY}/a.jsonl"}},
    }
    events.sqs.send_message(QueueUrl=events.url, MessageBody=json.dumps({"Records": [record]}))
    events.sqs.send_message(
        QueueUrl=events.url, MessageBody=json.dumps({"Records": [{**record, "eventName": "ObjectCreated:Put"}]})
    )
    events.sqs.send_message(QueueUrl=events.url, MessageBody="not an S3 event")
    settle()
    assert daemon.tick() == ([], [])
    assert daemon.tick() == ([], [])
    assert _in_queue(events) == (0, 0)  # all read, and deleted once the tick after committed them


def test_messages_are_deleted_only_after_the_cursor_that_covers_them(events, instance):
    storage = events.lake.storage("raw")
    daemon = Daemon(instance, events.lake, queue=events.queue)
    daemon.tick()  # the first reconcile
    daemon.tick()
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={OLD_DAY}/a.jsonl")
    settle()
    committed = daemon.cursor
    events_seen, _ = daemon.tick()
    assert _partitions(events_seen) == [OLD_DAY] and _in_queue(events) == (0, 1)  # read, in flight
    crashed = daemon.cursor
    daemon.cursor = committed  # the daemon died before saving that tick: its messages are not deleted
    daemon.tick()
    assert _in_queue(events) == (0, 1)
    daemon.cursor = crashed
    daemon.tick()  # the cursor that covers them was committed: now they go
    assert _in_queue(events) == (0, 0) and json.loads(daemon.cursor)["receipts"] == []


def test_a_lost_event_is_caught_by_the_hourly_reconcile(events, instance):
    daemon = Daemon(instance, events.lake, queue=events.queue)
    daemon.tick()
    events.lake.storage("raw").put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={OLD_DAY}/a.jsonl")
    events.sqs.purge_queue(QueueUrl=events.url)  # the event is lost
    settle()
    assert daemon.tick() == ([], [])
    registered, requests = daemon.tick(dt.datetime.now(dt.UTC).timestamp() + RESCAN_INTERVAL_S)
    assert _partitions(registered) == [OLD_DAY] and len(requests) == 1


def test_filmes_csv_by_events_new_then_identical_then_deleted(events, instance, tick_log):
    daemon = Daemon(instance, events.lake, queue=events.queue, log=tick_log)
    daemon.tick()
    key = "lake/raw/filmes/filmes.csv"
    events.s3.put_object(Bucket=events.bucket, Key=key, Body=b"id,titulo\n1,a\n")
    settle()
    registered, requests = daemon.tick()
    assert [(e.asset_key, e.partition) for e in registered] == [(RAW_FILMES, None)]
    assert _targets(requests) == [("trusted/filmes", None)]
    events.s3.put_object(Bucket=events.bucket, Key=key, Body=b"id,titulo\n1,a\n")
    settle()
    assert daemon.tick() == ([], [])
    events.s3.delete_object(Bucket=events.bucket, Key=key)
    assert daemon.tick() == ([], [])
    assert "raw/filmes/filmes.csv" in _warnings(tick_log)[-1]


def test_s3_event_messages_are_parsed_as_aws_sends_them():
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "lake/raw/tmdb/dt%3D2024-01-01/a+b%2Bc.jsonl"}},
            },
            {"eventName": "ObjectRemoved:DeleteMarkerCreated", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}},
            {"eventName": "ObjectRestore:Completed", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}},
        ]
    }
    created, removed = parse(json.dumps(body)) or []
    assert (created.key, created.removed) == ("lake/raw/tmdb/dt=2024-01-01/a b+c.jsonl", False) and removed.removed
    assert parse(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})) is None
    through_sns = {"Type": "Notification", "Message": json.dumps(body)}
    assert len(parse(json.dumps(through_sns)) or []) == 2
    for bad in ["not json", "[]", json.dumps({"Records": [{"s3": {}}]})]:
        with pytest.raises(ValueError):
            parse(bad)


def test_an_old_day_emptied_of_files_is_reported_at_the_rescan(lake, instance, tick_log):
    storage = lake.storage("raw")
    _old_history(lake)
    settle()
    daemon = Daemon(instance, lake, log=tick_log)
    daemon.tick()
    folder = f"raw/tmdb/dt={OLD_DAY}"
    gone = [o.key for o in storage.list(folder + "/") if not o.key.rsplit("/", 1)[1].startswith("_")]
    storage.delete(gone)
    assert daemon.tick() == ([], [])
    assert daemon.tick(dt.datetime.now(dt.UTC).timestamp() + RESCAN_INTERVAL_S) == ([], [])  # nothing to rebuild from
    (warning,) = _warnings(tick_log)
    assert all(key in warning for key in gone) and "keeps its last version" in warning


def test_the_events_queue_is_refused_in_one_line_without_an_s3_raw_zone():
    from lake_assets.defs.settings import LakeSettings

    url = "https://sqs.us-east-1.amazonaws.com/123456789012/lake-raw-events"
    with pytest.raises(ValueError, match=r"^LAKE_RAW_EVENTS_QUEUE='https://sqs.*S3 events need the raw zone on S3"):
        LakeSettings.from_env({"LAKE_RAW_EVENTS_QUEUE": url, "LAKE_ROOT": "./lake"})
    with pytest.raises(ValueError, match=r"^LAKE_RAW_EVENTS_QUEUE='lake-raw-events': an SQS queue URL"):
        LakeSettings.from_env({"LAKE_RAW_EVENTS_QUEUE": "lake-raw-events", "LAKE_ROOT": "s3://b/lake"})
    settings = LakeSettings.from_env({"LAKE_RAW_EVENTS_QUEUE": url, "LAKE_ROOT": "./lake", "LAKE_RAW_ROOT": "s3://raw/lake"})
    assert settings.raw_events_queue == url
    assert LakeSettings.from_env({"LAKE_RAW_EVENTS_QUEUE": ""}).raw_events_queue is None  # empty: off
