"""`python -m lake_assets.cli.contracts > docs/contracts.md`: the declared contracts as a document (a test
keeps the committed copy equal to the declarations)."""

from lake_assets.lib.contracts import FILMES, TMDB
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


if __name__ == "__main__":
    print(markdown([FILMES, TMDB]), end="")
