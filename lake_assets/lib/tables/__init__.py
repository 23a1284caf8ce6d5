"""The trusted zone as Iceberg tables: the catalog that holds them, their commits and readers, and
their maintenance (retention, rollback)."""
