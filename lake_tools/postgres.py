"""A throwaway PostgreSQL for tests and `make` targets: one `postgres` server on one folder.

`Postgres` owns exactly one server process (the postmaster), started directly (not daemonized by
pg_ctl) so that it is our child, is stopped only by its PID, and is killed by a watcher process if
its owner dies first (a test run killed with SIGKILL, a CI timeout). It listens on 127.0.0.1 only,
on a free port unless given one, with its unix socket inside the folder, and serves the database
`lake` owned by the role `lake`, whose password is random per folder and kept in a 0600 file there
(in no log or message; the `uri` command prints it when asked). Everything lives in the folder,
which survives `stop()` and `restart()`:

    data/          the cluster (PGDATA), owned by the server's user
    run/           the unix socket (the superuser `postgres` may connect there without a password)
    password       the role `lake`'s password, readable only by whoever started the server
    postgres.log   the server's output
    state.json     port and pid of a server started by `up`

PostgreSQL refuses to run as root: as root, initdb and the server run as the unprivileged system
user `lakepg` (created once, with useradd), which owns data/ and run/.

The cluster is tuned for tests: fsync and full_page_writes are off, so a machine crash may corrupt
it, but a killed server loses nothing (commits are still written to the OS before they return).

    python -m lake_tools.postgres up --dir .pg --port 54329
    python -m lake_tools.postgres uri --dir .pg        # postgresql+psycopg://lake:...@127.0.0.1:54329/lake
    python -m lake_tools.postgres down --dir .pg
"""

import argparse
import functools
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from lake_tools.processes import (
    exited_at_start,
    free_port,
    is_running,
    reap,
    start_process,
    start_watchdog,
    stop_pid,
    stop_process,
    wait_until_ready,
    zombie,
)

DATABASE = "lake"
ROLE = "lake"
SUPERUSER = "postgres"
SERVICE_USER = "lakepg"
# Disposable data: no fsync (a killed server still loses nothing, only a machine crash would).
TEST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}
# A deployment's data (make deploy-up, and the benchmark that times it): every commit on disk.
DURABLE_SETTINGS = {"fsync": "on", "full_page_writes": "on"}
# PostgreSQL's shutdown modes, by the signal the postmaster takes for each.
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
INSTALL_HINT = "`lake_tools/bootstrap.sh test` installs them (as root; Debian/Ubuntu: apt-get install postgresql-15)"


@functools.cache
def server_bindir() -> Path:
    """The folder holding `initdb` and `postgres`: pg_config's, else initdb's on PATH, else Debian's."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if answer.returncode == 0:
            candidates.append(Path(answer.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    # Debian's postgresql-NN packages keep the server binaries off PATH; the newest first.
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise FileNotFoundError(f"no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")


def server_user() -> pwd.struct_passwd | None:
    """Who runs initdb and the server: this process's user (None), or, as root, which PostgreSQL
    refuses, the system user `lakepg`, created the first time."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    try:
        answer = subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], capture_output=True, text=True)
        why = answer.stderr.strip()
    except OSError as error:
        why = str(error)
    try:
        return pwd.getpwnam(SERVICE_USER)  # also when a concurrent session created it first
    except KeyError:
        raise RuntimeError(f"PostgreSQL refuses root and `useradd --system {SERVICE_USER}` failed: {why}") from None


