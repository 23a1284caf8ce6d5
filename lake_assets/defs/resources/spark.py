"""The Spark resource: a classic local session by default, or a Spark Connect server by config.

Asset code uses only the DataFrame/SQL API (no RDD, no `sparkContext`), so the same code runs on a
classic session, on the warm local Connect server of `make dev`, or on a remote Connect endpoint.
"""

import os
import re
import shutil
import socket
import subprocess
from typing import Any
from urllib.parse import urlparse

from dagster import Failure
from dagster_pyspark import LazyPySparkResource
from dagster_pyspark.resources import spark_session_from_config
from pydantic import Field

from lake_assets.defs.settings import Settings, java_home, spark_local_ip_default


class SparkUnavailable(Failure):
    """Spark cannot start here; the message says why and what to do."""


class SparkResource(LazyPySparkResource):
    """One SparkSession per process, created on first use (steps that never touch Spark pay nothing).

    `remote` (env `SPARK_REMOTE`, e.g. `sc://127.0.0.1:15002`) selects Spark Connect; otherwise a
    classic session runs in this process with `master`.
    """

    spark_config: dict[str, Any] = Field(
        default={}, description="Extra Spark settings (such as spark.executor.memory), applied last."
    )
    remote: str | None = Field(
        default=None,
        description="A Spark Connect endpoint, sc://host:15002 (unset: a classic session in the run's process).",
    )
    master: str = Field(default="local[2]", description="The master of a classic session (ignored with `remote`).")
    driver_memory: str = Field(default="2g", description="Driver heap of a classic session (ignored with `remote`).")
    # The lake's tables are megabytes to a few hundred megabytes: 200 shuffle partitions would only
    # write 200 tiny files. Raise it on a cluster.
    shuffle_partitions: int = Field(default=4, ge=1, le=100_000, description="spark.sql.shuffle.partitions for the lake's jobs.")
    connect_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=120,
        description="How long to wait for the Connect server's port before failing with a clear message.",
    )

    def session_config(self) -> dict[str, Any]:
        common = {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            # Spark 4 reads CSV only in a short list of charsets; windows-1252 (what Excel in Brazil
            # saves) is a JDK charset it accepts only with this on.
            "spark.sql.legacy.javaCharsets": "true",
            # A backfill reads hundreds of named files; above 32 Spark lists them with a distributed
            # job of their own (seconds), when the driver knows them already.
            "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        }
        if self.remote:
            return {"spark.remote": self.remote, **common, **self.spark_config}
        return {
            "spark.master": self.master,
            "spark.app.name": "lake_assets",
            "spark.driver.memory": self.driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": "WARN",
            **common,
            **self.spark_config,
        }

    def _init_session(self) -> None:
        if self._spark_session is None:
            if self.remote:
                _check_connect_server(self.remote, self.connect_timeout_s)
            else:
                _check_java()
                spark_local_ip_default()
            self._spark_session = spark_session_from_config(self.session_config())


def spark_resource_from_env(settings: Settings | None = None) -> SparkResource:
    return SparkResource(remote=(settings or Settings.from_env()).spark.remote)


def _check_java() -> None:
    home = java_home()
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise SparkUnavailable(
            "Spark needs Java 17 or newer and none was found (no `java` on PATH, JAVA_HOME unset). "
            "Install it (Debian: `apt-get install openjdk-17-jre-headless`) or set SPARK_REMOTE to a Spark Connect server."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)', out)
    if match and int(match.group(1)) < 17:
        raise SparkUnavailable(f"Spark 4 needs Java 17 or newer; {java} is Java {match.group(1)}.")


def _check_connect_server(remote: str, timeout_s: float) -> None:
    # The Connect client itself retries for minutes against a closed port; a plain TCP probe
    # turns "server down" into an error within seconds.
    parsed = urlparse(remote.split(";")[0].rstrip("/"))
    host, port = parsed.hostname or "localhost", parsed.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise SparkUnavailable(
            f"No Spark Connect server answers at {host}:{port} ({exc.strerror or exc}). "
            "Start it (`make spark-up`, or `make dev` starts one) or unset SPARK_REMOTE for a local session."
        ) from None
