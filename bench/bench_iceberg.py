"""What the Iceberg tables cost trusted/tmdb, each figure printed beside its baseline from the same session,
on one warm Spark Connect server started here:

1. the catalog commit inside a run: in-process `dagster.materialize` of one day and of a 365-day
   single-run backfill (raw history seeded from the offline snapshot) on a SQLite catalog, on a
   PostgreSQL catalog (a throwaway server started here) and with the lake on S3 (a local SeaweedFS):
   run time, the time inside `iceberg.replace` (a timing shim on the module attribute the IO manager
   calls) and its share of the run; then where the rest of each run goes, by the same shims on the
   publish's other steps (Spark writes, file copies, catalog reads, the Spark catalog) and from the
   event log (materialisation and check events);
2. one day as users run it: the whole `dagster asset materialize` process of trusted/tmdb vs a toy
   asset on the in-process executor (bench/toy_partition.py with TOY_EXECUTOR=in_process: read the day's JSON Lines, write Parquet,
   count), both timed with `timed_run`, and where the project's extra time goes: the run's phases from
   the Dagster instance's event log, the asset's body by timed call (in an instrumented copy of the
   process, never the timed one), imports by package (-X importtime);
3. reading one day of the 365-day table through the project's readers (the DuckDB views of
   lake_tools/duckdb_lake.py, plain pyiceberg) vs pyarrow reading that day's folder, and planning alone;
4. the table's metadata after 365 one-day commits (pyarrow-written files, no Spark), and after
   `maintenance.expire` keeping 10.

    .venv/bin/python bench/bench_iceberg.py [--repeat 3] [--days 365]

Medians of --repeat rounds (part 3: of 5 reads a round). About 10 minutes at --repeat 1 on 2 cores.
"""

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import DEFINITIONS, ROOT, START, STEERING, bench_env

# What points the lake, its catalog, Spark and S3 somewhere: set per case below, never inherited (but
# kept when the instrumented CLI of part 2 imports this module for its timers).
if __name__ == "__main__":
    for _name in [n for n in os.environ if n.startswith(STEERING)]:
        del os.environ[_name]
# Before lake_assets is imported: the daily partitions of this history start in 2024.
os.environ["TMDB_START_DATE"] = START.isoformat()
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from dagster import DagsterEventType, DagsterInstance, materialize  # noqa: E402
from pyiceberg.catalog import load_catalog  # noqa: E402
from pyiceberg.expressions import EqualTo  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from lake_assets.defs import definitions, io_managers  # noqa: E402
from lake_assets.defs.assets import raw, trusted  # noqa: E402
from lake_assets.defs.io_managers.trusted import TrustedParquetIOManager  # noqa: E402
from lake_assets.defs.resources import LakeResource, lake_resource_from_env  # noqa: E402
from lake_assets.defs.resources import catalog as catalog_resource  # noqa: E402
from lake_assets.lib.partitions import dt_path  # noqa: E402
from lake_assets.lib.staging import SparkStage  # noqa: E402
from lake_assets.lib.tables import catalog as table_catalog  # noqa: E402
from lake_assets.lib.tables import iceberg, maintenance  # noqa: E402
from lake_tools.devserver import SparkConnectServer, prepare_dagster_home  # noqa: E402
from lake_tools.duckdb_lake import open_lake  # noqa: E402
from lake_tools.postgres import Postgres  # noqa: E402
from lake_tools.processes import free_port, output_to, timed_run  # noqa: E402
from lake_tools.seaweedfs import SeaweedS3  # noqa: E402
from lake_tools.seed_history import seed, snapshot_records  # noqa: E402

TABLE = "trusted/tmdb"
IDENTIFIER = table_catalog.table_identifier(TABLE)
BUCKET = "bench-iceberg"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
READS_PER_ROUND = 5  # part 3's reads take milliseconds: several a round
KEEP = 10  # snapshots that part 4's retention keeps


# --- timing ----------------------------------------------------------------------------------------


