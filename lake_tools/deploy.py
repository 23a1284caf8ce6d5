"""The production topology on one machine: PostgreSQL, a gRPC code server, the webserver and the daemon.

Each part is its own process, started in a session of its own, with its pid and log in the deploy
folder (default `.deploy/`), and stopped by that pid. Everything listens on 127.0.0.1 on free ports
unless told otherwise. The instance (`deploy/dagster.yaml`) keeps runs, events and schedules in
PostgreSQL; its credentials reach the processes through their environment, never a file Dagster
reads. The lake is whatever `make run` would use (LAKE_ROOT and the README's other settings).

    python -m lake_tools.deploy up [--dir .deploy] [--port 3000] [--grpc-port N] [--pg-port N]
    python -m lake_tools.deploy reload-code      # a new code version; runs in progress finish on the old one
    python -m lake_tools.deploy restart NAME     # one process again: code-server, webserver, daemon or postgres
    python -m lake_tools.deploy down

Restarts read the settings from the calling environment, as `up` does: run them from the same shell.
"""

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from lake_assets.defs.settings import SECRET_VARIABLES, LakeSettings, setting_variables
from lake_assets.lib.errors import first_line
from lake_assets.lib.storage import is_s3_root
from lake_tools.postgres import DATABASE, DURABLE_SETTINGS, ROLE, Postgres, shutdown
from lake_tools.processes import (
    command_line,
    exited_at_start,
    free_port,
    is_running,
    port_open,
    process_group,
    start_process,
    stop_pid,
    wait_until_ready,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]
INSTANCE_TEMPLATE = PROJECT_DIR / "deploy" / "dagster.yaml"
CODE_MODULE = "lake_assets.defs.definitions"
LOCATION = "lake_assets"
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
# What each process runs, to tell it from a process that reused its pid.
PROGRAMS = {"postgres": "postgres", "code-server": "dagster", "webserver": "dagster-webserver", "daemon": "dagster-daemon"}


class DeployError(Exception):
    """The deployment cannot start or restart: one line, with no secret in it."""


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
        return Postgres(self.directory / "pg", port=port, settings=DURABLE_SETTINGS)

    def environment(self, pg_port: int, pinned: dict[str, str] | None = None) -> dict[str, str]:
        """The processes' environment: this shell's settings (`pinned`: those the deployment started
        with, which a restart keeps) plus the instance's and the database's."""
        server = self.postgres(pg_port)
        return {
            **os.environ,
            **(pinned or {}),
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_USERNAME": ROLE,
            # The operator's password when given, else the one the cluster was created with.
            "DAGSTER_PG_PASSWORD": os.environ.get("DAGSTER_PG_PASSWORD") or server.password,
            "DAGSTER_PG_HOST": HOST,
            "DAGSTER_PG_PORT": str(pg_port),
            "DAGSTER_PG_DB": DATABASE,
            "DAGSTER_COMPUTE_LOG_DIR": str(self.home / "compute_logs"),
        }

    def write_config(self, grpc_port: int, lake: LakeSettings) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load(INSTANCE_TEMPLATE.read_text())
        if is_s3_root(lake.root):
            instance["compute_logs"] = s3_compute_logs(lake)
        header = f"# Written by `python -m lake_tools.deploy up` from {INSTANCE_TEMPLATE.relative_to(PROJECT_DIR)}.\n"
        (self.home / "dagster.yaml").write_text(header + yaml.safe_dump(instance, sort_keys=False))
        (self.directory / "workspace.yaml").write_text(
            f"load_from:\n  - grpc_server:\n      host: {HOST}\n      port: {grpc_port}\n      location_name: {LOCATION}\n"
        )

    def start(self, name: str, command: list[str], env: dict[str, str], ready=None) -> int:
        """Start one part with its log in the folder; with `ready`, wait for it, failing at once if it exits."""
        log = self.directory / f"{name}.log"
        process = start_process(command, output=log, cwd=PROJECT_DIR, env=env)
        if ready:
            wait_until_ready(
                f"the {name}",
                ready,
                deadline=time.monotonic() + 120,
                exited=exited_at_start(process, f"the {name}", lambda: f"; log: {log}"),
                detail=lambda: f"; log: {log}",
            )
        return process.pid


