"""The code location: the four lake assets (the trusted ones carry their contract checks), the raw-arrival
sensor, the daily schedule, declarative automation, freshness, alerts, the tables' maintenance and
rollback jobs, and their resources.

Resources are built from the environment (see the README's configuration table); secrets go
through `EnvVar`, so they are read at run time and never stored in the definitions.
"""

from dagster import Definitions, in_process_executor

from lake_assets.alerts import ALERT_SENSORS
from lake_assets.assets import raw, trusted
from lake_assets.automation import automated, automation_sensor, daily_tmdb_collection, deadline_sensor
from lake_assets.io_managers import RawZoneIOManager, TrustedParquetIOManager
from lake_assets.resources import (
    alert_webhook_from_env,
    catalog_resource_from_env,
    lake_resource_from_env,
    spark_resource_from_env,
    tmdb_resource_from_env,
)
from lake_assets.sensors import raw_arrivals_sensor
from lake_assets.table_jobs import JOBS, SCHEDULES

# automated(): the automation conditions and freshness policies, kept in lake_assets/automation.py.
ASSETS = automated([raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb])


def resources_from_env() -> dict:
    lake = lake_resource_from_env()
    spark = spark_resource_from_env()
    catalog = catalog_resource_from_env()
    return {
        "lake": lake,
        "spark": spark,
        "tmdb": tmdb_resource_from_env(),
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark, catalog=catalog),
        "catalog": catalog,
        "webhook": alert_webhook_from_env(),
    }


defs = Definitions(
    assets=ASSETS,
    jobs=JOBS,
    schedules=[daily_tmdb_collection, *SCHEDULES],
    sensors=[raw_arrivals_sensor, automation_sensor, deadline_sensor, *ALERT_SENSORS],
    resources=resources_from_env(),
    # All steps of a run share one process, so one Spark session: a step process of its own
    # costs ~4 s of imports plus, on a classic session, ~6 s of JVM start, and 2 cores gain
    # nothing from running a raw step and a check in parallel.
    executor=in_process_executor,
)
