"""Shared fixtures: one Spark session, one S3 server (lake_tools/seaweedfs.py) and one Glue Data Catalog
(moto, lake_tools/moto_glue.py) per test session, a fresh Dagster instance per test; and the test tiers
(markers and timeouts) derived from the fixtures each test requests."""

import os
import shutil
import signal
import tempfile
import uuid

import pytest

# Before anything imports lake_assets: the tests land history from 2024 (the daily partitions start
# there), and Spark binds to loopback.
os.environ["TMDB_START_DATE"] = "2024-01-01"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# The SQLite catalogs of S3 test lakes live with the session's temporary files, not in the checkout;
# and a developer's own `lake` catalog settings never reach the tests.
os.environ["LAKE_CATALOG_DIR"] = tempfile.mkdtemp(prefix="lake-catalogs-")
for _name in [n for n in os.environ if n.startswith("PYICEBERG_CATALOG__LAKE__")]:
    del os.environ[_name]

# Started as a background job (`make test &`, a CI step without job control), pytest inherits
# "ignore SIGINT". Each in-process Dagster run then maps SIGTERM to SIGINT's handler (its
# setup_interrupt_handlers), so SIGTERM becomes ignored too, and every server a test starts after
# that (Spark Connect, the cluster, dagster dev) inherits it: stopping it waits out the 30 s
# timeout before SIGKILL (2.5 minutes of teardown per session). With Python's own SIGINT handler,
# children start with the default dispositions, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from lake_assets_tests.dagster_server import dagster_server  # noqa: E402, F401  (session fixture of the e2e tests)


@pytest.fixture(scope="session")
def spark_resource():
    from lake_assets.defs.resources.spark import spark_resource_from_env

    return spark_resource_from_env()


@pytest.fixture(scope="session")
def spark(spark_resource):
    return spark_resource.spark_session


@pytest.fixture(scope="session")
def s3_server():
    """One SeaweedFS S3 for the session; random ports and credentials, killed even if pytest dies."""
    from lake_tools.seaweedfs import SeaweedS3

    server = SeaweedS3().start()
    yield server
    server.stop()


# Variables that would point boto3 elsewhere than the test server, or at other credentials.
_FOREIGN_AWS_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_lake_root(s3_server, monkeypatch):
    """`s3://<fresh bucket>/lake`, with this test's AWS_* environment pointing at the test server."""
    bucket = f"lake-test-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    for name in _FOREIGN_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    yield f"s3://{bucket}/lake"
    s3_server.delete_bucket(bucket)  # each bucket holds volumes of its own; the server caps them