# Besides the settings, what the processes' behaviour depends on.
PROCESS_VARIABLES = ("JAVA_HOME", "PYTHONPATH", "SPARK_LOCAL_IP")


def pinned_settings(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The non-secret settings of a deployment, recorded at `up` so that a restart from another shell
    cannot point one process at another lake."""
    names = [*setting_variables(), *PROCESS_VARIABLES]
    return {name: environ[name] for name in names if name not in SECRET_VARIABLES and environ.get(name)}


def secret_names(environ: dict[str, str] | os._Environ) -> list[str]:
    """The secrets set at `up`, by name only: a restart must be given them again. The Iceberg catalog's
    variables count as secrets, since a catalog URI may hold a password."""
    return sorted(n for n in environ if environ[n] and (n in SECRET_VARIABLES or n.startswith("PYICEBERG_CATALOG__")))


def check_same_settings(state: dict, environ: dict[str, str] | os._Environ) -> None:
    """Refuse a restart whose shell would change a setting the running processes share."""
    for name, value in state.get("settings", {}).items():
        if environ.get(name) and environ[name] != value:
            raise DeployError(f"{name} is {environ[name]!r} here but the deployment runs with {value!r}: restart from its shell")
    missing = [name for name in state.get("secrets", []) if not environ.get(name)]
    if missing:
        raise DeployError(f"the deployment started with {', '.join(missing)} set: set them again to restart a process")


def s3_compute_logs(lake: LakeSettings) -> dict:
    """Step logs beside the lake, under `<lake root>/_dagster/compute_logs/`: outside both zones, and
    reachable with the lake's own endpoint and credentials (boto3 reads those from the environment)."""
    bucket, _, prefix = lake.root.removeprefix("s3://").partition("/")
    config: dict = {"bucket": bucket, "prefix": "/".join(p for p in (prefix.strip("/"), "_dagster/compute_logs") if p)}
    if lake.endpoint_url:
        config["endpoint_url"] = lake.endpoint_url
    if lake.region_name:
        config["region"] = lake.region_name
    return {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager", "config": config}


def _code_server(deployment: Deployment, ports: dict[str, int], env: dict[str, str]) -> int:
    port = ports["grpc"]
    command = [str(BIN / "dagster"), "code-server", "start", "-m", CODE_MODULE, "-h", HOST, "-p", str(port)]
    return deployment.start("code-server", [*command, "--location-name", LOCATION], env, lambda: port_open(port, HOST))


def _webserver(deployment: Deployment, ports: dict[str, int], env: dict[str, str]) -> int:
    port = ports["webserver"]
    workspace = str(deployment.directory / "workspace.yaml")
    command = [str(BIN / "dagster-webserver"), "-h", HOST, "-p", str(port), "-w", workspace]
    return deployment.start("webserver", command, env, lambda: _webserver_ready(port))


def _daemon(deployment: Deployment, ports: dict[str, int], env: dict[str, str]) -> int:
    return deployment.start(
        "daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(deployment.directory / "workspace.yaml")], env
    )


_START = {"code-server": _code_server, "webserver": _webserver, "daemon": _daemon}


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
    state = {"pids": {"postgres": server.pid}, "ports": ports}
    state |= {"settings": pinned_settings(os.environ), "secrets": secret_names(os.environ)}
    deployment.save(state)
    deployment.write_config(ports["grpc"], LakeSettings.from_env())
    env = deployment.environment(server.port)
    _check_login(env)
    for name in ("code-server", "webserver", "daemon"):
        state["pids"][name] = _START[name](deployment, ports, env)
        deployment.save(state)
    return state


def _ours(name: str, pid: int) -> bool:
    return is_running(pid, PROGRAMS[name])


RELOAD = """mutation { reloadRepositoryLocation(repositoryLocationName: "%s") {
  __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } } } }"""


def reload_code(deployment: Deployment) -> str:
    """The UI's Reload: the code server imports the code again in a new process; runs in progress
    finish in the old one, which exits after them. The webserver and the daemon keep running."""
    url = f"http://{HOST}:{deployment.state()['ports']['webserver']}/graphql"
    request = urllib.request.Request(
        url, data=json.dumps({"query": RELOAD % LOCATION}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        entry = json.load(answer)["data"]["reloadRepositoryLocation"]
    loaded = (entry.get("locationOrLoadError") or {}).get("__typename")
    if loaded != "RepositoryLocation":
        raise DeployError(
            f"the new code did not load: {first_line((entry.get('locationOrLoadError') or entry).get('message', entry))}"
        )
    return loaded


def restart(deployment: Deployment, name: str) -> int:
    """One process again, on the current code, by its recorded pid; the others keep running. The code
    server's runs survive it: its worker processes finish them and exit."""
    state = deployment.state()
    check_same_settings(state, os.environ)
    pid = state["pids"][name]
    if name == "postgres":  # a fast shutdown: connections are cut, the data stays
        if _ours(name, pid):
            shutdown(pid)
        state["pids"][name] = deployment.postgres(state["ports"]["postgres"]).start(watch_owner=False).pid
        deployment.save(state)
        return state["pids"][name]
    if _ours(name, pid):
        stop_pid(pid, 30, kill_group=name != "code-server")
    if name == "code-server":
        state.setdefault("retired_code_servers", []).append(pid)  # its workers may still be finishing runs
    env = deployment.environment(state["ports"]["postgres"], state.get("settings"))
    state["pids"][name] = _START[name](deployment, state["ports"], env)
    deployment.save(state)
    return state["pids"][name]


def down(deployment: Deployment) -> list[str]:
    """Stop every process of the deployment by its recorded pid; the data stays."""
    state = deployment.state()
    stopped = []
    for name in ("daemon", "webserver", "code-server"):
        pid = state.get("pids", {}).get(name)
        if pid and _ours(name, pid):
            stop_pid(pid, 30, kill_group=True)  # with the runs and servers it started
            stopped.append(name)
    # A code server's run workers outlive it, to finish their runs: stop what is left of each one.
    for group in [*state.get("retired_code_servers", []), state.get("pids", {}).get("code-server")]:
        if group:
            _stop_group(group)
    pid = state.get("pids", {}).get("postgres")
    if pid and _ours("postgres", pid):
        shutdown(pid)
        stopped.append("postgres")
    deployment.state_path.unlink(missing_ok=True)
    return stopped


def _stop_group(group: int) -> None:
    """What is left of a replaced code server (run workers finishing old runs): its process group's Dagster processes."""
    for pid in process_group(group):
        if any("dagster" in part for part in command_line(pid)):
            stop_pid(pid, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.deploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start PostgreSQL, the code server, the webserver and the daemon")
    start.add_argument("--port", type=int, help="the UI's port (default: a free one)")
    start.add_argument("--grpc-port", type=int, help="the code server's port (default: a free one)")
    start.add_argument("--pg-port", type=int, help="PostgreSQL's port (default: a free one)")
    reload = commands.add_parser("reload-code", help="load the current code; runs in progress finish on the old")
    restart_one = commands.add_parser("restart", help="start one process again, by pid")
    restart_one.add_argument("name", choices=sorted([*_START, "postgres"]))
    stop = commands.add_parser("down", help="stop every process of the deployment, by pid")
    for command in (start, reload, restart_one, stop):
        command.add_argument("--dir", type=Path, default=Path(".deploy"))
    args = parser.parse_args(argv)
    deployment = Deployment(args.dir)
    if args.command == "up":
        try:
            state = up(deployment, port=args.port, grpc_port=args.grpc_port, pg_port=args.pg_port)
        except (DeployError, RuntimeError, TimeoutError) as error:  # one line: the log it names says more
            down(deployment)
            print(f"deploy: {first_line(error)}", file=sys.stderr)
            return 1
        print(f"lake_assets deployed: pids and logs in {deployment.directory}")
        print(f"the UI: http://{HOST}:{state['ports']['webserver']}")
    elif args.command == "reload-code":
        try:
            reload_code(deployment)
        except DeployError as error:
            print(f"deploy: {error}", file=sys.stderr)
            return 1
        print("code reloaded: the UI shows the new definitions")
    elif args.command == "restart":
        try:
            print(f"{args.name} restarted (pid {restart(deployment, args.name)})")
        except DeployError as error:
            print(f"deploy: {error}", file=sys.stderr)
            return 1
    else:
        stopped = down(deployment)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
