"""A Spark standalone cluster on this machine, from the installed pyspark alone: a master, N workers,
and the Spark Connect server attached to the master.

    python -m lake_tools.cluster up [--workers 2]   # make cluster-up
    python -m lake_tools.cluster status             # workers, executors, tasks each worker's executors ran
    python -m lake_tools.cluster down               # make cluster-down (idempotent)

The pyspark package has no `start-master.sh`, but its `bin/spark-class` runs the master and worker
classes in the foreground (it ends in `exec java`, so the pid we start is the JVM's). Each daemon runs
in a process group of its own, with its pid in `pids/` and its log in `logs/`; a worker's executors
keep their work and scratch folders under `work/` and `local/` (the defaults are inside the pyspark
package and /tmp). Stopping is by pid: SIGTERM (a worker then stops its executors), and SIGKILL for
the daemon's whole group if it has not exited in time. A pid is only signalled while it is still a
`java` whose command line names this cluster's folder, never after the pid has been reused.

`up` then starts the Connect server of `make spark-up` (sc://127.0.0.1:15002, state in `.spark/`)
with `--master spark://127.0.0.1:7077`, waits until every worker runs one of its executors, and
warms it up; `make dev` and CLI runs with `SPARK_REMOTE` then run their Spark jobs in the workers'
executors. Every executor reads and writes the lake itself, so the lake must be one they all see:
on one machine the local lake folder is; across hosts, see "Running on a real cluster" in the README.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from lake_tools.devserver import CONNECT_PORT, PROJECT_DIR, SPARK_HOME, SparkConnectServer
from lake_tools.processes import free_port, free_ports, is_running, port_open, start_process, stop_pid, wait_until_ready

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
MASTER_PORT = 7077  # Spark's own defaults, for `make cluster-up`; tests use free ports
MASTER_UI_PORT = 8080
DRIVER_UI_PORT = 4040
CLUSTER_DIR = PROJECT_DIR / ".spark" / "cluster"


class StandaloneCluster:
    """A master and `workers` workers on 127.0.0.1, all state in `home`.

    Ports left as None are free ports chosen at start; they are recorded in `home/cluster.json`,
    which `recorded()` reads back for `status` and `down`."""

    def __init__(
        self,
        home: Path,
        workers: int = 2,
        worker_cores: int = 1,
        worker_memory: str = "1g",
        executor_memory: str = "768m",
        master_port: int | None = None,
        ui_port: int | None = None,
    ):
        if workers < 1 or worker_cores < 1:
            raise ValueError(f"a cluster needs at least one worker with one core (got {workers} x {worker_cores})")
        self.home = Path(home).resolve()
        self.workers = workers
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.executor_memory = executor_memory
        self.master_port = master_port
        self.ui_port = ui_port
        self.worker_ui_ports: list[int] = []
        self._processes: dict[str, subprocess.Popen] = {}  # the daemons this object started, reaped at stop

    # --- where things are ---------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def daemon_names(self) -> list[str]:
        return ["master", *(f"worker-{n}" for n in range(1, self.workers + 1))]

    def log_path(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def _pid_file(self, name: str) -> Path:
        return self.home / "pids" / f"{name}.pid"

    @classmethod
    def recorded(cls, home: Path) -> "StandaloneCluster | None":
        """The cluster that `start()` recorded in `home`, whether or not it still runs."""
        try:
            state = json.loads((Path(home) / "cluster.json").read_text())
        except (OSError, ValueError):
            return None
        cluster = cls(
            home,
            workers=len(state["worker_ui_ports"]),
            worker_cores=state["worker_cores"],
            worker_memory=state["worker_memory"],
            executor_memory=state["executor_memory"],
            master_port=state["master_port"],
            ui_port=state["ui_port"],
        )
        cluster.worker_ui_ports = state["worker_ui_ports"]
        return cluster

    # --- processes ----------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        """The daemon's JVM, if its pid file names a live `java` started for this cluster's folder."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        main_class = MASTER_CLASS if name == "master" else WORKER_CLASS
        ours = f"-Djava.io.tmpdir={self.home / 'tmp'}"  # in every daemon's command line, see _env
        return pid if is_running(pid, "java", main_class, ours) else None

    def pids(self) -> dict[str, int]:
        return {name: pid for name in self.daemon_names if (pid := self.pid(name)) is not None}

    def running(self) -> bool:
        return len(self.pids()) == len(self.daemon_names)

    def _env(self) -> dict[str, str]:
        for sub in ("conf", "logs", "pids", "tmp", "work", "local"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_CONF_DIR": str(self.home / "conf"),  # empty: no spark-defaults.conf from elsewhere
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "512m",  # the daemons only schedule; executors get worker_memory
            "SPARK_DAEMON_JAVA_OPTS": f"-Djava.io.tmpdir={self.home / 'tmp'}",
            # The master's REST submission server would take the fixed port 6066; nothing here uses it.
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            "PYSPARK_PYTHON": sys.executable,
        }

    def _launch(self, name: str, args: list[str], env: dict[str, str]) -> None:
        # Its own process group: a Ctrl-C elsewhere does not reach it.
        process = start_process(
            [str(SPARK_HOME / "bin" / "spark-class"), *args], output=self.log_path(name), env=env, cwd=self.home
        )
        self._processes[name] = process
        self._pid_file(name).write_text(str(process.pid))

    def start(self, timeout: float = 120) -> "StandaloneCluster":
        """Start the master, then the workers; return once every worker has registered."""
        if self.pids():
            raise RuntimeError(f"a cluster recorded in {self.home} is already running ({self.pids()}): stop it first")
        self.master_port = self.master_port or free_port()
        self.ui_port = self.ui_port or free_port()
        self.worker_ui_ports = free_ports(self.workers)
        for port in (self.master_port, self.ui_port):
            if port_open(port):
                raise RuntimeError(f"port {port} is in use by another process: stop it, or choose another port")
        env = self._env()
        self.state_file.write_text(
            json.dumps(
                {
                    "master_port": self.master_port,
                    "ui_port": self.ui_port,
                    "worker_ui_ports": self.worker_ui_ports,
                    "worker_cores": self.worker_cores,
                    "worker_memory": self.worker_memory,
                    "executor_memory": self.executor_memory,
                },
                indent=1,
            )
        )
        deadline = time.monotonic() + timeout
        try:
            self._launch(
                "master",
                [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(self.master_port), "--webui-port", str(self.ui_port)],
                env,
            )
            # Workers started before the master listens wait 5-15 s for their next registration attempt.
            self._wait("the master to listen", lambda: port_open(self.master_port), deadline)
            for n, ui_port in enumerate(self.worker_ui_ports, start=1):
                name = f"worker-{n}"
                work, local = self.home / "work" / name, self.home / "local" / name
                work.mkdir(parents=True, exist_ok=True)
                local.mkdir(parents=True, exist_ok=True)
                self._launch(
                    name,
                    [
                        WORKER_CLASS,
                        self.master_url,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        str(self.worker_cores),
                        "--memory",
                        self.worker_memory,
                        "--webui-port",
                        str(ui_port),
                        "--work-dir",
                        str(work),
                    ],
                    {**env, "SPARK_LOCAL_DIRS": str(local)},  # its executors' shuffle and spill files
                )
            self._wait(
                f"{self.workers} workers to register",
                lambda: _alive_workers(self.status()) == self.workers,
                deadline,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, what: str, ready, deadline: float) -> None:
        def exited() -> str | None:
            # Not pid(): until spark-class execs java, the process is a bash script.
            dead = [name for name, process in self._processes.items() if process.poll() is not None]
            if dead:
                return f"Spark {dead[0]} exited at start; the end of {self.log_path(dead[0])}:\n{self.log_tail(dead[0])}"
            return None

        wait_until_ready(what, ready, deadline=deadline, exited=exited, detail=lambda: f"; logs in {self.home / 'logs'}")

    def stop(self, timeout: float = 30) -> list[str]:
        """Stop every daemon by pid (workers first, so the master sees them go); returns what was running."""
        stopped = []
        for name in reversed(self.daemon_names):
            pid = self.pid(name)
            process = self._processes.get(name)
            if pid is None and process is not None and process.poll() is None:
                pid = process.pid  # started by this object, still in spark-class's launcher
            if pid is not None:
                stop_pid(pid, timeout, kill_group=True)
                stopped.append(name)
            if name in self._processes:
                self._processes.pop(name).wait()
            self._pid_file(name).unlink(missing_ok=True)
        return stopped

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- what runs on it ----------------------------------------------------------------------

    def status(self) -> dict:
        """The master's status JSON: workers (state, cores, memory used), running and finished apps."""
        return _get_json(f"{self.ui_url}/json/")

    def connect_conf(self, ui_port: int | None = DRIVER_UI_PORT) -> dict[str, str]:
        """Spark settings for a Connect server whose jobs run on this cluster. `ui_port` None: no driver UI."""
        conf = {
            "spark.executor.memory": self.executor_memory,
            "spark.executor.extraJavaOptions": f"-Djava.io.tmpdir={self.home / 'tmp'}",
            # Spark waits up to 3 s per task for a "local" executor (e.g. the one holding a shuffle's
            # map output) before using a free one. The lake is a shared file system, so no executor
            # is closer to the data than another: the wait only queues tasks on one executor.
            "spark.locality.wait": "0s",
        }
        if ui_port is not None:  # the driver's REST API (/api/v1) says how many tasks each executor ran
            conf.update({"spark.ui.enabled": "true", "spark.ui.port": str(ui_port), "spark.ui.showConsoleProgress": "false"})
        return conf

    def connect_server(self, home: Path, port: int = CONNECT_PORT, ui_port: int | None = DRIVER_UI_PORT) -> SparkConnectServer:
        return SparkConnectServer(home, port=port, master=self.master_url, conf=self.connect_conf(ui_port))

    def executors(self) -> dict[str, list[tuple[str, str]]]:
        """{worker id: [(app id, executor id), ...]} from each worker's own status JSON, finished ones included."""
        found = {}
        for worker in self.status()["workers"]:
            if worker["state"] != "ALIVE":
                continue
            info = _get_json(f"{worker['webuiaddress']}/json/")
            found[worker["id"]] = [(e["appid"], str(e["id"])) for e in info["executors"] + info["finishedexecutors"]]
        return found

    def wait_for_executors(self, timeout: float = 120) -> None:
        """Until every worker runs an executor of a running application (a Connect server just started)."""
        deadline = time.monotonic() + timeout

        def every_worker_has_one() -> bool:
            running = {app["id"] for app in self.status()["activeapps"]}
            per_worker = self.executors()
            return len(per_worker) == self.workers and all(
                any(app in running for app, _ in executors) for executors in per_worker.values()
            )

        self._wait("an executor on every worker", every_worker_has_one, deadline)

    def tasks_per_worker(self, driver_ui: str) -> dict[str, int]:
        """Tasks run so far, per worker: the driver's REST API counts each executor's tasks, the
        workers say which executors are theirs. Tasks of executors that no worker of this cluster
        claims (there should be none: the driver of a cluster runs no tasks) count under "elsewhere"."""
        owner = {executor: worker for worker, executors in self.executors().items() for executor in executors}
        tasks = dict.fromkeys(owner.values(), 0)
        for app in _get_json(f"{driver_ui}/api/v1/applications"):
            for executor in _get_json(f"{driver_ui}/api/v1/applications/{app['id']}/allexecutors"):
                where = owner.get((app["id"], executor["id"]), "elsewhere")
                tasks[where] = tasks.get(where, 0) + executor["totalTasks"]
        return tasks


