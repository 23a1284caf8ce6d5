"""Small process and port helpers shared by the local services (SeaweedFS, PostgreSQL, moto, Spark,
Dagster, Chromium) and the tests that start processes of their own.

Every helper here acts only on processes its caller started, by PID or process group, never by name:

    start_process     a child in a session of its own, its output in a log
    is_running        is this recorded PID still the process we started (/proc/<pid>/cmdline)
    wait_until_ready  poll a starting process's port, URL or file; fail at once if it exits
    stop_pid          SIGTERM (or another signal), wait, SIGKILL; stop_process / kill_process for a child
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, held open together so none is handed out twice."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped: it has stopped serving)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def zombie(pid: int) -> bool:
    """The process has exited and waits for its parent (or PID 1) to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def command_line(pid: int) -> list[str]:
    """A process's arguments, from /proc/<pid>/cmdline: [] once it has exited (or is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    args = raw.split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return [os.fsdecode(arg) for arg in args]


def is_running(pid: int, program: str, *args: str | tuple[str, ...]) -> bool:
    """Whether `pid` is still the process its owner started, not a PID reused since a pid file or a
    state file recorded it: it is alive, it runs `program` (its first argument ends with it, or,
    for a script run by its interpreter's shebang, its second one), and its command line holds
    each of `args`: one argument, or a tuple of consecutive ones (("-D", folder))."""
    argv = command_line(pid)
    if not argv or not alive(pid):
        return False
    if not (argv[0].endswith(program) or (len(argv) > 1 and argv[1].endswith(program))):
        return False
    for arg in args:
        run = (arg,) if isinstance(arg, str) else tuple(arg)
        if not any(tuple(argv[i : i + len(run)]) == run for i in range(len(argv) - len(run) + 1)):
            return False
    return True


def process_tree(root: int) -> set[int]:
    """A process and all its descendants now, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def process_group(group: int) -> list[int]:
    """The processes of a process group now, from /proc (Linux): a session leader's, by its pid."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group:
                    members.append(int(entry))
            except ProcessLookupError:
                continue  # exited meanwhile
    return members


def start_process(
    args: list[str],
    *,
    output: object = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    **popen,
) -> subprocess.Popen:
    """Start `args` as a child in a session (process group) of its own, stdin from /dev/null: a
    Ctrl-C meant for its owner does not reach it, and the owner stops it by PID or by group.
    `output` takes its stdout and stderr: a log file (a path, appended to), an open file,
    subprocess.DEVNULL or PIPE, or None to share the owner's. Other Popen arguments (stderr=, text=,
    user=, start_new_session=False...) go through."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("start_new_session", True)
    popen.setdefault("stderr", None if output is None else subprocess.STDOUT)
    if isinstance(output, str | Path):
        with open(output, "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(args, env=env, cwd=cwd, stdout=log, **popen)
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=output, **popen)


def exited_at_start(process: subprocess.Popen, what: str, detail: Callable[[], str] = lambda: "") -> Callable[[], str | None]:
    """For wait_until_ready's `exited`: "<what> exited with <code> at start<detail()>" once the
    child has exited, None while it runs."""
    return lambda: None if process.poll() is None else f"{what} exited with {process.returncode} at start{detail()}"


def wait_until_ready(
    what: str,
    ready: Callable[[], object],
    *,
    deadline: float,
    exited: Callable[[], str | None] = lambda: None,
    detail: Callable[[], str] = lambda: "",
    every: float = 0.25,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
):
    """Poll a process that is starting (its port, URL or file) until `ready()` is truthy, and
    return that value. An exception of `retry_on` from the probe (by default OSError: connection
    refused; requests' errors are OSErrors) means not yet. When `exited()` names why the process
    died, fail at once rather than at the deadline; past `deadline` (time.monotonic()), fail with
    `what` and `detail()` (where its log is)."""
    while True:
        reason = exited()
        if reason:
            raise RuntimeError(reason)
        try:
            answer = ready()
            if answer:
                return answer
        except retry_on:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}{detail()}")
        time.sleep(every)


