"""The trusted zone in DuckDB by name: views `filmes` and `tmdb` over one Iceberg snapshot's files.

    python -m lake_tools.duckdb_lake "select dt, count(*) from tmdb group by dt order by dt"
    python -m lake_tools.duckdb_lake --as-of 2026-12-01T09:00:00Z "select count(*) from tmdb"
    python -m lake_tools.duckdb_lake --snapshot 4213417 "select count(*) from tmdb"

    from lake_tools.duckdb_lake import open_lake
    open_lake().sql("select idioma_original, count(*) from tmdb where dt = '2024-01-05' group by 1").show()

The files are planned by pyiceberg from the current snapshot (or the one asked for), never globbed,
so a publish in progress, a crashed one or an earlier version is never visible; `dt` is a column of
`tmdb`. (DuckDB's own iceberg extension would have to be downloaded.) Each table is a pyarrow dataset of
exactly those files, which DuckDB scans with column and `dt` pushdown, on a local lake and on S3 alike
(pyarrow's own S3 client: DuckDB's httpfs extension would have to be downloaded). The lake is the one
`LAKE_ROOT` / `LAKE_TRUSTED_ROOT` names, with the same S3 settings as the pipeline.
"""

import argparse
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from lake_assets.defs.resources.lake import LakeResource, lake_resource_from_env
from lake_assets.lib.registry import TRUSTED
from lake_assets.lib.storage import is_s3_root
from lake_assets.lib.tables import iceberg
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


def committed_dataset(
    lake: LakeResource, path: str, partitioned: bool, snapshot_id: int | None = None, as_of: dt.datetime | None = None
) -> ds.Dataset | None:
    """The files of one snapshot of a trusted table (the current one, `snapshot_id`, or the one
    current `as_of`) as one pyarrow dataset (`dt` a string column of a partitioned table), or None
    before its first commit."""
    storage = lake.storage("trusted")
    table = iceberg.load(lake.iceberg_catalog(), path)
    if table is None or table.current_snapshot() is None:
        return None
    if as_of is not None:
        snapshot = table.snapshot_as_of_timestamp(int(as_of.timestamp() * 1000))
        if snapshot is None:
            return None  # the table did not exist yet: no view, as before its first commit
        snapshot_id = snapshot.snapshot_id
    files = iceberg.current_files(table, storage, snapshot_id=snapshot_id)
    if not files:
        return None
    filesystem, base = _filesystem(lake, lake.root_of("trusted"))
    # The snapshot's schema, from the table's metadata rather than a footer per write: files are read
    # by name, and a column an older file lacks reads as null.
    schema = pa.schema([f.remove_metadata() for f in table.scan(snapshot_id=snapshot_id).projection().as_arrow()])
    paths, partitions = [], []
    for partition, data in sorted(files.items(), key=lambda item: item[0] or ""):
        for file in data:
            paths.append(f"{base}/{file.key}")
            partitions.append(ds.field("dt") == partition if partitioned else ds.scalar(True))
    if partitioned and "dt" not in schema.names:  # files published before Iceberg keep `dt` in their folder only
        schema = schema.append(pa.field("dt", pa.string()))
    return ds.FileSystemDataset.from_paths(
        paths, schema=schema, format=ds.ParquetFileFormat(), filesystem=filesystem, partitions=partitions
    )


def open_lake(
    lake: LakeResource | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
    *,
    snapshot_id: int | None = None,
    as_of: dt.datetime | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per committed trusted table (`filmes`, `tmdb`): their current
    snapshots, or those current `as_of`; `snapshot_id` picks one table's snapshot (the table that has it)."""
    # Outside a run, Dagster has not resolved the EnvVar credentials of the lake resource: this does.
    lake = (lake or lake_resource_from_env()).process_config_and_initialize()
    connection = connection or duckdb.connect()
    found = snapshot_id is None
    for path, partitioned in ((d.path, d.daily) for d in TRUSTED):
        table = iceberg.load(lake.iceberg_catalog(), path)
        own = snapshot_id if table is not None and snapshot_id and table.snapshot_by_id(snapshot_id) else None
        found = found or own is not None
        dataset = committed_dataset(lake, path, partitioned, own, None if own else as_of)
        if dataset is not None:
            connection.register(path.rsplit("/", 1)[-1], dataset)
    if not found:
        raise ValueError(f"no trusted table has snapshot {snapshot_id} (retention may have expired it)")
    if as_of is not None and not connection.sql("select 1 from duckdb_views() where not internal").fetchall():
        raise ValueError(f"no trusted table had a snapshot at {as_of.isoformat()}")
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
    travel = parser.add_mutually_exclusive_group()
    travel.add_argument("--snapshot", type=int, help="read the table that has this snapshot id as of it")
    travel.add_argument(
        "--as-of",
        type=dt.datetime.fromisoformat,
        help="read every table as it was at this time (ISO 8601, e.g. 2026-12-01T09:00Z)",
    )
    args = parser.parse_args(argv)
    as_of = args.as_of.replace(tzinfo=args.as_of.tzinfo or dt.UTC) if args.as_of else None
    try:
        connection = open_lake(snapshot_id=args.snapshot, as_of=as_of)
    except ValueError as error:  # no snapshot at that time
        print(f"duckdb_lake: {error}", file=sys.stderr)
        return 1
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
