"""`make run`: materialise the four assets for today's partition and say where the data went.

With no TMDB credentials in the environment the collector reads the bundled offline snapshot, so
this works on a machine without internet.
"""

import datetime as dt
import os
import sys

from dagster import DagsterInstance, materialize

from lake_assets.assets import raw, trusted
from lake_assets.definitions import resources_from_env


def main() -> int:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    resources = resources_from_env()
    instance = DagsterInstance.get() if "DAGSTER_HOME" in os.environ else DagsterInstance.ephemeral()
    results = [
        materialize([raw.filmes_csv, trusted.filmes], resources=resources, instance=instance),
        materialize([raw.tmdb_json, trusted.tmdb], resources=resources, instance=instance, partition_key=today),
    ]
    print(f"\nlake_assets: materialised for partition {today} (lake root: {resources['lake'].root})\n")
    print(f"{'asset':<18} {'rows':>8} {'rejected':>9}  path")
    for result in results:
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            rows = meta.get("dagster/row_count") or meta.get("data_rows")
            rejected = meta.get("rejected_rows")
            print(
                f"{event.asset_key.to_user_string():<18} {rows.value if rows else '-':>8} "
                f"{rejected.value if rejected else '-':>9}  {meta['path'].value}"
            )
    root = resources["lake"].root
    if not root.startswith("s3"):
        print(f"\nRead it back: duckdb -c \"select * from read_parquet('{root}/trusted/tmdb/*/*.parquet', hive_partitioning=true) limit 5\"")
    return 0 if all(r.success for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
