"""The production topology on one machine: PostgreSQL, a gRPC code server, the webserver and the daemon.

Each part is its own process, started in a session of its own, with its pid and log in the deploy
folder (default `.deploy/`), and stopped by that pid. Everything listens on 127.0.0.1 on free ports
unless told otherwise. The instance (`deploy/dagster.yaml`) keeps runs, events and schedules in
PostgreSQL; its credentials reach the processes through their environment, never a file Dagster
reads. The lake is whatever `make run` would use (LAKE_ROOT and the README's other settings).

    python -m lake_tools.deploy up [--dir .deploy] [--port 3000] [--grpc-port N] [--pg-port N]
    python -m lake_tools.deploy restart-code     # a new code version; the UI and the daemon stay up
    python -m lake_tools.deploy down
"""

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

from lake_assets.lib.errors import first_line
from lake_tools.postgres import DATABASE, ROLE, Postgres, shutdown
from lake_tools.processes import free_port, is_running, port_open, start_process, stop_pid, wait_until_ready

PROJECT_DIR = Path(__file__).resolve().parents[1]
INSTANCE_TEMPLATE = PROJECT_DIR / "deploy" / "dagster.yaml"
CODE_MODULE = "lake_assets.defs.definitions"
LOCATION = "lake_assets"
HOST = "127.0.0.1"
# A durable cluster: the tests' PostgreSQL turns fsync off, a deployment must not.
DURABLE = {"fsync": "on", "full_page_writes": "on"}
BIN = Path(sys.executable).parent
# What each process runs, to tell it from a process that reused its pid.
PROGRAMS = {"postgres": "postgres", "code-server": "dagster", "webserver": "dagster-webserver", "daemon": "dagster-daemon"}


class Deployment:
    """The deploy folder: what runs, on which ports, and how to reach it."""

    def __init__(self, directory: Path):
        self.directory = directory.resolve()
        self.home = self.directory / "home"
        self.state_path = self.directory / "state.json"

    def state(self) -> dict:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def save(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state, indent=2))

    def postgres(self, port: int | None = None) -> Postgres:
        return Postgres(self.directory / "pg", port=port, settings=DURABLE)

    def environment(self, pg_port: int) -> dict[str, str]:
        """The processes' environment: this shell's settings plus the instance's and the database's."""
        server = self.postgres(pg_port)
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_USERNAME": ROLE,
            # The operator's password when given, else the one the cluster was created with.
            "DAGSTER_PG_PASSWORD": os.environ.get("DAGSTER_PG_PASSWORD") or server.password,
            "DAGSTER_PG_HOST": HOST,
            "DAGSTER_PG_PORT": str(pg_port),
            "DAGSTER_PG_DB": DATABASE,
            "DAGSTER_COMPUTE_LOG_DIR": str(self.home / "compute_logs"),
        }

    def write_config(self, grpc_port: int) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_TEMPLATE, self.home / "dagster.yaml")
        (self.directory / "workspace.yaml").write_text(
            f"load_from:\n  - grpc_server:\n      host: {HOST}\n      port: {grpc_port}\n      location_name: {LOCATION}\n"
        )

    def start(self, name: str, command: list[str], env: dict[str, str]) -> int:
        process = start_process(command, output=self.directory / f"{name}.log", cwd=PROJECT_DIR, env=env)
        return process.pid


def _code_server(deployment: Deployment, port: int, env: dict[str, str]) -> int:
    command = [str(BIN / "dagster"), "code-server", "start", "-m", CODE_MODULE, "-h", HOST, "-p", str(port)]
    pid = deployment.start("code-server", [*command, "--location-name", LOCATION], env)
    wait_until_ready(f"the code server on {HOST}:{port}", lambda: port_open(port, HOST), deadline=time.monotonic() + 120)
    return pid


class DeployError(Exception):
    """The deployment cannot start: one line, with no secret in it."""


def _check_login(env: dict[str, str]) -> None:
    """Log in as Dagster will, so a wrong password is one line here, not a traceback in three logs."""
    import psycopg

    try:
        psycopg.connect(
            host=env["DAGSTER_PG_HOST"],
            port=int(env["DAGSTER_PG_PORT"]),
            user=env["DAGSTER_PG_USERNAME"],
            password=env["DAGSTER_PG_PASSWORD"],
            dbname=env["DAGSTER_PG_DB"],
            connect_timeout=10,
        ).close()
    except psycopg.OperationalError as error:
        raise DeployError(f"PostgreSQL refused Dagster's login as {env['DAGSTER_PG_USERNAME']!r}: {first_line(error)}") from None


