"""The cluster's process handling, without starting a JVM: what `make cluster-down` may signal, and
the refusals of `make cluster-up`. The cluster itself runs in every e2e test (dagster_server.py),
where test_e2e.py proves a backfill's tasks ran in the executors of both workers."""

import socket

import pytest

from lake_tools import cluster as cluster_cli
from lake_tools.cluster import StandaloneCluster
from lake_tools.processes import alive, kill_process, start_process


def test_stop_never_signals_a_process_that_is_not_this_clusters_daemon(tmp_path):
    """A pid file outlives its daemon (a reboot, a kill -9) and the pid gets reused: down must leave
    that process alone and only forget the stale pid."""
    cluster = StandaloneCluster(tmp_path / "cluster", workers=1)
    (cluster.home / "pids").mkdir(parents=True)
    stranger = start_process(["sleep", "60"])
    try:
        for name in cluster.daemon_names:
            (cluster.home / "pids" / f"{name}.pid").write_text(str(stranger.pid))
        assert cluster.pids() == {}
        assert cluster.stop(timeout=1) == []
        assert alive(stranger.pid)
        assert list((cluster.home / "pids").iterdir()) == []
    finally:
        kill_process(stranger)


def test_down_is_idempotent_when_nothing_runs(tmp_path, capsys):
    for _ in range(2):
        assert cluster_cli.down(cluster_dir=tmp_path / "cluster", spark_dir=tmp_path / "spark") == 0
        assert capsys.readouterr().out.strip() == "No Spark cluster was running"


def test_up_refuses_a_master_port_in_use_in_one_line_and_starts_nothing(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cluster_cli.up(2, master_port=port, cluster_dir=tmp_path / "cluster", spark_dir=tmp_path / "spark")
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == f"cluster-up: port {port} is in use by another process: stop it, or choose another port"
    assert not list((tmp_path / "cluster").rglob("*.pid")) and not (tmp_path / "cluster" / "cluster.json").exists()


def test_a_cluster_needs_a_worker_with_a_core(tmp_path):
    with pytest.raises(ValueError, match="at least one worker with one core"):
        StandaloneCluster(tmp_path, workers=0)
