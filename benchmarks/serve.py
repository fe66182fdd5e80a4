"""A bounded load test of `cmkt serve`, on loopback only.

Starts `python -m cmkt serve RUN` on 127.0.0.1 (a free port, a fresh SQLite database in a temporary
folder, a throwaway key), then:

1. throughput: for each N in --clients, N concurrent clients post --requests single answers in all
   (each client to its own students, keep-alive connections), stopping at --max-seconds whatever
   is left: answers/s, p50 / p99 latency, errors;
2. depth: latency of a student's answers around the 10th (answers 6-15), around --depth / 2 and
   around the --depth-th (the 10 answers ending there; the ones between are posted in batches),
   over --depth-students students, one client. An answer costs one pass over its window, at most
   max_len steps: it may grow up to the max_len-th answer, and must be flat after it.

The server is stopped by its PID at the end, also on errors or Ctrl-C. Goal (issue 29): >= 300
answers/s and p99 <= 50 ms at 8 clients on 2 cores, latency flat from the 10th to the 1,000th answer.
Before each throughput phase the machine's state is read (benchmarks/_common.py: cpu_probe_ms, a fixed piece
of one-core work, with the server idle; and the share of CPU time the host stole during the phase),
so that runs of different hours can be told apart from changes to cmkt.

    python benchmarks/serve.py --run assets/demo/demo-cumulative
    python benchmarks/serve.py --run runs/RUN --requests 4000 --clients 1,8 --depth 1000 --out out/serve.json
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_probe_ms, cpu_times, steal_share  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = "k-bench-00000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive client connection (http.client: light, so the clients measure the server)."""

    def __init__(self, port: int):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None]:
        self.c.request(method, path, body=None if body is None else json.dumps(body), headers=self.h)
        r = self.c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)

    def close(self):
        self.c.close()


