"""Compare settings side by side: many `results.py` runs at once, one table.

Each variant is a name and a set of `--set` overrides (a line `name: key=value key=value` of a
variants file; a line with no overrides is the default). Every (variant, data set, seed) is one
`benchmarks/results.py` run in its own process and output folder, `--jobs` of them at a time (on
a GPU machine with many cores; on a 2-core CPU use --jobs 1, or timings mean nothing). Jobs run
seed by seed, so that every variant has its first seed before any has its second. With
--deadline, no job starts after it, jobs still running then are stopped, and the table shows
what finished.

  python benchmarks/sweep.py --variants benchmarks/variants.txt --datasets assist2009,assist2015 \\
      --seeds 0,1 --jobs 12 --device cuda --deadline 480 --out /tmp/sweep

Writes OUT/sweep.json (every finished row, as results.py writes them) and OUT/sweep.md (per
variant and data set: mean test AUC, mastery AUC, saturation, seeds, best epoch, minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED_DATA, command_line, machine_info, write_json, write_text  # noqa: E402

RESULTS = REPO / "benchmarks" / "results.py"


def read_variants(path: Path) -> dict[str, list[str]]:
    """`name: k=v k=v` lines (# comments, blank lines skipped) -> {name: ["k=v", ...]}."""
    variants: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, rest = line.partition(":")
        name = name.strip()
        if not colon or not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise SystemExit(f"{path}:{n}: expected 'name: key=value ...', got {line!r}")
        sets = rest.split()
        if any("=" not in s for s in sets):
            raise SystemExit(f"{path}:{n}: every override is key=value, got {rest.strip()!r}")
        if name in variants:
            raise SystemExit(f"{path}:{n}: variant {name!r} is defined twice")
        variants[name] = sets
    if not variants:
        raise SystemExit(f"{path}: no variants")
    return variants


def job_list(variants: dict, datasets: list[str], seeds: list[int], mode: str) -> list[dict]:
    """Seed-major order: every variant and data set gets seed 0 before any gets seed 1."""
    return [{"variant": v, "dataset": d, "seed": s, "mode": mode, "sets": variants[v]}
            for s in seeds for v in variants for d in datasets]


def command(job: dict, out: Path, device: str, data_root: str, preset: str | None,
            quick: bool = False) -> list[str]:
    cmd = [sys.executable, str(RESULTS), "--datasets", job["dataset"], "--modes", job["mode"], "--no-counting",
           "--seed", str(job["seed"]), "--device", device, "--data-root", data_root, "--out", str(out)]
    if preset:
        cmd += ["--preset", preset]
    if quick:
        cmd += ["--quick"]
    for s in job["sets"]:
        cmd += ["--set", s]
    return cmd


def summarise(rows: list[dict], variants: dict, datasets: list[str]) -> str:
    lines = ["| variant | data set | test AUC | mastery AUC | saturation | seeds | best epoch / run | minutes |",
             "|---|---|---|---|---|---|---|---|"]
    for v in variants:
        for d in datasets:
            got = [r for r in rows if r["variant"] == v and r["dataset"] == d and r.get("status") == "ok"]
            if not got:
                continue
            mean = lambda k: statistics.fmean(r[k] for r in got if r.get(k) is not None)  # noqa: E731
            spread = f" ± {statistics.stdev(r['test_auc'] for r in got):.4f}" if len(got) > 1 else ""
            lines.append(f"| {v} | {d} | {mean('test_auc'):.4f}{spread} | {mean('mastery_auc'):.4f} | "
                         f"{100 * mean('mastery_saturation_rate'):.2f}% | "
                         f"{','.join(str(r['seed']) for r in got)} | "
                         f"{', '.join(str(r['best_epoch']) + '/' + str(r['epochs_run']) for r in got)} | "
                         f"{mean('wall_seconds') / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--variants", required=True, type=Path, help="file of 'name: key=value ...' lines")
    p.add_argument("--datasets", default="assist2009,assist2015")
    p.add_argument("--seeds", default="0")
    p.add_argument("--mode", default="cumulative")
    p.add_argument("--preset", default=None, help="passed to results.py (default: each data set's own)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--data-root", default=str(SHARED_DATA))
    p.add_argument("--deadline", type=float, default=None, help="seconds; stop what is still running then")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run (OMP_NUM_THREADS)")
    p.add_argument("--quick", action="store_true", help="results.py --quick: a tiny model, 1 epoch (a smoke run)")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)

    variants = read_variants(a.variants)
    datasets = [d.strip() for d in a.datasets.split(",") if d.strip()]
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    jobs = job_list(variants, datasets, seeds, a.mode)
    a.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
           "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    pending, running, rows, failed, not_started = list(jobs), [], [], [], []
    print(f"[sweep] {len(jobs)} runs, {a.jobs} at a time", flush=True)
    while pending or running:
        late = a.deadline is not None and time.monotonic() - t0 > a.deadline
        while pending and len(running) < a.jobs and not late:
            job = pending.pop(0)
            tag = f"{job['variant']}-{job['dataset']}-s{job['seed']}"
            out = a.out / tag
            log = open(a.out / f"{tag}.log", "w")
            proc = subprocess.Popen(command(job, out, a.device, a.data_root, a.preset, a.quick), stdout=log,
                                    stderr=subprocess.STDOUT, env=env, cwd=REPO)
            running.append((job, tag, out, proc, log, time.monotonic()))
        for item in list(running):
            job, tag, out, proc, log, started = item
            if proc.poll() is None and not late:
                continue
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            log.close()
            running.remove(item)
            res_file = out / "results.json"
            ok = proc.returncode == 0 and res_file.exists()
            if ok:
                for r in json.loads(res_file.read_text())["rows"]:
                    rows.append({**r, "variant": job["variant"]})
                    r = rows[-1]
                    print(f"[sweep] {time.monotonic() - t0:6.0f}s {tag}: test AUC {r['test_auc']:.4f}, "
                          f"mastery AUC {r['mastery_auc']:.4f}, saturation {100 * r['mastery_saturation_rate']:.2f}%, "
                          f"best {r['best_epoch']}/{r['epochs_run']}, {r['wall_seconds']:.0f}s", flush=True)
            else:
                failed.append(tag)
                tail = (a.out / f"{tag}.log").read_text()[-1500:]
                print(f"[sweep] {tag} {'stopped at the deadline' if late else 'FAILED'} "
                      f"(exit {proc.returncode})\n{tail if not late else ''}", flush=True)
        if a.deadline is not None and time.monotonic() - t0 > a.deadline and not running:
            not_started += [f"{j['variant']}-{j['dataset']}-s{j['seed']}" for j in pending]
            pending.clear()
        time.sleep(1)
    table = summarise(rows, variants, datasets)
    write_json(a.out / "sweep.json", {"machine": machine_info(), "command": command_line(), "variants": variants,
                                      "rows": rows, "unfinished": failed, "not_started": not_started})
    write_text(a.out / "sweep.md", table)
    print(table)
    print(f"[sweep] {len(rows)} finished, {len(failed)} stopped or failed, {len(not_started)} not started, "
          f"{time.monotonic() - t0:.0f}s")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
