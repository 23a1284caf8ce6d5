"""`python -m lake_assets.cli.settings`: print the README's configuration table, generated from the
settings (a test keeps the README's copy equal to it)."""

from lake_assets.defs.settings import configuration_table

if __name__ == "__main__":
    print(configuration_table())
