"""The throwaway PostgreSQL of lake_tools/postgres.py: the session's server (the `postgres` fixture)
answers on the role `lake`'s URI and only with its password, keeps its data over a clean and a
crash-like restart, and a stop leaves none of its processes behind; the `up`/`uri`/`down` CLI of the
`make` targets does the same on a folder of its own."""

import json
import stat
import uuid

import psycopg
import pytest

from lake_tools import postgres as postgres_tool
from lake_tools.processes import alive, process_tree


def server_processes(pid: int) -> set[int]:
    """The postmaster and its children (checkpointer, walwriter, sessions...)."""
    return process_tree(pid)


def test_uri_answers_with_the_password_only(postgres):
    table = f"films_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.uri("postgresql")) as db:
        who = db.execute("SELECT current_user, current_database(), current_setting('listen_addresses')").fetchone()
        assert who == ("lake", "lake", "127.0.0.1")
        db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, title text)")
        db.execute(f"INSERT INTO {table} VALUES (1, 'Central do Brasil'), (2, 'Cidade de Deus')")
        assert db.execute(f"SELECT title FROM {table} ORDER BY id").fetchall() == [("Central do Brasil",), ("Cidade de Deus",)]
    assert postgres.uri().startswith(f"postgresql+psycopg://lake:{postgres.password}@127.0.0.1:{postgres.port}/lake")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"postgresql://lake:wrong@127.0.0.1:{postgres.port}/lake").close()
    assert stat.S_IMODE(postgres.password_path.stat().st_mode) == 0o600
    assert postgres.password not in postgres.log_path.read_text()


def test_restart_keeps_the_data_and_stop_leaves_no_process(postgres):
    table = f"films_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.uri("postgresql")) as db:
        db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        db.execute(f"INSERT INTO {table} SELECT generate_series(1, 1000)")

    for mode in ("fast", "immediate"):  # immediate: no checkpoint, the next start replays the WAL
        before = server_processes(postgres.pid)
        postgres.restart(mode=mode)
        assert not any(alive(pid) for pid in before), mode
        with psycopg.connect(postgres.uri("postgresql")) as db:
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (1000,), mode

    before = server_processes(postgres.pid)
    assert len(before) > 1  # the background processes were seen
    try:
        postgres.stop()
        assert not any(alive(pid) for pid in before)
        assert not (postgres.data_dir / "postmaster.pid").exists()
    finally:
        postgres.start()  # the session's server stays up for the other tests


@pytest.mark.services  # a PostgreSQL of its own, through the CLI
@pytest.mark.postgres
def test_cli_up_uri_down(tmp_path, capsys):
    folder = tmp_path / "pg"
    assert postgres_tool.main(["up", "--dir", str(folder)]) == 0
    pid = json.loads((folder / "state.json").read_text())["pid"]
    try:
        assert postgres_tool.main(["up", "--dir", str(folder)]) == 0  # idempotent
        assert "already running" in capsys.readouterr().out
        assert postgres_tool.main(["uri", "--dir", str(folder), "--driver", "postgresql"]) == 0
        with psycopg.connect(capsys.readouterr().out.strip()) as db:
            assert db.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert postgres_tool.main(["down", "--dir", str(folder)]) == 0
    assert not alive(pid)
    assert not (folder / "state.json").exists()
    assert postgres_tool.main(["uri", "--dir", str(folder)]) == 1
