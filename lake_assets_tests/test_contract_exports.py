"""The contracts' exports (Glue Data Quality, Soda v4, Databricks expectations): the committed files
are the generated ones, no rule is silently dropped, every exported rule is in its file, an unknown
rule kind is reported as not portable, and the generated texts are well formed. No JVM, no server."""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lake_assets.cli.contracts import EXPORTS_COMMAND, exports_readme, write_exports
from lake_assets.lib.contracts import FILMES, TMDB
from lake_assets.lib.contracts.exports import FORMATS, Export, NotPortable, Scope, exports
from lake_assets.lib.contracts.rules import SCHEMA_CHECK, Between, Contract, NotNull, Severity, TableRule

FOLDER = Path(__file__).resolve().parents[1] / "docs" / "contracts"
CONTRACTS = [FILMES, TMDB]
ALL = exports(CONTRACTS)
SODA_CHECKS = {"schema", "missing", "invalid", "duplicate", "row_count", "failed_rows", "freshness", "aggregate", "metric"}


def _of(fmt: str) -> list[Export]:
    return [e for e in ALL if e.format == fmt]


def _names(contract: Contract) -> set[str]:
    return {SCHEMA_CHECK} | {rule.name for rule in contract.rules}


# --- the committed files ---------------------------------------------------------------------------


def test_the_committed_exports_are_the_generated_ones():
    wanted = {e.path: e.text for e in ALL} | {"README.md": exports_readme(ALL)}
    assert {p.name for p in FOLDER.iterdir()} == set(wanted), f"regenerate: {EXPORTS_COMMAND}"
    for name, text in wanted.items():
        assert (FOLDER / name).read_text() == text, f"{name} is stale; regenerate: {EXPORTS_COMMAND}"


def test_writing_the_exports_replaces_stale_ones_and_leaves_other_files(tmp_path):
    (tmp_path / "filmes.dqdl").write_text("Rules = [ ]\n")  # an export no contract makes any more
    (tmp_path / "notes.txt").write_text("mine\n")
    written = write_exports(tmp_path, CONTRACTS)
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in written} | {"notes.txt"}
    assert all(p.read_text() == (FOLDER / p.name).read_text() for p in written)


def test_one_file_per_table_format_and_layout():
    assert {e.path for e in ALL} >= {"tmdb.dqdl", "tmdb.soda.yaml", "tmdb.databricks.md", "filmes.seed.dqdl"}
    assert len(ALL) == len({e.path for e in ALL}) == len(FORMATS) * sum(len(c.layouts) for c in CONTRACTS)


# --- no rule silently dropped ----------------------------------------------------------------------


@pytest.mark.parametrize("export", ALL, ids=lambda e: e.path)
def test_each_file_accounts_for_every_rule_once(export):
    contract = next(c for c in CONTRACTS if c.table == export.table)
    exported, gaps, absent = set(export.exported), set(export.not_portable), set(export.not_applicable)
    assert not (exported & gaps or exported & absent or gaps & absent)
    assert exported | gaps | absent == _names(contract)
    applicable = {r.name for r in contract.applicable(export.layout)} | {SCHEMA_CHECK}
    assert absent == _names(contract) - applicable
    assert all(reason.strip() for reason in export.not_portable.values())


@pytest.mark.parametrize("fmt", [f[0] for f in FORMATS])
@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.table)
def test_per_table_and_format_exported_plus_not_portable_is_the_contract(contract, fmt):
    files = [e for e in _of(fmt) if e.table == contract.table]
    assert {e.layout for e in files} == set(contract.layouts)
    covered = set().union(*(set(e.exported) | set(e.not_portable) for e in files))
    assert covered == _names(contract)


def _dqdl_rules(text: str) -> set[str]:
    return set(re.findall(r"^    # (\w+) \((?:fail|drop|warn)\): ", text, re.M))


def _soda_rules(text: str) -> set[str]:
    doc = yaml.safe_load(text)
    checks = doc["checks"] + [check for column in doc["columns"] for check in column.get("checks", [])]
    return {body["qualifier"] for check in checks for body in check.values()}


def _databricks_rows(text: str) -> dict[str, tuple[str, str, str]]:
    rows = re.findall(r"^\| `(\w+)` \| `(.+)` \| `(@dp\.\w+)` \| (\w+) \|$", text, re.M)
    return {name: (constraint.replace("\\|", "|"), action, severity) for name, constraint, action, severity in rows}


def _databricks_rules(text: str) -> set[str]:
    schema = {SCHEMA_CHECK} if f"`{SCHEMA_CHECK}` is the table's declared schema" in text else set()
    return set(_databricks_rows(text)) | schema


FOUND = {"DQDL": _dqdl_rules, "Soda": _soda_rules, "Databricks": _databricks_rules}


@pytest.mark.parametrize("export", ALL, ids=lambda e: e.path)
def test_every_exported_rule_is_in_its_file_and_every_gap_is_named(export):
    assert FOUND[export.format](export.text) == set(export.exported)
    for name, reason in export.not_portable.items():
        if export.format == "Databricks":
            assert f"| `{name}` | {reason.replace('|', chr(92) + '|')} |" in export.text
        else:
            assert f"# NOT PORTABLE {name}: {reason}\n" in export.text
    for name in export.not_applicable:
        assert re.search(rf"NOT APPLICABLE.*\b{name}\b", export.text)