def _webserver_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/server_info", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def up(deployment: Deployment, *, port: int | None, grpc_port: int | None, pg_port: int | None) -> dict:
    state = deployment.state()
    if state and all(_ours(name, pid) for name, pid in state.get("pids", {}).items()):
        return state
    down(deployment)  # what is left of a deployment that half started or half died
    deployment.directory.mkdir(parents=True, exist_ok=True)
    server = deployment.postgres(pg_port).start(watch_owner=False)  # outlives this command: `down` stops it
    ports = {"postgres": server.port, "grpc": grpc_port or free_port(), "webserver": port or free_port()}
    pids = {"postgres": server.pid}
    deployment.save({"pids": pids, "ports": ports})
    deployment.write_config(ports["grpc"])
    env = deployment.environment(server.port)
    _check_login(env)
    pids["code-server"] = _code_server(deployment, ports["grpc"], env)
    workspace = str(deployment.directory / "workspace.yaml")
    pids["webserver"] = deployment.start(
        "webserver",
        [str(BIN / "dagster-webserver"), "-h", HOST, "-p", str(ports["webserver"]), "-w", workspace],
        env,
    )
    pids["daemon"] = deployment.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env)
    deployment.save({"pids": pids, "ports": ports})
    wait_until_ready(
        f"the webserver on {HOST}:{ports['webserver']}",
        lambda: _webserver_ready(ports["webserver"]),
        deadline=time.monotonic() + 120,
    )
    return {"pids": pids, "ports": ports}


def _ours(name: str, pid: int) -> bool:
    return is_running(pid, PROGRAMS[name])


def restart_code(deployment: Deployment) -> int:
    """Replace the code server with one on the current code; the webserver and daemon reconnect."""
    state = deployment.state()
    if _ours("code-server", state["pids"]["code-server"]):
        stop_pid(state["pids"]["code-server"], 30, kill_group=True)
    env = deployment.environment(state["ports"]["postgres"])
    state["pids"]["code-server"] = _code_server(deployment, state["ports"]["grpc"], env)
    deployment.save(state)
    return state["pids"]["code-server"]


def down(deployment: Deployment) -> list[str]:
    """Stop every process of the deployment by its recorded pid; the data stays."""
    state = deployment.state()
    stopped = []
    for name in ("daemon", "webserver", "code-server"):
        pid = state.get("pids", {}).get(name)
        if pid and _ours(name, pid):
            stop_pid(pid, 30, kill_group=True)  # with the runs and servers it started
            stopped.append(name)
    pid = state.get("pids", {}).get("postgres")
    if pid and _ours("postgres", pid):
        shutdown(pid)
        stopped.append("postgres")
    deployment.state_path.unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.deploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start PostgreSQL, the code server, the webserver and the daemon")
    start.add_argument("--port", type=int, help="the UI's port (default: a free one)")
    start.add_argument("--grpc-port", type=int, help="the code server's port (default: a free one)")
    start.add_argument("--pg-port", type=int, help="PostgreSQL's port (default: a free one)")
    restart = commands.add_parser("restart-code", help="restart the code server on the current code")
    stop = commands.add_parser("down", help="stop every process of the deployment, by pid")
    for command in (start, restart, stop):
        command.add_argument("--dir", type=Path, default=Path(".deploy"))
    args = parser.parse_args(argv)
    deployment = Deployment(args.dir)
    if args.command == "up":
        try:
            state = up(deployment, port=args.port, grpc_port=args.grpc_port, pg_port=args.pg_port)
        except DeployError as error:
            down(deployment)
            print(f"deploy: {error}", file=sys.stderr)
            return 1
        print(f"lake_assets deployed: pids and logs in {deployment.directory}")
        print(f"the UI: http://{HOST}:{state['ports']['webserver']}")
    elif args.command == "restart-code":
        print(f"code server restarted (pid {restart_code(deployment)})")
    else:
        stopped = down(deployment)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
