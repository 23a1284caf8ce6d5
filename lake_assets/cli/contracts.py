"""`python -m lake_assets.cli.contracts > docs/contracts.md`: the declared contracts as a document (a test
keeps the committed copy equal to the declarations).

`python -m lake_assets.cli.contracts --write-exports docs/contracts` writes each contract's exports
instead (Glue Data Quality, Soda, Databricks; `lake_assets.lib.contracts.exports`), with a README
listing them; a test keeps those equal to the declarations too."""

import argparse
from pathlib import Path

from lake_assets.lib.contracts import FILMES, TMDB
from lake_assets.lib.contracts.exports import COMMAND as EXPORTS_COMMAND
from lake_assets.lib.contracts.exports import FORMATS, Export, exports
from lake_assets.lib.contracts.rules import Contract


def markdown(contracts: list[Contract]) -> str:
    lines = [
        "# The trusted tables' contracts",
        "",
        "Generated from `lake_assets/lib/contracts/` by `python -m lake_assets.cli.contracts > docs/contracts.md`;",
        "each table's contract is one asset check, `contract` (per day for `trusted/tmdb`), failing with ERROR",
        "severity and blocking when a `fail` rule broke, and with WARN severity when a `warn` rule broke or any",
        "row was rejected (its description counts them per reason: a drop rule, or a parse failure such as",
        "`malformed JSON line`). The rule count includes `schema_contract`, the columns and types of the layout.",
        "",
        "- `fail`: the table or day is not published, the previous version stays current and readable, and the",
        "  run fails naming the rule, the violating count and up to 5 sample values;",
        "- `drop`: the violating rows go to `_rejected/` with the rule's name as `_reject_reason`, counted;",
        "- `warn`: counted and shown in the check's metadata; nothing is removed.",
        "",
        "An `Anomaly` rule judges a day's metric (records, a column's null share or mean, a key's distinct share,",
        "a column's value shares) against the same metric of the last published days, read from the quality log:",
        "median ± scaled MADs, never narrower than its floor; no judgement until its window is full (warm-up).",
        "Exports for Glue Data Quality, Soda and Databricks are in [contracts/](contracts/README.md).",
    ]
    for contract in contracts:
        lines += ["", f"## `{contract.table}`", "", contract.description, ""]
        for name, layout in contract.layouts.items():
            columns = ", ".join(f"`{column}` {kind}" for column, kind in layout.items())
            lines.append(
                f"- layout `{name}`: {columns}"
                + (f", partitioned by `{contract.partition_column}`" if contract.partition_column else "")
            )
        lines += ["", "| column | what it holds |", "|---|---|"]
        lines += [f"| `{column}` | {text} |" for column, text in contract.columns.items()]
        lines += ["", "| rule | kind | severity | what it promises |", "|---|---|---|---|"]
        lines += [f"| `{rule.name}` | {rule.kind} | {rule.severity} | {rule.description} |" for rule in contract.rules]
    return "\n".join(lines) + "\n"


def exports_readme(files: list[Export]) -> str:
    """The README of the exports folder: what each file is, and how to make them again."""
    kinds = {
        "DQDL": "Glue Data Quality ruleset (DQDL)",
        "Soda": "Soda v4 data contract",
        "Databricks": "Databricks pipeline expectations",
    }
    lines = [
        "# The contracts, exported",
        "",
        "Each trusted table's contract (`lake_assets/lib/contracts/`, described in `../contracts.md`) in the",
        "terms of other engines, generated: do not edit. Regenerate with",
        "",
        f"    {EXPORTS_COMMAND}",
        "",
        "A test keeps these files equal to the declarations. A rule an engine cannot express is listed in",
        "its file as NOT PORTABLE, with the reason; a rule on columns a layout lacks, as NOT APPLICABLE.",
        "A table with several accepted layouts has one file per layout. Rules of a table partitioned by",
        "`dt` apply to one partition (one day) at a time.",
        "",
        "| file | table | layout | what | rules exported | not portable |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{e.path}` | `{e.table}` | `{e.layout}` | {kinds[e.format]} | {len(e.exported)} | {len(e.not_portable)} |"
        for e in files
    ]
    return "\n".join(lines) + "\n"


def write_exports(folder: Path, contracts: list[Contract]) -> list[Path]:
    """Write every export and the README; remove exports no contract makes any more (a renamed layout)."""
    files = exports(contracts)
    written = {folder / e.path: e.text for e in files} | {folder / "README.md": exports_readme(files)}
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (p for suffix in (f[1] for f in FORMATS) for p in folder.glob(f"*.{suffix}") if p not in written):
        stale.unlink()
    for path, text in written.items():
        path.write_text(text)
    return list(written)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The declared contracts: docs/contracts.md on stdout, or the exports.")
    parser.add_argument("--write-exports", metavar="FOLDER", type=Path, help="write the exports into FOLDER instead")
    args = parser.parse_args()
    if args.write_exports:
        for path in write_exports(args.write_exports, [FILMES, TMDB]):
            print(path)
    else:
        print(markdown([FILMES, TMDB]), end="")
