"""Shared fixtures: one Spark session and (see s3_server.py) one S3 server per test session."""

import os

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark_resource():
    from lake_assets.spark import spark_resource_from_env

    return spark_resource_from_env()


@pytest.fixture(scope="session")
def spark(spark_resource):
    return spark_resource.spark_session
