"""`cmkt serve --db postgresql://...` against a real PostgreSQL server, started by the test in a
temporary data folder on a free loopback port and stopped by its PID: the same equality and
durability checks as with SQLite. Skipped, saying why, where no PostgreSQL server can be started."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from serve_kit import Postgres, Server, kill_9_mid_stream, check_against_export, histories, post, post_all, train_tiny_run, write_keys


@pytest.fixture(scope="module")
def pg():
    pytest.importorskip("psycopg", reason="psycopg (v3) is not installed")
    folder = Path(tempfile.mkdtemp(prefix="cmkt-pg-"))        # under /tmp: the postgres user can reach it
    folder.chmod(0o755)
    try:
        server = Postgres(folder / "pg")
    except (RuntimeError, OSError, LookupError, subprocess.SubprocessError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server could be started: {e}")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("serve_pg_runs"))


def count(pg_url: str, student: str) -> int:
    from cmkt.serve.store import Store
    st = Store(pg_url)
    try:
        return st.count(student)
    finally:
        st.close()


def test_postgres_mastery_equals_export_and_survives_kill_9(pg, run, tmp_path):
    db = pg.create_db("cmkt_serve_test")
    keys = write_keys(tmp_path / "keys.txt")
    srv = Server(run, db, keys, tmp_path / "serve.log")
    labels = [s["skill"] for s in srv.client.get("/model").json()["skills"]]
    hist = {k: v for k, v in histories(labels, seed=5).items() if k in ("s-a", "north-c", "s-e", "s-g", "s-i")}
    try:
        last = post_all(srv.client, hist)
        check_against_export(srv.client, run, hist, last, tmp_path)
        before = {sid: srv.client.get(f"/students/{sid}").json() for sid in hist}
        stream = [(labels[i % len(labels)], (i * 7) % 3 % 2) for i in range(300)]
        acked = kill_9_mid_stream(srv, "s-live", stream, 20)
    finally:
        srv.stop()
    assert len(acked) >= 20
    srv = Server(run, db, keys, tmp_path / "serve2.log")
    try:
        for sid in hist:
            assert srv.client.get(f"/students/{sid}").json() == before[sid]
        n = count(db, "s-live")
        assert len(acked) <= n <= len(acked) + 1
        assert srv.client.get("/students/s-live").json()["attempts"] == n
        live = [(labels[i % len(labels)], (i * 7) % 3 % 2) for i in range(n)]
        hist2 = {"s-i": hist["s-i"] + [(labels[1], 0)], "s-live": live + [(labels[2], 1)]}
        done = {sid: post(srv.client, sid, [steps[-1]])["results"][-1] for sid, steps in hist2.items()}
        (tmp_path / "after").mkdir()
        check_against_export(srv.client, run, hist2, done, tmp_path / "after")
    finally:
        srv.stop()
