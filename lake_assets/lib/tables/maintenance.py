"""Maintenance of the trusted Iceberg tables: retention (`expire`) and rollback (`rollback`).

Every commit keeps the files it replaced, so that time travel and rollback can reach them; without
retention a table's data and metadata only grow. `expire` drops old snapshots with pyiceberg's own
`expire_snapshots`, then deletes the files that no remaining snapshot names: replaced data files, a
dead writer's uploads, unreachable manifests and metadata files. No file younger than the grace
period is deleted, named or not: a writer may be about to commit it.

`rollback` makes an earlier snapshot's content current again, for the whole table or one `dt`
partition, as a new commit through `iceberg.replace`: history only grows, and the rollback itself
can be rolled back.
"""

import datetime as dt
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from lake_assets.lib.storage import ObjectInfo, Storage, is_hidden
from lake_assets.lib.storage.publish import ORPHAN_GRACE_S
from lake_assets.lib.tables import iceberg
from lake_assets.lib.tables.catalog import table_identifier
from lake_assets.lib.tables.iceberg import Partition

METADATA = "metadata/"
REJECTED = "/_rejected/"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class MaintenanceReport:
    table: str
    expired: tuple[int, ...]  # snapshot ids
    kept: tuple[int, ...]
    deleted: tuple[str, ...]  # keys below the lake root
    bytes_freed: int
    metadata_bytes_before: int
    metadata_bytes_after: int

    def summary(self) -> str:
        return (
            f"{self.table}: expired {len(self.expired)} snapshot(s), kept {len(self.kept)}; deleted {len(self.deleted)} "
            f"file(s), {_size(self.bytes_freed)} freed; metadata {_size(self.metadata_bytes_before)} -> "
            f"{_size(self.metadata_bytes_after)}"
        )


@dataclass(frozen=True)
class RollbackResult:
    table: str
    snapshot_id: int  # the new current snapshot (the old one when nothing differed)
    rolled_back_to: int
    partitions: dict[Partition, int]  # the partitions this rollback changed, with their rows now


