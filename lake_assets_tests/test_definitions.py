"""The code location as Dagster and its users see it: the asset graph, config the launchpad can
explain, bad settings refused when a resource is built, and Dagster's own validators."""

import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from dagster import Config, ConfigurableResource

from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.definitions import defs
from lake_assets.defs.resources import LakeResource, SparkResource, TMDBResource

ROOT = Path(__file__).resolve().parents[1]


def test_the_asset_graph():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw/filmes_csv", "raw/tmdb_json", "trusted/filmes", "trusted/tmdb"}
    tmdb_node = graph.get(trusted.tmdb.key)
    assert tmdb_node.partitions_def is not None and tmdb_node.group_name == "trusted"
    assert graph.get(raw.filmes_csv.key).partitions_def is None


def _config_classes() -> list[type]:
    """Every config class of the assets, and every resource class the definitions bind."""
    classes = {type(resource) for resource in defs.resources.values()}
    for asset in (raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb):
        for param in asset.op.compute_fn.decorated_fn.__annotations__.values():
            if isinstance(param, type) and issubclass(param, Config):
                classes.add(param)
    return sorted(classes, key=lambda c: c.__name__)


def test_every_config_and_resource_field_has_a_description_the_launchpad_shows():
    classes = _config_classes()
    assert {c.__name__ for c in classes} >= {
        "LakeResource",
        "SparkResource",
        "TMDBResource",
        "FilmesConfig",
        "FilmesSourceConfig",
    }
    undescribed = []
    for cls in classes:
        schema = cls.to_config_schema().as_field().config_type
        for name, field in schema.fields.items():
            if not field.description:
                undescribed.append(f"{cls.__name__}.{name}")
    assert undescribed == []


def test_enum_like_settings_are_spelled_as_the_readme_spells_them():
    filmes_config = next(c for c in _config_classes() if c.__name__ == "FilmesConfig")
    dialect = filmes_config.to_config_schema().as_field().config_type.fields["dialect"].config_type
    assert sorted(v.config_value for v in dialect.enum_values) == ["auto", "pipe", "seed", "semicolon"]


@pytest.mark.parametrize(
    "resource, settings",
    [
        (LakeResource, {"root": "http://example.com/lake"}),
        (LakeResource, {"root": "s3:///no-bucket"}),
        (LakeResource, {"dt_layout": "flat"}),
        (TMDBResource, {"pages": 0}),
        (TMDBResource, {"pages": 501}),
        (TMDBResource, {"rate_limit_per_s": -1}),
        (SparkResource, {"shuffle_partitions": 0}),
    ],
)
def test_bad_settings_are_refused_when_the_resource_is_built(resource: type[ConfigurableResource], settings):
    with pytest.raises(pydantic.ValidationError, match=next(iter(settings))):
        resource(**settings)


def test_one_boto3_client_per_lake_resource():
    lake = LakeResource(root="s3://bucket/lake", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    assert lake.storage("raw").client is lake.storage("trusted").client is lake.s3_client()


def test_dagster_cli_validates_the_workspace():
    dagster = Path(sys.executable).parent / "dagster"
    # Without DAGSTER_HOME (make exports the project's, which only `make run` or `make dev` creates):
    # validating needs no instance of its own.
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_dg_checks_the_definitions():
    dg = Path(sys.executable).parent / "dg"
    done = subprocess.run([str(dg), "check", "defs"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_each_trusted_table_has_a_pool_of_one_and_runs_of_different_tables_may_overlap(tmp_path):
    import shutil

    from dagster import DagsterInstance

    pools = {asset.key.to_user_string(): asset.op.pool for asset in (raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb)}
    assert pools == {
        "raw/filmes_csv": None,
        "raw/tmdb_json": None,
        "trusted/filmes": "trusted_filmes",
        "trusted/tmdb": "trusted_tmdb",
    }
    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:  # also validates the file against Dagster's schema
        assert instance.global_op_concurrency_default_limit == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs > 1


def test_asset_jobs_require_only_resources_their_assets_and_checks_use():
    """Dagster's pickling `io_manager` is in the launchpad, though no value ever goes through it:
    every JobDefinition binds it (job_definition.py: `{DEFAULT_IO_MANAGER_KEY: default_job_io_manager,
    **resource_defs}`), and every asset check's output (`Out(dagster_type=None)`) asks for it by its
    default key, while execute_step never stores a check's output. It cannot be removed without a
    wrapper of Dagster's own check outputs, so this pins what the jobs require: each key an asset's
    compute, output or input uses, and `io_manager` only through check outputs."""
    graph = defs.resolve_asset_graph()
    for job in defs.get_repository_def().get_all_jobs():
        assets = [asset for asset in job.asset_layer.asset_graph.assets_defs if asset.is_executable]
        if not assets:
            continue  # an op job (table_maintenance, table_rollback) asks for what its ops name
        used, asked_by_checks = set(), set()
        for asset in assets:
            used |= set(asset.node_def.required_resource_keys)
            used |= {graph.get(key).io_manager_key for key in asset.dependency_keys}  # its inputs' loader
            for output in asset.node_def.output_defs:
                target = asked_by_checks if output.name in asset.check_specs_by_output_name else used
                target.add(output.io_manager_key)
        assert "io_manager" not in used, f"{job.name}: an asset stores or loads a value with Dagster's pickling io_manager"
        assert job.required_resource_keys - used <= {"io_manager"}, job.name
        assert asked_by_checks <= {"io_manager"}
