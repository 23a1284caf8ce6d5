"""The deployment's rules that need no server: the run launcher's view of a worker, and what a
restart may change. The running topology is lake_assets_tests/test_deploy.py."""

import os
import subprocess
import sys
import time

import pytest

from lake_assets.defs.launcher import _alive, _is_this_machine
from lake_tools.deploy import DeployError, check_same_settings, pinned_settings, secret_names


def test_a_worker_is_alive_only_while_its_own_process_runs():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = time.time()
    try:
        assert _alive(child.pid, started)
        # A process created after the run started is not its worker, whatever its pid.
        assert not _alive(child.pid, started - 3600)
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid, started)
    assert _alive(os.getpid(), None)


@pytest.mark.parametrize(
    ("host", "here"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("10.0.0.5", False), ("code", False)]
)
def test_only_a_loopback_code_server_is_checked(host, here):
    assert _is_this_machine(host) is here


def test_a_restart_keeps_the_settings_and_names_the_secrets_only():
    environ = {
        "LAKE_ROOT": "s3://lake/prod",
        "TMDB_PAGES": "20",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "PYICEBERG_CATALOG__LAKE__URI": "postgresql+psycopg://lake:pw@db/lake",
        "HOME": "/root",
    }
    pinned, secrets = pinned_settings(environ), secret_names(environ)
    assert pinned == {"LAKE_ROOT": "s3://lake/prod", "TMDB_PAGES": "20"}
    assert secrets == ["AWS_SECRET_ACCESS_KEY", "PYICEBERG_CATALOG__LAKE__URI"]
    state = {"settings": pinned, "secrets": secrets}

    check_same_settings(state, {**environ, "LAKE_ROOT": ""})  # unset here: the recorded value is used
    with pytest.raises(DeployError, match="LAKE_ROOT is './lake' here but the deployment runs with 's3://lake/prod'"):
        check_same_settings(state, {**environ, "LAKE_ROOT": "./lake"})
    with pytest.raises(DeployError, match="started with PYICEBERG_CATALOG__LAKE__URI set") as refused:
        check_same_settings(state, {k: v for k, v in environ.items() if not k.startswith("PYICEBERG")})
    assert "pw@" not in str(refused.value)