class Timers:
    """Seconds spent inside module and class functions, by label, while installed (`with`): self time,
    so a timed call made inside another (the Spark catalog plans files) counts for its own label only,
    and the labels add up to the outermost calls' time."""

    def __init__(self, targets: list[tuple[object, str, str]]):
        self.seconds: Counter = Counter()
        self._targets = targets
        self._originals: list[tuple[object, str, Callable]] = []
        self._stack = threading.local()  # per thread: the time of timed calls inside the open ones

    def __enter__(self) -> "Timers":
        for owner, name, label in self._targets:
            original = getattr(owner, name)
            self._originals.append((owner, name, original))
            setattr(owner, name, self._timed(original, label))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)

    def _timed(self, original: Callable, label: str) -> Callable:
        @functools.wraps(original)
        def timed(*args, **kwargs):
            stack = self._stack.__dict__.setdefault("inner", [])
            stack.append(0.0)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[label] += elapsed - stack.pop()
                if stack:
                    stack[-1] += elapsed

        return timed

    def take(self) -> Counter:
        taken, self.seconds = self.seconds, Counter()
        return taken


# Where the IO manager's publish spends its time, by the names it calls them through (module
# attributes, class attributes): `iceberg.replace` is the run's one catalog commit.
PUBLISH_PARTS = {
    "Spark writes (SparkStage.write)": [(SparkStage, "write")],
    "copy into <write id>/ folders": [(io_managers, "upload_all")],
    "Iceberg commit (iceberg.replace)": [(iceberg, "replace")],
    "catalog reads (open, load, plan)": [(iceberg, "load"), (iceberg, "current_files"), (table_catalog, "open_catalog")],
    "Spark catalog (register_table)": [(catalog_resource, "register_table")],
    "rest of publish (counts, contract, log)": [(TrustedParquetIOManager, "publish")],
}
COMMIT = "Iceberg commit (iceberg.replace)"


def publish_targets() -> list[tuple[object, str, str]]:
    return [(owner, name, label) for label, calls in PUBLISH_PARTS.items() for owner, name in calls]


EVENTS = "materialisation and check events"
OUTSIDE = "the rest (Dagster, raw input, Spark session)"


def median_of(values) -> float:
    return statistics.median(values) if values else 0.0


