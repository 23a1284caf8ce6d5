import pytest

from lake_assets.partitions import DtLayout, daily_partitions, dt_path, partition_key_from_path


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
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert today in daily_partitions.get_partition_keys()


@pytest.mark.parametrize("layout", list(DtLayout))
def test_the_spark_inverse_reads_the_day_of_a_file_from_its_full_path(spark, layout):
    from pyspark.sql import functions as F

    from lake_assets.partitions import partition_key_column

    paths = [
        f"file:/tmp/x/raw-in-9/raw/tmdb/{dt_path('2024-02-29', layout)}/part-0.jsonl",
        f"s3a://bucket/lake/raw/tmdb/{dt_path('2023-12-31', layout)}/notes.txt",
        "file:/tmp/x/raw/tmdb/loose.jsonl",
    ]
    rows = spark.createDataFrame([(p,) for p in paths], "path string").select(
        partition_key_column(F.col("path"), layout).alias("key")
    )
    assert [r["key"] for r in rows.collect()] == ["2024-02-29", "2023-12-31", None]
