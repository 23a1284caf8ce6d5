"""`make seed-history` as a user runs it: the days it lands, read back from the files, and next steps
that are true for the environment it ran in."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from lake_tools.devserver import PROJECT_DIR

ROOT = Path(__file__).resolve().parents[1]


def _seed_history(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "LAKE_", "AWS_", "DAGSTER_", "SPARK_REMOTE"))}
    base.update({"LAKE_ROOT": str(tmp_path / "lake"), **env})
    return subprocess.run(
        [sys.executable, "-m", "lake_tools.seed_history", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def _landed_records(lake: Path) -> dict[str, int]:
    """Records per day, read from the landed JSON Lines files themselves."""
    counts = {}
    for folder in sorted((lake / "raw" / "tmdb").glob("dt=*")):
        lines = [line for part in folder.glob("part-*.jsonl") for line in part.read_text().splitlines() if line.strip()]
        assert all(json.loads(line)["id"] for line in lines)
        counts[folder.name.removeprefix("dt=")] = len(lines)
    return counts


def test_history_before_the_partitions_lands_and_the_hints_say_how_to_see_it(tmp_path):
    done = _seed_history(tmp_path, "--start", "2024-01-01", "--days", "3", SPARK_REMOTE="sc://127.0.0.1:15002")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    landed = _landed_records(tmp_path / "lake")
    assert list(landed) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [f"  dt={day}  {count:>4} records" for day, count in landed.items()] == lines[1:4]

    steps = "\n".join(lines[4:])
    assert "Deployment > Reload" in steps and "daily partitions start at 2024-01-01" in steps
    assert "raw_arrivals_sensor (running by default with make dev)" in steps and "turn on" not in steps
    assert "partitions 2024-01-01...2024-01-03" in steps
    (command,) = [line for line in lines if "asset materialize" in line]
    words = shlex.split(command)
    settings = dict(word.split("=", 1) for word in words[: words.index(".venv/bin/dagster")])
    # The instance of `make dev`, and the Connect server this shell points runs at.
    assert settings == {"DAGSTER_HOME": str(PROJECT_DIR / ".dagster_home"), "SPARK_REMOTE": "sc://127.0.0.1:15002"}
    assert (ROOT / ".venv" / "bin" / "dagster").is_file()
    assert words[words.index(".venv/bin/dagster") + 1 :] == [
        "asset",
        "materialize",
        "-m",
        "lake_assets.defs.definitions",
        "--select",
        "trusted/tmdb",
        "--partition-range",
        "2024-01-01...2024-01-03",
    ]


def test_days_already_in_the_partitions_need_no_reload_and_a_stopped_sensor_is_named(tmp_path):
    first = _seed_history(tmp_path, "--start", "2024-01-01", "--days", "1")
    assert first.returncode == 0, first.stderr
    done = _seed_history(tmp_path, "--start", "2024-01-02", "--days", "2", LAKE_RAW_SENSOR="0")
    assert done.returncode == 0, done.stderr
    assert list(_landed_records(tmp_path / "lake")) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert "Reload" not in done.stdout and "SPARK_REMOTE" not in done.stdout
    assert "once turned on under Automation" in done.stdout


def test_a_later_start_date_is_named_and_future_days_are_refused(tmp_path):
    done = _seed_history(tmp_path, "--start", "2024-01-01", "--days", "1", TMDB_START_DATE="2024-06-01")
    assert done.returncode == 0, done.stderr
    assert "TMDB_START_DATE=2024-06-01 starts the partitions after 2024-01-01: unset it" in done.stdout

    refused = _seed_history(tmp_path, "--start", "2999-01-01", "--days", "1")
    assert refused.returncode == 2 and "after today" in refused.stderr
    assert list(_landed_records(tmp_path / "lake")) == ["2024-01-01"]