def median_time(function: Callable[[], object], rounds: int) -> tuple[float, object]:
    """Median seconds of `rounds` calls, and the last call's answer."""
    times, answer = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        answer = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """os.environ with `values` for as long as a run lasts (the lake's EnvVars are read when it starts)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- 1. the commit inside a run --------------------------------------------------------------------


@dataclass
class Case:
    label: str
    short: str  # a column heading
    environ: dict[str, str]  # LAKE_ROOT, the catalog, S3: what resources_from_env() reads
    goals: tuple[float, float] | None = None  # the commit's share: (one day, the backfill)
    runs: dict = field(default_factory=dict)  # "1 day" / "365 days" -> [(run s, in-run s, Counter)]


def in_process_run(
    case: Case, instance: DagsterInstance, days: list[str], timers: Timers, log: Path
) -> tuple[float, float, Counter]:
    """One trusted/tmdb run of `days` (one day, or a range as one run) with the code location's own
    resources: wall seconds, RUN_START to RUN_SUCCESS, and the timed calls' and events' seconds."""
    tags = {} if len(days) == 1 else dict(zip(RANGE_TAGS, (days[0], days[-1]), strict=True))
    with environment(case.environ):
        resources = definitions.resources_from_env()
        timers.take()
        with output_to(log):
            launched, started = time.time(), time.perf_counter()
            result = materialize(
                [raw.tmdb_json, trusted.tmdb],
                selection=[trusted.tmdb.key],
                resources=resources,
                partition_key=days[0] if len(days) == 1 else None,
                tags=tags,
                instance=instance,
                raise_on_error=False,
            )
            seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"{case.label}: the trusted/tmdb run of {days[0]}...{days[-1]} failed; see {log}")
    stats = instance.get_run_stats(result.run_id)
    timed = timers.take()
    timed[EVENTS] = run_phases(instance, result.run_id, launched, seconds)[EVENTS_PHASE]
    return seconds, stats.end_time - stats.start_time, timed


def commit_in_runs(cases: list[Case], days: list[str], work: Path, repeat: int, log: Path) -> None:
    one_day = [days[-1]]  # the newest day, run again: a delete and an add, as every re-run
    with contextlib.ExitStack() as stack:
        timers = stack.enter_context(Timers(publish_targets()))
        # An instance per case, as each lake would have its own: no case queries another one's run history.
        instances = [
            stack.enter_context(DagsterInstance.from_config(str(prepare_dagster_home(work / f"home-{case.short}"))))
            for case in cases
        ]
        for case, instance in zip(cases, instances, strict=True):  # pays the imports, creates the table, warms the JVM
            in_process_run(case, instance, days, timers, log)
        for _ in range(repeat):
            for case, instance in zip(cases, instances, strict=True):  # interleaved: every case sees the same machine
                case.runs.setdefault(f"{len(days)} days", []).append(in_process_run(case, instance, days, timers, log))
                case.runs.setdefault("1 day", []).append(in_process_run(case, instance, one_day, timers, log))


def print_commit_table(cases: list[Case], repeat: int, movies: dict[str, int]) -> None:
    print(
        f"\n1. The Iceberg commit inside a trusted/tmdb run (in-process dagster.materialize, warm Spark Connect; median of {repeat})"
    )
    print(f"{'catalog / lake':<28} {'run':<9} {'movies':>7} {'run s':>7} {'in-run s':>9} {'commit s':>9} {'share':>6}  goal")
    parts = {}
    for case in cases:
        for index, run in enumerate(sorted(case.runs, key=lambda r: r != "1 day")):
            values = case.runs[run]
            seconds = median_of([s for s, _, _ in values])
            timed = {label: median_of([t[label] for _, _, t in values]) for label in PUBLISH_PARTS}
            timed[EVENTS] = median_of([t[EVENTS] for _, _, t in values])
            timed[OUTSIDE] = median_of([s - sum(t.values()) for s, _, t in values])
            share = timed[COMMIT] / seconds
            goal = ""
            if case.goals:
                limit = case.goals[0 if run == "1 day" else 1]
                goal = f"<={limit:.0%} {'met' if share <= limit else 'MISSED'}"
            print(
                f"{case.label if not index else '':<28} {run:<9} {movies[run]:>7} {seconds:>7.2f} "
                f"{median_of([i for _, i, _ in values]):>9.2f} {timed[COMMIT]:>9.3f} {share:>6.1%}  {goal}"
            )
            parts[(case.label, run)] = {**timed, "run": seconds}
    print("   commit: inside iceberg.replace (ensure the table, load it, delete the replaced days, add_files, commit)")
    print("   run s: the materialize call; in-run s: RUN_START to RUN_SUCCESS in the instance")

    runs = [(case, run) for case in cases for run in sorted(case.runs, key=lambda r: r != "1 day")]
    print("\n   where the runs' time goes, s (timed calls inside the IO manager's publish, self time; median)")
    print(f"   {'part':<42}" + "".join(f" {case.short + ' ' + run.split()[0] + 'd':>12}" for case, run in runs))
    for label in (*PUBLISH_PARTS, EVENTS, OUTSIDE, "run"):
        print(f"   {label:<42}" + "".join(f" {parts[(case.label, run)][label]:>12.2f}" for case, run in runs))


# --- 2. one day as users run it ----------------------------------------------------------------------

EVENTS_PHASE = "step: materialisation and check events"  # from the asset's output to the step's end
PHASES = (
    "start-up: Python, imports, definitions",
    "run created: plan, instance",
    "run start to step start (resources)",
    "step: the asset's body",
    EVENTS_PHASE,
    "step end to run end",
    "run end to process exit",
)


def run_phases(instance: DagsterInstance, run_id: str, launched: float, seconds: float) -> dict[str, float]:
    """A run's phases, from its event log's timestamps and from when its process (or call) started and ended."""
    logs = instance.all_logs(run_id)

    def at(*kinds: DagsterEventType) -> float:
        return next(e.timestamp for e in logs if e.dagster_event and e.dagster_event.event_type in kinds)

    run_start, step_start = at(DagsterEventType.RUN_START), at(DagsterEventType.STEP_START)
    # The project's asset yields its output after the publish; the toy's output follows its return.
    output = at(DagsterEventType.STEP_OUTPUT, DagsterEventType.ASSET_MATERIALIZATION)
    step_end, run_end = at(DagsterEventType.STEP_SUCCESS), at(DagsterEventType.RUN_SUCCESS)
    inits = [e.timestamp for e in logs if e.dagster_event and e.dagster_event.event_type_value.startswith("RESOURCE_INIT_")]
    phases = dict(
        zip(
            PHASES,
            (
                logs[0].timestamp - launched,
                run_start - logs[0].timestamp,
                step_start - run_start,
                output - step_start,
                step_end - output,
                run_end - step_end,
                launched + seconds - run_end,
            ),
            strict=True,
        )
    )
    phases["  of which resource set-up"] = max(inits) - min(inits) if inits else 0.0
    return phases


def import_seconds(stderr: str) -> Counter:
    """Self import time (s) by top-level package, from a process's `-X importtime` lines."""
    totals: Counter = Counter()
    for line in stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0].strip().isdigit():
            totals[parts[2].strip().split(".")[0]] += int(parts[0]) / 1e6
    return totals


