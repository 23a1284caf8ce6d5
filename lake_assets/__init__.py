"""lake_assets: the Trusted Zone of a movie data lake, as Dagster software-defined assets."""
