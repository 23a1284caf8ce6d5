"""Shared fixtures: one Spark session and (see lake_tools/seaweedfs.py) one S3 server per test session."""

import os
import uuid

import pytest

# Before anything imports lake_assets: the tests land history from 2024 (the daily partitions start
# there), and Spark binds to loopback.
os.environ["TMDB_START_DATE"] = "2024-01-01"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

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
