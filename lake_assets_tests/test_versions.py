"""Data versions from raw bytes, the trusted assets' code versions, and the automation that rebuilds
stale days within a budget. Raw partitions are materialised by the real raw assets into a local lake;
the trusted asset, which needs Spark, is stood in for by an asset of the same key that records what
the real one records (its code version, and the raw data version each day read). Versions are checked
against hashes computed here from the files' bytes, not through the lake code."""

import datetime as dt
import hashlib
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    BackfillPolicy,
    MaterializeResult,
    Nothing,
    asset,
    materialize,
)
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from lake_assets.defs import automation, versions
from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.automation import RAW_TMDB, TRUSTED_TMDB
from lake_assets.defs.definitions import defs
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.resources.tmdb import TMDBResource
from lake_assets.lib import registry
from lake_assets.lib.raw_zone import json_lines_version, land_json_lines
from lake_assets_tests.test_automation import Ticks
from lake_tools.seed_history import seed

RECORDS = [{"id": i, "title": f"movie {i}"} for i in range(1, 41)]
START = dt.date(2024, 1, 1)


def version_of_bytes(blobs) -> str:
    """The documented rule, computed here: sha256 of the data files' MD5s, sorted."""
    return hashlib.sha256("\n".join(sorted(hashlib.md5(b).hexdigest() for b in blobs)).encode()).hexdigest()[:24]


def version_on_disk(root: Path, day: str) -> str:
    return version_of_bytes(p.read_bytes() for p in (root / f"raw/tmdb/dt={day}").glob("*") if not p.name.startswith("_"))


@pytest.fixture
def lake(tmp_path) -> LakeResource:
    return LakeResource(root=str(tmp_path / "lake"))


def _resources(lake):
    return {"lake": lake, "tmdb": TMDBResource(), "raw_io_manager": RawZoneIOManager(lake=lake)}


def _raw_version(instance, key: AssetKey, partition: str | None) -> str | None:
    (record,) = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return record.asset_materialization.tags.get("dagster/data_version")


# --- code versions ---------------------------------------------------------------------------------


def test_each_trusted_code_version_is_declared_with_the_digest_of_its_code():
    for key, declared in versions.CODE_VERSIONS.items():
        name = "/".join(key)
        current = versions.code_digest(declared.modules)
        assert current == declared.digest, (
            f"The code of {name} changed (digest {current}, recorded {declared.digest}). If its output changes, bump its "
            f"version in lake_assets/defs/versions.py (every materialised day becomes stale and is rebuilt, "
            f"{automation.SETTINGS.stale_days_per_tick} a tick); either way, record digest {current!r} there."
        )
    graph = defs.resolve_asset_graph()
    assert graph.get(TRUSTED_TMDB).code_version == versions.code_version(registry.TRUSTED_TMDB)
    assert graph.get(AssetKey(registry.TRUSTED_FILMES.key)).code_version == versions.code_version(registry.TRUSTED_FILMES)


def test_the_digest_ignores_comments_and_docstrings_but_not_code(tmp_path, monkeypatch):
    package = tmp_path / "digest_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "transform.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def digest_of(source: str) -> str:
        module.write_text(textwrap.dedent(source))
        sys.modules.pop("digest_probe.transform", None)
        return versions.code_digest(("digest_probe.transform",))

    base = digest_of('"""A transform."""\ndef f(x):\n    return x + 1\n')
    assert digest_of('"""Reworded."""\n# a comment\ndef f(x):\n    """Adds one."""\n    return x + 1  # why\n') == base
    assert digest_of('"""A transform."""\ndef f(x):\n    return x + 2\n') != base


# --- data versions of the raw assets ------------------------------------------------------------------


def test_a_collection_run_records_the_version_of_the_bytes_it_landed(lake, instance, tmp_path):
    assert materialize(
        [raw.tmdb_json],
        partition_key="2024-02-01",
        instance=instance,
        resources=_resources(lake),
        run_config={"ops": {"raw__tmdb_json": {"config": {"allow_past_date": True}}}},
    ).success
    assert _raw_version(instance, RAW_TMDB, "2024-02-01") == version_on_disk(tmp_path / "lake", "2024-02-01")


