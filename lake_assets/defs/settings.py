"""Every setting of the lake, read from the environment here and nowhere else.

Each field names its variable(s). One rule reads them all: unset or empty is the default; an on/off
value is `1/true/yes/on` or `0/false/no/off` (any case); anything a field refuses stops the load
with one line naming the variable. Secrets are never read into a setting: only whether they are set,
so the Dagster resources can bind them as `EnvVar`s. The README's configuration table is generated
from these fields (`python -m lake_assets.cli.settings > table`), and a test keeps the two equal.
"""

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from dagster import DefaultSensorStatus, EnvVar
from dagster._utils.schedules import is_valid_cron_string
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

_BOOL = TypeAdapter(bool)

# Variables whose values are secrets, with what each is: bound as an EnvVar when set (never read
# into a setting), redacted from every message, and documented in the README's table.
SECRET_VARIABLES = {
    "TMDB_READ_ACCESS_TOKEN": "TMDB v4 read access token (Bearer header, preferred)",
    "TMDB_API_KEY": "TMDB v3 key (query string), redacted from every log line and error",
    "AWS_ACCESS_KEY_ID": "with the next two, S3 credentials; unset = the AWS chain (profile, SSO, role)",
    "AWS_SECRET_ACCESS_KEY": "S3 credentials",
    "AWS_SESSION_TOKEN": "S3 credentials (temporary ones)",
    "LAKE_ALERT_WEBHOOK_URL": "Slack-compatible incoming webhook for alerts; unset = alerts off",
}
# What the README documents besides: read by pyiceberg itself, or by Java.
OTHER_VARIABLES = (
    (
        "PYICEBERG_CATALOG__LAKE__*",
        "the Iceberg catalog `lake` of the trusted tables, in pyiceberg's own words (or `.pyiceberg.yaml`): "
        "`..__URI=postgresql+psycopg://user:pw@host/db` (shared by writers and hosts), `..__TYPE=glue` (Glue "
        "Iceberg tables for Athena); unset = a SQLite file in the lake (`<trusted root>/_catalog/lake.db`)",
    ),
    ("JAVA_HOME", "the JVM for a classic Spark session (Java 17+)"),
)


