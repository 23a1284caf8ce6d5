"""`python -m lake_assets.cli.catalog sync`: name every trusted table and partition of the current
snapshots in the Spark catalog of a Connect server (after a failed registration, or for a fresh one)."""

import argparse
import logging
import sys

from lake_assets.defs.resources import catalog_resource_from_env, lake_resource_from_env, spark_resource_from_env
from lake_assets.defs.resources.spark import SparkUnavailable
from lake_assets.defs.settings import Settings
from lake_assets.lib.errors import LakeError, one_line
from lake_assets.lib.registry import TRUSTED
from lake_assets.lib.tables import iceberg


def sync(catalog, lake, spark_session, log: logging.Logger) -> dict[str, dict[str, str]]:
    """Register every trusted table's current snapshot; returns what each registration reported."""
    storage = lake.storage("trusted")
    done = {}
    for dataset in TRUSTED:
        table = iceberg.load(lake.iceberg_catalog(), dataset.path)
        if table is None or table.current_snapshot() is None:
            log.info(f"catalog: nothing committed in {dataset.path} yet")
            continue
        # A daily table's files all have a day: the filter only narrows the type.
        keys = sorted(day for day in iceberg.current_files(table, storage) if day is not None) if dataset.daily else None
        done[dataset.path] = catalog.register(storage, dataset.path, table, keys, log=log, spark_session=spark_session)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_assets.cli.catalog", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sync", help="name every table and partition of the current snapshots in the Spark catalog")
    parser.parse_args(argv)

    log = logging.getLogger("lake_assets.catalog")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler(sys.stderr))
    log.propagate = False
    try:
        settings = Settings.from_env()
        # Outside a run, Dagster has not resolved the EnvVar credentials: this does.
        lake = lake_resource_from_env(settings).process_config_and_initialize()
        catalog = catalog_resource_from_env(settings)
        if not (catalog.spark_database and settings.spark.remote):
            log.info("catalog: no SPARK_REMOTE, so no Spark catalog to register in (a classic session's catalog is in memory)")
            return 0
        session = spark_resource_from_env(settings).spark_session  # a Connect server that is down: one line, in seconds
        try:
            sync(catalog, lake, session, log)
        finally:
            session.stop()  # an unstopped Connect session keeps Python from exiting
        return 0
    except (LakeError, SparkUnavailable, ValueError) as error:  # CatalogError, no Spark, a refused setting
        print(f"lake_assets.cli.catalog: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
