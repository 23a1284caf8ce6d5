"""The TMDB client resource: the collector's settings, shown in the launchpad; the collection itself
is lake_assets/lib/tmdb_client.py."""

import logging

import dagster
from pydantic import Field

from lake_assets.defs.settings import Settings
from lake_assets.lib.tmdb_client import DEFAULT_BASE_URL, MAX_PAGE, SNAPSHOT_DIR, TMDBCollection, TMDBError, collect

__all__ = ["SNAPSHOT_DIR", "TMDBError", "TMDBResource", "tmdb_resource_from_env"]


class TMDBResource(dagster.ConfigurableResource):
    """TMDB v3 API client. With neither credential set, `collect()` reads the bundled offline snapshot."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL, description="TMDB API base URL (env TMDB_BASE_URL; tests point it at a fake server)."
    )
    read_access_token: str | None = Field(
        default=None,
        description="TMDB v4 read access token, a Bearer header (preferred), through EnvVar TMDB_READ_ACCESS_TOKEN.",
    )
    api_key: str | None = Field(
        default=None,
        description="TMDB v3 API key, in the query string and redacted everywhere, through EnvVar TMDB_API_KEY.",
    )
    language: str = Field(default="pt-BR", description="Response language (env TMDB_LANGUAGE).")
    pages: int = Field(default=10, ge=1, le=MAX_PAGE, description="top_rated pages to list (TMDB serves at most 500).")
    genre_ids: list[int] = Field(
        default=[18, 10749], min_length=1, description="Keep movies listed with any of these genres (18 Drama, 10749 Romance)."
    )
    request_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Timeout of one HTTP request.")
    rate_limit_per_s: float = Field(
        default=40.0, gt=0, le=10_000, description="Requests per second across all threads (TMDB allows about 40-50)."
    )
    max_connections: int = Field(default=20, ge=1, le=100, description="Concurrent connections (and threads).")
    max_retries: int = Field(default=6, ge=0, le=20, description="Retries of one request on 429, 5xx, timeouts and resets.")
    backoff_base_s: float = Field(
        default=0.5, gt=0, description="First retry's backoff ceiling; doubles per attempt, with jitter."
    )
    backoff_max_s: float = Field(default=30.0, gt=0, description="Largest backoff between retries.")
    progress_every_s: float = Field(default=2.0, gt=0, description="Seconds between progress log lines.")

    def collect(self, log: logging.Logger | None = None) -> TMDBCollection:
        """One collection; raises `TMDBError` (one line, no credential) when it cannot complete."""
        return collect(self, log)


def tmdb_resource_from_env(settings: Settings | None = None) -> TMDBResource:
    """The resource for a deployment. Secrets are `EnvVar`s, resolved by Dagster at run time; each is
    passed only when its variable is set (an `EnvVar` of an unset variable fails the run)."""
    settings = settings or Settings.from_env()
    secrets = settings.secrets({"read_access_token": "TMDB_READ_ACCESS_TOKEN", "api_key": "TMDB_API_KEY"})
    tmdb = settings.tmdb
    return TMDBResource(base_url=tmdb.base_url, language=tmdb.language, pages=tmdb.pages, **secrets)
