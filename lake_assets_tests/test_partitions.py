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