def _as_user(user: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that run a child as `user` (and in its group only)."""
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}


def _let_reach(folder: Path, user: pwd.struct_passwd) -> None:
    """Let `user` reach `folder`: add search-only permission for others (o+x, no listing) to it and
    to each parent that denies it: pytest's temporary folders (pytest-of-<user>/pytest-<n>) are 0700."""
    for path in (folder, *folder.parents):
        info = path.stat()
        if info.st_mode & stat.S_IXOTH or (info.st_uid == user.pw_uid and info.st_mode & stat.S_IXUSR):
            continue
        if info.st_gid == user.pw_gid and info.st_mode & stat.S_IXGRP:
            continue
        path.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _server_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... of the caller's own databases must not steer initdb or the server.
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _last_line(text: str) -> str:
    """The last FATAL/PANIC/ERROR line of a server's or initdb's output, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    worst = [line for line in lines if any(level in line for level in ("FATAL", "PANIC", "ERROR", "error"))]
    return (worst or lines or ["(no output)"])[-1]


def shutdown(pid: int, mode: str = "fast", timeout: float = 30) -> None:
    """Stop a postmaster by its PID, in one of PostgreSQL's modes: "fast" rolls back open sessions,
    checkpoints and exits; "immediate" exits at once, as a crash would (WAL replay at the next start);
    "smart" waits for every session to end. The postmaster exits after all its children; one that
    has not after `timeout` gets SIGKILL."""
    stop_pid(pid, timeout, sig=SHUTDOWN_SIGNALS[mode], every=0.02)


class Postgres:
    def __init__(self, directory: str | Path, *, port: int | None = None, settings: dict[str, str] | None = None):
        self.directory = Path(directory).resolve()
        self.port = port or free_port()
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.process: subprocess.Popen | None = None
        self._watcher: subprocess.Popen | None = None
        self._watch_owner = True

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def password_path(self) -> Path:
        return self.directory / "password"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def password(self) -> str:
        return self.password_path.read_text().strip()

    def uri(self, driver: str = "postgresql+psycopg", database: str = DATABASE) -> str:
        """The role `lake`'s URI over TCP: SQLAlchemy's by default, libpq's (psycopg.connect) with driver="postgresql"."""
        return f"{driver}://{ROLE}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def start(self, *, watch_owner: bool = True, timeout: float = 30) -> "Postgres":
        """Create the cluster if the folder has none, start the server and return once it accepts
        connections, with the role and database `lake` in place."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"PostgreSQL already running (pid {self.process.pid}) on {self.directory}")
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket)) > 107:  # sun_path's size on Linux
            raise ValueError(f"unix socket path too long for PostgreSQL ({len(str(socket))} > 107 bytes): {socket}")
        bindir, user = server_bindir(), server_user()
        self.directory.mkdir(parents=True, exist_ok=True)
        if user:
            _let_reach(self.directory, user)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)  # PostgreSQL wants its data folder private
            if user:
                os.chown(folder, user.pw_uid, user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir, user)
        self._wait_for_reaping()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }
        # A session of its own: Ctrl-C in a terminal reaches pytest, not the server directly.
        self.process = start_process(
            [str(bindir / "postgres"), "-D", str(self.data_dir), *(f"-c{name}={value}" for name, value in options.items())],
            output=self.log_path,
            cwd=self.data_dir,
            env=_server_env(),
            **_as_user(user),
        )
        self._watch_owner = watch_owner
        if watch_owner:
            self._watcher = start_watchdog(pids=[self.process.pid])
        try:
            wait_until_ready(
                f"PostgreSQL on 127.0.0.1:{self.port} ({timeout}s)",
                self._accepting,
                deadline=time.monotonic() + timeout,
                exited=exited_at_start(self.process, "PostgreSQL", self._exit_detail),
                detail=lambda: f"; log: {self.log_path}",
                every=0.02,
            )
            if not self.password_path.exists():
                self._create_role_and_database()
        except BaseException:
            self.stop(mode="immediate")
            raise
        return self

    def _wait_for_reaping(self, timeout: float = 10) -> None:
        """A server killed with its owner (a crash test, a killed pytest) lingers as a zombie until
        PID 1 reaps it (seen: ~1.5 s), and PostgreSQL, probing with kill(pid, 0), takes its
        postmaster.pid for a live server's. Wait while it is a zombie; a live one fails the start."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        try:
            wait_until_ready(
                f"the previous PostgreSQL (pid {pid}) to be reaped",
                lambda: not zombie(pid),
                deadline=time.monotonic() + timeout,
                every=0.05,
            )
        except TimeoutError:
            pass  # PostgreSQL says what holds the lock

    def _initdb(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        answer = subprocess.run(
            [
                str(bindir / "initdb"),
                f"--pgdata={self.data_dir}",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=trust",  # the socket folder is private to the server's user (and root)
                "--auth-host=scram-sha-256",
                "--no-sync",  # throwaway: do not wait for the disk
                "--no-instructions",
            ],
            cwd=self.data_dir,
            env=_server_env(),
            capture_output=True,
            text=True,
            **_as_user(user),
        )
        if answer.returncode != 0:
            raise RuntimeError(f"initdb failed on {self.data_dir} (exit {answer.returncode}): {_last_line(answer.stderr)}")

    def _accepting(self) -> bool:
        """The postmaster.pid the server keeps says "ready" (what pg_ctl waits for): no connection needed."""
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return len(lines) >= 8 and lines[0] == str(self.process.pid) and lines[7].strip() == "ready"

    def _exit_detail(self) -> str:
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f": {_last_line(log)} (log: {self.log_path})"

    def _create_role_and_database(self) -> None:
        """The role and database `lake`, over the unix socket as the superuser; the password goes to
        its file last, so a start that failed before repeats this."""
        import psycopg
        from psycopg import sql

        password = secrets.token_urlsafe(24)
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True) as db:
            db.execute("SET log_min_error_statement = panic")  # a failed statement is logged whole, password included
            exists = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            db.execute(sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))
            if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
        partial = self.password_path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(password + "\n")
        partial.replace(self.password_path)

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Shut the server down by its PID (see `shutdown`); the folder stays."""
        if self.process is not None:
            stop_process(self.process, timeout, sig=SHUTDOWN_SIGNALS[mode], every=0.02)
        reap(self._watcher)  # it exits by itself once the server is gone
        self._watcher = None

    def restart(self, mode: str = "fast", timeout: float = 30) -> "Postgres":
        """Stop (mode "immediate" is a crash: the next start replays the WAL) and start again on the
        same folder, port and password."""
        self.stop(mode, timeout)
        return self.start(watch_owner=self._watch_owner, timeout=timeout)

    def __enter__(self) -> "Postgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- a long-lived server for `make` targets: `up` / `uri` / `down` --------------------------------


def _state_file(directory: Path) -> Path:
    return directory / "state.json"


def _is_our_postgres(pid: int, directory: Path) -> bool:
    """The recorded PID is still a postmaster on this folder (not a reused PID)."""
    return is_running(pid, "postgres", ("-D", str(directory / "data")))


def _recorded(directory: Path) -> dict | None:
    state = _state_file(directory)
    return json.loads(state.read_text()) if state.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.postgres", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start a long-lived PostgreSQL on the folder (idempotent)")
    start.add_argument("--port", type=int, help="default: a free port")
    uri = commands.add_parser("uri", help="print the URI of the role `lake` (password included)")
    uri.add_argument("--driver", default="postgresql+psycopg")
    stop = commands.add_parser("down", help="stop the server started by `up`, by its recorded PID (the data stays)")
    for command in (start, uri, stop):
        command.add_argument("--dir", type=Path, default=Path(".pg"))
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    recorded = _recorded(directory)
    running = recorded is not None and _is_our_postgres(recorded["pid"], directory)
    if args.command == "up":
        if running:
            print(f"PostgreSQL already running (pid {recorded['pid']}) on 127.0.0.1:{recorded['port']}, data in {directory}")
            return 0
        server = Postgres(directory, port=args.port).start(watch_owner=False)  # outlives this command: `down` stops it
        _state_file(directory).write_text(json.dumps({"pid": server.pid, "port": server.port}))
        print(
            f"PostgreSQL started (pid {server.pid}) on 127.0.0.1:{server.port}, data in {directory}; its URI: {parser.prog} uri --dir {args.dir}"
        )
    elif args.command == "uri":
        if not running:
            print(f"no PostgreSQL running on {directory}: start it with `{parser.prog} up --dir {args.dir}`", file=sys.stderr)
            return 1
        print(Postgres(directory, port=recorded["port"]).uri(args.driver))
    else:
        if running:
            shutdown(recorded["pid"])
            print(f"PostgreSQL (pid {recorded['pid']}) stopped; data kept in {directory}")
        else:
            print(f"no PostgreSQL running on {directory}")
        _state_file(directory).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
