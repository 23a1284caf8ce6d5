import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lake_assets.defs.partitions import daily_partitions, first_partition_date
from lake_assets.lib.partitions import DtLayout, dt_path, partition_key_from_path
from lake_assets.lib.registry import RAW_TMDB


def test_hive_layout_is_one_segment():
    assert dt_path("2018-03-31") == "dt=2018-03-31"


def test_seed_layout_reproduces_the_original_design():
    assert dt_path("2018-03-31", DtLayout.SEED) == "dt=2018/03/31"


@pytest.mark.parametrize("layout", list(DtLayout))
def test_partition_key_round_trips(layout):
    key = "2024-02-29"
    assert partition_key_from_path(f"{dt_path(key, layout)}/part-0.jsonl", layout) == key


@pytest.mark.parametrize("path", ["dt=2024-02-29", "dt=2024-2-29/x", "other/x.jsonl", "dt=2024/02/29/x"])
def test_partition_key_from_foreign_paths_is_none(path):
    assert partition_key_from_path(path) is None


def test_daily_partitions_include_today():
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert today in daily_partitions.get_partition_keys()


@pytest.mark.parametrize("layout", list(DtLayout))
def test_the_spark_inverse_reads_the_day_of_a_file_from_its_full_path(spark, layout):
    from pyspark.sql import functions as F

    from lake_assets.lib.transforms.columns import partition_key_column

    paths = [
        f"file:/tmp/x/raw-in-9/raw/tmdb/{dt_path('2024-02-29', layout)}/part-0.jsonl",
        f"s3a://bucket/lake/raw/tmdb/{dt_path('2023-12-31', layout)}/notes.txt",
        "file:/tmp/x/raw/tmdb/loose.jsonl",
    ]
    rows = spark.createDataFrame([(p,) for p in paths], "path string").select(
        partition_key_column(F.col("path"), layout).alias("key")
    )
    assert [r["key"] for r in rows.collect()] == ["2024-02-29", "2023-12-31", None]


def _lake_env(monkeypatch, root: Path) -> None:
    """The lake at `root` as the code location would see it, with no TMDB_START_DATE."""
    for name in [name for name in os.environ if name.startswith(("LAKE_", "AWS_"))] + ["TMDB_START_DATE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKE_ROOT", str(root))


def _land(root: Path, folder: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "part-0.jsonl").write_text('{"id": 1}\n')


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_a_configured_start_date_wins(monkeypatch, tmp_path):
    _lake_env(monkeypatch, tmp_path / "lake")
    _land(tmp_path / "lake", "raw/tmdb/dt=2024-03-01")
    monkeypatch.setenv("TMDB_START_DATE", "2023-05-01")
    assert first_partition_date() == "2023-05-01"


@pytest.mark.parametrize("layout", list(DtLayout))
def test_history_starts_at_the_earliest_landed_day(monkeypatch, tmp_path, layout):
    root = tmp_path / "lake"
    _lake_env(monkeypatch, root)
    monkeypatch.setenv("LAKE_DT_LAYOUT", layout.value)
    for day in ("2024-03-02", "2024-02-28", "2025-01-01"):
        _land(root, f"raw/tmdb/{dt_path(day, layout)}")
    (root / f"raw/tmdb/{dt_path('2023-01-01', layout)}").mkdir(parents=True)  # empty: nothing landed that day
    _land(root, "raw/tmdb/notes")
    _land(root, "raw/filmes/dt=2020-01-01")  # another table's folders do not count
    assert first_partition_date() == "2024-02-28"


def test_the_raw_zone_root_is_the_one_listed(monkeypatch, tmp_path):
    _lake_env(monkeypatch, tmp_path / "lake")
    monkeypatch.setenv("LAKE_RAW_ROOT", str(tmp_path / "raw-zone"))
    _land(tmp_path / "lake", "raw/tmdb/dt=2024-01-01")
    _land(tmp_path / "raw-zone", "raw/tmdb/dt=2024-06-01")
    assert first_partition_date() == "2024-06-01"


def test_a_fresh_lake_starts_today(monkeypatch, tmp_path):
    _lake_env(monkeypatch, tmp_path / "lake")
    assert first_partition_date() == _today()


def test_an_unreachable_lake_starts_today_with_a_one_line_warning(monkeypatch, tmp_path, caplog):
    _lake_env(monkeypatch, tmp_path / "lake")
    monkeypatch.setenv("LAKE_ROOT", "s3://no-such-bucket/lake")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with caplog.at_level(logging.WARNING, logger="lake_assets.lib.partitions"):
        assert first_partition_date() == _today()
    (record,) = caplog.records
    assert f"start today ({_today()})" in record.message and "\n" not in record.message


def test_the_partitions_the_code_location_loads_start_at_the_lake_s_first_day(tmp_path):
    """In a process of its own, entered through the catalog module as `python -m lake_assets.cli.catalog`
    is: the start is read once, when the definitions load, without an import cycle."""
    _land(tmp_path / "lake", "raw/tmdb/dt=2025-07-14")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "TMDB_"))}
    code = (
        "import lake_assets.cli.catalog\n"
        "from lake_assets.defs.assets import raw, trusted\n"
        "print(raw.tmdb_json.partitions_def.get_first_partition_key(), trusted.tmdb.partitions_def is raw.tmdb_json.partitions_def)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "LAKE_ROOT": str(tmp_path / "lake")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2025-07-14", "True"]


def test_the_raw_tmdb_folder_is_the_raw_asset_s():
    from lake_assets.defs.assets import raw
    from lake_assets.defs.io_managers.paths import lake_path

    assert lake_path(raw.tmdb_json) == RAW_TMDB.path
