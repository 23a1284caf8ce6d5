"""`make run` as a newcomer sees it: its own process, a fresh DAGSTER_HOME and lake, the terminal output
read line by line, the data read back with DuckDB, and the runs found in the instance `make dev` uses."""

import datetime as dt
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from pyiceberg.catalog import load_catalog

from lake_assets.defs import deadline

ROOT = Path(__file__).resolve().parents[1]


def _quickstart(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "LAKE_", "AWS_", "DAGSTER_", "SPARK_REMOTE"))}
    base.update({"DAGSTER_HOME": str(tmp_path / "home"), "LAKE_ROOT": str(tmp_path / "lake"), **env})
    return subprocess.run(
        [sys.executable, "-m", "lake_tools.quickstart"], cwd=ROOT, env=base, capture_output=True, text=True, timeout=600
    )


def _catalog(lake: Path):
    """Plain pyiceberg on the SQLite catalog `make run` creates in the lake (its documented place)."""
    return load_catalog("lake", uri=f"sqlite:///{lake}/_catalog/lake.db", warehouse=lake.as_uri())


def _tmdb_rows_per_day(lake: Path) -> dict[str, int]:
    """Rows of each trusted/tmdb day in the current snapshot, read with plain pyiceberg."""
    days = _catalog(lake).load_table("trusted.tmdb").scan(selected_fields=("dt",)).to_arrow().column("dt").to_pylist()
    return dict(Counter(days))


@pytest.mark.e2e
def test_make_run_reads_like_a_product_and_records_into_the_dev_instance(tmp_path):
    done = _quickstart(tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) < 40 and done.stderr == ""
    progress = [line.split()[0] for line in lines if line.startswith("  ")]
    assert progress == ["raw/filmes_csv", "trusted/filmes", "raw/tmdb_json", "trusted/tmdb"]
    assert "1,998 rows (2 rejected)" in lines[2]
    # A check that did not pass says so on the line, with its severity and the first words of why.
    assert "checks 0/1 passed; contract WARN: Published; 2 rows rejected: " in lines[2]
    (tmdb_line,) = [line for line in lines if line.startswith("  trusted/tmdb")]
    now = dt.datetime.now(dt.UTC)
    if now <= deadline.deadline_of(now.date().isoformat(), "0 9 * * *"):  # the default deadline
        assert "checks 2/2 passed" in tmdb_line
    else:  # today's first publish came after 09:00 UTC: the deadline check says how late
        assert "checks 1/2 passed; published_by_deadline WARN: Published " in tmdb_line and " late, at " in tmdb_line
    (log,) = (tmp_path / "home" / "logs").glob("make-run-*.log")
    assert str(log) in lines[0]
    assert log.read_text().count("RUN_SUCCESS") == 4  # the full event log is in the file, not on the terminal

    assert _catalog(tmp_path / "lake").load_table("trusted.filmes").scan().to_arrow().num_rows == 1998
    assert "TMDB: no TMDB_READ_ACCESS_TOKEN or TMDB_API_KEY is set, so raw/tmdb_json read the bundled offline snapshot" in lines

    # Each trusted asset names its quality report, a file beside its quality log that says what it judged.
    start = lines.index("Quality reports (open in a browser; `make report` prints the latest):")
    reports = dict(line.split() for line in lines[start + 1 : start + 3])
    assert set(reports) == {"trusted/filmes", "trusted/tmdb"}
    for asset, path in reports.items():
        assert path.startswith(str(tmp_path / "lake" / "trusted" / "_quality")) and path.endswith(".html")
        assert f"<h1>Quality report: {asset}</h1>" in open(path, encoding="utf-8").read()

    # The read-back line, run as printed from the project folder by a shell that has no LAKE_* of its own.
    (read_back,) = [line.split(": ", 1)[1] for line in lines if line.startswith("Read it back")]
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "TMDB_"))}
    done = subprocess.run(read_back, shell=True, cwd=ROOT, env=shell_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = dict(re.findall(r"│\s*(\d{4}-\d{2}-\d{2})\s*│\s*(\d+)\s*│", done.stdout))
    assert printed == {day: str(count) for day, count in _tmdb_rows_per_day(tmp_path / "lake").items()}
    # The pyiceberg lines it prints, run as printed by a Python with no LAKE_* or PYICEBERG_* of its own.
    start = next(i for i, line in enumerate(lines) if line.startswith("Iceberg catalog lake (sql: sqlite:///"))
    code = [line.strip() for line in lines[start + 1 : start + 5]]
    assert code[0] == "from pyiceberg.catalog import load_catalog"
    program = "\n".join([*code[:2], f"print({code[2]}.num_rows, {code[3]}.num_rows)"])
    clean = {k: v for k, v in shell_env.items() if not k.startswith("PYICEBERG_")}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert done.stdout.split() == [str(_tmdb_rows_per_day(tmp_path / "lake")[today]), "1998"]
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 4 and {run.status for run in runs} == {DagsterRunStatus.SUCCESS}


def test_a_bad_setting_is_one_line_not_a_traceback(tmp_path):
    done = _quickstart(tmp_path, LAKE_ROOT="http://example.com/lake")
    assert done.returncode == 1
    assert "a lake root is a local folder or s3://bucket/prefix" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and len(done.stdout.splitlines()) <= 3