# --- a rule kind the exporters do not know ---------------------------------------------------------


@dataclass(frozen=True)
class Freshness(TableRule):
    """A kind no exporter knows (yet)."""

    hours: int = 24


@dataclass(frozen=True)
class Positive(Between):
    """A subclass of a known kind: it may mean something else, so it is not exported as its parent."""


def test_an_unknown_rule_kind_is_reported_not_portable_never_dropped():
    contract = Contract(
        table="trusted/example",
        layouts={"only": {"id": "bigint"}},
        rules=[
            NotNull("id_present", Severity.DROP, "Every row has an id.", column="id"),
            Freshness("fresh", Severity.WARN, "Data is at most a day old."),
            Positive("id_positive", Severity.WARN, "Ids are positive.", column="id", low=1),
        ],
    )
    files = exports([contract])
    assert [e.path for e in files] == ["example.dqdl", "example.soda.yaml", "example.databricks.md"]
    for e in files:
        assert e.not_portable["fresh"] == f"no {e.format} equivalent for Freshness"
        assert e.not_portable["id_positive"] == f"no {e.format} equivalent for Positive"
        assert {"id_present", SCHEMA_CHECK} <= set(e.exported)
        assert "Freshness" in e.text and "fresh" in e.text


def test_not_portable_is_an_exception_an_exporter_raises():
    assert issubclass(NotPortable, Exception)
    scope = Scope(TMDB, "tmdb_details")
    assert scope.stem == "tmdb" and Scope(FILMES, "seed").stem == "filmes.seed"
    assert [r.name for r in scope.rules][0] == SCHEMA_CHECK


# --- well formed -----------------------------------------------------------------------------------


def _balanced(text: str) -> bool:
    """Brackets balance outside quotes, and every quote closes (a backslash escapes the next character)."""
    stack, quote, escaped = [], None, False
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and quote is None


def test_balanced_checks_itself():
    assert _balanced("a IN ('x', 'y') AND (b)") and _balanced("x RLIKE '^(?:tt\\\\d{7,})$'")
    assert not _balanced("(a") and not _balanced("'a") and not _balanced("a)")


@pytest.mark.parametrize("export", _of("Soda"), ids=lambda e: e.path)
def test_the_soda_contracts_parse(export):
    doc = yaml.safe_load(export.text)
    assert doc["dataset"] == f"lake/{export.table}"
    contract = next(c for c in CONTRACTS if c.table == export.table)
    expected = dict(contract.layouts[export.layout])
    assert {c["name"]: c.get("data_type") for c in doc["columns"] if c["name"] in expected} == expected
    if contract.partition_column:
        assert doc["filter"] == f"{contract.partition_column} = '${{var.DT}}'" and "DT" in doc["variables"]
        assert contract.partition_column in {c["name"] for c in doc["columns"]}
    checks = doc["checks"] + [check for column in doc["columns"] for check in column.get("checks", [])]
    for check in checks:
        assert len(check) == 1 and set(check) <= SODA_CHECKS, check
        body = next(iter(check.values()))
        assert body["qualifier"] and body["name"].endswith(("[fail]", "[drop]", "[warn]"))
        assert _balanced(body.get("expression", ""))


@pytest.mark.parametrize("export", _of("Databricks"), ids=lambda e: e.path)
def test_the_databricks_constraints_are_sane(export):
    contract = next(c for c in CONTRACTS if c.table == export.table)
    severities = {r.name: r.severity for r in contract.rules}
    rows = _databricks_rows(export.text)
    assert rows
    for name, (constraint, action, severity) in rows.items():
        assert constraint.strip() and _balanced(constraint), (name, constraint)
        assert severity == severities[name]
        assert action == {"fail": "@dp.expect_or_fail", "drop": "@dp.expect_or_drop", "warn": "@dp.expect"}[severity]
    code = re.search(r"```python\n(.*?)```", export.text, re.S).group(1)
    tree = ast.parse(code)
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    decorated = {d.args[0].value: d.args[1].value for d in function.decorator_list if d.args}
    assert decorated == {name: constraint for name, (constraint, _, _) in rows.items()}


@pytest.mark.parametrize("export", _of("DQDL"), ids=lambda e: e.path)
def test_the_dqdl_rulesets_are_well_formed(export):
    lines = export.text.splitlines()
    start = lines.index("Rules = [")
    assert lines[-1] == "]" and all(line.startswith("#") for line in lines[:start])
    body = [line.strip() for line in lines[start + 1 : -1] if not line.strip().startswith("#")]
    assert body and all(line.endswith(",") for line in body[:-1]) and not body[-1].endswith(",")
    for line in body:
        assert _balanced(line.rstrip(",")), line
        assert re.match(
            r"\(?(IsComplete|IsUnique|Uniqueness|ColumnValues|ColumnCount|ColumnExists|CustomSql|RowCount|Completeness|Mean) ",
            line,
        )


@pytest.mark.parametrize("export", ALL, ids=lambda e: e.path)
def test_partitioned_files_say_the_rules_apply_per_partition(export):
    contract = next(c for c in CONTRACTS if c.table == export.table)
    said = f"Every rule applies per `{contract.partition_column}` partition" in export.text
    assert said == bool(contract.partition_column)


def test_no_file_names_the_checkout():
    for e in ALL:
        assert str(FOLDER.parents[1]) not in e.text
