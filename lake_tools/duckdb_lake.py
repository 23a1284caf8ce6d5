"""The trusted zone in DuckDB by name: views `filmes` and `tmdb` over the committed files only.

    python -m lake_tools.duckdb_lake "select dt, count(*) from tmdb group by dt order by dt"

    from lake_tools.duckdb_lake import open_lake
    open_lake().sql("select idioma_original, count(*) from tmdb where dt = '2024-01-05' group by 1").show()

The views are read from the manifests (`committed_files`), never from a glob, so a publish in progress
or a crashed one is never half visible; `dt` is a column of `tmdb`. Each table is a pyarrow dataset of
exactly those files, which DuckDB scans with column and `dt` pushdown, on a local lake and on S3 alike
(pyarrow's own S3 client: DuckDB's httpfs extension would have to be downloaded). The lake is the one
`LAKE_ROOT` / `LAKE_TRUSTED_ROOT` names, with the same S3 settings as the pipeline.
"""

import argparse
import os
import shlex
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lake_assets.catalog import committed_partitions, read_versions, trusted_tables
from lake_assets.resources.lake import LakeResource, lake_resource_from_env
from lake_assets.storage import is_s3_root
from lake_assets.storage.publish import committed_files
from lake_tools.devserver import PROJECT_DIR

# What locates a local lake's trusted tables (see lake_resource_from_env); S3 settings are not repeated.
_LOCAL_LAKE_VARIABLES = ("LAKE_ROOT", "LAKE_TRUSTED_ROOT", "LAKE_DT_LAYOUT")


def _filesystem(lake: LakeResource, root: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for a zone root, and the root as a path in it. Credentials come from the
    AWS chain, which pyarrow reads itself (never passed or stored here)."""
    if not is_s3_root(root):
        return pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
    options = {"region": lake.region_name or "us-east-1"}
    if lake.endpoint_url:
        scheme, _, host = lake.endpoint_url.partition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    options["force_virtual_addressing"] = not lake.s3_path_style and not lake.endpoint_url
    return pafs.S3FileSystem(**options), root.split("://", 1)[1].rstrip("/")


def committed_dataset(lake: LakeResource, path: str, partitioned: bool) -> ds.Dataset | None:
    """The committed Parquet files of a trusted table as one pyarrow dataset (`dt` a string column
    of a partitioned table), or None when nothing is committed yet."""
    storage = lake.storage("trusted")
    keys = committed_partitions(storage, path, lake.layout) if partitioned else None
    if (partitioned and not keys) or (not partitioned and committed_files(storage, path) is None):
        return None
    versions = [v for v in read_versions(storage, path, keys, lake.layout) if v.files]
    if not versions:
        return None
    filesystem, base = _filesystem(lake, lake.root_of("trusted"))
    # One schema for every version: a column an older partition lacks reads as null.
    schema = pa.unify_schemas([pq.read_schema(f"{base}/{v.files[0].key}", filesystem=filesystem) for v in versions])
    paths, partitions = [], []
    for version in versions:
        for file in version.files:
            paths.append(f"{base}/{file.key}")
            partitions.append(ds.field("dt") == version.partition if partitioned else ds.scalar(True))
    if partitioned:
        schema = schema.append(pa.field("dt", pa.string()))
    return ds.FileSystemDataset.from_paths(
        paths, schema=schema, format=ds.ParquetFileFormat(), filesystem=filesystem, partitions=partitions
    )


def open_lake(lake: LakeResource | None = None, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per committed trusted table (`filmes`, `tmdb`)."""
    # Outside a run, Dagster has not resolved the EnvVar credentials of the lake resource: this does.
    lake = (lake or lake_resource_from_env()).process_config_and_initialize()
    connection = connection or duckdb.connect()
    for path, partitioned in trusted_tables():
        dataset = committed_dataset(lake, path, partitioned)
        if dataset is not None:
            connection.register(path.rsplit("/", 1)[-1], dataset)
    return connection


def read_back_command(sql: str) -> str:
    """This module's CLI running `sql` as a shell line for the project folder, on this environment's
    local lake: what `make run` prints, for a machine with no `duckdb` command."""
    settings = [f"{name}={shlex.quote(os.environ[name])}" for name in _LOCAL_LAKE_VARIABLES if os.environ.get(name)]
    python = Path(sys.executable)
    if python.is_relative_to(PROJECT_DIR):
        python = python.relative_to(PROJECT_DIR)
    return " ".join([*settings, str(python), "-m", __spec__.name, shlex.quote(sql)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.duckdb_lake", description=__doc__.split("\n\n")[0])
    parser.add_argument("sql", nargs="?", help="a query over filmes and tmdb; without it, the views are listed")
    args = parser.parse_args(argv)
    connection = open_lake()
    try:
        connection.sql(args.sql or "select view_name as view from duckdb_views() where not internal order by 1").show(
            max_width=200
        )
    except duckdb.CatalogException as error:  # e.g. a table with no committed data yet has no view
        views = [name for (name,) in connection.sql("select view_name from duckdb_views() where not internal").fetchall()]
        print(
            f"duckdb_lake: {str(error).splitlines()[0]} (views of committed tables: {', '.join(views) or 'none'})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