def test_landed_days_registered_by_a_run_carry_the_version_of_their_bytes(lake, instance, tmp_path):
    seed(lake, START, 3, RECORDS)
    result = materialize(
        [raw.tmdb_json],
        instance=instance,
        resources=_resources(lake),
        tags={"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-03"},
    )
    assert result.success
    for day in ["2024-01-01", "2024-01-02", "2024-01-03"]:
        assert _raw_version(instance, RAW_TMDB, day) == version_on_disk(tmp_path / "lake", day)


def test_the_filmes_csv_run_records_the_version_of_its_bytes(lake, instance, tmp_path):
    assert materialize([raw.filmes_csv], instance=instance, resources=_resources(lake)).success
    landed = (tmp_path / "lake/raw/filmes/filmes.csv").read_bytes()
    assert _raw_version(instance, AssetKey(registry.RAW_FILMES.key), None) == version_of_bytes([landed])


def test_a_version_depends_on_the_bytes_not_on_file_names_or_order(lake):
    storage = lake.storage("raw")
    first = land_json_lines(storage, "raw/tmdb/dt=2024-01-01", RECORDS)
    again = land_json_lines(storage, "raw/tmdb/dt=2024-01-02", RECORDS)
    assert [k.rsplit("/", 1)[1] for k in first.keys] != [k.rsplit("/", 1)[1] for k in again.keys]  # new write ids
    root = Path(lake.root)
    assert version_on_disk(root, "2024-01-01") == version_on_disk(root, "2024-01-02") == json_lines_version(RECORDS)
    assert json_lines_version(RECORDS[:-1]) != json_lines_version(RECORDS)


# --- stale days, and the budget ---------------------------------------------------------------------


def _ui_staleness(instance):
    """Dagster's stale-status resolver, which the UI's staleness and its causes come from."""
    return get_stale_status_resolver(instance, list(defs.assets or []))


def _stale_as_the_ui_says(instance, days: list[str]) -> dict[str, str]:
    """versions.stale_days, after checking it names exactly the days Dagster's UI marks stale."""
    why = versions.stale_days(instance, TRUSTED_TMDB, RAW_TMDB, versions.code_version(registry.TRUSTED_TMDB))
    resolver = _ui_staleness(instance)
    assert set(why) == {day for day in days if resolver.get_status(TRUSTED_TMDB, day) == StaleStatus.STALE}
    return why


def _trusted_stand_in(code_version: str, lake_root: Path):
    @asset(
        key=TRUSTED_TMDB,
        ins={"raw_tmdb": AssetIn(key=RAW_TMDB, dagster_type=Nothing)},
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        code_version=code_version,
    )
    def stand_in(context: AssetExecutionContext):  # what the real asset records, without Spark
        for day in context.partition_keys:
            context.add_asset_metadata({versions.RAW_DATA_VERSION: version_on_disk(lake_root, day)}, partition_key=day)
        return MaterializeResult()

    return stand_in


def _build(instance, code_version, root, first: str, last: str):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    assert materialize([_trusted_stand_in(code_version, root)], instance=instance, tags=tags).success


def test_a_code_change_rebuilds_stale_days_newest_first_within_the_budget(lake, instance, tmp_path):
    days = 40
    budget = automation.SETTINGS.stale_days_per_tick
    root = tmp_path / "lake"
    seed(lake, START, days, RECORDS)
    last = (START + dt.timedelta(days=days - 1)).isoformat()
    range_tags = {"dagster/asset_partition_range_start": START.isoformat(), "dagster/asset_partition_range_end": last}
    assert materialize([raw.tmdb_json], instance=instance, resources=_resources(lake), tags=range_tags).success
    _build(instance, "0-before", root, START.isoformat(), last)  # built by an older code version

    # What the UI shows: Dagster's own stale status, with the cause.
    resolver = _ui_staleness(instance)
    assert resolver.get_status(TRUSTED_TMDB, last) == StaleStatus.STALE
    assert [c.reason for c in resolver.get_stale_causes(TRUSTED_TMDB, last)] == ["has a new code version"]

    ticks = Ticks(instance, definitions=defs, ignore=[RAW_TMDB])
    now = dt.datetime.now(dt.UTC)
    all_days = [(START + dt.timedelta(days=n)).isoformat() for n in range(days)]
    assert len(_stale_as_the_ui_says(instance, all_days)) == days
    first_tick = ticks.at(now)[TRUSTED_TMDB.to_user_string()]
    assert first_tick == all_days[-budget:]  # the newest `budget` days, no more
    _build(instance, versions.code_version(registry.TRUSTED_TMDB), root, first_tick[0], first_tick[-1])
    fresh = _ui_staleness(instance)  # a resolver caches what it read
    assert fresh.get_status(TRUSTED_TMDB, last) == StaleStatus.FRESH
    second_tick = ticks.at(now + dt.timedelta(minutes=1))[TRUSTED_TMDB.to_user_string()]
    assert second_tick == all_days[: days - budget]
    _build(instance, versions.code_version(registry.TRUSTED_TMDB), root, second_tick[0], second_tick[-1])
    assert TRUSTED_TMDB.to_user_string() not in ticks.at(now + dt.timedelta(minutes=2))