def latest_run_phases(home: Path, launched: float, seconds: float) -> dict[str, float]:
    with DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records(limit=1)
        return run_phases(instance, record.dagster_run.run_id, launched, seconds)


# The project's command in a process that installs table 1's timers before Dagster's CLI starts and
# writes their seconds at exit: where the body's time goes in a cold process. It is never the one timed.
TIMED_CLI = """
import atexit, json, sys
sys.path.insert(0, {bench!r})
import bench_iceberg
timers = bench_iceberg.Timers(bench_iceberg.publish_targets()).__enter__()
atexit.register(lambda: open({out!r}, "w").write(json.dumps(timers.seconds)))
from dagster._cli import main
sys.exit(main())
"""


def one_day_as_users_run_it(spark: SparkConnectServer, work: Path, repeat: int) -> None:
    lake_root, home = work / "lake-cli", prepare_dagster_home(work / "home-cli")
    env = bench_env(
        LAKE_ROOT=str(lake_root), SPARK_REMOTE=spark.remote, TMDB_START_DATE=START.isoformat(), DAGSTER_HOME=str(home)
    )
    env["TOY_EXECUTOR"] = "in_process"  # the toy on the project's executor: no step process for either
    today = dt.datetime.now(dt.UTC).date().isoformat()
    materialize_day = ["asset", "materialize", "--partition", today]
    dagster = [str(Path(sys.executable).parent / "dagster"), *materialize_day]
    # Today's raw files, landed by the project's own raw asset (the offline snapshot): not timed.
    timed_run([*dagster, "-m", DEFINITIONS, "--select", "raw/tmdb_json"], env, work)
    toy, project = "toy (in-process)", "trusted/tmdb"
    selections = {
        toy: ["-f", str(ROOT / "bench" / "toy_partition.py"), "--select", "toy"],
        project: ["-m", DEFINITIONS, "--select", "trusted/tmdb"],
    }
    imports = {toy: ("toy_partition", ROOT / "bench"), project: (DEFINITIONS, work)}
    runs: dict[str, list] = {name: [] for name in selections}
    import_times: dict[str, list[float]] = {name: [] for name in selections}
    imported: dict[str, Counter] = {}
    # The first round warms the server's caches and the OS's for both, untimed; it records what the
    # whole process imports, lazily imported packages included (-X importtime, which slows it).
    for name, selection in selections.items():
        done = subprocess.run(
            [*dagster, *selection], env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=work, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"{name} failed:\n{done.stderr[-5000:]}")
        imported[name] = import_seconds(done.stderr)
    timed_body: list[tuple[float, dict]] = []
    seconds_file = work / "timers.json"
    instrumented = [sys.executable, "-c", TIMED_CLI.format(bench=str(ROOT / "bench"), out=str(seconds_file))]
    for _ in range(repeat):
        for name, selection in selections.items():  # interleaved, so that both see the same machine
            launched = time.time()
            seconds, peak = timed_run([*dagster, *selection], env, work)
            runs[name].append((seconds, peak, latest_run_phases(home, launched, seconds)))
        launched = time.time()
        seconds, _ = timed_run([*instrumented, *materialize_day, *selections[project]], env, work)
        timed_body.append(
            (latest_run_phases(home, launched, seconds)["step: the asset's body"], json.loads(seconds_file.read_text()))
        )
        for name, (module, cwd) in imports.items():
            import_times[name].append(timed_run([sys.executable, "-c", f"import {module}"], env, cwd)[0])

    process = {name: median_of([s for s, _, _ in values]) for name, values in runs.items()}
    peak = {name: median_of([p for _, p, _ in values]) for name, values in runs.items()}
    ratio = process[project] / process[toy]
    print(
        f"\n2. One day ({today}) as users run it: a whole `dagster asset materialize` process, warm Spark Connect, median of {repeat}"
    )
    print(f"{'run':<18} {'process s':>10} {'vs toy':>7}  {'goal':<12} {'peak MB':>8} {'python -c import s':>19}")
    for name in selections:
        versus = f"{process[name] / process[toy]:>6.2f}x"
        goal = f"<=1.3x {'met' if ratio <= 1.3 else 'MISSED'}" if name == project else ""
        print(f"{name:<18} {process[name]:>10.2f} {versus}  {goal:<12} {peak[name]:>8.0f} {median_of(import_times[name]):>19.2f}")

    extra = process[project] - process[toy]
    print(f"\n   where the project's extra {extra:.2f} s go (event log timestamps of each run; launch and exit of the process)")
    print(f"   {'phase':<50} {'toy s':>7} {'trusted/tmdb s':>15} {'extra s':>8}")
    for phase in (*PHASES, "  of which resource set-up"):
        a = median_of([p[phase] for _, _, p in runs[toy]])
        b = median_of([p[phase] for _, _, p in runs[project]])
        print(f"   {phase:<50} {a:>7.2f} {b:>15.2f} {b - a:>8.2f}")
    body = median_of([b for b, _ in timed_body])
    print(f"   the asset's body in an instrumented copy of the process ({body:.2f} s), by timed call (self time):")
    for label in PUBLISH_PARTS:
        print(f"   {'  ' + label:<50} {'':>7} {median_of([t.get(label, 0.0) for _, t in timed_body]):>15.2f}")
    rest = median_of([b - sum(t.values()) for b, t in timed_body])
    print(f"   {'  the rest (Spark session, raw files, transform)':<50} {'':>7} {rest:>15.2f}")

    heaviest = sorted(imported[project], key=lambda p: imported[project][p] - imported[toy].get(p, 0.0), reverse=True)
    print("\n   what each whole process imports, by top-level package (-X importtime self time, one run, inflated by it)")
    print(f"   {'package':<50} {'toy s':>7} {'trusted/tmdb s':>15} {'extra s':>8}")
    for package in [*heaviest[:10], None]:
        a, b = (sum(imported[n].values()) if package is None else imported[n].get(package, 0.0) for n in (toy, project))
        print(f"   {package or 'all':<50} {a:>7.3f} {b:>15.3f} {b - a:>8.3f}")