def wait_for_exit(pid: int, timeout: float, every: float = 0.2) -> bool:
    """Wait until `pid` has exited (a zombie has): True, or False if it still runs after `timeout`."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def stop_pid(
    pid: int,
    timeout: float = 30,
    kill_group: bool = False,
    *,
    sig: signal.Signals | None = signal.SIGTERM,
    every: float = 0.2,
) -> None:
    """`sig` (SIGTERM; None when the caller has asked it to stop another way, e.g. a stop script),
    then SIGKILL if it has not exited within `timeout`: the process, or with `kill_group` its whole
    process group (for a process started with start_new_session, whose group id is its pid: a Spark
    worker and the executors it forked)."""
    if sig is not None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    if not wait_for_exit(pid, timeout, every):
        try:
            (os.killpg if kill_group else os.kill)(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_process(
    process: subprocess.Popen, timeout: float = 30, *, sig: signal.Signals = signal.SIGTERM, every: float = 0.2
) -> None:
    """stop_pid for a child of this process (if it still runs), which is then reaped."""
    if process.poll() is None:  # not reaped yet: its PID cannot have been reused
        stop_pid(process.pid, timeout, sig=sig, every=every)
    process.wait()


def kill_process(process: subprocess.Popen, *, group: bool = False) -> None:
    """SIGKILL a child, as a crash would, or with `group` its whole process group (helpers that
    outlived it included), and reap it."""
    if group or process.poll() is None:
        try:
            (os.killpg if group else os.kill)(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a child's whole process group, then SIGKILL what outlived it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    kill_process(process, group=True)  # children that outlived the group leader, or all of them after the timeout


# Runs as its own process. When the owner goes away (a test run killed with SIGKILL, a CI timeout),
# SIGKILL the targets: process groups ("g<pid>") and single processes ("p<pid>"). It also exits once
# every target is gone. pidfds make it immune to PID reuse and need no polling.
_WATCHER = """
import os, select, signal, sys
owner, targets = int(sys.argv[1]), sys.argv[2:]
fds = {}
for target in targets:
    try:
        fds[os.pidfd_open(int(target[1:]))] = target
    except ProcessLookupError:
        pass
try:
    owner_fd = os.pidfd_open(owner)
except ProcessLookupError:
    owner_fd = None
while fds and owner_fd is not None:
    ready, _, _ = select.select([owner_fd, *fds], [], [])
    if owner_fd in ready:
        break
    for fd in ready:
        del fds[fd]
for target in fds.values():
    kill = os.killpg if target[0] == "g" else os.kill
    try:
        kill(int(target[1:]), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
"""


def start_watchdog(groups: list[int] = (), pids: list[int] = ()) -> subprocess.Popen:
    """Start a watcher that kills these process groups and processes if this process dies first."""
    targets = [f"g{pid}" for pid in groups] + [f"p{pid}" for pid in pids]
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHER, str(os.getpid()), *targets],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def reap(watcher: subprocess.Popen | None, timeout: float = 5) -> None:
    """Wait for a watcher whose targets are gone (it then exits by itself), or kill it."""
    if watcher is None:
        return
    try:
        watcher.wait(timeout)
    except subprocess.TimeoutExpired:
        watcher.kill()
        watcher.wait()


# Runs a command and prints, last, the peak RSS in MB of the largest process of its tree (Linux's
# RUSAGE_CHILDREN: the command and everything it waited for, e.g. a JVM).
def tree_rss_mb(root: int) -> int:
    """Resident memory (MB) of a process and all its descendants now, from /proc (Linux): a Python
    process that starts a Spark driver JVM (a classic session) counts the JVM too."""
    total = 0
    for pid in process_tree(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return total * os.sysconf("SC_PAGE_SIZE") // 2**20


def timed_run(args: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak resident memory (MB, sampled every 0.2 s) of one whole process tree:
    the process and every child it starts (a Spark driver JVM, a Dagster run's subprocess). Its
    output is kept only for an error."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss_mb(process.pid))
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        if process.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed:\n{output.read()[-5000:]}")
    return elapsed, peak


@contextmanager
def output_to(path: Path):
    """Send this process's stdout and stderr, and those of the JVM or children it starts, to `path`
    (at the file-descriptor level, where they write): a command's terminal keeps only its own lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with Path(path).open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
