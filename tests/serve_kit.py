"""Helpers of the `cmkt serve` tests: a tiny trained run, the real server in a subprocess on a free
127.0.0.1 port (stopped by its PID), `cmkt export` of a posted history, and a throwaway PostgreSQL."""
from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TINY = {"d_model": "8", "n_heads": "2", "d_ff": "16", "max_len": "12", "gain_hidden": "4", "recurrent": "4",
        "members": "2", "num_threads": "1"}
ADMIN, NORTH = "k-admin-0001", "k-north-0001"
TOL = 1e-6
# students' lengths around the window boundaries of max_len 12 (windows end at 12, 18, 24, 30)
LENGTHS = {"s-a": 1, "s-b": 6, "north-c": 11, "s-d": 12, "s-e": 13, "north-f": 18, "s-g": 19, "s-h": 25, "s-i": 31}


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 15) -> None:
    """Stop a process we started, by its PID: sig, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_tiny_run(folder: Path, name: str = "tiny") -> Path:
    """A cumulative ensemble of 2 with max_len 12 (long students chain windows), trained 1 epoch."""
    from cmkt.runs import create_run, execute_run
    run = create_run(folder, data="sim:students=30,skills=5", mode="cumulative", preset="quick", epochs=1,
                     overrides=TINY, name=name)
    execute_run(run)
    return run


def write_keys(path: Path) -> Path:
    path.write_text(f"# test keys\n{ADMIN}\n{NORTH} north- n2-\n")
    return path


class Server:
    """`python -m cmkt serve RUN` on 127.0.0.1 and a free port."""

    def __init__(self, run: Path, db: str, keys: Path, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cmkt", "serve", str(run), "--port", str(self.port), "--db", db,
             "--keys", str(keys), *extra],
            cwd=str(ROOT), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cmkt serve did not start: see {log}\n{Path(log).read_text()[-2000:]}")
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.url + "/v1", headers={"Authorization": f"Bearer {ADMIN}"},
                                   timeout=60)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        stop_process(self.proc)
        self._close()

    def _close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        self.log.close()


def post(client: httpx.Client, student: str, answers: list[tuple[str, int]]) -> dict:
    body = ({"skill": answers[0][0], "correct": answers[0][1]} if len(answers) == 1 else
            {"answers": [{"skill": s, "correct": c} for s, c in answers]})
    r = client.post(f"/students/{student}/answers", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def export_histories(run: Path, histories: dict[str, list[tuple[str, int]]], folder: Path) -> dict[str, list[dict]]:
    """`cmkt export RUN --data LOG --all` of these histories (a long log CSV): student -> its rows."""
    log, out = folder / "history.csv", folder / "export.csv"
    with open(log, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "skill_id", "correct", "order_id"])
        for sid, steps in histories.items():
            for i, (skill, c) in enumerate(steps, 1):
                w.writerow([sid, skill, c, i])
    subprocess.run([sys.executable, "-m", "cmkt", "export", str(run), "--data", str(log), "--all", "--out", str(out)],
                   cwd=str(ROOT), check=True, capture_output=True, timeout=300)
    rows: dict[str, list[dict]] = {}
    with open(out) as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["student_id"], []).append(row)
    for sid in rows:
        rows[sid].sort(key=lambda r: int(r["step"]))
    return rows


def scored_histories(run: Path, histories: dict[str, list[tuple[str, int]]], folder: Path):
    """The library's scoring of the same log (what export calls): cmkt.runs.evaluate.Scored."""
    from cmkt.runs.evaluate import score_checkpoint
    log = folder / "history.csv"
    if not log.exists():
        export_histories(run, histories, folder)
    return score_checkpoint(run, str(log))


# ---- posting histories and checking them against `cmkt export` -----------------------------------

def histories(labels, seed=0):
    rng = np.random.default_rng(seed)
    return {sid: [(labels[int(rng.integers(len(labels)))], int(rng.integers(2))) for _ in range(n)]
            for sid, n in LENGTHS.items()}


def close(a, b):
    if a is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return abs(float(a) - float(b)) <= TOL


