"""Rebuild the dashboard's demo runs: a small `original` / `cumulative` pair on the built-in
simulated students, so a fresh `./run.sh app` has something to explore, and the classic
baselines trained on the same students (demo-dkt, demo-bkt, demo-pfa).

    .venv/bin/python assets/make_demo.py              # writes assets/demo/demo-original, demo-cumulative
    .venv/bin/python assets/make_demo.py --baselines  # writes only assets/demo/demo-dkt, demo-bkt, demo-pfa

It trains through the library (the same code path as `python -m cmkt train`), then keeps only
what the dashboard reads: config.json, status.json, metrics.jsonl, results.json and
best.safetensors (no resume state, no log, no process ids). Seeded: a rerun on the same
library version gives the same runs. The result is well under 5 MB.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cmkt.io import read_json, write_json_atomic  # noqa: E402
from cmkt.runs import create_run, execute_run  # noqa: E402

PAIR = "demo"
KEEP = ("config.json", "status.json", "metrics.jsonl", "results.json", "best.safetensors")
VOLATILE_STATUS = ("pid", "proc_start", "resumed", "current_epoch", "batch", "n_batches",
                   "train_loss", "updated", "device")


BASELINES = ("dkt", "bkt", "pfa")


def make_demo(out: Path, epochs: int = 20, data: str = "sim", seed: int = 0,
              modes=("original", "cumulative")) -> list[Path]:
    """Train each of `modes` (a GainAKT2 mode or a baseline kind) with the quick preset and keep
    the files the dashboard reads under out/demo-MODE. The GainAKT2 pair shares a pair id; the
    baselines have none (the Students page's partner stays the original/cumulative pair)."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="cmkt-demo-") as tmp:
        for mode in modes:
            name = f"demo-{mode}"
            run = create_run(tmp, data=data, mode=mode, preset="quick", epochs=epochs, seed=seed,
                             device="cpu", name=name, pair_id=None if mode in BASELINES else PAIR)
            print(f"training {name} ...", file=sys.stderr, flush=True)
            res = execute_run(run)
            print(f"  best epoch {res['best_epoch']}: val auc {res['valid'].get('val_auc'):.3f}",
                  file=sys.stderr)
            status = read_json(run / "status.json", {})
            write_json_atomic(run / "status.json",
                              {k: v for k, v in status.items() if k not in VOLATILE_STATUS})
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            target.mkdir()
            for f in KEEP:
                if (run / f).exists():
                    shutil.copy2(run / f, target / f)
            made.append(target)
    total = sum(f.stat().st_size for d in made for f in d.iterdir())
    print(f"wrote {', '.join(str(m) for m in made)} ({total / 1e6:.2f} MB)", file=sys.stderr)
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "demo"), help="folder for the two run folders")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data", default="sim")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", action="store_true",
                   help="build only the baseline demo runs (demo-dkt, demo-bkt, demo-pfa)")
    a = p.parse_args(argv)
    make_demo(Path(a.out), a.epochs, a.data, a.seed, BASELINES if a.baselines else ("original", "cumulative"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
