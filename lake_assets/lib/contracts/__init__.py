"""One declared contract per trusted table (`filmes.py`, `tmdb.py`), in the vocabulary of `rules.py`."""

from lake_assets.lib.contracts.filmes import FILMES
from lake_assets.lib.contracts.rules import SCHEMA_CHECK, Contract, Counts, RuleResult, Severity
from lake_assets.lib.contracts.tmdb import TMDB

__all__ = ["FILMES", "TMDB", "SCHEMA_CHECK", "Contract", "Counts", "RuleResult", "Severity"]