def start_server(run: str, folder: Path, threads: int, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (folder / "keys.txt").write_text(KEY + "\n")
    log = open(folder / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cmkt", "serve", run, "--host", "127.0.0.1", "--port", str(port),
                             "--db", str(folder / "events.sqlite"), "--keys", str(folder / "keys.txt"),
                             "--threads", str(threads), *extra],
                            cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                c.close()
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit("cmkt serve did not start:\n" + (folder / "serve.log").read_text()[-2000:])
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def throughput(port: int, labels: list, clients: int, requests: int, max_seconds: float, seed: int,
               students_per_client: int = 20, tag: str = "") -> dict:
    """`requests` single answers from `clients` threads, bounded by max_seconds (new students for
    each tag)."""
    per = [requests // clients + (i < requests % clients) for i in range(clients)]
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.monotonic() + max_seconds
    barrier = threading.Barrier(clients + 1)

    def client(i: int):
        rng = np.random.default_rng(seed + i)
        conn = Conn(port)
        barrier.wait()
        try:
            for j in range(per[i]):
                if time.monotonic() > deadline:
                    break
                body = {"skill": labels[int(rng.integers(len(labels)))], "correct": int(rng.integers(2))}
                t0 = time.perf_counter()
                try:
                    status, _ = conn.call("POST", f"/v1/students/tp{clients}{tag}-c{i}-s{j % students_per_client}/answers", body)
                except (OSError, http.client.HTTPException):
                    status = 0
                    conn.close()
                    conn = Conn(port)
                lat[i].append(time.perf_counter() - t0)
                errors[i] += status != 200
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    all_lat = np.array([x for xs in lat for x in xs]) * 1000
    done = int(len(all_lat))
    return {"clients": clients, "requests": requests, "done": done, "errors": int(sum(errors)),
            "seconds": round(elapsed, 3), "answers_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
            "p50_ms": round(float(np.percentile(all_lat, 50)), 2) if done else None,
            "p99_ms": round(float(np.percentile(all_lat, 99)), 2) if done else None,
            "stopped_by_time": done < requests}


def depth(port: int, labels: list, length: int, students: int, max_seconds: float, seed: int) -> dict:
    """Median latency of a student's answers 6-15, of the 10 around length / 2 and of the 10 ending at
    `length` (the answers between are posted in batches of 100)."""
    rng = np.random.default_rng(seed)
    conn = Conn(port)
    mid = max(25, length // 2)
    spans = {"early": (6, 15), "middle": (mid - 4, mid + 5), "late": (length - 9, length)}
    lat = {k: [] for k in spans}
    errors = 0
    deadline = time.monotonic() + max_seconds
    answer = (lambda: {"skill": labels[int(rng.integers(len(labels)))], "correct": int(rng.integers(2))})
    try:
        for k in range(students):
            sid, n = f"depth-{seed}-{k}", 0
            for name, (lo, hi) in spans.items():
                while n < lo - 1 and time.monotonic() < deadline:       # fill the history in batches
                    b = min(100, lo - 1 - n)
                    status, _ = conn.call("POST", f"/v1/students/{sid}/answers", {"answers": [answer() for _ in range(b)]})
                    errors += status != 200
                    n += b
                while n < hi and time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    status, _ = conn.call("POST", f"/v1/students/{sid}/answers", answer())
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    errors += status != 200
                    n += 1
    finally:
        conn.close()
    med = (lambda xs: round(float(np.median(xs)), 2) if xs else None)
    out = {"length": length, "students": students, "errors": errors}
    for name, (lo, hi) in spans.items():
        out[f"p50_ms_answers_{lo}_{hi}"] = med(lat[name])
    e, l_ = med(lat["early"]), med(lat["late"])
    out["ratio_late_over_early"] = round(l_ / e, 2) if e and l_ else None
    return out


def median_run(runs: list[dict]) -> dict:
    """The phase repeated: the run with the median throughput, with every run's answers/s and p99."""
    order = sorted(runs, key=lambda r: r["answers_per_s"] or 0)
    mid = dict(order[len(order) // 2], errors=sum(r["errors"] for r in runs))   # errors: of every run
    if len(runs) > 1:
        mid["repeats"] = [{"answers_per_s": r["answers_per_s"], "p99_ms": r["p99_ms"], "machine": r.get("machine")}
                          for r in runs]
    return mid


def health_batches(port: int) -> dict:
    """The model's batch counters from /v1/health (on a connection closed at once: one left open
    was seen to slow the phase after it)."""
    conn = Conn(port)
    try:
        return conn.call("GET", "/v1/health")[1]["batches"]
    finally:
        conn.close()


def batch_stats(before: dict, after: dict, seconds: float) -> dict:
    """The model's batches between two /v1/health readings: windows and milliseconds per batch, and
    the share of the phase's time the batching thread was running one."""
    n = after["batches"] - before["batches"]
    busy = after["busy_s"] - before["busy_s"]
    windows = after["windows"] - before["windows"]
    return {"batches": n, "windows_per_batch": round(windows / n, 2) if n else None,
            "ms_per_batch": round(1000 * busy / n, 2) if n else None,
            "busy_share": round(busy / seconds, 3) if seconds else 0.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=str(REPO / "assets" / "demo" / "demo-cumulative"))
    p.add_argument("--requests", type=int, default=2000, help="answers per client setting (default 2000)")
    p.add_argument("--clients", default="1,8", help="concurrent clients, comma-separated (default 1,8)")
    p.add_argument("--max-seconds", type=float, default=60, help="time limit of each phase (default 60)")
    p.add_argument("--depth", type=int, default=1000, help="the late answer measured (default 1000)")
    p.add_argument("--depth-students", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads (default 1)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each throughput phase this many times; report the median run and all of them")
    p.add_argument("--no-model-process", action="store_true",
                   help="the model in the server's own process (cmkt serve --no-model-process): the before")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here too")
    a = p.parse_args(argv)
    clients = [int(x) for x in a.clients.split(",") if x.strip()]
    if a.requests < 1 or not clients or min(clients) < 1 or a.depth < 40 or a.repeat < 1:
        p.error("--requests, --clients and --repeat need at least 1, --depth at least 40")
    folder = Path(tempfile.mkdtemp(prefix="cmkt-serve-bench-"))
    proc, port = start_server(a.run, folder, a.threads, *(["--no-model-process"] if a.no_model_process else []))
    try:
        conn = Conn(port)
        status, model = conn.call("GET", "/v1/model")
        labels = [s["skill"] for s in model["skills"]]
        for i in range(20):                                              # warm up
            conn.call("POST", f"/v1/students/warm-{i % 4}/answers", {"skill": labels[i % len(labels)], "correct": i % 2})
        conn.close()
        res = {"run": model["run"], "kind": model["kind"], "mode": model["mode"], "max_len": model["max_len"],
               "cpus": os.cpu_count(), "server_threads": a.threads, "model_process": not a.no_model_process,
               "database": "sqlite (WAL, synchronous=NORMAL)",
               "throughput": [], "depth": None}
        for c in clients:
            runs = []
            for k in range(a.repeat):
                probe, cpu0 = cpu_probe_ms(), cpu_times()                   # the machine's state, server idle
                before = health_batches(port)
                r = throughput(port, labels, c, a.requests, a.max_seconds, a.seed + 1000 * k, tag=f"r{k}")
                after = health_batches(port)
                r["model_batches"] = batch_stats(before, after, r["seconds"])
                r["machine"] = {"cpu_probe_ms": probe, "steal_share": steal_share(cpu0, cpu_times()),
                                "loadavg_1m": round(os.getloadavg()[0], 2)}
                runs.append(r)
            r = median_run(runs)
            res["throughput"].append(r)
            print(f"{c} client(s): {r['done']} answers in {r['seconds']} s = {r['answers_per_s']} answers/s, "
                  f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']}"
                  + (" (stopped by the time limit)" if r["stopped_by_time"] else "")
                  + (" [all: " + ", ".join(f"{x['answers_per_s']}/s p99 {x['p99_ms']}" for x in r["repeats"]) + "]"
                     if "repeats" in r else "")
                  + f"; model: {r['model_batches']['windows_per_batch']} windows a batch, "
                    f"{r['model_batches']['ms_per_batch']} ms a batch, busy {r['model_batches']['busy_share']:.0%}"
                  + "; machine: probe " + "/".join(str((x.get("machine") or {}).get("cpu_probe_ms"))
                                                   for x in r.get("repeats", [r])) + " ms, steal "
                  + "/".join(f"{(x.get('machine') or {}).get('steal_share') or 0:.1%}" for x in r.get("repeats", [r])),
                  flush=True)
        res["depth"] = d = depth(port, labels, a.depth, a.depth_students, a.max_seconds, a.seed)
        spans = [k for k in d if k.startswith("p50_ms_answers_")]
        print("latency p50: " + ", ".join(f"answers {k.split('_')[3]}-{k.split('_')[4]} {d[k]} ms" for k in spans)
              + f" (last / first x{d['ratio_late_over_early']}), errors {d['errors']}", flush=True)
    finally:
        stop_server(proc)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(res))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