def test_a_day_whose_raw_bytes_changed_is_stale_and_rebuilt_alone(lake, instance, tmp_path):
    root = tmp_path / "lake"
    seed(lake, START, 5, RECORDS)
    range_tags = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-05"}
    assert materialize([raw.tmdb_json], instance=instance, resources=_resources(lake), tags=range_tags).success
    _build(instance, versions.code_version(registry.TRUSTED_TMDB), root, "2024-01-01", "2024-01-05")
    ticks = Ticks(instance, definitions=defs, ignore=[RAW_TMDB])
    now = dt.datetime.now(dt.UTC)
    assert TRUSTED_TMDB.to_user_string() not in ticks.at(now)

    # 2024-01-02 gets another file, and is registered again (as the raw-arrival sensor does); 01-04 is
    # registered again with the same bytes, which is no change.
    lake.storage("raw").put_bytes(b'{"id": 99, "title": "late"}\n', "raw/tmdb/dt=2024-01-02/late.jsonl")
    assert materialize([raw.tmdb_json], partition_key="2024-01-02", instance=instance, resources=_resources(lake)).success
    assert materialize([raw.tmdb_json], partition_key="2024-01-04", instance=instance, resources=_resources(lake)).success

    resolver = _ui_staleness(instance)
    assert resolver.get_status(TRUSTED_TMDB, "2024-01-02") == StaleStatus.STALE
    assert [c.reason for c in resolver.get_stale_causes(TRUSTED_TMDB, "2024-01-02")] == ["has a new dependency data version"]
    assert resolver.get_status(TRUSTED_TMDB, "2024-01-04") == StaleStatus.FRESH
    why = _stale_as_the_ui_says(instance, [f"2024-01-0{n}" for n in range(1, 6)])
    assert list(why) == ["2024-01-02"] and "raw/tmdb_json has a new data version" in why["2024-01-02"]
    assert ticks.at(now + dt.timedelta(minutes=1))[TRUSTED_TMDB.to_user_string()] == ["2024-01-02"]


def test_a_day_built_before_its_raw_day_was_registered_is_stale_for_the_ui_and_the_automation(lake, instance, tmp_path):
    seed(lake, START, 3, RECORDS)
    # Another day of the raw asset was registered before: the trusted run's input pointer is that event.
    assert materialize([raw.tmdb_json], partition_key="2024-01-03", instance=instance, resources=_resources(lake)).success
    _build(instance, versions.code_version(registry.TRUSTED_TMDB), tmp_path / "lake", "2024-01-01", "2024-01-02")
    assert _stale_as_the_ui_says(instance, ["2024-01-01", "2024-01-02"]) == {}
    assert materialize([raw.tmdb_json], partition_key="2024-01-02", instance=instance, resources=_resources(lake)).success
    assert list(_stale_as_the_ui_says(instance, ["2024-01-01", "2024-01-02"])) == ["2024-01-02"]


def test_the_real_trusted_assets_declare_the_code_versions():
    assert trusted.tmdb.code_versions_by_key[TRUSTED_TMDB] == versions.code_version(registry.TRUSTED_TMDB)
