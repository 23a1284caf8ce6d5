"""The lake's four datasets in one place: asset key, path below the zone's root, contract, partitioning.

The assets, sensors, automation, catalogs, table jobs, tools, tests and benchmarks all look a dataset
up here, so a key or a path is written once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lake_assets.lib.contracts.rules import Contract


@dataclass(frozen=True)
class Dataset:
    key: tuple[str, ...]  # the asset key's path, e.g. ("trusted", "tmdb")
    path: str  # below its zone's root: a file (raw/filmes/filmes.csv) or a folder (trusted/tmdb)
    daily: bool  # partitioned by collection date, one dt= folder per day
    contract_name: str | None = None  # the trusted tables' contract, in lake_assets.lib.contracts

    @property
    def contract(self) -> Contract | None:
        """What the table promises. Imported on use: contracts need pyspark, and the sensors, tools
        and path rules that read this registry do not."""
        if self.contract_name is None:
            return None
        return getattr(importlib.import_module("lake_assets.lib.contracts"), self.contract_name)


RAW_FILMES = Dataset(key=("raw", "filmes_csv"), path="raw/filmes/filmes.csv", daily=False)
RAW_TMDB = Dataset(key=("raw", "tmdb_json"), path="raw/tmdb", daily=True)
TRUSTED_FILMES = Dataset(key=("trusted", "filmes"), path="trusted/filmes", daily=False, contract_name="FILMES")
TRUSTED_TMDB = Dataset(key=("trusted", "tmdb"), path="trusted/tmdb", daily=True, contract_name="TMDB")

TRUSTED = (TRUSTED_FILMES, TRUSTED_TMDB)  # the Iceberg tables
# Which trusted table each raw dataset feeds.
TRUSTED_OF = {RAW_FILMES: TRUSTED_FILMES, RAW_TMDB: TRUSTED_TMDB}


def source_of(contract: Contract) -> Dataset | None:
    """The raw dataset a registered table's contract is built from; None for any other contract (a
    test's own, even on a registered table's path)."""
    return next((raw for raw, trusted in TRUSTED_OF.items() if trusted.contract is contract), None)