def _alive_workers(status: dict) -> int:
    return sum(worker["state"] == "ALIVE" for worker in status["workers"])


def _get_json(url: str):
    # Generous: the driver's first /api/v1 request initialises its REST servlet, which took over 5 s
    # on this loaded 2-core machine.
    response = requests.get(url, timeout=60)
    response.raise_for_status()
    return response.json()


# --- `make cluster-up` / `make cluster-down` ----------------------------------------------------


def _connect_state(cluster_dir: Path) -> Path:
    return cluster_dir / "connect.json"


def up(
    workers: int,
    master_port: int = MASTER_PORT,
    ui_port: int = MASTER_UI_PORT,
    connect_port: int = CONNECT_PORT,
    driver_ui_port: int = DRIVER_UI_PORT,
    cluster_dir: Path = CLUSTER_DIR,
    spark_dir: Path = PROJECT_DIR / ".spark",
) -> int:
    started = time.monotonic()
    recorded = StandaloneCluster.recorded(cluster_dir)
    spark = SparkConnectServer(spark_dir, port=connect_port)
    ours = _recorded_connect(cluster_dir)
    connect_is_ours = spark.pid() is not None and ours is not None and spark.pid() == ours["pid"]
    if spark.pid() is not None and not connect_is_ours:
        print(
            f"cluster-up: a Spark Connect server (pid {spark.pid()}) is already running from {spark.home} "
            "(make spark-up or make dev, in local mode); stop it first (make spark-down)",
            file=sys.stderr,
        )
        return 1
    reuse = recorded is not None and recorded.running() and recorded.workers == workers
    if reuse and connect_is_ours:
        print(
            f"The cluster is already running: master {recorded.master_url} (UI {recorded.ui_url}), Spark Connect on {spark.remote}"
        )
        print(f"Use it: export SPARK_REMOTE={spark.remote}")
        return 0
    if reuse:  # only the Connect server is missing (stopped by make spark-down)
        cluster = recorded
    else:
        if connect_is_ours:
            spark.stop()  # attached to the cluster being replaced (another number of workers)
        if recorded is not None:
            recorded.stop()  # what is left of an earlier cluster (a worker that died, a reboot)
        cluster = StandaloneCluster(cluster_dir, workers=workers, master_port=master_port, ui_port=ui_port)
        try:
            cluster.start()
        except (RuntimeError, TimeoutError) as failed:
            print(f"cluster-up: {failed}", file=sys.stderr)
            return 1
    print(
        f"Spark standalone master {cluster.master_url} (UI {cluster.ui_url}) with {workers} workers "
        f"({cluster.worker_cores} core, {cluster.worker_memory} each) {'running' if reuse else 'up'} in {time.monotonic() - started:.0f} s; "
        f"logs and pids in {cluster.home}",
        flush=True,
    )
    if port_open(driver_ui_port):  # Spark would take the next port up, and the URL printed below would be wrong
        driver_ui_port = free_port()
    spark = cluster.connect_server(spark_dir, port=connect_port, ui_port=driver_ui_port)
    try:
        spark.start()
        _connect_state(cluster_dir).write_text(json.dumps({"pid": spark.pid(), "port": connect_port, "ui_port": driver_ui_port}))
        cluster.wait_for_executors()
        warm = spark.warm_up()
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as failed:
        print(f"cluster-up: the Spark Connect server did not come up: {failed}", file=sys.stderr)
        spark.stop()
        cluster.stop()
        return 1
    print(
        f"Spark Connect on {spark.remote} (pid {spark.pid()}, logs in {spark.log_dir}), attached to the master: "
        f"an executor on each worker, warmed up in {warm:.0f} s; its jobs in the driver UI http://127.0.0.1:{driver_ui_port}",
        flush=True,
    )
    for line in spark.register_lake():  # the tables the lake already has, queryable by name on this server too
        print(line, flush=True)
    print(f"Use it: export SPARK_REMOTE={spark.remote}   (make dev uses it as it is; make cluster-down stops it all)")
    return 0


