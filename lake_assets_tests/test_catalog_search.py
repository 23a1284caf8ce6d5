"""The catalog metadata the trusted assets declare, so a search by column or table name finds them
before they ever run: `dagster/column_schema`, `dagster/table_name` and `dagster/column_lineage`.

What OSS Dagster 1.13 does with `column:` and `table_name:`: its selection grammar parses them
(`ColumnAssetSelection`, `TableNameAssetSelection` in dagster/_core/definitions/asset_selection.py),
but neither side evaluates them. Their `resolve_inner` raises NotImplementedError; no GraphQL field
takes a selection string (`assetNodes` filters by group, job or keys only); and the UI's own evaluator
(ui-core `AntlrAssetSelectionVisitor.ts`) has no visitor for them, its linter answering "column
filtering is available in Dagster+" (ui-core `asset-selection/input/util.ts`,
`unsupportedAttributeMessages`). Dagster+ answers those filters from the assets' metadata. So the
end-to-end test reads, through the real webserver's GraphQL, the definition metadata such a search
reads (`assetNodes { metadataEntries storageAddress }`), evaluates `column:` and `table_name:` on it
as those filters are specified, and checks that no trusted asset was materialised at query time.
"""

from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, TableColumnLineage, TableSchema
from dagster._core.definitions.asset_selection import ColumnAssetSelection, TableNameAssetSelection

from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.definitions import defs
from lake_assets.defs.io_managers.outcomes import PublishReport
from lake_assets.lib.contracts import FILMES, TMDB
from lake_assets.lib.lineage import FILMES_HEADERS, TMDB_FIELDS, column_lineage, declared_columns
from lake_assets.lib.registry import TRUSTED_FILMES, TRUSTED_TMDB
from lake_assets.lib.tables.catalog import table_identifier
from lake_assets.lib.transforms.columns import CORRUPT, normalise_column_name
from lake_assets.lib.transforms.tmdb import DETAILS_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
# trusted asset -> (its contract, the raw asset it reads, that raw asset's field names)
TRUSTED = {
    trusted.filmes.key: (FILMES, raw.filmes_csv.key, {name for header in FILMES_HEADERS.values() for name in header}),
    trusted.tmdb.key: (TMDB, raw.tmdb_json.key, {f.name for f in DETAILS_SCHEMA.fields if f.name != CORRUPT}),
}


def _definition_metadata(key: AssetKey) -> dict:
    """The values as declared (Dagster wraps them in MetadataValues only when it serialises them)."""
    return {label: getattr(value, "value", value) for label, value in defs.resolve_asset_graph().get(key).metadata.items()}


# --- the unit tier: the definitions, no server ---------------------------------------------------


@pytest.mark.parametrize("key", list(TRUSTED), ids=lambda k: k.to_user_string())
def test_a_trusted_asset_declares_its_columns_table_name_and_lineage(key):
    contract, source, raw_fields = TRUSTED[key]
    metadata = _definition_metadata(key)
    assert metadata["dagster/table_name"] == table_identifier(contract.table)

    schema = metadata["dagster/column_schema"]
    assert isinstance(schema, TableSchema)
    columns = {c.name: c for c in schema.columns}
    declared = {name: kind for layout in contract.layouts.values() for name, kind in layout.items()}
    assert set(columns) == set(declared), "every column of every layout, and nothing else"
    for name, column in columns.items():
        assert column.type == declared[name], name
        assert column.description and column.description.startswith(contract.columns[name]), name

    lineage = metadata["dagster/column_lineage"]
    assert isinstance(lineage, TableColumnLineage)
    assert set(lineage.deps_by_column) == set(columns), "each column says where it comes from"
    deps = [dep for column_deps in lineage.deps_by_column.values() for dep in column_deps]
    assert {dep.asset_key for dep in deps} == {source}
    assert source in defs.resolve_asset_graph().get(key).parent_keys, "the lineage names the asset's own input"
    assert {dep.column_name for dep in deps} <= raw_fields, "every source field exists in the raw schema"


def test_the_filmes_schema_is_the_union_of_its_layouts_each_column_naming_its_layouts():
    columns = {name: doc for name, _, doc in declared_columns(FILMES)}
    assert columns["titulo"].endswith("In layout seed.")
    assert columns["id"].endswith("In layouts programme_movies, programme_series.")
    assert columns["ano_termino"].endswith("In layout programme_series.")
    # One layout given, its columns with exactly the run-time text (Contract.column_docs).
    for layout in FILMES.layouts:
        docs = FILMES.column_docs(layout)
        assert declared_columns(FILMES, layout) == [(n, k, docs[n]) for n, k in FILMES.layouts[layout].items()]


def test_the_tmdb_schema_before_a_run_is_the_one_a_run_reports():
    """One home for a column's name, type and description: the definition's schema and the
    materialisation's (PublishReport.column_schema, the written columns) are built alike."""
    layout = "tmdb_details"
    written = list(TMDB.layouts[layout].items())  # what a run writes: the schema contract holds it to this
    at_run_time = PublishReport([], written, "", TMDB.column_docs(layout)).column_schema()
    assert _definition_metadata(trusted.tmdb.key)["dagster/column_schema"] == at_run_time


def test_the_tmdb_lineage_is_the_mapping_the_transform_reads():
    assert column_lineage(TRUSTED_TMDB.path) == {column: (field,) for column, field in TMDB_FIELDS.items()}
    assert column_lineage(TRUSTED_TMDB.path, "tmdb_details") == column_lineage(TRUSTED_TMDB.path)
    assert list(TMDB_FIELDS) == list(TMDB.layouts["tmdb_details"]), "the transform's columns, in the contract's order"
    assert set(TMDB_FIELDS.values()) <= {f.name for f in DETAILS_SCHEMA.fields}
    assert (TMDB_FIELDS["tmdb_id"], TMDB_FIELDS["titulo"], TMDB_FIELDS["generos"]) == ("id", "title", "genres")


