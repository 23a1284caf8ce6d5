"""Where an asset lives: its `lake_path` definition metadata, below its zone's root."""

from dagster import AssetsDefinition, InputContext, OutputContext

LAKE_PATH = "lake_path"  # definition metadata: where an asset lives, below its zone's root


def lake_path(of: AssetsDefinition | OutputContext | InputContext) -> str:
    """An asset's folder or file below the lake root (`raw/tmdb`, `trusted/filmes`), from its
    `lake_path` definition metadata; the first segment is its zone."""
    if isinstance(of, AssetsDefinition):
        metadata = of.metadata_by_key[of.key]
    elif isinstance(of, InputContext):
        # Dagster leaves it unset only for an input that no output feeds (a root input of an op).
        if of.upstream_output is None:
            raise ValueError(f"an input with no upstream output has no {LAKE_PATH!r} metadata")
        metadata = of.upstream_output.definition_metadata
    else:
        metadata = of.definition_metadata
    return metadata[LAKE_PATH]


def _zone(path: str) -> str:
    return path.split("/", 1)[0]


def zone(path: str) -> str:
    """`raw/tmdb` -> `raw`: the first segment of a lake path."""
    return path.split("/", 1)[0]