# --- 3. reading one day ----------------------------------------------------------------------------


def read_one_day(lake: LakeResource, day: str, table_days: int, repeat: int) -> None:
    storage = lake.storage("trusted")
    catalog = load_catalog(table_catalog.CATALOG_NAME, **table_catalog.catalog_properties(lake))  # as a user opens it
    files = iceberg.current_files(catalog.load_table(IDENTIFIER), storage, [day])[day]
    folder = Path(lake.root_of("trusted")) / files[0].key.rsplit("/", 1)[0]  # the day's current write
    where = EqualTo("dt", day)
    query = f"select count(*) from tmdb where dt = '{day}'"
    connection = open_lake(lake)
    reads = {
        "pyarrow: pq.read_table(day's write folder)": lambda: pq.read_table(folder).num_rows,
        "DuckDB: open_lake(lake) + count(*) where dt": lambda: open_lake(lake).sql(query).fetchall()[0][0],
        "pyiceberg: load_table + scan(dt).to_arrow()": lambda: (
            catalog.load_table(IDENTIFIER).scan(row_filter=where).to_arrow().num_rows
        ),
        "DuckDB: count(*) on an open connection": lambda: connection.sql(query).fetchall()[0][0],
    }
    planning = {
        "open_lake(lake): catalog, plan, footers, views": lambda: open_lake(lake),
        "pyiceberg: load_table + plan_files(dt)": lambda: len(
            list(catalog.load_table(IDENTIFIER).scan(row_filter=where).plan_files())
        ),
        "pyiceberg: load_catalog (SQLite)": lambda: load_catalog(
            table_catalog.CATALOG_NAME, **table_catalog.catalog_properties(lake)
        ),
    }
    ways = {**reads, **planning}
    rows = {name: way() for name, way in reads.items()}  # and a first, untimed call of each
    for way in planning.values():
        way()
    if len(set(rows.values())) != 1:
        raise RuntimeError(f"the readers disagree on {day}'s rows: {rows}")
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, way in ways.items():  # interleaved
            times[name].append(median_time(way, READS_PER_ROUND)[0])
    baseline = median_of(times[next(iter(reads))])
    print(
        f"\n3. Reading one day ({day}: {rows[next(iter(reads))]} rows, {len(files)} file(s)) of the {table_days}-day trusted/tmdb"
    )
    print(f"   (local lake, SQLite catalog; median of {repeat} x {READS_PER_ROUND})")
    print(f"{'reader':<48} {'ms':>8} {'vs pyarrow':>11}  goal")
    for name in ways:
        seconds = median_of(times[name])
        goal = f"<=1.2x {'met' if seconds <= 1.2 * baseline else 'MISSED'}" if name in reads and name != next(iter(reads)) else ""
        if name == next(iter(planning)):
            print("planning alone:")
        print(f"{name:<48} {seconds * 1000:>8.1f} {seconds / baseline:>10.2f}x  {goal}")


