"""Shared fixtures: one Spark session, one S3 server (lake_tools/seaweedfs.py) and one Glue Data Catalog
(moto, lake_tools/moto_glue.py) per test session."""

import os
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
    from lake_assets.resources.spark import spark_resource_from_env

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
    from lake_assets.storage import open_storage

    if request.param == "local":
        return open_storage(str(tmp_path / "lake"))
    root = request.getfixturevalue("s3_lake_root")
    return open_storage(root, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    """A LakeResource on each backend: a local folder, and a fresh bucket on the test S3."""
    from lake_assets.resources import LakeResource

    if request.param == "local":
        return LakeResource(root=str(tmp_path / "lake"))
    root = request.getfixturevalue("s3_lake_root")
    return LakeResource(
        root=root, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"], s3_path_style=True
    )


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


# Fixtures that start a JVM or a server (Spark, SeaweedFS, moto, PostgreSQL, dagster dev). A test that
# uses none of them is marked `unit`: `make test-unit` runs those alone, in seconds.
_SERVICE_FIXTURES = {
    "spark_resource",
    "spark",
    "s3_server",
    "killable_s3",
    "moto_glue",
    "postgres",
    "dagster_server",
    "connect_session",
}
# Fixtures parametrised over a local and an S3 lake: only their S3 case needs the S3 server.
_S3_PARAMETRISED = ("lake", "storage_backend")


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        needs_s3 = any(params.get(name) == "s3" for name in _S3_PARAMETRISED)
        marked = item.get_closest_marker("e2e") or item.get_closest_marker("services")  # starts one itself
        if not (_SERVICE_FIXTURES & set(item.fixturenames)) and not needs_s3 and not marked:
            item.add_marker(pytest.mark.unit)