@pytest.fixture(params=["local", "s3"])
def storage_backend(request, tmp_path):
    """The same test on both backends: a local lake folder, and a fresh bucket on the test S3."""
    from lake_assets.lib.storage import open_storage

    if request.param == "local":
        return open_storage(str(tmp_path / "lake"))
    root = request.getfixturevalue("s3_lake_root")
    return open_storage(root, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    """A LakeResource on each backend: a local folder, and a fresh bucket on the test S3."""
    from lake_assets.defs.resources import LakeResource

    if request.param == "local":
        return LakeResource(root=str(tmp_path / "lake"))
    root = request.getfixturevalue("s3_lake_root")
    return LakeResource(
        root=root, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"], s3_path_style=True
    )


@pytest.fixture
def listings(monkeypatch):
    """Every Storage.list call of both backends: prefix, start_after and how many objects it returned.
    Folder listings (Storage.list_folders, a delimiter listing) are recorded with `"folders": True`."""
    calls = []

    def count(cls):
        original = cls.list

        def counted(self, prefix, start_after=None):
            call = {"prefix": prefix, "start_after": start_after, "objects": 0}
            calls.append(call)
            for obj in original(self, prefix, start_after):
                call["objects"] += 1
                yield obj

        monkeypatch.setattr(cls, "list", counted)
        original_folders = cls.list_folders

        def counted_folders(self, prefix):
            found = original_folders(self, prefix)
            calls.append({"prefix": prefix, "folders": True, "objects": 0, "found": len(found)})
            return found

        monkeypatch.setattr(cls, "list_folders", counted_folders)

    from lake_assets.lib.storage.local import LocalStorage
    from lake_assets.lib.storage.s3 import S3Storage

    count(LocalStorage)
    count(S3Storage)
    return calls


@pytest.fixture(scope="session")
def moto_glue():
    """One moto Glue Data Catalog for the session (in memory; a free port; killed even if pytest dies)."""
    from lake_tools.moto_glue import MotoGlue

    server = MotoGlue().start()
    yield server
    server.stop()


def glue_variables(moto_glue) -> dict[str, str]:
    """Point Glue, and only Glue, at the test catalog. Moto takes any credentials; a test on the S3
    server sets that server's, and these stand in when a test on a local lake set none."""
    from lake_tools.moto_glue import DEV_CREDENTIALS

    defaults = {"AWS_REGION": "us-east-1", **DEV_CREDENTIALS}
    return {**moto_glue.env(), **{name: value for name, value in defaults.items() if not os.environ.get(name)}}


@pytest.fixture
def glue(moto_glue, monkeypatch):
    """(a boto3 Glue client on the test catalog, a database name of this test's own), with boto3's
    standard configuration in the environment pointing Glue there."""
    for name in _FOREIGN_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in glue_variables(moto_glue).items():
        monkeypatch.setenv(name, value)
    return moto_glue.client(), f"trusted_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def connect_session(monkeypatch):
    """Open Spark Connect client sessions in this process; they are stopped after the test. Creating
    one sets SPARK_CONNECT_MODE_ENABLED, which would turn this process's classic Spark (the `spark`
    fixture) into Connect: the variable is removed again after the test."""
    from pyspark.sql import SparkSession

    sessions = []

    def open_session(remote: str):
        monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")  # recorded as unset: the teardown removes it
        sessions.append(SparkSession.builder.remote(remote).create())
        return sessions[-1]

    yield open_session
    for session in sessions:
        session.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """One throwaway PostgreSQL for the session (lake_tools/postgres.py): a free port, the database and
    role `lake` with a random password (`postgres.uri()`), killed even if pytest dies."""
    from lake_tools.postgres import Postgres

    server = Postgres(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


# The Dagster instance of the tests that run or tick in process: as `instance_for_test()` makes it
# (SQLite storages in a temporary folder), without capturing the steps' stdout/stderr (a `tail`
# process per stream and run), which no test reads.
_TEST_INSTANCE = {"compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}}


@pytest.fixture(scope="session")
def _dagster_instance_template(tmp_path_factory):
    """An instance folder whose SQLite storages are created and migrated once: that takes 0.3-0.7 s
    per instance, copying the folder 0.04 s."""
    from dagster._core.test_utils import instance_for_test

    folder = tmp_path_factory.mktemp("dagster-instance-template")
    with instance_for_test(temp_dir=str(folder), overrides=_TEST_INSTANCE):
        pass
    return folder


# SQLite commits on every event it stores, and a commit waits for the disk: on a RAM disk, when
# there is one, an in-process run takes half the time.
_RAM_DISK = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@pytest.fixture
def instance(_dagster_instance_template):
    """A fresh Dagster instance of this test's own: a copy of the template, removed afterwards."""
    from dagster._core.test_utils import instance_for_test

    with tempfile.TemporaryDirectory(prefix="lake-test-dagster-", dir=_RAM_DISK, ignore_cleanup_errors=True) as folder:
        shutil.copytree(_dagster_instance_template, folder, dirs_exist_ok=True)
        with instance_for_test(temp_dir=folder, overrides=_TEST_INSTANCE) as instance:
            yield instance


# Test tiers, derived from the fixtures a test requests, directly or through other fixtures
# (item.fixturenames is that closure), so that nobody has to remember them: each marker and the
# fixtures that start what it names. A test that uses none of them, and is marked neither with a
# tier nor `services` by hand (a server it starts itself), is marked `unit`: `make test-unit` runs
# those alone, with no JVM and no server.
TIER_FIXTURES = {
    "spark": {"spark_resource", "spark", "connect_server", "connect_session"},  # a JVM: classic Spark or Connect
    "s3": {"s3_server", "killable_s3"},  # SeaweedFS
    "glue": {"moto_glue"},  # moto's Glue Data Catalog
    "postgres": {"postgres"},  # PostgreSQL
    "e2e": {"dagster_server"},  # dagster dev, a Spark cluster and its Connect server
}
# Fixtures parametrised over a local and an S3 lake: only their S3 case starts the S3 server, through
# request.getfixturevalue, which item.fixturenames does not see.
_S3_PARAMETRISED = ("lake", "storage_backend")
# Per-test timeouts (pytest-timeout) by tier, the longest of a test's tiers, unless the test sets a
# timeout marker of its own. The budget covers the fixtures' setup: the first test to use a session
# server pays for its start.
TIER_TIMEOUTS = {"unit": 60, "services": 300, "spark": 300, "s3": 300, "glue": 300, "postgres": 300, "e2e": 900}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(item.fixturenames)
        params = getattr(getattr(item, "callspec", None), "params", {})
        derived = {tier for tier, fixtures in TIER_FIXTURES.items() if fixtures & names}
        if any(params.get(name) == "s3" for name in _S3_PARAMETRISED):
            derived.add("s3")
        for tier in sorted(derived):
            item.add_marker(tier)
        tiers = {tier for tier in TIER_TIMEOUTS if item.get_closest_marker(tier)}  # derived or by hand
        if not tiers:
            item.add_marker(pytest.mark.unit)
            tiers = {"unit"}
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(TIER_TIMEOUTS[tier] for tier in tiers)))