def flag(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """An on/off variable by the one rule: see the module's docstring."""
    value = ((os.environ if environ is None else environ).get(name) or "").strip()
    if not value:
        return default
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        raise ValueError(f"{name}={value!r}: not an on/off value (1, true, yes, on / 0, false, no, off)") from None


def env(names: str, empty_is_off: bool = False) -> dict[str, Any]:
    """A field's variable(s), comma-separated (the first one set wins). `empty_is_off`: set but empty
    means None, for a setting that can be turned off."""
    return {"json_schema_extra": {"env": names, "empty_is_off": empty_is_off}}


class FromEnv(BaseModel):
    """A group of settings, each field read from the variable its `env` names."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def _extra(cls, field: str) -> dict:
        extra = cls.model_fields[field].json_schema_extra
        return extra if isinstance(extra, dict) else {}

    @classmethod
    def variables(cls) -> dict[str, tuple[str, ...]]:
        found = {}
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and "env" in extra:
                found[name] = tuple(str(extra["env"]).split(","))
        return found

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values: dict[str, bool | str | None] = {}
        read: dict[str, str] = {}
        for field, names in cls.variables().items():
            name = next((n for n in names if (environ.get(n) or "").strip()), None)
            if name is None:
                if cls._extra(field).get("empty_is_off") and any(n in environ for n in names):
                    values[field] = None
                continue
            read[field] = name
            value = environ[name].strip()
            values[field] = flag(name, environ=environ) if cls.model_fields[field].annotation is bool else value
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            name = read.get(str(first["loc"][0]), str(first["loc"][0]))
            reason = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"{name}={environ.get(name)!r}: {reason}") from None


class LakeSettings(FromEnv):
    """Where the lake lives and how to reach S3."""

    root: str = Field(default="./lake", description="lake root: a folder, or `s3://bucket/prefix`", **env("LAKE_ROOT"))
    raw_root: str | None = Field(default=None, description="the raw zone's root, when not `LAKE_ROOT`", **env("LAKE_RAW_ROOT"))
    trusted_root: str | None = Field(
        default=None, description="the trusted zone's root, when not `LAKE_ROOT`", **env("LAKE_TRUSTED_ROOT")
    )
    dt_layout: Literal["hive", "seed"] = Field(
        default="hive",
        description="`hive` = `dt=2024-03-31`; `seed` = the original design's literal `dt=2024/03/31`",
        **env("LAKE_DT_LAYOUT"),
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (SeaweedFS, MinIO); unset for AWS",
        **env("AWS_ENDPOINT_URL_S3,AWS_ENDPOINT_URL"),
    )
    region_name: str | None = Field(default=None, description="the bucket's region", **env("AWS_REGION,AWS_DEFAULT_REGION"))
    profile_name: str | None = Field(default=None, description="an AWS profile (else the standard chain)", **env("AWS_PROFILE"))
    max_attempts: int = Field(default=5, ge=1, description="bound on attempts of one S3 request", **env("AWS_MAX_ATTEMPTS"))
    retry_mode: Literal["standard", "adaptive", "legacy"] = Field(
        default="standard", description="botocore's retry mode (backoff with jitter)", **env("AWS_RETRY_MODE")
    )
    s3_path_style: bool = Field(
        default=False, description="path-style addressing (servers behind one hostname)", **env("LAKE_S3_PATH_STYLE")
    )
    spark_s3a: bool = Field(default=False, description="Spark opens `s3a://` itself (clusters with S3A)", **env("LAKE_SPARK_S3A"))
    raw_events_queue: str | None = Field(
        default=None,
        description="SQS queue URL of the raw bucket's S3 notifications; unset = the raw sensor lists the bucket",
        **env("LAKE_RAW_EVENTS_QUEUE", empty_is_off=True),
    )
    catalog_dir: str = Field(
        default="./.iceberg",
        description="where the default SQLite catalog of an `s3://` lake lives",
        **env("LAKE_CATALOG_DIR"),
    )

    @field_validator("raw_events_queue")
    @classmethod
    def _a_queue_of_an_s3_raw_zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        raw_root = info.data.get("raw_root") or info.data.get("root") or ""
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("an SQS queue URL, https://sqs.<region>.amazonaws.com/<account>/<queue>")
        if value and not raw_root.startswith("s3://"):
            raise ValueError(f"S3 events need the raw zone on S3, and it is {raw_root!r} (LAKE_RAW_ROOT or LAKE_ROOT)")
        return value


class TmdbSettings(FromEnv):
    """The TMDB collector, and where the daily partitions start."""

    base_url: str = Field(
        default="https://api.themoviedb.org/3", description="API base URL (tests point it at a fake)", **env("TMDB_BASE_URL")
    )
    language: str = Field(default="pt-BR", description="response language", **env("TMDB_LANGUAGE"))
    pages: int = Field(default=10, ge=1, le=500, description="top-rated pages to list (at most 500)", **env("TMDB_PAGES"))
    start_date: str | None = Field(
        default=None,
        description="first daily partition; unset = the earliest `raw/tmdb/dt=` day, else today (UTC)",
        **env("TMDB_START_DATE"),
    )

    @field_validator("start_date")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
        return value


class SparkSettings(FromEnv):
    """Which Spark runs the transforms, and the catalog it names the tables in."""

    remote: str | None = Field(
        default=None, description="a Spark Connect endpoint (`sc://host:15002`); unset = a local session", **env("SPARK_REMOTE")
    )
    database: str | None = Field(
        default="trusted",
        description="database of the tables in a persistent Spark catalog; empty = off",
        **env("LAKE_SPARK_DATABASE", empty_is_off=True),
    )
    retired_glue_database: str | None = Field(default=None, description="retired: refused", **env("LAKE_GLUE_DATABASE"))

    @field_validator("retired_glue_database")
    @classmethod
    def _retired(cls, value: str | None) -> None:
        if value:
            raise ValueError(
                "retired: the trusted tables are Iceberg tables; set PYICEBERG_CATALOG__LAKE__TYPE=glue "
                "(and PYICEBERG_CATALOG__LAKE__GLUE__REGION) to keep them in the Glue Data Catalog, where Athena reads them"
            )
        return None


class AlertSettings(FromEnv):
    """Where alerts link to."""

    ui_base_url: str = Field(
        default="http://127.0.0.1:3000", description="the Dagster UI that alert messages link to", **env("LAKE_UI_BASE_URL")
    )


class AutomationSettings(FromEnv):
    """How the lake runs by itself."""

    enabled: bool = Field(
        default=True,
        description="off = the schedules and sensors start stopped (each can be turned on in the UI)",
        **env("LAKE_AUTOMATION"),
    )
    raw_sensor: bool = Field(
        default=True, description="off = the raw-arrival sensor alone starts stopped", **env("LAKE_RAW_SENSOR")
    )
    collect_cron: str = Field(
        default="0 6 * * *", description="when today's `raw/tmdb_json` is collected (cron, UTC)", **env("LAKE_COLLECT_CRON")
    )
    freshness_deadline_cron: str = Field(
        default="0 9 * * *",
        description="each day's `trusted/tmdb` must be first published by then (cron, UTC)",
        **env("LAKE_FRESHNESS_DEADLINE_CRON"),
    )
    missing_severity: Literal["warn", "error"] = Field(
        default="error", description="severity of a day not published by its deadline", **env("LAKE_FRESHNESS_SEVERITY")
    )
    filmes_max_age_hours: float = Field(
        default=24 * 30,
        gt=0,
        le=24 * 366,
        description="`trusted/filmes` fails its freshness policy when not rebuilt for this long",
        **env("LAKE_FILMES_MAX_AGE_HOURS"),
    )
    maintenance_cron: str = Field(
        default="30 3 * * *", description="when `table_maintenance` runs (cron, UTC)", **env("LAKE_MAINTENANCE_CRON")
    )
    snapshot_retention_days: float = Field(
        default=7,
        gt=0,
        description="days a table snapshot stays readable before maintenance expires it",
        **env("LAKE_SNAPSHOT_RETENTION"),
    )
    snapshots_kept: int = Field(
        default=10, ge=1, description="snapshots of each table never expired", **env("LAKE_SNAPSHOTS_KEPT")
    )
    tick_interval_s: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="seconds between ticks of the automation and alert sensors",
        **env("LAKE_TICK_INTERVAL_S"),
    )
    stale_days_per_tick: int = Field(
        default=31,
        ge=1,
        le=1000,
        description="stale `trusted/tmdb` days (code or raw data changed) the automation rebuilds at most per tick",
        **env("LAKE_STALE_DAYS_PER_TICK"),
    )

    @field_validator("collect_cron", "freshness_deadline_cron", "maintenance_cron")
    @classmethod
    def _a_cron(cls, value: str) -> str:
        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, UTC), e.g. '0 6 * * *'")
        return value

    @property
    def default_status(self) -> DefaultSensorStatus:
        return DefaultSensorStatus.RUNNING if self.enabled else DefaultSensorStatus.STOPPED

    @property
    def raw_sensor_default_status(self) -> DefaultSensorStatus:
        return DefaultSensorStatus.RUNNING if self.enabled and self.raw_sensor else DefaultSensorStatus.STOPPED


class Settings(BaseModel):
    """The whole environment, read once when the definitions are built."""

    model_config = ConfigDict(frozen=True)
    GROUPS: ClassVar[dict[str, type[FromEnv]]] = {
        "lake": LakeSettings,
        "tmdb": TmdbSettings,
        "spark": SparkSettings,
        "alerts": AlertSettings,
        "automation": AutomationSettings,
    }

    lake: LakeSettings = LakeSettings()
    tmdb: TmdbSettings = TmdbSettings()
    spark: SparkSettings = SparkSettings()
    alerts: AlertSettings = AlertSettings()
    automation: AutomationSettings = AutomationSettings()
    secrets_set: frozenset[str] = frozenset()  # names of the secret variables that are set, never their values

    def secrets(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """`{field: EnvVar(variable)}` for each secret variable that is set: Dagster resolves it at
        run time and never stores it, and an unset one is left out (its `EnvVar` would fail the run).
        Typed Any: mypy checks a `**` value against every field, and an EnvVar is a str."""
        return {field: EnvVar(variable) for field, variable in fields.items() if variable in self.secrets_set}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        groups = {name: group.from_env(environ) for name, group in cls.GROUPS.items()}
        secrets = frozenset(name for name in SECRET_VARIABLES if (environ.get(name) or "").strip())
        return cls(**groups, secrets_set=secrets)


def setting_variables() -> list[str]:
    """Every variable a setting above reads, secrets excepted."""
    return [name for group in Settings.GROUPS.values() for names in group.variables().values() for name in names]


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets' values, only to redact them from a message (at least 4 characters: shorter ones
    would blank ordinary words)."""
    environ = os.environ if environ is None else environ
    return [value for name in SECRET_VARIABLES if len(value := environ.get(name) or "") >= 4]


def spark_local_ip_default() -> None:
    """Spark binds the driver to the first non-loopback address otherwise, which fails on machines
    without a network and warns about hostnames everywhere else."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def java_home() -> str | None:
    return os.environ.get("JAVA_HOME") or None


def configuration_table() -> str:
    """The README's configuration table, from the fields above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for group in Settings.GROUPS.values():
        for field, names in group.variables().items():
            info = group.model_fields[field]
            if field.startswith("retired_"):
                continue
            default = info.default
            shown = "–" if default is None else ("on" if default is True else "off" if default is False else f"`{default}`")
            variables = " or ".join(f"`{name}`" for name in names)
            rows.append(f"| {variables} | {shown} | {info.description} |")
    rows += [f"| `{name}` | – | {meaning} |" for name, meaning in OTHER_VARIABLES]
    rows += [
        f"| `{name}` | – | a secret, bound as an `EnvVar` when set: {meaning} |" for name, meaning in SECRET_VARIABLES.items()
    ]
    return "\n".join(rows)
