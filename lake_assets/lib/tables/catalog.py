"""Which Iceberg catalog holds the trusted tables, configured the way pyiceberg users already do.

The catalog is named `lake` and its properties come from pyiceberg's own configuration: the
`PYICEBERG_CATALOG__LAKE__*` environment variables or `.pyiceberg.yaml`. A SQL catalog on PostgreSQL
(`uri: postgresql+psycopg://...`) is shared by several writers and hosts; `type: glue` makes the
tables Glue Iceberg tables that Athena and Glue 5 jobs read natively. With nothing configured, the
project keeps a SQLite catalog file of its own (`default_sqlite_path`), so no server is needed.

Only missing properties are filled in: a table's location and the S3 endpoint of the lake.
"""

import re
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.utils.config import Config

from lake_assets.lib.storage import is_s3_root

CATALOG_NAME = "lake"
NAMESPACE = "trusted"


def table_identifier(path: str) -> str:
    """`trusted/tmdb` -> `trusted.tmdb`: the table's name in the catalog."""
    zone, name = path.split("/", 1)
    if zone != NAMESPACE:
        raise ValueError(f"only {NAMESPACE}/ tables are Iceberg tables, not {path!r}")
    return f"{NAMESPACE}.{name.replace('/', '_')}"


def configured_properties() -> dict:
    """What pyiceberg's configuration (environment, then `.pyiceberg.yaml`) says of catalog `lake`."""
    return dict(Config().get_catalog_config(CATALOG_NAME) or {})


def default_sqlite_path(trusted_root: str, catalog_dir: str = "./.iceberg") -> Path:
    """The SQLite catalog used when none is configured: `<trusted root>/_catalog/lake.db` for a local
    lake (the lake and its catalog move together), else one file per S3 root under LAKE_CATALOG_DIR
    (LakeResource.catalog_dir)."""
    if not is_s3_root(trusted_root):
        return Path(trusted_root).expanduser().resolve() / "_catalog" / f"{CATALOG_NAME}.db"
    folder = Path(catalog_dir).expanduser().resolve()
    return folder / (re.sub(r"[^A-Za-z0-9_.-]+", "-", trusted_root.split("://", 1)[1]).strip("-") + ".db")


def catalog_properties(lake) -> dict:
    """Catalog `lake`'s properties: the configured ones, with defaults for what is not configured.
    `lake` gives the zones' roots, the S3 settings and `sqlite_catalog_dir` (the lake resource)."""
    configured = configured_properties()
    root = lake.root_of(NAMESPACE)
    defaults: dict[str, str] = {}
    if "uri" not in configured and "type" not in configured:
        path = default_sqlite_path(root, lake.sqlite_catalog_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        defaults |= {"type": "sql", "uri": f"sqlite:///{path}"}
    defaults["warehouse"] = root if is_s3_root(root) else Path(root).expanduser().resolve().as_uri()
    if is_s3_root(root):
        defaults |= _s3_properties(lake)
    return defaults | configured


def _s3_properties(lake) -> dict[str, str]:
    """The lake's S3 settings in pyiceberg's words. Credentials are passed only when the lake
    resource holds them; otherwise pyarrow's S3 client reads the AWS chain itself."""
    properties = {"s3.region": lake.region_name or "us-east-1"}
    if lake.endpoint_url:
        properties["s3.endpoint"] = lake.endpoint_url
    if lake.endpoint_url or lake.s3_path_style:
        properties["s3.force-virtual-addressing"] = "false"
    for key, value in (
        ("s3.access-key-id", lake.aws_access_key_id),
        ("s3.secret-access-key", lake.aws_secret_access_key),
        ("s3.session-token", lake.aws_session_token),
    ):
        if value:
            properties[key] = value
    return properties


def open_catalog(lake) -> Catalog:
    """Catalog `lake`, as `load_catalog("lake")` gives it to anyone with the same configuration."""
    properties = catalog_properties(lake)
    return load_catalog(CATALOG_NAME, **properties)


def describe(lake) -> str:
    """Where the catalog is, in one line with no secret: for logs and `make run`."""
    properties = catalog_properties(lake)
    kind = properties.get("type") or "sql"
    uri = properties.get("uri", "")
    if uri:
        uri = re.sub(r"//[^/@]*@", "//***@", uri)  # a password in a database URI stays out of logs
    return f"{CATALOG_NAME} ({kind}{': ' + uri if uri else ''})"


def pyiceberg_lines(lake, example_day: str) -> list[str]:
    """The Python lines that read the tables with plain pyiceberg: what `make run` prints. A configured
    catalog is named only (its properties, secrets included, stay in the environment)."""
    if configured_properties():
        opening = f'catalog = load_catalog("{CATALOG_NAME}")  # PYICEBERG_CATALOG__LAKE__* / .pyiceberg.yaml'
    else:
        properties = catalog_properties(lake)
        settings = ", ".join(f"{key.replace('.', '_')}={properties[key]!r}" for key in ("uri", "warehouse") if key in properties)
        opening = f'catalog = load_catalog("{CATALOG_NAME}", {settings})'
    return [
        "from pyiceberg.catalog import load_catalog",
        opening,
        f'catalog.load_table("{NAMESPACE}.tmdb").scan(row_filter="dt = \'{example_day}\'").to_arrow()',
        f'catalog.load_table("{NAMESPACE}.filmes").scan().to_arrow()',
    ]