def check_against_export(client, run, hist, last, folder):
    """Each student's last posted result equals the last row of `cmkt export` of its history, and
    GET /students/{id} equals the library scoring export runs (every skill) and the Students page."""
    from cmkt.educator.practice import practise_next
    rows = export_histories(run, hist, folder)
    scored = scored_histories(run, hist, folder)
    for sid, steps in hist.items():
        exp = rows[sid]
        assert [(r["skill_id"], int(r["response"])) for r in exp] == [(s, c) for s, c in steps]
        got, want = last[sid], exp[-1]
        assert got["step"] == len(steps) and got["skill"] == want["skill_id"]
        assert close(got["prediction"], float(want["prediction"]))
        assert close(got["mastery"], float(want["mastery"]))
        assert close(got["gain"], float(want["gain"]))
        assert close(got["mastery_before"], float(want["mastery_before"]) if want["mastery_before"] else None)
        for part in ("mastery", "difficulty", "momentary"):
            assert close(got["parts"][part], float(want[f"logit_{part}"]))
        body = client.get(f"/students/{sid}").json()
        i = scored.data.index_of(sid)
        arr = scored.traj.student(i)
        assert body["attempts"] == len(steps)
        for k, sk in enumerate(body["skills"]):
            assert sk["skill"] == scored.skill_labels[k]
            assert close(sk["mastery"], float(arr["mastery"][-1, k]))
            assert sk["attempts"] == int((arr["skills"] == k).sum())
        want_next = practise_next(arr, scored.skill_names, scored.skill_labels)
        assert [(n["skill"], n["reason"]) for n in body["practise_next"]] == \
               [(scored.skill_labels[s.skill_index], s.reason) for s in want_next]
        for n, s in zip(body["practise_next"], want_next):
            assert close(n["mastery"], s.mastery) and close(n["gain"], s.gain)


def post_all(client, hist, seed=1, check_next=True):
    """Post each history in chunks of 1 to 4 answers; before each student's last answer, ask /next
    for it and check the answer's prediction equals it. Returns student -> last result."""
    rng = np.random.default_rng(seed)
    last = {}
    for sid, steps in hist.items():
        t = 0
        while t < len(steps):
            n = min(int(rng.integers(1, 5)), len(steps) - t)
            if check_next and t + n == len(steps):
                n = 1
                nxt = client.get(f"/students/{sid}/next", params={"skill": steps[t][0]}).json()
            res = post(client, sid, steps[t:t + n])
            assert res["stored"] == n and res["attempts"] == t + n
            t += n
            last[sid] = res["results"][-1]
        if check_next:
            assert close(nxt["prediction"], last[sid]["prediction"]) and nxt["step"] == len(steps)
            assert all(close(nxt["parts"][p], last[sid]["parts"][p]) for p in nxt["parts"])
    return last


# ---- a throwaway PostgreSQL server --------------------------------------------------------------

def pg_bin() -> Path:
    """Debian's PostgreSQL server binaries (the newest installed version), else pg_config's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        return Path(out)
    return Path("/usr/lib/postgresql/15/bin")


class Postgres:
    """initdb + postgres as the `postgres` user in a temporary folder, on a free loopback port."""

    def __init__(self, folder: Path):
        self.proc = None
        bindir = pg_bin()
        if not (bindir / "initdb").exists():
            raise RuntimeError(f"no PostgreSQL server binaries (looked in {bindir}; Debian: apt-get install postgresql)")
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` user (its PID is ours)
        as_pg = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        self.data = folder / "pgdata"
        self.data.mkdir(parents=True)
        if as_pg:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
            for up in folder.parents:              # postgres must reach its folder (use one under /tmp)
                if os.stat(up).st_mode & 0o001 == 0:
                    raise RuntimeError(f"the postgres user cannot reach {folder} ({up} is closed to others)")
        os.chmod(self.data, 0o700)
        init = subprocess.run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth", "trust",
                               "-E", "UTF8"], capture_output=True, text=True, timeout=120, cwd=str(folder), **as_pg)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {(init.stderr or init.stdout).strip()[-300:]}")
        self.port = free_port()
        self.log = open(folder / "postgres.log", "wb")
        self.proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                      "-h", "127.0.0.1", "-k", str(folder), "-c", "fsync=on"], cwd=str(folder),
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, **as_pg)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        import psycopg
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                     connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("postgres did not start: " + (folder / "postgres.log").read_text()[-300:])
                time.sleep(0.3)

    def create_db(self, name: str) -> str:
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop by PID (SIGINT: PostgreSQL's fast shutdown)."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, 30)
        if getattr(self, "log", None) is not None:
            self.log.close()


def kill_9_mid_stream(srv, student: str, stream: list[tuple[str, int]], min_acked: int) -> list[dict]:
    """Post `stream` to one student from another thread and kill -9 the server once at least
    `min_acked` answers are acknowledged; returns the acknowledged replies' results, in order."""
    import threading
    acked, stop = [], threading.Event()

    def writer():
        with httpx.Client(base_url=srv.url + "/v1", headers={"Authorization": f"Bearer {ADMIN}"}) as c:
            for skill, correct in stream:
                try:
                    r = c.post(f"/students/{student}/answers", json={"skill": skill, "correct": correct})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked.append(r.json()["results"][0])
                if stop.is_set():
                    return
    t = threading.Thread(target=writer)
    t.start()
    while len(acked) < min_acked and t.is_alive():
        threading.Event().wait(0.02)
    srv.kill9()
    stop.set()
    t.join(30)
    return acked