def expire(
    table: Table,
    storage: Storage,
    *,
    older_than: dt.datetime,
    keep_last: int = 10,
    grace_s: int = ORPHAN_GRACE_S,
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """Expire the snapshots of `table` older than `older_than`, except the last `keep_last` and the
    current one (and any branch or tag head), then delete the files under the table's location that
    no remaining snapshot names and that are older than `grace_s` seconds."""
    prefix = storage.key_of(table.location()).rstrip("/") + "/"
    # Listed before the metadata is read: a file committed before that read is named by it, and one
    # committed after it was uploaded moments before its commit, so it is younger than the grace
    # period (the reasoning of publish.py's clean-up). Listed after, it could be taken for an orphan.
    listed = list(storage.list(prefix))
    table.refresh()

    # pyiceberg expires every snapshot older than the cutoff but the branch and tag heads (the current
    # snapshot is main's); the cutoff is lowered to the oldest of the last `keep_last`. `by_ids` would
    # copy the whole table metadata twice per id: 14 s for 355 ids of 365 snapshots, against 0.1 s.
    before = [s.snapshot_id for s in table.snapshots()]
    stamps = sorted(s.timestamp_ms for s in table.snapshots())
    cutoff_ms = int(older_than.timestamp() * 1000)
    if keep_last:
        cutoff_ms = min(cutoff_ms, stamps[-keep_last] if len(stamps) >= keep_last else 0)
    if stamps and stamps[0] < cutoff_ms:
        cutoff = _EPOCH + dt.timedelta(milliseconds=cutoff_ms)  # exact, where a float timestamp may round
        table.maintenance.expire_snapshots().older_than(cutoff).commit()  # leaves `table` on the new metadata
    kept = [s.snapshot_id for s in table.snapshots()]

    old_before = (now or dt.datetime.now(dt.UTC)).timestamp() - grace_s
    doomed = [obj for obj in _unreferenced(table, storage, prefix, listed) if obj.modified < old_before]
    storage.delete(sorted(obj.key for obj in doomed))
    return MaintenanceReport(
        table=".".join(table.name()),
        expired=tuple(i for i in before if i not in kept),
        kept=tuple(kept),
        deleted=tuple(sorted(obj.key for obj in doomed)),
        bytes_freed=sum(obj.size for obj in doomed),
        metadata_bytes_before=sum(obj.size for obj in listed if obj.key.startswith(prefix + METADATA)),
        metadata_bytes_after=sum(obj.size for obj in storage.list(prefix + METADATA)),
    )


def _unreferenced(table: Table, storage: Storage, prefix: str, listed: list[ObjectInfo]) -> list[ObjectInfo]:
    """The listed files that no snapshot of `table` names, of the kinds that the table's writes and
    commits leave: data files, their write's `_rejected/` files, manifests, manifest lists and
    metadata files. Anything else (another tool's bookkeeping, statistics files) is kept."""
    # A path the lake cannot map to a key raises here: unmapped, a named file could look unnamed.
    data = {storage.key_of(path) for path in table.inspect.all_files().column("file_path").to_pylist()}
    writes = {key.rsplit("/", 1)[0] for key in data}  # `<write id>` folders that still hold named data
    metadata = {storage.key_of(path) for path in table.inspect.all_manifests().column("path").to_pylist()}
    metadata |= {storage.key_of(s.manifest_list) for s in table.snapshots()}
    metadata |= {storage.key_of(table.metadata_location)}
    metadata |= {storage.key_of(entry.metadata_file) for entry in table.metadata.metadata_log}

    def unnamed(key: str) -> bool:
        relative = key[len(prefix) :]
        if relative.startswith(METADATA):
            return relative.endswith((".avro", ".metadata.json")) and key not in metadata
        if REJECTED in f"/{relative}":  # the table never names them: they live and die with their write
            return key.split(REJECTED, 1)[0] not in writes
        return not is_hidden(relative) and key not in data

    return [obj for obj in listed if unnamed(obj.key)]


def rollback(
    catalog: Catalog,
    storage: Storage,
    path: str,
    *,
    snapshot_id: int | None = None,
    as_of: dt.datetime | None = None,
    partition: str | None = None,
    run_id: str = "",
) -> RollbackResult:
    """Make the content of snapshot `snapshot_id` (or of the one current `as_of`) current again, in
    one new commit: the whole table, or only `partition`. A whole-table rollback replaces each
    partition whose files differ between the current snapshot and the target, emptying those the
    target lacks; partitions that already match are not touched."""
    name = table_identifier(path)
    table = iceberg.load(catalog, path)
    if table is None:
        raise ValueError(f"rollback of {name}: the table does not exist")
    if (snapshot_id is None) == (as_of is None):
        raise ValueError(f"rollback of {name}: give exactly one of snapshot_id or as_of")
    if as_of is not None:
        snapshot_id = iceberg.snapshot_as_of(table, as_of)
    assert snapshot_id is not None  # exactly one of the two was given, and as_of gave an id
    if table.snapshot_by_id(snapshot_id) is None:
        raise ValueError(f"rollback of {name}: no snapshot {snapshot_id} (never existed, or expired by retention)")
    column = next((field.name for field in table.spec().fields), None)
    if partition is not None and column is None:
        raise ValueError(f"rollback of {name}: the table is not partitioned, so roll back the whole table, not {partition!r}")

    wanted = [partition] if partition is not None else None
    target = iceberg.current_files(table, storage, wanted, snapshot_id=snapshot_id)
    if partition is not None and partition not in target:
        raise ValueError(f"rollback of {name}: snapshot {snapshot_id} has no partition {column}={partition}")
    current = iceberg.current_files(table, storage, wanted)

    def keys(files: dict, p: Partition) -> set[str]:
        return {f.key for f in files.get(p, ())}

    changed = sorted((p for p in current.keys() | target.keys() if keys(current, p) != keys(target, p)), key=lambda p: p or "")
    if not changed:
        return RollbackResult(name, iceberg.current_snapshot_id(table), snapshot_id, {})
    new_id = iceberg.replace(
        catalog,
        storage,
        path,
        table.schema().as_arrow(),
        [f.key for p in changed for f in target.get(p, ())],
        changed,  # one the target lacks is only deleted: emptied
        column,
        run_id=run_id,
    )
    rows = iceberg.rows_by_partition(target)
    return RollbackResult(name, new_id, snapshot_id, {p: rows.get(p, 0) for p in changed})


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
