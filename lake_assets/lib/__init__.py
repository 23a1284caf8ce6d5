"""Framework-free library code: storage, tables and catalogs, transforms, contracts, CSV reading and the
partitions' path rule. Nothing here imports Dagster or reads the environment; errors are `LakeError`s."""
