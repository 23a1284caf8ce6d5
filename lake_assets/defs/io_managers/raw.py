"""The raw-zone IO manager: lands raw data unchanged and hands the trusted assets what they read."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dagster import AssetsDefinition, ConfigurableIOManager, Failure, InputContext, MetadataValue, OutputContext

from lake_assets.defs.io_managers.paths import lake_path, zone
from lake_assets.defs.resources import LakeResource
from lake_assets.lib.partitions import dt_path
from lake_assets.lib.raw_versions import data_version
from lake_assets.lib.raw_zone import (
    HEAD_BYTES,
    JsonRecords,
    LandedFile,
    RawFile,
    RawFolders,
    file_names,
    json_lines_records,
    land_json_lines,
    landed_files,
    sha256,
)
from lake_assets.lib.staging import spark_readable

_IO_THREADS = 8  # partitions listed or downloaded at once in a range run (S3 latency bound)
# The names of a raw day's data files, in its materialisation: what a later look compares with to
# name the files deleted since.
LANDED_FILES = "landed_files"


class RawZoneIOManager(ConfigurableIOManager):
    """Lands raw data unchanged: a file byte for byte, or JSON records as JSON Lines per partition."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: LandedFile | JsonRecords) -> None:
        path = lake_path(context)
        storage = self.lake.storage(zone(path))
        if isinstance(obj, LandedFile):
            storage.put_file(obj.path, path)
            context.add_output_metadata(
                {"path": MetadataValue.path(storage.uri(path)), "bytes": obj.path.stat().st_size, "sha256": sha256(obj.path)}
            )
        elif isinstance(obj, JsonRecords):
            (key,) = context.asset_partition_keys  # one collection lands one day
            prefix = f"{path}/{dt_path(key, self.lake.dt_layout)}"
            published = land_json_lines(storage, prefix, obj.records)
            context.add_output_metadata(
                {
                    "path": MetadataValue.path(storage.uri(prefix)),
                    "files": len(published.keys),
                    LANDED_FILES: MetadataValue.json(file_names(prefix, published.keys)),
                    "bytes": published.bytes,
                    "dagster/row_count": len(obj.records),
                }
            )
        else:
            raise TypeError(f"raw zone output must be LandedFile or JsonRecords, got {type(obj).__name__}")

    def landed_days(self, asset: AssetsDefinition, keys: Sequence[str]) -> dict[str, tuple[dict, str]]:
        """The days among `keys` that have raw files, each with the metadata of its materialisation
        (path, files, bytes, records) and its data version: a day that arrived as files is registered
        as it is."""
        path = lake_path(asset)
        storage = self.lake.storage(zone(path))

        def one_day(key: str) -> tuple[dict, str] | None:
            prefix = f"{path}/{dt_path(key, self.lake.dt_layout)}"
            landed = landed_files(storage, prefix)
            if not landed:
                return None
            records = sum(json_lines_records(storage, obj.key) for obj in landed)
            metadata = {
                "path": MetadataValue.path(storage.uri(prefix)),
                "files": len(landed),
                LANDED_FILES: MetadataValue.json(file_names(prefix, [obj.key for obj in landed])),
                "bytes": sum(obj.size for obj in landed),
                "dagster/row_count": records,
            }
            return metadata, data_version(storage, landed)

        with ThreadPoolExecutor(_IO_THREADS) as pool:
            found = dict(zip(keys, pool.map(one_day, keys), strict=True))
        return {key: metadata for key, metadata in found.items() if metadata is not None}

    def load_input(self, context: InputContext) -> RawFile | RawFolders:
        """The file of an unpartitioned asset, else the files of the partitions this step reads."""
        path = lake_path(context)
        storage = self.lake.storage(zone(path))
        if not context.has_asset_partitions:
            found = [obj for obj in storage.list(path) if obj.key == path]
            if not found:
                raise Failure(f"nothing at {storage.uri(path)}: materialise {context.asset_key.to_user_string()} first")
            head = storage.get_range(path, 0, min(found[0].size, HEAD_BYTES)) if found[0].size else b""
            return RawFile(storage.uri(path), spark_readable(storage, [path], "raw-in")[0], head, storage, path)
        keys = list(context.asset_partition_keys)

        def one_day(key: str) -> tuple[list[str], list[str], int, str]:
            objects = landed_files(storage, f"{path}/{dt_path(key, self.lake.dt_layout)}")
            landed = [obj.key for obj in objects]
            readable = spark_readable(storage, landed, f"raw-in-{key}")
            records = sum(json_lines_records(storage, k, r) for k, r in zip(landed, readable, strict=True))
            return landed, readable, records, data_version(storage, objects)

        # Days are independent folders: on S3 their listings and downloads overlap (a year is 365 of each).
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            days = dict(zip(keys, pool.map(one_day, keys), strict=True))
        missing = [key for key, (landed, *_) in days.items() if not landed]
        kept = {key: day for key, day in days.items() if key not in missing}
        return RawFolders(
            files={key: readable for key, (_, readable, _, _) in kept.items()},
            records={key: count for key, (_, _, count, _) in kept.items()},
            layout=self.lake.dt_layout,
            missing=missing,
            where=storage.uri(path),
            versions={key: version for key, (_, _, _, version) in kept.items()},
        )