def _recorded_connect(cluster_dir: Path) -> dict | None:
    try:
        return json.loads(_connect_state(cluster_dir).read_text())
    except (OSError, ValueError):
        return None


def down(cluster_dir: Path = CLUSTER_DIR, spark_dir: Path = PROJECT_DIR / ".spark") -> int:
    ours = _recorded_connect(cluster_dir)
    if ours is not None:
        spark = SparkConnectServer(spark_dir, port=ours["port"])
        if spark.pid() == ours["pid"]:  # not a local-mode server started since by make spark-up
            spark.stop()
            print(f"Spark Connect (pid {ours['pid']}) stopped")
        _connect_state(cluster_dir).unlink(missing_ok=True)
    cluster = StandaloneCluster.recorded(cluster_dir)
    stopped = cluster.stop() if cluster is not None else []
    if cluster is not None:
        cluster.state_file.unlink(missing_ok=True)
    print(f"Stopped {', '.join(stopped)}" if stopped else "No Spark cluster was running")
    return 0


def status(cluster_dir: Path = CLUSTER_DIR) -> int:
    cluster = StandaloneCluster.recorded(cluster_dir)
    connect = _recorded_connect(cluster_dir) or {}
    if cluster is None or not cluster.pids():
        print("No Spark cluster is running (make cluster-up)")
        return 1
    state = cluster.status()
    print(f"master {cluster.master_url} ({state['status']}), UI {cluster.ui_url}; pids {cluster.pids()}")
    for worker in state["workers"]:
        print(
            f"  {worker['id']}: {worker['state']}, cores {worker['coresused']}/{worker['cores']}, memory {worker['memoryused']}/{worker['memory']} MiB"
        )
    for app in state["activeapps"]:
        print(f"  app {app['id']} ({app['name']}): {app['cores']} cores, {app['memoryperexecutor']} MiB per executor")
    if state["activeapps"] and connect.get("ui_port") and port_open(connect["ui_port"]):
        print(f"  driver UI of the Spark Connect server: http://127.0.0.1:{connect['ui_port']}")
        for where, tasks in cluster.tasks_per_worker(f"http://127.0.0.1:{connect['ui_port']}").items():
            owner = "the driver or no worker of this cluster" if where == "elsewhere" else where
            print(f"  tasks run by the executors of {owner}: {tasks}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="master + workers + Spark Connect attached to them (idempotent)")
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--master-port", type=int, default=MASTER_PORT)
    start.add_argument("--ui-port", type=int, default=MASTER_UI_PORT)
    start.add_argument("--connect-port", type=int, default=CONNECT_PORT)
    start.add_argument("--driver-ui-port", type=int, default=DRIVER_UI_PORT)
    commands.add_parser("down", help="stop the Connect server, the workers and the master by pid")
    commands.add_parser("status", help="the master's view: workers, applications, tasks per worker")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.workers, args.master_port, args.ui_port, args.connect_port, args.driver_ui_port)
    if args.command == "down":
        return down()
    return status()


if __name__ == "__main__":
    sys.exit(main())
