"""The tables' Dagster jobs, run in process on a local lake: rollback records what readers now see,
and maintenance reports what it freed. The tables are read back with plain pyiceberg and pyarrow."""

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetKey, DagsterInstance

from lake_assets.defs.resources import CatalogResource, LakeResource, SparkResource
from lake_assets.defs.table_jobs import table_maintenance, table_rollback
from lake_assets.lib.tables import iceberg
from lake_assets_tests.readback import Lake

DAY, OTHER = "2024-03-01", "2024-03-02"


def _commit(lake: LakeResource, write: str, rows: dict[str, int]) -> int:
    """One commit of `rows` per day, files written by pyarrow into a write folder of their own."""
    storage = lake.storage("trusted")
    keys = []
    for day, count in rows.items():
        key = f"trusted/tmdb/dt={day}/{write}/part-0.parquet"
        path = storage.root / key
        path.parent.mkdir(parents=True)
        pq.write_table(
            pa.table({"tmdb_id": pa.array(range(count), pa.int64()), "write": [write] * count, "dt": [day] * count}), path
        )
        keys.append(key)
    schema = pq.read_schema(storage.root / keys[0])
    return iceberg.replace(lake.iceberg_catalog(), storage, "trusted/tmdb", schema, keys, list(rows), "dt", run_id=write)


def _resources(lake):
    return {"lake": lake, "spark": SparkResource(), "catalog": CatalogResource()}


def test_rolling_one_day_back_is_a_new_commit_recorded_as_a_materialisation(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    first = _commit(lake, "w1", {DAY: 5, OTHER: 7})
    _commit(lake, "w2", {DAY: 9, OTHER: 11})
    read = Lake(lake)
    history = len(read.catalog().load_table("trusted.tmdb").snapshots())

    with DagsterInstance.ephemeral() as instance:
        config = {"ops": {"rollback_table": {"config": {"table": "trusted/tmdb", "snapshot_id": str(first), "dt": DAY}}}}
        result = table_rollback.execute_in_process(run_config=config, resources=_resources(lake), instance=instance)
        assert result.success
        (event,) = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        materialisation = event.event_specific_data.materialization
        assert materialisation.asset_key == AssetKey(["trusted", "tmdb"]) and materialisation.partition == DAY
        assert materialisation.metadata["rolled_back_to"].value == str(first)
        assert materialisation.metadata["dagster/row_count"].value == 5

    # The day reads the first write's rows again, the other day keeps the second's.
    assert read.table(f"trusted/tmdb/dt={DAY}/").column("write").to_pylist() == ["w1"] * 5
    assert read.table(f"trusted/tmdb/dt={OTHER}/").column("write").to_pylist() == ["w2"] * 11
    assert read.table(f"trusted/tmdb/dt={DAY}/").equals(read.table(f"trusted/tmdb/dt={DAY}/", snapshot_id=first))
    assert len(read.catalog().load_table("trusted.tmdb").snapshots()) > history  # history only grows


def test_a_rollback_to_a_snapshot_that_does_not_exist_fails_in_one_line(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    _commit(lake, "w1", {DAY: 5})
    config = {"ops": {"rollback_table": {"config": {"table": "trusted/tmdb", "snapshot_id": "42"}}}}
    result = table_rollback.execute_in_process(run_config=config, resources=_resources(lake), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "no snapshot 42" in message and "\n" not in message.strip()


def test_maintenance_expires_old_snapshots_and_deletes_only_their_files(tmp_path, monkeypatch):
    lake = LakeResource(root=str(tmp_path / "lake"))
    for n in range(14):
        _commit(lake, f"w{n}", {DAY: n + 1})
    storage = lake.storage("trusted")
    # Age every file past the grace period, and make "now" later than the retention.
    old = time.time() - 3 * 3600
    for path in (tmp_path / "lake" / "trusted").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    # A retention that ends tomorrow: every snapshot but the last ten is old enough to expire.
    monkeypatch.setattr("lake_assets.defs.table_jobs.SETTINGS", _settings(retention_days=-1, kept=10))
    read = Lake(lake)
    before = read.table(f"trusted/tmdb/dt={DAY}/")

    with DagsterInstance.ephemeral() as instance:
        result = table_maintenance.execute_in_process(resources=_resources(lake), instance=instance)
        assert result.success
        observations = [
            e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"
        ]
    (observed,) = [o for o in observations if o.asset_key == AssetKey(["trusted", "tmdb"])]
    assert observed.metadata["files_deleted"].value > 0 and observed.metadata["bytes_freed"].value > 0

    table = read.catalog().load_table("trusted.tmdb")
    assert len(table.snapshots()) == 10
    named = {
        storage.key_of(task.file.file_path)
        for s in table.snapshots()
        for task in table.scan(snapshot_id=s.snapshot_id).plan_files()
    }
    on_disk = {o.key for o in storage.list("trusted/tmdb/dt=") if o.key.endswith(".parquet")}
    assert on_disk == named  # what retention kept is all there, and nothing else
    assert read.table(f"trusted/tmdb/dt={DAY}/").equals(before)


def _settings(retention_days: float, kept: int):
    from lake_assets.defs.automation import SETTINGS

    return SETTINGS.model_copy(update={"snapshot_retention_days": retention_days, "snapshots_kept": kept})