# --- 4. metadata after a year of daily commits -----------------------------------------------------------


def metadata_state(storage, table) -> tuple[int, int, dict[str, int]]:
    """Snapshots, metadata files and their bytes by kind (metadata JSON, manifest lists, manifests)."""
    kinds: Counter = Counter()
    count = 0
    for obj in storage.list(f"{TABLE}/metadata/"):
        name = obj.key.rsplit("/", 1)[-1]
        kind = "json" if name.endswith(".metadata.json") else "lists" if name.startswith("snap-") else "manifests"
        kinds[kind] += obj.size
        count += 1
    return len(table.snapshots()), count, kinds


def metadata_after_daily_commits(work: Path, days: int, repeat: int) -> None:
    lake = LakeResource(root=str(work / "lake-commits"))
    storage, catalog = lake.storage("trusted"), lake.iceberg_catalog()
    root = Path(lake.root_of("trusted"))
    rows = 150  # about a day of trusted/tmdb

    def commit(index: int) -> float:
        day = (START + dt.timedelta(days=index)).isoformat()
        key = f"{TABLE}/{dt_path(day)}/bench-{index:04d}/part-0.parquet"
        data = pa.table(
            {
                "tmdb_id": pa.array(range(index * rows, (index + 1) * rows), pa.int64()),
                "titulo": [f"filme {n}" for n in range(rows)],
                "popularidade": pa.array([float(n) for n in range(rows)]),
                "dt": [day] * rows,
            }
        )
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, root / key)
        started = time.perf_counter()
        iceberg.replace(catalog, storage, TABLE, data.schema, [key], [day], "dt", run_id=f"bench-{index}")
        return time.perf_counter() - started

    def plan_ms() -> float:
        where = EqualTo("dt", START.isoformat())
        return 1000 * median_time(lambda: list(catalog.load_table(IDENTIFIER).scan(row_filter=where).plan_files()), 5 * repeat)[0]

    states = []
    commits = [commit(i) for i in range(KEEP)]
    states.append(
        (f"after {KEEP} commits", median_of(commits), plan_ms(), *metadata_state(storage, iceberg.load(catalog, TABLE)))
    )
    commits = [commit(i) for i in range(KEEP, days)]
    states.append(
        (f"after {days} commits", median_of(commits[-KEEP:]), plan_ms(), *metadata_state(storage, iceberg.load(catalog, TABLE)))
    )
    table = iceberg.load(catalog, TABLE)
    started = time.perf_counter()
    # Every snapshot is older than now: retention keeps the last KEEP. No grace: no writer is running.
    maintenance.expire(table, storage, older_than=dt.datetime.now(dt.UTC), keep_last=KEEP, grace_s=0)
    expire_s = time.perf_counter() - started
    states.append((f"after expire (keep {KEEP})", None, plan_ms(), *metadata_state(storage, iceberg.load(catalog, TABLE))))
    commits = [commit(i) for i in range(days, days + KEEP)]
    states.append(
        (f"  then {KEEP} more commits", median_of(commits), plan_ms(), *metadata_state(storage, iceberg.load(catalog, TABLE)))
    )

    print(f"\n4. Metadata of trusted/tmdb from {days} one-day commits ({rows}-row pyarrow files, SQLite catalog, no Spark)")
    print(f"   maintenance.expire(keep_last={KEEP}) took {expire_s:.2f} s; commit ms: median of the last {KEEP} commits")
    print(
        f"{'state':<26} {'snapshots':>9} {'files':>6} {'metadata KB':>12} {'json KB':>8} {'lists KB':>9} "
        f"{'manifests KB':>13} {'commit ms':>10} {'plan 1 day ms':>14}"
    )
    for label, commit_s, plan, snapshots, files, kinds in states:
        total = sum(kinds.values())
        commit_ms = f"{commit_s * 1000:>10.1f}" if commit_s is not None else f"{'-':>10}"
        print(
            f"{label:<26} {snapshots:>9} {files:>6} {total / 1024:>12.1f} {kinds['json'] / 1024:>8.1f} {kinds['lists'] / 1024:>9.1f} "
            f"{kinds['manifests'] / 1024:>13.1f} {commit_ms} {plan:>14.1f}"
        )


