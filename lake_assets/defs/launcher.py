"""The run launcher of `make deploy-up`: Dagster's default, plus a health check of the run worker.

DefaultRunLauncher starts each run in a process of the code server, and cannot tell run monitoring
when that process died with its code server (kill -9, a lost container): such a run would stay
STARTED until `max_runtime_seconds`. The worker's first engine event ("Started process for run") carries its pid; when the
code server is on this machine, whether that process still lives answers the question. Run
monitoring then marks the run failed and run retries launch it again.
"""

import ipaddress
import json

import psutil
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run monitoring notices a run worker that died on this machine."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        host = json.loads(run.tags.get(GRPC_INFO_TAG, "{}")).get("host", "localhost")
        if not _is_this_machine(host):
            # Another host's processes are out of sight: max_runtime_seconds still bounds the run.
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"not checked: the worker runs on {host}")
        pid = self._worker_pid(run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the worker has not reported its pid yet")
        record = self._instance.get_run_record_by_id(run.run_id)
        started = record.start_time if record and record.start_time else None
        if _alive(pid, started):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker (pid {pid}) is gone", run_worker_id=str(pid))

    def _worker_pid(self, run_id: str) -> int | None:
        for entry in self._instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            pid = entry.dagster_event.engine_event_data.metadata.get("pid") if entry.dagster_event else None
            if pid is not None:
                return int(str(pid.value))
        return None


def _is_this_machine(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _alive(pid: int, run_started: float | None) -> bool:
    """The worker's process, not a later one that reused its pid: that one was created after the run started."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return run_started is None or process.create_time() <= run_started + 1
    except psutil.NoSuchProcess:
        return False
