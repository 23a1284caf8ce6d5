"""The resources the assets, IO managers and sensors use: the lake, Spark, the TMDB client, the
Spark catalog, and the alert webhook."""

from lake_assets.defs.resources.catalog import CatalogResource, catalog_resource_from_env
from lake_assets.defs.resources.lake import LakeResource, lake_resource_from_env
from lake_assets.defs.resources.spark import SparkResource, SparkUnavailable, spark_resource_from_env
from lake_assets.defs.resources.tmdb import TMDBError, TMDBResource, tmdb_resource_from_env
from lake_assets.defs.resources.webhook import AlertWebhook, alert_webhook_from_env

__all__ = [
    "AlertWebhook",
    "CatalogResource",
    "LakeResource",
    "SparkResource",
    "SparkUnavailable",
    "TMDBError",
    "TMDBResource",
    "alert_webhook_from_env",
    "catalog_resource_from_env",
    "lake_resource_from_env",
    "spark_resource_from_env",
    "tmdb_resource_from_env",
]
