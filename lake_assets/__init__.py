"""lake_assets: the Trusted Zone of a movie data lake, as Dagster software-defined assets.

`defs/` holds the Dagster definitions, `lib/` the framework-free code they call, `cli/` the
`python -m` entry points."""

from pathlib import Path

# The bundled offline samples: filmes.csv and a TMDB snapshot (package data).
SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"
