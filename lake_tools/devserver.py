"""The local development services: a warm Spark Connect server and `dagster dev` (UI + daemon).

    python -m lake_tools.devserver dev          # make dev: both, until Ctrl-C / SIGTERM stops both
    python -m lake_tools.devserver spark-up     # make spark-up: only Spark Connect, left running
    python -m lake_tools.devserver spark-down   # make spark-down

A classic Spark session costs every run 5-6 s of JVM start; against a warm Connect server a daily
partition's run takes about a second of Spark. The server is the one bundled with the pyspark
package (`sbin/start-connect-server.sh`), bound to 127.0.0.1, with its logs, pid file, temporary
files and warehouse under `.spark/` in the project. Its table catalog is persistent (Hive support,
the pyspark wheel's jars, an embedded Derby metastore in `.spark/metastore_db`), so the tables the
runs register (`trusted.tmdb`, see lake_assets/lib/tables/spark_catalog.py) outlive the server and every Connect
client can query them by name. Dagster runs with `DAGSTER_HOME=.dagster_home`
(the project's `dagster.yaml` is copied there) and `SPARK_REMOTE` pointing at the server. When
`SPARK_REMOTE` is already set (a cluster's Connect endpoint), `dev` starts no server and uses it.

`dagster dev` runs in a process group of its own and is stopped as a group; the Spark server is
stopped through its pid file (`stop-connect-server.sh`), and killed if it has not exited in time.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyspark

from lake_tools.processes import is_running, port_open, start_process, stop_pid, stop_process_group, wait_until_ready

PROJECT_DIR = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).resolve().parent
CONNECT_PORT = 15002
UI_PORT = 3000
_CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_IDENT = "lake_assets"  # names the pid file: spark-lake_assets-<class>-1.pid


class SparkConnectServer:
    """One Spark Connect server whose state (logs, pid file, temp, warehouse) lives in `home`.

    `master` is where its jobs run: `local[2]` inside the server's JVM, or a cluster such as
    `spark://host:7077` (see lake_tools/cluster.py); `conf` is extra Spark settings, applied last."""

    def __init__(
        self,
        home: Path,
        port: int = CONNECT_PORT,
        driver_memory: str = "2g",
        master: str = "local[2]",
        conf: dict[str, str] | None = None,
    ):
        self.home = Path(home).resolve()
        self.port = port
        self.driver_memory = driver_memory
        self.master = master
        self.conf = dict(conf or {})

    @property
    def remote(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "pids" / f"spark-{_IDENT}-{_CONNECT_CLASS}-1.pid"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def pid(self) -> int | None:
        """The server's JVM, if the pid file names a live `java` process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_running(pid, "java") else None

    def _env(self) -> dict[str, str]:
        conf_dir = self.home / "conf"  # empty: no spark-defaults.conf or log4j file from elsewhere
        for sub in ("conf", "logs", "pids", "tmp", "local", "warehouse"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_CONF_DIR": str(conf_dir),
            "SPARK_LOG_DIR": str(self.log_dir),
            "SPARK_PID_DIR": str(self.home / "pids"),
            "SPARK_IDENT_STRING": _IDENT,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        }

    def start(self, timeout: float = 120) -> bool:
        """Start the server and wait until its port accepts connections. False if it was already running."""
        if self.pid() is not None and port_open(self.port):
            return False
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is in use by another process: stop it, or choose another port")
        home = self.home
        command = [
            str(SPARK_HOME / "sbin" / "start-connect-server.sh"),
            "--master",
            self.master,
            "--driver-memory",
            self.driver_memory,
            # Without this the JVM leaves its scratch directories in /tmp.
            "--driver-java-options",
            f"-Djava.io.tmpdir={home / 'tmp'} -Dderby.stream.error.file={home / 'derby.log'}",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            f"spark.connect.grpc.binding.port={self.port}",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            f"spark.sql.warehouse.dir={home / 'warehouse'}",
            "--conf",
            f"spark.local.dir={home / 'local'}",
            "--conf",
            "spark.sql.session.timeZone=UTC",
            *_catalog_conf(home),
            *(arg for key, value in self.conf.items() for arg in ("--conf", f"{key}={value}")),  # the last --conf of a key wins
        ]
        # A session of its own, so a Ctrl-C meant for `make dev` reaches the JVM only through stop().
        subprocess.run(command, env=self._env(), cwd=home, check=True, start_new_session=True, stdout=subprocess.DEVNULL)
        try:
            wait_until_ready(
                f"the Spark Connect server to listen on {self.port} ({timeout:.0f}s)",
                lambda: port_open(self.port),
                deadline=time.monotonic() + timeout,
                exited=lambda: (
                    None
                    if self.pid() is not None
                    else f"Spark Connect server exited at start; see the logs in {self.log_dir}:\n{self.log_tail()}"
                ),
                detail=lambda: f"; logs in {self.log_dir}",
            )
        except TimeoutError:
            self.stop()
            raise
        return True

    def warm_up(self) -> float:
        """Run one small job of the kind the assets run, and open the table catalog: a fresh server's
        first job is slow while the JVM loads and compiles its code (a daily partition's first run
        took ~30 s here, later ones ~5 s), and its first catalog call boots the Derby metastore.
        Returns the seconds it took.

        The job runs in a process of its own: creating a Connect session sets
        SPARK_CONNECT_MODE_ENABLED in the creating process's environment, which would turn every later
        classic session of that process, and of the processes it starts, into a Connect one."""
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lake_tools.devserver",
                "warm-up",
                "--remote",
                self.remote,
                "--scratch",
                str(self.home / "tmp"),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        return time.monotonic() - started

    def register_lake(self) -> list[str]:
        """register_lake() on this server."""
        return register_lake(self.remote)

    def stop(self, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is None:
            return
        subprocess.run(
            [str(SPARK_HOME / "sbin" / "stop-connect-server.sh")], env=self._env(), check=False, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        stop_pid(pid, timeout, sig=None)  # the script sent SIGTERM: wait, then SIGKILL
        try:  # the listening socket can outlive the pid check by a moment
            wait_until_ready(f"port {self.port} to close", lambda: not port_open(self.port), deadline=deadline + 5, every=0.2)
        except TimeoutError:
            pass
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> str:
        logs = sorted(self.log_dir.glob("*.out"), key=lambda p: p.stat().st_mtime)
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else ""


def _catalog_conf(home: Path) -> list[str]:
    """A persistent table catalog: Hive support with an embedded Derby metastore in `home`."""
    settings = {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
        # No cached file listings: a client session that read a partition before a run re-published
        # it would otherwise fail with FileNotFoundException on the replaced files (measured).
        "spark.sql.hive.filesourcePartitionFileCacheSize": "0",
    }
    return [arg for name, value in settings.items() for arg in ("--conf", f"{name}={value}")]


def register_lake(remote: str) -> list[str]:
    """Register the trusted tables committed in LAKE_ROOT in the catalog of the Connect server at
    `remote`, and return what was done (one line each). Runs made with a classic session (`make run`)
    register in no Spark catalog; this makes their tables queryable by name too. In a process of its
    own, like the warm-up; a failure is reported, not raised: the catalog is a convenience of the dev
    server."""
    done = subprocess.run(
        [sys.executable, "-m", "lake_assets.cli.catalog", "sync"],
        env={**os.environ, "SPARK_REMOTE": remote},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    lines = [
        line for line in done.stderr.splitlines() if line.startswith(("Spark catalog:", "catalog:", "lake_assets.cli.catalog:"))
    ]
    if done.returncode == 0:
        return lines
    tail = done.stderr.strip().splitlines()
    return [f"Spark catalog not synced: {tail[-1] if tail else f'exit code {done.returncode}'}"]


def _warm_up_job(remote: str, scratch: Path) -> None:
    """JSON in, a window, partitioned Parquet out, a small aggregate back: the paths the assets use."""
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    work = scratch / f"warm-up-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        source = work / "in.jsonl"
        source.write_text("\n".join(json.dumps({"id": i % 7, "genres": [{"id": 18, "name": "Drama"}]}) for i in range(100)))
        spark = SparkSession.builder.remote(remote).getOrCreate()
        try:
            df = spark.read.json(str(source)).withColumn("dt", F.lit("2024-01-01"))
            df = df.withColumn("n", F.row_number().over(Window.partitionBy("dt", "id").orderBy("id"))).filter("n = 1")
            df.write.mode("overwrite").partitionBy("dt").parquet(str(work / "out"))
            df.groupBy("dt").count().collect()
            spark.sql("show databases").collect()  # the metastore's first use creates it (~15 s)
        finally:
            spark.stop()  # an unstopped Connect session keeps Python from exiting
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare_dagster_home(home: Path) -> Path:
    """DAGSTER_HOME with the project's dagster.yaml (copied each time, so edits take effect)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    return home


def start_dagster_dev(dagster_home: Path, env: dict[str, str], port: int, cwd: Path = PROJECT_DIR, log=None) -> subprocess.Popen:
    """`dagster dev` (webserver + daemon + code server) in a process group of its own."""
    return start_process(
        [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        output=log,  # None: this terminal
        env={**env, "DAGSTER_HOME": str(dagster_home)},
        cwd=cwd,
    )


def dev(port: int) -> int:
    # Our own handlers for both signals: Ctrl-C and SIGTERM stop everything below, and the children
    # start with default dispositions even when this process inherited "ignore SIGINT" (a bare `&`).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    spark = SparkConnectServer(PROJECT_DIR / ".spark")
    remote = os.environ.get("SPARK_REMOTE")  # a cluster's Connect endpoint: use it, start nothing
    spark_was_running = bool(remote) or (spark.pid() is not None and port_open(spark.port))
    dagster = None
    code = 0
    try:
        if remote:
            # Only host and port: the ;-parameters of a Connect URL can carry a token.
            print(f"Spark: SPARK_REMOTE is set, runs use {remote.split(';')[0]} (no local Connect server)", flush=True)
        elif spark_was_running:
            print(
                f"Spark Connect already running (pid {spark.pid()}) on {spark.remote}; it stays up after this (make spark-down; make cluster-down if make cluster-up started it)",
                flush=True,
            )
        else:
            print(f"Starting Spark Connect on {spark.remote} (logs in {spark.log_dir}) ...", flush=True)
            spark.start()
        home = prepare_dagster_home(PROJECT_DIR / ".dagster_home")
        print(
            f"Dagster UI on http://127.0.0.1:{port}, DAGSTER_HOME={home} (a copy of ./dagster.yaml: dagster's warning "
            "about ./dagster.yaml not being used refers to the original); Ctrl-C stops everything",
            flush=True,
        )
        # Alert messages link to this UI unless LAKE_UI_BASE_URL says otherwise (a proxy, another host).
        env = {"LAKE_UI_BASE_URL": f"http://127.0.0.1:{port}", **os.environ, "SPARK_REMOTE": remote or spark.remote}
        dagster = start_dagster_dev(home, env, port)
        if not spark_was_running:  # while dagster dev starts
            print(f"Spark Connect warmed up with a small job in {spark.warm_up():.0f}s", flush=True)
        for line in register_lake(remote or spark.remote):
            print(line, flush=True)
        code = dagster.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dagster is not None:
            print("Stopping dagster dev ...", flush=True)
            stop_process_group(dagster)
        if not spark_was_running:
            print("Stopping Spark Connect ...", flush=True)
            spark.stop()
    return code


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.devserver", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dev_parser = commands.add_parser("dev", help="Spark Connect + dagster dev until Ctrl-C")
    dev_parser.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT", UI_PORT)))
    commands.add_parser("spark-up", help="start the Spark Connect server and leave it running")
    commands.add_parser("spark-down", help="stop the Spark Connect server started by spark-up")
    warm_up = commands.add_parser("warm-up", help="run one small job on a Connect server (what dev and spark-up do)")
    warm_up.add_argument("--remote", default=f"sc://127.0.0.1:{CONNECT_PORT}")
    warm_up.add_argument("--scratch", type=Path, default=PROJECT_DIR / ".spark" / "tmp")
    args = parser.parse_args(argv)
    if args.command == "dev":
        return dev(args.port)
    if args.command == "warm-up":
        _warm_up_job(args.remote, args.scratch)
        return 0
    spark = SparkConnectServer(PROJECT_DIR / ".spark")
    if args.command == "spark-up":
        started = spark.start()
        if started:
            spark.warm_up()
        state = "started and warmed up" if started else "already running"
        print(f"Spark Connect {state} (pid {spark.pid()}) on {spark.remote}; logs in {spark.log_dir}")
        for line in spark.register_lake():
            print(line)
        print(f"Use it: export SPARK_REMOTE={spark.remote}")
    else:
        pid = spark.pid()
        spark.stop()
        print(f"Spark Connect (pid {pid}) stopped" if pid else "Spark Connect was not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
