"""`make run`: materialise the four assets for today's partition, one line per asset, and say where
the data went.

The runs are recorded in the Dagster instance that `make dev` uses (`DAGSTER_HOME`, by default
`.dagster_home/`), so the UI shows what this built. Dagster's event log, Spark's output and any
warnings go to a log file whose path is printed; the terminal gets a progress line per asset, a
summary table, and on failure the one-line cause. With no TMDB credentials in the environment the
collector reads the bundled offline snapshot, so this works on a machine without internet.
"""

import datetime as dt
import os
import re
import sys
import time
import traceback
from pathlib import Path

from lake_tools.devserver import PROJECT_DIR, prepare_dagster_home
from lake_tools.processes import output_to

READ_BACK_SQL = "select dt, count(*) as movies from tmdb group by dt order by dt"


def main() -> int:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster_home")))
    prepare_dagster_home(home)
    log_path = home / "logs" / f"make-run-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    say = _terminal()
    summary, failure, read_back, tables = [], None, None, []
    with output_to(log_path):
        try:
            # Imported inside the redirect: whatever importing Dagster and Spark prints goes to the log.
            from dagster import DagsterInstance

            from lake_assets.defs.definitions import defs, resources_from_env
            from lake_assets.lib.storage import is_s3_root
            from lake_assets.lib.tables.catalog import describe, pyiceberg_lines
            from lake_tools.duckdb_lake import read_back_command

            resources = resources_from_env()
            tables = [f"Iceberg catalog {describe(resources['lake'])}:", *pyiceberg_lines(resources["lake"], today)]
            if not is_s3_root(resources["lake"].root_of("trusted")):  # `make run-s3` prints its own hint
                read_back = read_back_command(READ_BACK_SQL)
            say(f"lake_assets: today's partition ({today}) into {resources['lake'].root}; full event log: {log_path}")
            instance = DagsterInstance.get()
            for key, partition in (
                ("raw/filmes_csv", None),
                ("trusted/filmes", None),
                ("raw/tmdb_json", today),
                ("trusted/tmdb", today),
            ):
                started = time.monotonic()
                result = _materialize(defs, key, partition, resources, instance)
                seconds = time.monotonic() - started
                if not result.success:
                    failure = f"{key} failed after {seconds:.1f} s: {_cause(result)}"
                    say(f"  {key:<16} FAILED  ({seconds:.1f} s)")
                    break
                row = _row(result, key)
                summary.append(row)
                checked = _checks_text(result.get_asset_check_evaluations())
                say(f"  {key:<16} {_rows_text(row):<26} {seconds:5.1f} s{checked}")
        except Exception as error:  # a setting the environment got wrong: one line here, the traceback in the log
            traceback.print_exc()
            from lake_assets.lib.errors import one_line

            failure = one_line(error)
    if failure:
        say(f"\n{failure}\nThe full event log: {log_path}")
        return 1
    say(f"\n{'asset':<16} {'rows':>8} {'rejected':>9}  path")
    for row in summary:
        say(f"{row['asset']:<16} {row['rows']:>8} {row['rejected']:>9}  {row['path']}")
    for row in summary:
        for registered in row["catalog"]:
            say(registered)
    if any(row["source"] == "offline-snapshot" for row in summary):
        say("\nTMDB: no TMDB_READ_ACCESS_TOKEN or TMDB_API_KEY is set, so raw/tmdb_json read the bundled offline snapshot")
    reports = [f"{row['asset']:<16} {row['report']}" for row in summary if row["report"]]
    if reports:
        say("\nQuality reports (open in a browser; `make report` prints the latest):\n" + "\n".join(reports))
    if read_back:
        say(f"\nRead it back (from the project folder): {read_back}")
    say(f"\n{tables[0]} read the tables with plain pyiceberg (`.venv/bin/python`):")
    for line in tables[1:]:
        say(line)
    say("See the runs in the UI: make dev, then http://127.0.0.1:3000")
    return 0


def _materialize(defs, key: str, partition: str | None, resources: dict, instance):
    from dagster import AssetKey, AssetSelection, materialize

    # One run per asset, so each gets its own progress line; the selection includes its checks.
    return materialize(
        defs.assets,
        selection=AssetSelection.assets(AssetKey.from_user_string(key)),
        resources=resources,
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        tags={"lake/launched_by": "make run"},
    )


def _row(result, key: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    meta = {name: getattr(value, "value", value) for name, value in event.materialization.metadata.items()}
    rows = meta.get("dagster/row_count")
    return {
        "asset": key,
        "rows": rows if rows is not None else "-",
        "rejected": meta.get("rejected_rows", "-"),
        "path": meta.get("path", ""),
        "source": meta.get("source"),  # raw/tmdb_json's: "api" or "offline-snapshot"
        # What the run registered in the Spark catalog (lake_assets/lib/tables/spark_catalog.py), if anything.
        "catalog": [f"Spark catalog: {meta['catalog/spark']}"] if "catalog/spark" in meta else [],
        "report": meta.get("quality_report"),  # a trusted asset's HTML quality report
    }


def _checks_text(checks) -> str:
    """`checks 1/2 passed; contract WARN: Published; 2 rows rejected: ...`: what did not pass, and why."""
    if not checks:
        return ""
    failing = [c for c in checks if not c.passed]
    text = f"  checks {len(checks) - len(failing)}/{len(checks)} passed"
    for check in failing:
        reason = (check.description or "").split(". ")[0]
        text += f"; {check.check_name} {check.severity.value}: {reason}"
    return text


def _rows_text(row: dict) -> str:
    rows = f"{row['rows']:,} rows" if isinstance(row["rows"], int) else "-"
    return rows + (f" ({row['rejected']:,} rejected)" if isinstance(row["rejected"], int) else "")


def _cause(result) -> str:
    """The innermost error of the first failed step, on one line (no Java stack, no traceback)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            lines = [line.strip() for line in error.message.strip().splitlines() if line.strip()]
            # Without the exception's qualified class name: the message is the cause.
            return re.sub(r"^[\w.]+: ", "", lines[0]) if lines else error.cls_name
    return "the run failed before any step started (see the log)"


def _terminal():
    """Print to the terminal even while stdout and stderr go to the log file."""
    terminal = os.fdopen(os.dup(1), "w", buffering=1)

    def say(line: str) -> None:
        terminal.write(line + "\n")

    return say


if __name__ == "__main__":
    sys.exit(main())
