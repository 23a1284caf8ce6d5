"""`python -m lake_assets.cli.migrate` (`make migrate`): turn a trusted zone published with
`_manifest.json` files into the Iceberg tables, in place (lake_assets/lib/tables/migrate.py)."""

import argparse
import sys
from collections.abc import Callable, Sequence

from lake_assets.defs.resources import lake_resource_from_env
from lake_assets.lib.errors import first_line
from lake_assets.lib.tables.migrate import migrate


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_assets.cli.migrate", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    try:
        # Outside a run, Dagster has not resolved the EnvVar credentials of the lake resource: this does.
        lake = lake_resource_from_env().process_config_and_initialize()
        report = migrate(lake)
    except Exception as error:
        for done in getattr(error, "done", ()):  # the tables migrated before the failure stay so: say which
            out(done.summary())
        print(f"migrate: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
        return 1
    for line in report.lines():
        out(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
