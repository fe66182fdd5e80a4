"""Scale benchmark: large logs, several training processes, streaming scoring, the GPU.

    python benchmarks/scale.py [--quick] [--interactions N] [--out DIR]

Each measurement runs in its own process; its wall time and peak memory (max RSS, from wait4)
are recorded:
1. `cmkt simulate` writing an N-interaction long log as Parquet and as CSV;
2. reading each of them (cmkt.data.readers.read_data);
3. training throughput (interactions per second of training) with 1 and 2 processes
   (torchrun, gloo on CPU), same data, model and global batch;
4. scoring all N interactions through the streaming export (`cmkt export --all` to Parquet),
   with its peak memory against the 4 GB bound;
5. a GPU section (the training throughput on CUDA, bfloat16 autocast vs float32) only when a
   CUDA GPU is present; otherwise recorded as skipped.
Writes scale.json and scale.md to --out (default benchmarks/out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, REPO, command_line, machine_info, md_table, write_json, write_text  # noqa: E402

MEM_BOUND_GB = 4.0
TINY = ["--set", "d_model=32", "--set", "n_heads=2", "--set", "d_ff=64", "--set", "max_len=100",
        "--set", "dropout=0", "--set", "gain_hidden=32"]


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd; its wall seconds, peak RSS of the process itself (GB) and output."""
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=e)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_gb": round(usage.ru_maxrss / 2**20, 3),
            "stdout": stdout, "stderr": stderr}