def test_the_filmes_lineage_is_each_layouts_header_renamed_by_the_naming_rule():
    assert list(FILMES_HEADERS) == list(FILMES.layouts), "a header for every accepted layout"
    for layout, header in FILMES_HEADERS.items():
        lineage = column_lineage(TRUSTED_FILMES.path, layout)
        assert set(lineage) == set(FILMES.layouts[layout]), layout
        assert [field for (field,) in lineage.values()] == list(header), "in the file's column order"
        assert all(normalise_column_name(field) == column for column, (field,) in lineage.items()), layout
    union = column_lineage(TRUSTED_FILMES.path)
    assert set(union) == {name for layout in FILMES.layouts.values() for name in layout}
    assert union["titulo"] == ("Titulo",) and union["data_de_lancamento"] == ("Data de lançamento",)


def test_the_filmes_headers_are_the_source_files_headers():
    """The canonical spellings are the files': the seed's sample and the programme's extracts."""
    first_line = {
        "seed": (ROOT / "lake_assets/sample_data/filmes.csv", ","),
        "programme_movies": (ROOT / "lake_assets_tests/data/movies_subset_1.csv", "|"),
        "programme_series": (ROOT / "lake_assets_tests/data/series_subset.csv", "|"),
    }
    for layout, (path, separator) in first_line.items():
        header = path.read_text(encoding="utf-8").splitlines()[0].lstrip("\ufeff").rstrip("\r")
        assert tuple(header.split(separator)) == FILMES_HEADERS[layout], layout


def test_column_lineage_refuses_an_unknown_table_or_layout():
    with pytest.raises(KeyError, match="trusted/nope"):
        column_lineage("trusted/nope")
    with pytest.raises(KeyError, match="no layout"):
        column_lineage(TRUSTED_FILMES.path, "tmdb_details")
    with pytest.raises(KeyError, match="one layout"):
        column_lineage(TRUSTED_TMDB.path, "seed")


def test_oss_dagster_parses_column_and_table_name_but_cannot_evaluate_them():
    """Why the end-to-end test evaluates the filters itself: should a Dagster upgrade resolve them,
    this fails, and that test should ask the server instead."""
    selection = AssetSelection.from_string('column:titulo or table_name:"trusted.tmdb"')
    assert selection.operands == [
        ColumnAssetSelection(selected_column="titulo"),
        TableNameAssetSelection(selected_table_name="trusted.tmdb"),
    ]
    with pytest.raises(NotImplementedError):
        selection.resolve(defs.resolve_asset_graph())


# --- end to end: the real webserver's GraphQL, before any run ------------------------------------

CATALOG = """{ assetNodes {
  assetKey { path }
  storageAddress { tableName }
  assetMaterializations(limit: 1) { runId }
  metadataEntries {
    label
    ... on TextMetadataEntry { text }
    ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
    ... on TableColumnLineageMetadataEntry { lineage { columnName columnDeps { assetKey { path } columnName } } }
  }
} }"""


def _search(nodes: list[dict], attribute: str, value: str) -> set[str]:
    """A `column:<value>` or `table_name:<value>` filter on the definitions' metadata, as specified:
    the assets whose `dagster/column_schema` has that column, or whose table name is that name."""
    found = set()
    for node in nodes:
        entries = {e["label"]: e for e in node["metadataEntries"]}
        if attribute == "column":
            schema = entries.get("dagster/column_schema", {}).get("schema") or {"columns": []}
            matches = any(column["name"] == value for column in schema["columns"])
        else:
            matches = entries.get("dagster/table_name", {}).get("text") == value
        if matches:
            found.add("/".join(node["assetKey"]["path"]))
    return found


def test_the_ui_finds_both_trusted_tables_by_column_and_each_by_table_name_before_any_run(dagster_server):
    # One request: the metadata and the materialisations are read from the same state.
    nodes = dagster_server.graphql(CATALOG)["assetNodes"]
    by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
    trusted_keys = {"trusted/filmes", "trusted/tmdb"}
    assert trusted_keys <= set(by_key)
    materialised = {key: by_key[key]["assetMaterializations"] for key in trusted_keys if by_key[key]["assetMaterializations"]}
    assert not materialised, f"this test reads the catalog before any run, but these were materialised: {materialised}"

    assert _search(nodes, "column", "titulo") == trusted_keys, "both trusted tables have titulo; no other asset"
    assert _search(nodes, "column", "ano_termino") == {"trusted/filmes"}, "a column of one filmes layout only"
    assert _search(nodes, "column", "title") == set(), "a raw field is lineage, not a column of the table"
    for key, dataset in (("trusted/filmes", TRUSTED_FILMES), ("trusted/tmdb", TRUSTED_TMDB)):
        name = table_identifier(dataset.path)
        assert _search(nodes, "table_name", name) == {key}
        assert by_key[key]["storageAddress"] == {"tableName": name}, "the name the webserver reads from the definition"

    tmdb = {e["label"]: e for e in by_key["trusted/tmdb"]["metadataEntries"]}
    titulo = next(c for c in tmdb["dagster/column_schema"]["schema"]["columns"] if c["name"] == "titulo")
    assert titulo["type"] == "string" and titulo["description"].startswith(TMDB.columns["titulo"])
    from_title = {"columnName": "titulo", "columnDeps": [{"assetKey": {"path": ["raw", "tmdb_json"]}, "columnName": "title"}]}
    assert from_title in tmdb["dagster/column_lineage"]["lineage"]
