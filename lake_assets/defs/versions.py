"""Data and code versions in Dagster's terms: the tags a raw registration carries, the trusted assets'
code versions, and which days of a partitioned trusted asset are stale.

A raw partition's data version comes from its bytes (`lake_assets.lib.raw_versions`). A trusted
asset's code version is declared here, with a digest of the code that shapes its output; a test
fails when that code changes and the digest was not recorded again, so a person decides whether the
change alters the data (bump the version: every day becomes stale) or not (a refactor: keep it).
"""

import ast
import hashlib
import importlib
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance

# Dagster's own tag names for data versions and provenance (what the UI's staleness reads).
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    get_input_event_pointer_tag,
)

from lake_assets.lib import registry

_MATERIALIZATION = DagsterEventType.ASSET_MATERIALIZATION
# A trusted day's metadata: the data version of the raw day its run read, for a person (Dagster's own
# input data version tag is the run's, one hash for all the days of a range run).
RAW_DATA_VERSION = "raw_data_version"
# Per event log: storage id -> (code version, input event pointer) of a materialisation.
_BUILT_WITH: "weakref.WeakKeyDictionary[object, dict[int, tuple[str | None, int | None]]]" = weakref.WeakKeyDictionary()
_READ_BATCH = 500


@dataclass(frozen=True)
class CodeVersion:
    version: str  # what Dagster records; bump it when the output changes
    digest: str  # of `modules`' code, comments and docstrings aside
    modules: tuple[str, ...]  # the code that shapes the table's rows


_SHARED = ("lake_assets.defs.assets.trusted", "lake_assets.defs.io_managers.trusted", "lake_assets.lib.transforms.columns")
# Anomaly rules decide publication too when declared `fail`.
_CONTRACTS = ("lake_assets.lib.contracts.rules", "lake_assets.lib.contracts.evaluate", "lake_assets.lib.contracts.anomalies")
CODE_VERSIONS = {
    registry.TRUSTED_TMDB.key: CodeVersion(
        "1",
        "a569ca8d134a82fe",
        (*_SHARED, "lake_assets.lib.transforms.tmdb", "lake_assets.lib.lineage", "lake_assets.lib.contracts.tmdb", *_CONTRACTS),
    ),
    registry.TRUSTED_FILMES.key: CodeVersion(
        "1",
        "8fd643808dae76b8",
        (
            *_SHARED,
            "lake_assets.lib.transforms.filmes",
            "lake_assets.lib.csv_files",
            "lake_assets.lib.contracts.filmes",
            *_CONTRACTS,
        ),
    ),
}


def code_version(table: registry.Dataset) -> str:
    return CODE_VERSIONS[table.key].version


def code_digest(modules: tuple[str, ...]) -> str:
    """A digest of the modules' syntax trees without docstrings: comments and formatting do not count."""
    digest = hashlib.sha256()
    for name in modules:
        source = Path(importlib.import_module(name).__file__ or "").read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and _is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        digest.update(f"{name}\n{ast.dump(tree)}\n".encode())
    return digest.hexdigest()[:16]


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


# The raw assets land bytes as they are: their data version comes from the bytes, and the code that
# lands them never changes what they hold. Declaring a code version makes the UI say "has a new
# dependency data version" (not "materialization") when a raw day changes under a trusted one.
RAW_CODE_VERSION = "landed-as-is"


def data_version_tags(version: str) -> dict[str, str]:
    """The tags that give a raw materialisation reported by this project (not an Output) its data
    version, as Dagster's own provenance would."""
    return {DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true", CODE_VERSION_TAG: RAW_CODE_VERSION}


def latest_data_versions(
    instance: DagsterInstance, asset_key: AssetKey, partitions: list[str] | None = None, before: int | None = None
) -> dict[str, str]:
    """The data version of each partition's latest materialisation (before storage id `before`), in one query."""
    tags = instance.event_log_storage.get_latest_tags_by_partition(
        asset_key, _MATERIALIZATION, [DATA_VERSION_TAG], partitions, before_cursor=before
    )
    return {partition: found[DATA_VERSION_TAG] for partition, found in tags.items() if DATA_VERSION_TAG in found}


def stale_days(instance: DagsterInstance, asset_key: AssetKey, parent_key: AssetKey, current_code_version: str) -> dict[str, str]:
    """The materialised days of `asset_key` that are stale, each with why, by the rule Dagster's UI
    uses: the code version a day ran with is not the current one, or its parent day was registered
    with a different data version after the run read the parent (the run's input event pointer). A
    few queries whatever the number of days; each materialisation is read once per process, as events
    never change."""
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(asset_key, _MATERIALIZATION)
    seen = _BUILT_WITH.setdefault(instance.event_log_storage, {})
    unread = [storage_id for storage_id in latest.values() if storage_id not in seen]
    pointer_tag = get_input_event_pointer_tag(parent_key)
    for start in range(0, len(unread), _READ_BATCH):
        chunk = unread[start : start + _READ_BATCH]
        for record in instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
        ).records:
            tags = (record.asset_materialization.tags if record.asset_materialization else None) or {}
            read = tags.get(pointer_tag, "")
            seen[record.storage_id] = (tags.get(CODE_VERSION_TAG), int(read) if read.isdigit() else None)
    why: dict[str, str] = {}
    read_at: dict[int, list[str]] = defaultdict(list)
    parent_latest = instance.event_log_storage.get_latest_storage_id_by_partition(parent_key, _MATERIALIZATION)
    for day, storage_id in latest.items():
        code, pointer = seen.get(storage_id, (None, None))
        if code != current_code_version:
            why[day] = f"code version changed ({_short(code)} → {current_code_version})"
        elif pointer is not None and parent_latest.get(day, 0) > pointer:
            read_at[pointer].append(day)  # the parent day was registered again after the run read it
    if read_at:
        now = latest_data_versions(instance, parent_key, [day for days in read_at.values() for day in days])
        for storage_id, days in read_at.items():
            then = latest_data_versions(instance, parent_key, days, before=storage_id + 1)
            for day in days:
                if then.get(day) != now.get(day):
                    why[day] = f"{parent_key.to_user_string()} has a new data version ({then.get(day)} → {now.get(day)})"
    return why


def _short(version: str | None) -> str:
    # Before code versions were declared, Dagster recorded the run's id in their place.
    if version is None:
        return "none recorded"
    return version if len(version) < 12 else f"run {version[:8]}"
