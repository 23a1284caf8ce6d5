"""The Spark resource fails fast and clearly when Spark cannot start."""

import socket
import time

import pytest

from lake_assets.defs.resources.spark import SparkResource, SparkUnavailable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_server_down_is_a_clear_error_within_seconds():
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(SparkUnavailable, match=f"No Spark Connect server answers at 127.0.0.1:{port}"):
        _ = SparkResource(remote=f"sc://127.0.0.1:{port}").spark_session
    assert time.monotonic() - started < 10


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java anywhere
    with pytest.raises(SparkUnavailable, match="Spark needs Java 17 or newer"):
        _ = SparkResource().spark_session


def test_session_config_local_and_connect():
    local = SparkResource().session_config()
    assert local["spark.sql.session.timeZone"] == "UTC" and local["spark.ui.showConsoleProgress"] == "false"
    assert local["spark.master"] == "local[2]"
    connect = SparkResource(remote="sc://127.0.0.1:15002").session_config()
    # Connect sessions refuse a master and static confs: only session-level settings go along.
    assert connect["spark.remote"] == "sc://127.0.0.1:15002" and "spark.master" not in connect
    assert "spark.driver.memory" not in connect
