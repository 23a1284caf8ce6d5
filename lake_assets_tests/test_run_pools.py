"""Two `dagster asset materialize` runs of one trusted/tmdb partition at once, sharing an instance with
the project's dagster.yaml: the asset's pool makes the second wait for the first, both succeed, and
the partition reads back whole (pyarrow over the files the manifest names)."""

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from lake_assets.defs.resources.lake import LakeResource
from lake_assets_tests.readback import Lake
from lake_tools.processes import start_process, stop_process_group, wait_until_ready
from lake_tools.seed_history import seed

ROOT = Path(__file__).resolve().parents[1]
DAY = "2024-01-15"
POOL = "trusted_tmdb"
STEP = "trusted__tmdb"


def _materialize(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "LAKE_", "AWS_", "DAGSTER_", "SPARK_REMOTE"))}
    env.update(
        DAGSTER_HOME=str(tmp_path / "home"),
        LAKE_ROOT=str(tmp_path / "lake"),
        TMDB_START_DATE="2024-01-01",
        SPARK_LOCAL_IP="127.0.0.1",
    )
    log = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "lake_assets.defs.definitions"]
    process = start_process(
        [*command, "--select", "trusted/tmdb", "--partition", DAY],
        output=log,
        cwd=tmp_path,  # no dagster.yaml here: the instance's copy in DAGSTER_HOME is the one used
        env=env,
    )
    return process, log


def _step_events(instance: DagsterInstance) -> dict[str, dict[str, list]]:
    """{run id: {"blocked": [timestamps], "start": [...], "success": [...]}} for the trusted/tmdb step."""
    found = {}
    for run in instance.get_runs():
        events = found.setdefault(run.run_id, {"blocked": [], "start": [], "success": []})
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or entry.step_key != STEP:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and f"blocked by limit for pool {POOL}" in (event.message or ""):
                events["blocked"].append(entry.timestamp)
            elif event.event_type == DagsterEventType.STEP_START:
                events["start"].append(entry.timestamp)
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                events["success"].append(entry.timestamp)
    return found


@pytest.mark.e2e
def test_two_cli_runs_of_one_partition_wait_for_each_other_and_the_partition_is_whole(tmp_path):
    (tmp_path / "home").mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "home" / "dagster.yaml")
    landed = seed(LakeResource(root=str(tmp_path / "lake")), dt.date.fromisoformat(DAY), 1)[DAY]

    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        # Hold the pool's one slot (as a run of the pool would), so that both runs must queue behind
        # it at once, whatever their start-up times; then let them go and race for it.
        storage = instance.event_log_storage
        assert storage.initialize_concurrency_limit_to_default(POOL)
        assert storage.get_concurrency_info(POOL).slot_count == 1  # default_limit from dagster.yaml
        assert storage.claim_concurrency_slot(POOL, "test-holder", "holder").is_claimed
        runs = [_materialize(tmp_path, name) for name in ("first", "second")]

        def both_blocked() -> dict | None:
            events = _step_events(instance)
            return events if len(events) == 2 and all(e["blocked"] for e in events.values()) else None

        def ended() -> str | None:
            logs = [log for process, log in runs if process.poll() is not None]
            return f"a run ended while the pool was held: {logs[0].read_text()}" if logs else None

        try:
            try:
                events = wait_until_ready(
                    "both runs to wait for the pool",
                    both_blocked,
                    deadline=time.monotonic() + 240,
                    exited=ended,
                    every=1,
                    retry_on=(),
                )
            except TimeoutError:
                pytest.fail(f"the runs did not both wait for the pool: {_step_events(instance)}")
            assert not any(e["start"] for e in events.values())
            storage.free_concurrency_slots_for_run("test-holder")

            for process, log in runs:
                assert process.wait(timeout=420) == 0, log.read_text()[-4000:]
        finally:
            for process, _ in runs:
                if process.poll() is None:
                    stop_process_group(process)
        # One after the other: the step that started second started after the first succeeded.
        windows = sorted((e["start"][0], e["success"][0]) for e in _step_events(instance).values())
        assert len(windows) == 2 and windows[0][1] <= windows[1][0], windows

    # The day holds exactly the second commit's files, with every landed movie, read with pyiceberg.
    lake = LakeResource(root=str(tmp_path / "lake"))
    read = Lake(lake)
    table = read.catalog().load_table("trusted.tmdb")
    commits = [s.summary.get("lake.run-id") for s in table.snapshots() if s.summary.operation.value == "append"]
    assert len(commits) == 2 and commits[-1] == table.current_snapshot().summary["lake.run-id"]  # the second replaced the first
    keys = read.current_keys(f"trusted/tmdb/dt={DAY}/")
    assert len({key.rsplit("/", 1)[0] for key in keys}) == 1  # one write's folder
    ids = read.table(f"trusted/tmdb/dt={DAY}/").column("tmdb_id").to_pylist()
    rejected = read.table(f"trusted/tmdb/dt={DAY}/", rejected=True).num_rows
    assert len(ids) == len(set(ids)) and len(ids) + rejected == landed