def py(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


READ = ("import sys, time; from cmkt.data.readers import read_data; t = time.perf_counter(); "
        "ds = read_data(sys.argv[1]); print(len(ds), ds.n_interactions, time.perf_counter() - t)")


def train_throughput(work: Path, data: str, nproc: int, device: str, amp: str, epochs: int, tag: str) -> dict:
    args = ["train", "--data", data, "--model", "cumulative", "--preset", "quick", "--epochs", epochs,
            "--device", device, "--set", f"amp={amp}", "--set", "patience=100", *TINY,
            "--out", work / "runs", "--name", tag]
    env = {"OMP_NUM_THREADS": "1"} if nproc > 1 else {}
    cmd = (py("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "cmkt", *args)
           if nproc > 1 else py("-m", "cmkt", *args))
    m = measure(cmd, env)
    run = work / "runs" / tag
    cfg = json.loads((run / "config.json").read_text())
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    from cmkt.data.source import load_training_data
    tc = cfg["train"]
    n = load_training_data(data, tc["valid_fraction"], tc["seed"], tc["sim_students"], tc["sim_skills"]).train.n_interactions
    # training time: each epoch's seconds minus nothing else (validation is inside; report both)
    secs = sum(h["seconds"] for h in hist)
    return {"processes": nproc, "device": device, "amp": amp, "epochs": len(hist), "train_interactions": n,
            "epoch_seconds": round(secs, 2), "interactions_per_s": round(n * len(hist) / secs),
            "wall_seconds": m["seconds"], "val_auc": hist[-1].get("val_auc"), "run": str(run)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test: seconds)")
    ap.add_argument("--interactions", type=int, default=None, help="log size (default 10M; --quick 100k)")
    ap.add_argument("--train-students", type=int, default=None, help="students for the throughput runs")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    n_target = a.interactions or (100_000 if a.quick else 10_000_000)
    train_students = a.train_students or (120 if a.quick else 3000)
    epochs = a.epochs or (1 if a.quick else 2)
    students = max(2, round(n_target / 70))              # the simulator's mean length is 70 steps
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"command": command_line(), "machine": machine_info(), "quick": a.quick,
           "loadavg_start": os.getloadavg(), "interactions_target": n_target}
    with tempfile.TemporaryDirectory(prefix="cmkt-scale-") as tmp:
        work = Path(tmp)
        # 1-2. write and read the long log
        res["simulate"], res["read"] = {}, {}
        for ext in ("parquet", "csv"):
            f = work / f"log.{ext}"
            m = measure(py("-m", "cmkt", "simulate", "--students", students, "--skills", 12, "--seed", 0,
                           "--split", "test", "--out", f))
            res["simulate"][ext] = {"seconds": m["seconds"], "peak_gb": m["peak_gb"],
                                    "mb": round(f.stat().st_size / 2**20, 1)}
            m = measure(py("-c", READ, f))
            n_st, n_int, secs = m["stdout"].split()
            res["read"][ext] = {"seconds": round(float(secs), 2), "process_seconds": m["seconds"],
                                "peak_gb": m["peak_gb"], "students": int(n_st), "interactions": int(n_int)}
        n_int = res["read"]["parquet"]["interactions"]
        # 3. training throughput, 1 and 2 processes
        data = f"sim:students={train_students},skills=12"
        res["train"] = [train_throughput(work, data, k, "cpu", "off", epochs, f"p{k}") for k in (1, 2)]
        # 4. scoring every interaction through the streaming export
        run = res["train"][0]["run"]
        m = measure(py("-m", "cmkt", "export", run, "--data", work / "log.parquet", "--all",
                       "--out", work / "scored.parquet"))
        res["score"] = {"interactions": n_int, "seconds": m["seconds"], "peak_gb": m["peak_gb"],
                        "within_bound": m["peak_gb"] <= MEM_BOUND_GB, "bound_gb": MEM_BOUND_GB,
                        "interactions_per_s": round(n_int / m["seconds"]),
                        "out_mb": round((work / "scored.parquet").stat().st_size / 2**20, 1)}
        # 5. GPU
        import torch
        if torch.cuda.is_available():
            res["gpu"] = {"device": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                          "train": [train_throughput(work, data, 1, "cuda", amp, epochs, f"g-{amp}")
                                    for amp in ("off", "bf16")]}
        else:
            res["gpu"] = {"skipped": "no CUDA GPU on this machine"}
        for r in res["train"] + (res["gpu"].get("train") or []):
            r.pop("run", None)
    res["loadavg_end"] = os.getloadavg()
    write_json(a.out / "scale.json", res)
    write_text(a.out / "scale.md", render(res))
    print(render(res))
    return 0


def render(res: dict) -> str:
    n = res["read"]["parquet"]["interactions"]
    lines = [f"# Scale benchmark{' (quick)' if res['quick'] else ''}", "",
             f"`{res['command']}`; load average {res['loadavg_start'][0]:.2f} at the start, "
             f"{res['loadavg_end'][0]:.2f} at the end.", "",
             f"## Long log of {n:,} interactions", "",
             md_table(["step", "format", "seconds", "peak memory (GB)", "file (MB)"],
                      [["simulate (write)", k, v["seconds"], v["peak_gb"], v["mb"]] for k, v in res["simulate"].items()]
                      + [["read", k, v["seconds"], v["peak_gb"], ""] for k, v in res["read"].items()]), "",
             "## Training throughput (CPU, gloo)", "",
             md_table(["processes", "epochs", "train interactions", "epoch seconds", "interactions/s", "val AUC"],
                      [[r["processes"], r["epochs"], r["train_interactions"], r["epoch_seconds"],
                        r["interactions_per_s"], r["val_auc"]] for r in res["train"]]), "",
             "## Scoring every interaction (export --all to Parquet)", "",
             md_table(["interactions", "seconds", "interactions/s", "peak memory (GB)", f"<= {res['score']['bound_gb']} GB"],
                      [[res["score"]["interactions"], res["score"]["seconds"], res["score"]["interactions_per_s"],
                        res["score"]["peak_gb"], res["score"]["within_bound"]]]), "",
             "## GPU", ""]
    g = res["gpu"]
    if "skipped" in g:
        lines.append(f"skipped: {g['skipped']}")
    else:
        lines.append(md_table(["device", "amp", "interactions/s", "val AUC"],
                              [[g["device"], r["amp"], r["interactions_per_s"], r["val_auc"]] for r in g["train"]]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