# --- the session ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=365, help="the backfill's days (and part 4's commits)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-iceberg-"))
    log = work / "runs.log"
    spark = SparkConnectServer(work / "spark", port=free_port())
    postgres = Postgres(work / "pg")
    s3 = SeaweedS3(work / "s3")
    try:
        print(f"starting Spark Connect, PostgreSQL and SeaweedFS; run logs in {log} ...", file=sys.stderr, flush=True)
        spark.start()
        spark.warm_up()
        postgres.start()
        s3.start()
        s3.create_bucket(BUCKET)

        # 1. Three cases, one raw history each place: the local cases share theirs.
        local_raw = work / "raw"
        base = {"SPARK_REMOTE": spark.remote, "LAKE_CATALOG_DIR": str(work / "catalogs")}
        cases = [
            Case(
                "SQLite, local lake",
                "SQLite",
                {**base, "LAKE_ROOT": str(work / "lake-sqlite"), "LAKE_RAW_ROOT": str(local_raw)},
                (0.10, 0.05),
            ),
            Case(
                "PostgreSQL, local lake",
                "Postgres",
                {
                    **base,
                    "LAKE_ROOT": str(work / "lake-pg"),
                    "LAKE_RAW_ROOT": str(local_raw),
                    "PYICEBERG_CATALOG__LAKE__URI": postgres.uri(),
                },
            ),
            Case(
                "SQLite, S3 lake (SeaweedFS)",
                "S3",
                {**base, "LAKE_ROOT": f"s3://{BUCKET}/lake", "LAKE_S3_PATH_STYLE": "1", **s3.env()},
            ),
        ]
        print(f"seeding {args.days} days of raw history, locally and on S3 ...", file=sys.stderr, flush=True)
        records = snapshot_records()
        landed = seed(LakeResource(root=str(local_raw)), START, args.days, records)
        with environment(cases[2].environ):
            seed(lake_resource_from_env().process_config_and_initialize(), START, args.days, records)
        days = sorted(landed)
        print("1. runs in process ...", file=sys.stderr, flush=True)
        commit_in_runs(cases, days, work, args.repeat, log)
        # The Connect client the in-process runs shared: stopped before the server is.
        SparkSession.builder.remote(spark.remote).getOrCreate().stop()
        postgres.stop()
        s3.stop()
        movies = {"1 day": landed[days[-1]], f"{len(days)} days": sum(landed.values())}
        print_commit_table(cases, args.repeat, movies)

        print("2. whole processes ...", file=sys.stderr, flush=True)
        one_day_as_users_run_it(spark, work, args.repeat)
        spark.stop()

        read_one_day(
            LakeResource(root=str(work / "lake-sqlite"), raw_root=str(local_raw)), days[len(days) // 2], len(days), args.repeat
        )
        metadata_after_daily_commits(work, args.days, args.repeat)
    finally:
        spark.stop()
        postgres.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
