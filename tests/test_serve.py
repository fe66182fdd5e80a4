"""`cmkt serve` for real: uvicorn on a free 127.0.0.1 port, a tiny trained run whose long students
chain windows (max_len 12), SQLite. Mastery equals `cmkt export`; kill -9 loses no acknowledged
answer; keys give 401 / 403; bad input is refused with nothing stored."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import httpx
import numpy as np
import pytest

from serve_kit import (ADMIN, LENGTHS, kill_9_mid_stream, NORTH, ROOT, Server, check_against_export, histories, post, post_all,
                       train_tiny_run, write_keys)



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("serve_runs"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return write_keys(tmp_path_factory.mktemp("serve_keys") / "keys.txt")


@pytest.fixture(scope="module")
def server(run, keys, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_db")
    srv = Server(run, str(folder / "events.sqlite"), keys, folder / "serve.log", "--max-batch", "50",
                 "--max-body", "8000")
    srv.db = folder / "events.sqlite"
    yield srv
    srv.stop()


def stored(db, student=None) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if student is None:
            return conn.execute("SELECT count(*) FROM cmkt_answers").fetchone()[0]
        return conn.execute("SELECT count(*) FROM cmkt_answers WHERE student_id = ?", (student,)).fetchone()[0]


def test_mastery_served_equals_export_of_the_same_history(server, run, tmp_path):
    labels = [s["skill"] for s in server.client.get("/model").json()["skills"]]
    hist = histories(labels)
    last = post_all(server.client, hist)
    check_against_export(server.client, run, hist, last, tmp_path)
    assert stored(server.db) >= sum(LENGTHS.values())


def test_health_model_and_docs(server, run):
    health = httpx.get(server.url + "/v1/health").json()                          # no key needed
    assert health["status"] == "ok" and health["model"] == "ok" and health["model_process"] is True
    assert health["batches"]["batches"] >= 1                                       # the start-up self-check
    model = server.client.get("/model").json()
    assert model["run"] == run.name and model["kind"] == "gainakt2" and model["mode"] == "cumulative"
    assert model["max_len"] == 12 and model["members"] == 2 and len(model["skills"]) == 5
    assert model["parts"] == ["mastery", "difficulty", "momentary"]
    api = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/students/{student_id}/answers", "/v1/students/{student_id}", "/v1/students/{student_id}/next",
            "/v1/health", "/v1/model"} <= set(api["paths"])
    assert httpx.get(server.url + "/docs").status_code == 200


def test_keys_401_without_a_known_key_and_403_outside_its_prefixes(server):
    u = server.url + "/v1"
    answer = {"skill": "1", "correct": 1}
    before = stored(server.db)
    for headers in ({}, {"Authorization": "Bearer not-a-key-at-all"}, {"Authorization": ADMIN}):
        for r in (httpx.post(u + "/students/north-k1/answers", json=answer, headers=headers),
                  httpx.get(u + "/students/north-k1", headers=headers), httpx.get(u + "/model", headers=headers),
                  httpx.post(u + "/students/north-k1/answers", json={"skill": "nope"}, headers=headers)):
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "key" in r.json()["error"]
    north = {"Authorization": f"Bearer {NORTH}"}
    for sid in ("south-1", "s-a", "xnorth-1"):
        r = httpx.post(u + f"/students/{sid}/answers", json=answer, headers=north)
        assert r.status_code == 403 and sid in r.json()["error"]
        assert httpx.get(u + f"/students/{sid}", headers=north).status_code == 403
        assert httpx.get(u + f"/students/{sid}/next", params={"skill": "1"}, headers=north).status_code == 403
    assert stored(server.db) == before
    assert httpx.post(u + "/students/north-k1/answers", json=answer, headers=north).status_code == 200
    assert httpx.post(u + "/students/n2-k1/answers", json=answer, headers=north).status_code == 200
    assert httpx.get(u + "/students/north-k1", headers=north).json()["attempts"] == 1
    assert httpx.get(u + "/model", headers=north).status_code == 200


def test_keys_are_never_logged(server):
    server.client.get("/students/s-a")
    httpx.get(server.url + "/v1/model", headers={"Authorization": "Bearer k-wrong-secret-99"})
    text = open(server.log.name, errors="replace").read()
    assert ADMIN not in text and NORTH not in text and "k-wrong-secret-99" not in text


BAD = [
    ("unknown skill", {"skill": "no-such-skill", "correct": 1}, 422, "unknown skill"),
    ("unknown skill in a batch", {"answers": [{"skill": "1", "correct": 1}, {"skill": "99", "correct": 0}]}, 422,
     "unknown skill"),
    ("correct 2", {"skill": "1", "correct": 2}, 422, "0 or 1"),
    ("correct 0.5", {"skill": "1", "correct": 0.5}, 422, "0 or 1"),
    ("correct as text", {"skill": "1", "correct": "yes"}, 422, "0 or 1"),
    ("correct missing", {"skill": "1"}, 422, "correct"),
    ("correct in a batch", {"answers": [{"skill": "1", "correct": 1}, {"skill": "2", "correct": None}]}, 422,
     "0 or 1"),
    ("skill of the wrong type", {"skill": ["1"], "correct": 1}, 422, "skill"),
    ("skill true", {"skill": True, "correct": 1}, 422, "skill"),
    ("timestamp of the wrong type", {"skill": "1", "correct": 1, "timestamp": [1]}, 422, "timestamp"),
    ("unknown field", {"skill": "1", "correct": 1, "student": "x"}, 422, "unknown field"),
    ("empty batch", {"answers": []}, 422, "no answers"),
    ("oversized batch", {"answers": [{"skill": "1", "correct": 1}] * 51}, 413, "at most 50"),
]


@pytest.mark.parametrize("name,body,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_answers_are_refused_and_nothing_is_stored(server, name, body, status, words):
    before = stored(server.db)
    r = server.client.post("/students/bad-1/answers", json=body)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert stored(server.db) == before
    assert server.client.get("/students/bad-1").status_code == 404


def test_bad_ids_bodies_and_queries_are_refused(server):
    before = stored(server.db)
    c = server.client
    for sid in ("bad%20id", "-dash-first", "x" * 129, "a%2Fb"):
        r = c.post(f"/students/{sid}/answers", json={"skill": "1", "correct": 1})
        assert r.status_code in (404, 422) and "error" in r.json(), (sid, r.text)
    r = c.post("/students/bad-2/answers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    big = json.dumps({"answers": [{"skill": "1", "correct": 1, "timestamp": 1700000000}] * 40}) + " " * 8000
    r = c.post("/students/bad-2/answers", content=big.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 8000 bytes" in r.json()["error"]

    def chunks():                                  # no Content-Length: counted as it arrives
        yield b'{"answers": ['
        for _ in range(400):
            yield b'{"skill": "1", "correct": 1},'
        yield b'{"skill": "1", "correct": 1}]}'
    r = c.post("/students/bad-2/answers", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = c.get("/students/s-a/next", params={"skill": "zz"})
    assert r.status_code == 422 and "unknown skill" in r.json()["error"]
    assert c.get("/students/s-a/next").status_code == 422
    assert stored(server.db) == before


def test_a_run_that_cannot_be_served_exits_2_with_one_line(run, keys, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "best.safetensors").write_bytes(b"\x00" * 100)
    db = ["--db", str(tmp_path / "e.sqlite")]
    env = {k: v for k, v in os.environ.items() if k != "CMKT_API_KEYS"}
    for args, words in (([str(tmp_path / "no-such-run"), "--keys", str(keys), *db], "no such run"),
                        ([str(broken), "--keys", str(keys), *db], "checkpoint")):
        p = subprocess.run([sys.executable, "-m", "cmkt", "serve", *args], cwd=str(ROOT), capture_output=True,
                           text=True, timeout=120, env=env)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, p.stderr)
        assert words in lines[0], (words, lines[0])
    from cmkt.cli import main
    monkeypatch.delenv("CMKT_API_KEYS", raising=False)
    (tmp_path / "other").mkdir()
    for args, words in (([str(run), *db], "no API keys"),
                        ([str(run), "--keys", str(tmp_path / "missing.txt"), *db], "no such file"),
                        ([str(run), "--keys", str(keys), "--db", "mysql://x/y"], "--db"),
                        ([str(run), "--keys", str(keys), "--port", "0", *db], "--port"),
                        ([str(run), "--keys", str(keys), "--db", str(tmp_path / "nope" / "e.sqlite")], "does not exist")):
        assert main(["serve", *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (words, lines)


def test_kill_9_loses_no_acknowledged_answer_and_restart_gives_the_same_mastery(run, keys, tmp_path):
    db = str(tmp_path / "events.sqlite")
    srv = Server(run, db, keys, tmp_path / "serve.log")
    labels = [s["skill"] for s in srv.client.get("/model").json()["skills"]]
    hist = histories(labels, seed=3)
    try:
        done = post_all(srv.client, {"s-h": hist["s-h"]}, check_next=False)
        before = srv.client.get("/students/s-h").json()
        rng = np.random.default_rng(4)
        stream = [(labels[int(rng.integers(len(labels)))], int(rng.integers(2))) for _ in range(400)]
        acked = kill_9_mid_stream(srv, "s-live", stream, 30)
    finally:
        srv.stop()
    n_acked = len(acked)
    assert n_acked >= 30 and [a["step"] for a in acked] == list(range(1, n_acked + 1))
    srv = Server(run, db, keys, tmp_path / "serve2.log")
    try:
        assert srv.client.get("/students/s-h").json() == before              # the state before equals after
        n = stored(db, "s-live")
        assert n_acked <= n <= n_acked + 1
        live = srv.client.get("/students/s-live").json()
        assert live["attempts"] == n
        hist2 = {"s-h": hist["s-h"], "s-live": stream[:n]}
        # one more answer each after the restart: scored incrementally from the rebuilt state
        for sid, steps in hist2.items():
            steps.append((labels[0], 1))
            done[sid] = post(srv.client, sid, [steps[-1]])["results"][-1]
        check_against_export(srv.client, run, hist2, done, tmp_path)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        srv.stop()


def test_the_load_test_is_bounded_and_reports_throughput_latency_and_errors(run, tmp_path):
    out = tmp_path / "serve.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--run", str(run), "--requests", "24",
                        "--clients", "1,3", "--depth", "60", "--depth-students", "1", "--max-seconds", "30",
                        "--repeat", "2", "--out", str(out)], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [r["clients"] for r in res["throughput"]] == [1, 3]
    for r in res["throughput"]:
        assert r["done"] == 24 and r["errors"] == 0 and r["answers_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
        assert len(r["repeats"]) == 2 and r["answers_per_s"] in [x["answers_per_s"] for x in r["repeats"]]
        for x in r["repeats"]:                      # the machine's state beside every repeat
            steal = x["machine"]["steal_share"]     # None only where /proc/stat cannot be read
            assert x["machine"]["cpu_probe_ms"] > 0
            assert 0 <= steal <= 1 if steal is not None else not os.path.exists("/proc/stat")
        mb = r["model_batches"]                     # the model's batches, read from /v1/health
        assert mb["batches"] > 0 and mb["ms_per_batch"] > 0 and 0 < mb["busy_share"] <= 1
    assert res["model_process"] is True
    d = res["depth"]
    assert d["errors"] == 0 and d["p50_ms_answers_6_15"] > 0 and d["p50_ms_answers_51_60"] > 0
    assert d["p50_ms_answers_26_35"] > 0
    assert "answers/s" in p.stdout and "p99" in p.stdout
