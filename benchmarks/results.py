#!/usr/bin/env python
"""Accuracy and interpretability table: `original` and `cumulative` on every data set.

    python benchmarks/results.py                          # the full table (see DATASETS for presets)
    python benchmarks/results.py --update-docs            # also rewrite the table in docs/RESULTS.md
    python benchmarks/results.py --datasets assist2015 --preset standard --epochs 10
    python benchmarks/results.py --quick                  # tiny smoke run on simulated data
    python benchmarks/results.py --datasets assist2015 --modes cumulative --seeds 0,1,2   # + seed spread

For each data set (the three folders of ../shared/data and the built-in `sim`) and each mode,
train with a named preset (model selection on a seeded validation split carved out of
train.csv: the best epoch by validation AUC, plus validation mastery AUC for the cumulative
default, is kept), then score test.csv with that model.
With --seeds, every run is repeated per seed: the first seed fills the main table, and a
"Spread over seeds" table gives the mean, standard deviation and range of every seed.
Writes benchmarks/out/results.json, results.csv and results.md (--out to change); every
run folder is kept under benchmarks/out/runs/ (loadable with `python -m cmkt validate`).
With --update-docs the rows behind the docs' table are also kept in docs/results.json, so a
later run of a few rows can be merged into the table without training the others again:

    python benchmarks/results.py --datasets assist2015 --modes cumulative --out /tmp/a15
    python benchmarks/results.py --report docs/results.json --merge /tmp/a15/results.json --update-docs
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, REPO, SHARED_DATA, command_line, fmt, machine_info,  # noqa: E402
                     machine_line, md_table, update_doc_section, write_json, write_text)

# where RESULTS.md is; --update-docs keeps the rows behind its table beside it, in results.json
# (the --report to merge later runs into)
DOCS_DIR = REPO / "docs"


def update_docs(res: dict, text: str, docs_dir: Path = DOCS_DIR) -> None:
    """Rewrite the headline and results sections of RESULTS.md and keep the rows in results.json."""
    update_doc_section("headline", headline(res), docs_dir / "RESULTS.md")
    if update_doc_section("results", text, docs_dir / "RESULTS.md"):
        write_json(docs_dir / "results.json", res)
        print(f"[docs] kept the table's rows in {docs_dir / 'results.json'}", file=sys.stderr)

# data set -> (preset, extra --set overrides, epochs or None for the preset's).
# Chosen so that the whole table trains in about 40 minutes on a 2-core CPU (docs/RESULTS.md
# says what was tried).
DATASETS = {
    "synthetic": ("standard", {}, None),
    "assist2009": ("standard", {}, None),
    "assist2015": ("standard", {}, 16),
    "sim": ("standard", {}, None),
}
MODES = ("original", "cumulative", "dkt", "bkt", "pfa")   # the two GainAKT2 modes and the baselines

# Published test AUC on exactly these splits (../shared/data/README.md).
PUBLISHED = {
    "synthetic": {"DKT": 0.803, "DKVMN": 0.827},
    "assist2009": {"DKT": 0.805, "DKVMN": 0.816},
    "assist2015": {"DKT": 0.725, "DKVMN": 0.727},
}
# BKT as published, on other preprocessings of the same data (no paper reports BKT on exactly
# these splits): the DKT paper (Piech et al., 2015, table 1) gives BKT 0.67 on ASSISTments 2009.
PUBLISHED_BKT = {"assist2009": 0.67}
REFERENCE_MASTERY_CORR = {"assist2015": 0.1}   # the reference system, about 0.1 on ASSIST2015
# issue 9's targets for the default cumulative model: test AUC (a plain DKT re-implementation on
# these splits; synthetic: just above today's) and mastery AUC (above every monotone counting model)
AUC_TARGET = {"assist2009": 0.818, "assist2015": 0.729, "synthetic": 0.830}
MASTERY_AUC_TARGET = {"assist2009": 0.70, "assist2015": 0.69}
SATURATION_TARGET = {"assist2015": 0.02}
METRIC_KEYS = ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate",
               "students_with_violation", "mastery_performance_corr", "gain_performance_corr",
               "prediction_performance_corr", "mastery_auc", "mastery_saturation_rate",
               "mastery_recovery_corr", "n_students", "n_interactions")

TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "50", "gain_hidden": "16"}
QUICK_SIM = "sim:students=60,skills=6"

COLUMNS = [  # (json key in the row, CSV / table header)
    ("dataset", "data set"), ("mode", "model"), ("preset", "preset"),
    ("test_auc", "test AUC"), ("test_accuracy", "accuracy"),
    ("monotonicity_violation_rate", "monotonicity viol."), ("negative_gain_rate", "negative gains"),
    ("bounds_violation_rate", "bounds viol."), ("students_with_violation", "students w/ viol."),
    ("mastery_performance_corr", "mastery-perf r"), ("gain_performance_corr", "gain-perf r"),
    ("prediction_performance_corr", "prediction-perf r"), ("mastery_auc", "mastery AUC"),
    ("mastery_saturation_rate", "saturation"),
    ("mastery_recovery_corr", "mastery recovery r"), ("n_params", "parameters"),
    ("train_seconds", "train s"), ("val_auc", "val AUC"), ("best_epoch", "best epoch"),
    ("epochs_run", "epochs run"),
]


class EpochEcho:
    """One line per epoch on stderr."""

    def __init__(self, label: str):
        self.label = label

    def on_batch(self, *a):
        pass

    def on_epoch(self, rec, is_best):
        print(f"  [{self.label}] epoch {rec['epoch']}: loss {fmt(rec.get('train_total'))} "
              f"val_auc {fmt(rec.get('val_auc'))} m-perf r {fmt(rec.get('mastery_performance_corr'))} "
              f"{rec['seconds']:.0f}s" + (" *" if is_best else ""), file=sys.stderr, flush=True)

    def should_stop(self):
        return False


def data_spec(name: str, data_root: Path, quick: bool) -> str:
    if name == "sim":
        return QUICK_SIM if quick else "sim"
    path = data_root / name
    if not (path / "train.csv").exists():
        raise FileNotFoundError(f"{path}/train.csv not found (see ../shared/data/README.md)")
    return str(path)


def settings_for(mode: str, overrides: dict) -> dict:
    """The overrides a model kind takes: the GainAKT2 sizes (d_model, ...) do not apply to the
    baselines, which have their own settings."""
    from dataclasses import fields
    from cmkt.train.config import TrainConfig
    from cmkt.train.kinds import config_fields, kind_of_mode
    kind = kind_of_mode(mode)
    if kind == "gainakt2":
        return dict(overrides)
    known = set(config_fields(kind)) | {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in overrides.items() if k in known}


def run_one(name: str, mode: str, spec: str, preset: str, overrides: dict, epochs, seed: int,
            runs_dir: Path, device: str) -> dict:
    from cmkt.runs import create_run, execute_run
    overrides = settings_for(mode, overrides)
    t0 = time.perf_counter()
    run = create_run(runs_dir, data=spec, mode=mode, preset=preset, epochs=epochs,
                     overrides=overrides, seed=seed, device=device)
    res = execute_run(run, echo=EpochEcho(f"{name} {mode}"))
    wall = time.perf_counter() - t0
    test = res.get("test") or {}
    valid = res.get("valid") or {}
    row = {"dataset": name, "mode": mode, "preset": preset, "overrides": dict(overrides),
           "epochs": epochs, "seed": seed, "run": str(run),
           "test_auc": test.get("auc"), "test_accuracy": test.get("accuracy"),
           **{k: test.get(k) for k in METRIC_KEYS},
           "n_params": res.get("n_params"), "train_seconds": res.get("train_seconds"),
           "wall_seconds": wall, "val_auc": valid.get("val_auc"), "best_epoch": res.get("best_epoch"),
           "epochs_run": res.get("epochs_run"), "stopped_early": res.get("stopped_early"),
           "precision": res.get("precision"), "config": setting_of({"run": str(run)}), "status": "ok"}
    if name != "sim":
        row["mastery_recovery_corr"] = None   # defined on simulated data only
    return row


def preset_label(row: dict) -> str:
    """The preset and the --set values that are not today's defaults (a run that spelled out a
    value that has since become the default reads as the default)."""
    extra = ", ".join(f"{k}={v}" for k, v in sorted(effective_overrides(row).items()))
    label = row["preset"] + (f" ({extra})" if extra else "")
    if row.get("epochs"):
        label += f", {row['epochs']} epochs max"
    if row.get("precision") == "bfloat16 autocast":      # trained in bfloat16 (amp=auto where it helps)
        label += ", bf16"
    return label


def corr_ratio(r: dict):
    m, p = r.get("mastery_performance_corr"), r.get("prediction_performance_corr")
    return None if m is None or not p else m / p


def met(value, want: float, at_most: bool = False) -> str:
    """'met' when value reaches the target (at least want; at most want with at_most)."""
    ok = value is not None and (value <= want if at_most else value >= want)
    return "met" if ok else "not met"


def target_lines(rows: list[dict], groups: list[list[dict]] = ()) -> list[str]:
    """One line per default cumulative row: its figures against issue 9's targets, and the
    means over seeds where the table has other seeds of the same setting."""
    out = []
    means = {(g[0]["dataset"], g[0]["mode"]): g for g in groups}
    for r in rows:
        ds = r["dataset"]
        if r["mode"] != "cumulative" or r.get("status") != "ok" or ds not in AUC_TARGET:
            continue
        viol = [r[k] for k in ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate")]
        zero = all(v == 0 for v in viol)
        auc, want = r["test_auc"], AUC_TARGET[ds]
        bits = [f"test AUC {fmt(auc)} (target {want:.3f}: {met(auc, want)})",
                f"violations {'all 0' if zero else 'NOT 0'}"]
        if ds in MASTERY_AUC_TARGET:
            m, w = r.get("mastery_auc"), MASTERY_AUC_TARGET[ds]
            bits.append(f"mastery AUC {fmt(m)} (target {w:.2f}: {met(m, w)})")
        if ds in SATURATION_TARGET:
            sat, w = r.get("mastery_saturation_rate"), SATURATION_TARGET[ds]
            bits.append(f"saturation {fmt(sat)} (target <= {w:.2f}: {met(sat, w, at_most=True)})")
        line = f"- {ds}: " + "; ".join(bits)
        g = means.get((ds, r["mode"]))
        if g:
            m = {k: spread([x.get(k) for x in g]) for k, _, _ in SPREAD_KEYS}
            line += (f". Mean over seeds {', '.join(str(x.get('seed')) for x in g)}: "
                     + ", ".join(f"{h} {fmt(m[k]['mean'])}" for k, h, _ in SPREAD_KEYS if m[k]))
            mean = {k: (m[k] or {}).get("mean") for k in m}
            verdicts = [f"test AUC {met(mean['test_auc'], AUC_TARGET[ds])}"]
            if ds in MASTERY_AUC_TARGET and m["mastery_auc"]:
                verdicts.append(f"mastery AUC {met(mean['mastery_auc'], MASTERY_AUC_TARGET[ds])}")
            if ds in SATURATION_TARGET and m["mastery_saturation_rate"]:
                verdicts.append(f"saturation {met(mean['mastery_saturation_rate'], SATURATION_TARGET[ds], at_most=True)}")
            line += " (on the means: " + ", ".join(verdicts) + ")"
        out.append(line)
    return out


SPREAD_KEYS = (("test_auc", "test AUC", 4), ("mastery_auc", "mastery AUC", 4),
               ("mastery_saturation_rate", "saturation", 4))


def effective_overrides(row: dict) -> dict:
    """The row's --set values that differ from its preset's and mode's defaults (today's), so a
    run that spelled out a default compares equal to one that did not."""
    from cmkt.train.presets import defaults_for
    defaults = defaults_for(row.get("preset"), row.get("mode"))
    return {k: v for k, v in (row.get("overrides") or {}).items()
            if k not in defaults or str(defaults[k]) != str(v)}


# training values that a run's seed, machine or data path may change without changing the setting
NOT_SETTING = ("seed", "device", "num_threads", "data", "wandb", "eval_batch_size")


@functools.lru_cache(maxsize=None)
def _saved_config(run: str) -> dict | None:
    """A run folder's config.json, read once per report (seed groups compare every pair)."""
    try:
        return json.loads((Path(run) / "config.json").read_text())
    except (OSError, ValueError):
        return None


def setting_of(row: dict) -> dict | None:
    """The model and training configuration a row was trained with, less what does not make a
    setting (seed, device, data path), with every value a config written before it existed
    filled in with its default (the defaults reproduce what older runs did): the row's own copy,
    else its run folder's config.json, else None (a row from before rows kept it, whose run
    folder is gone)."""
    from dataclasses import MISSING, fields
    from cmkt.train.config import TrainConfig
    from cmkt.train.kinds import config_from_dict, config_to_dict
    saved = row.get("config") or _saved_config(str(row.get("run")))
    if not saved:
        return None
    model = saved.get("model") or {}
    try:
        model = config_to_dict(config_from_dict(model))
    except (TypeError, ValueError):
        pass                                  # compared as saved
    train = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    train.update(saved.get("train") or {})
    return {"model": model, "train": {k: v for k, v in train.items() if k not in NOT_SETTING}}


def same_setting(a: dict, b: dict) -> bool:
    """Two rows of one data set, model and setting (they may differ in seed). The settings are
    the saved configurations (so a default that changed between the two runs keeps them apart);
    a row with one and a row without are never the same; two rows without one (their run folders
    gone) compare their --set values that differ from today's defaults."""
    if not all(a.get(k) == b.get(k) for k in ("dataset", "mode", "preset", "epochs")):
        return False
    ca, cb = setting_of(a), setting_of(b)
    if ca is None and cb is None:
        return effective_overrides(a) == effective_overrides(b)
    return ca == cb


def seed_groups(res: dict) -> list[list[dict]]:
    """For every main row: it and the other seeds' rows of the same setting (one row per seed,
    the main row first). Only groups with two seeds or more."""
    extra = [r for r in res.get("seed_rows", []) if r.get("status") == "ok"]
    groups = []
    for r in res["rows"]:
        if r.get("status") != "ok":
            continue
        group, seen = [r], {r.get("seed")}
        for e in extra:
            if same_setting(r, e) and e.get("seed") not in seen:
                group.append(e)
                seen.add(e.get("seed"))
        if len(group) > 1:
            groups.append(group)
    return groups


def spread(values: list) -> dict | None:
    """Mean, sample standard deviation and range of the values that are not None."""
    import statistics
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v), "n": len(v)}


def fmt_spread(s: dict | None, digits: int = 4) -> str:
    if s is None:
        return "–"
    return (f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} "
            f"({s['min']:.{digits}f}–{s['max']:.{digits}f})")


def spread_lines(groups: list[list[dict]]) -> list[str]:
    """The seed-spread table of seed_groups' groups (nothing when there are none)."""
    if not groups:
        return []
    body = []
    for g in groups:
        r = g[0]
        body.append([r["dataset"], r["mode"], ", ".join(str(x.get("seed")) for x in g)]
                    + [fmt_spread(spread([x.get(k) for x in g]), d) for k, _, d in SPREAD_KEYS]
                    + [preset_label(r)])
    return ["", "Spread over seeds (the same settings, one run per seed; mean ± sample standard "
            "deviation, range in brackets; the main table shows the first seed):", "",
            md_table(["data set", "model", "seeds"] + [h for _, h, _ in SPREAD_KEYS] + ["preset"], body)]


def headline(res: dict) -> str:
    """Every model kind on every data set, in one short table: test AUC, mastery AUC, violations,
    saturation and training seconds."""
    body = [[r["dataset"], f"**{r['mode']}**" if r["mode"] == "cumulative" else r["mode"], preset_label(r),
             fmt(r["test_auc"]), fmt(r.get("mastery_auc")), fmt(r["students_with_violation"], 2),
             fmt(r.get("mastery_saturation_rate"), 3), f"{r['train_seconds']:.0f}"]
            for r in res["rows"] if r.get("status") == "ok"]
    return md_table(["data set", "model", "preset", "test AUC", "mastery AUC", "students w/ violation",
                     "saturation", "train s"], body) + "\n"


def report(res: dict) -> str:
    info, rows = res["machine"], res["rows"]
    lines = [f"Measured {info['date']} on {machine_line(info)}.",
             f"Command: `{res['command']}` (total wall time {res['wall_seconds'] / 60:.1f} min, "
             f"{res['device']})."]
    for m in res.get("merged", []):
        lines.append(f"Merged with `{m['command']}`, measured {m['machine']['date']} on "
                     f"{machine_line(m['machine'])}.")
    for m in res.get("seeds_from", []):
        lines.append(f"Other seeds from `{m['command']}`, measured {m['machine']['date']} on "
                     f"{machine_line(m['machine'])}.")
    lines.append("")
    head = ["data set", "model", "test AUC", "accuracy", "monotonicity viol.", "negative gains",
            "bounds viol.", "students w/ viol.", "mastery-perf r", "gain-perf r", "mastery AUC",
            "mastery r ÷ prediction r", "saturation", "mastery recovery r", "parameters", "train s", "preset"]
    body = []
    for r in rows:
        if r.get("status") != "ok":
            body.append([r["dataset"], r["mode"], f"failed: {r.get('error', '')[:80]}"] + [""] * (len(head) - 3))
            continue
        body.append([r["dataset"], f"**{r['mode']}**" if r["mode"] == "cumulative" else r["mode"],
                     fmt(r["test_auc"]), fmt(r["test_accuracy"]),
                     fmt(r["monotonicity_violation_rate"]), fmt(r["negative_gain_rate"]),
                     fmt(r["bounds_violation_rate"]), fmt(r["students_with_violation"]),
                     fmt(r["mastery_performance_corr"], 3), fmt(r["gain_performance_corr"], 3),
                     fmt(r.get("mastery_auc")), fmt(corr_ratio(r), 2), fmt(r.get("mastery_saturation_rate")),
                     fmt(r["mastery_recovery_corr"], 3), fmt(r["n_params"]),
                     f"{r['train_seconds']:.0f}", preset_label(r)])
    lines.append(md_table(head, body))
    lines += ["", "Test split: test.csv (sim: a separately seeded cohort of simulated students); model "
              "selection on 20% of train.csv's students (seeded): the best epoch by validation AUC (the "
              "cumulative default adds validation mastery AUC: `select_on`), its weights kept. "
              "Violation rates are shares of (step, skill) pairs, `students w/ viol.` "
              "the share of test students with at least one violation. Train s: training time "
              "(epochs + validation scoring), not counting data loading or test scoring. `bf16` in the "
              "preset column: trained in bfloat16 autocast (`amp=auto` on a CPU with native bfloat16, "
              "models 128 wide and up; mastery, guarantees and every score in float32).", ""]
    lines += ["", "Published test AUC on the same splits (../shared/data/README.md) beside ours:", ""]
    pub_rows = []
    by = {(r["dataset"], r["mode"]): r for r in rows if r.get("status") == "ok"}
    for ds, pub in PUBLISHED.items():
        if not any(k[0] == ds for k in by):
            continue
        pub_rows.append([ds, f"{pub['DKT']:.3f}", f"{pub['DKVMN']:.3f}",
                         fmt((by.get((ds, "original")) or {}).get("test_auc")),
                         fmt((by.get((ds, "cumulative")) or {}).get("test_auc")),
                         *[fmt((by.get((ds, k)) or {}).get("test_auc")) for k in ("dkt", "bkt", "pfa")]])
    lines.append(md_table(["data set", "DKT (DKVMN paper)", "DKVMN (DKVMN paper)", "cmkt original",
                           "cmkt cumulative", "cmkt dkt", "cmkt bkt", "cmkt pfa"], pub_rows))
    bkt = [f"{ds}: cmkt bkt {fmt((by.get((ds, 'bkt')) or {}).get('test_auc'))}, published BKT {v:.2f}"
           for ds, v in PUBLISHED_BKT.items() if (ds, "bkt") in by]
    if bkt:
        lines += ["", "BKT beside its published figure (the DKT paper, Piech et al. 2015, on its own "
                  "preprocessing of ASSISTments 2009, not these splits): " + "; ".join(bkt) + "."]
    counting = res.get("counting") or {}
    if counting:
        from cmkt.analysis.counting import COUNTING_LABELS
        names = list(COUNTING_LABELS)
        lines += ["", "Counting models on the same test split (logistic regression fitted on train.csv, "
                  "steps after each student's first): where mastery alone should land "
                  "(compare with the mastery AUC column).", ""]
        lines.append(md_table(["data set"] + [COUNTING_LABELS[n] for n in names],
                              [[ds] + [fmt(c.get(n)) for n in names] for ds, c in counting.items()]))
    groups = seed_groups(res)
    lines += spread_lines(groups)
    tl = target_lines(rows, groups)
    if tl:
        lines += ["", "Targets of the default cumulative model (issue 9):", ""] + tl
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    keys = [k for k, _ in COLUMNS] + ["overrides", "epochs", "seed", "wall_seconds", "n_students",
                                      "n_interactions", "status", "run"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "overrides": ";".join(f"{k}={v}" for k, v in r.get("overrides", {}).items())})
    return buf.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated subset of {', '.join(DATASETS)} (default: all)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES) + " (default: all)")
    p.add_argument("--preset", default=None, help="one preset for every data set "
                   "(default: each data set's own, see DATASETS in this script)")
    p.add_argument("--epochs", type=int, default=None, help="override the epoch count")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset value for every run, e.g. --set d_model=96")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="run every model once per seed: the first seed fills the main table, all of "
                        "them the seed-spread table (default: --seed only)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--data-root", default=str(SHARED_DATA), help="folder holding synthetic/, assist2009/, "
                   "assist2015/ (default ../shared/data)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/out, "
                   "benchmarks/out/quick with --quick)")
    p.add_argument("--update-docs", action="store_true", help="rewrite the results section of docs/RESULTS.md "
                   "and keep the table's rows in docs/results.json")
    p.add_argument("--docs-dir", default=str(DOCS_DIR), help="the folder of RESULTS.md and results.json "
                   "(default docs/)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: 1 epoch of a tiny model "
                   f"({QUICK_SIM} unless --datasets says otherwise)")
    p.add_argument("--no-counting", action="store_true", help="skip the counting models (PFA, monotone counting)")
    p.add_argument("--merge", metavar="RESULTS_JSON", action="append", default=[],
                   help="with --report: add the rows of another run's results.json (e.g. the same "
                        "command run for other --modes); its rows replace those of the same data set and model")
    p.add_argument("--seeds-from", metavar="RESULTS_JSON", action="append", default=[],
                   help="with --report: other seeds of the same settings (another run's results.json) "
                        "for the seed-spread table; they do not replace main-table rows")
    p.add_argument("--report", metavar="RESULTS_JSON", help="train nothing: re-render the tables of an "
                   "earlier run's results.json (with --update-docs: into docs/RESULTS.md)")
    a = p.parse_args(argv)

    if a.report:
        res = json.loads(Path(a.report).read_text())
        for extra in a.merge:
            more = json.loads(Path(extra).read_text())
            rerun = {(r["dataset"], r["mode"]) for r in more["rows"]}   # a rerun replaces its rows
            res["rows"] = [r for r in res["rows"] if (r["dataset"], r["mode"]) not in rerun] + more["rows"]
            res["wall_seconds"] = res.get("wall_seconds", 0) + more.get("wall_seconds", 0)
            res["merged"] = res.get("merged", []) + [{"command": more["command"], "machine": more["machine"]}]
            res["seed_rows"] = res.get("seed_rows", []) + more.get("seed_rows", [])
        for extra in a.seeds_from:
            more = json.loads(Path(extra).read_text())
            res["seed_rows"] = res.get("seed_rows", []) + more["rows"] + more.get("seed_rows", [])
            res["seeds_from"] = res.get("seeds_from", []) + [{"command": more["command"], "machine": more["machine"]}]
        order = {(n, m): i for i, (n, m) in enumerate((n, m) for n in DATASETS for m in MODES)}
        res["rows"].sort(key=lambda r: order.get((r["dataset"], r["mode"]), 99))
        text = report(res)
        print(text)
        if a.update_docs:
            update_docs(res, text, Path(a.docs_dir))
        return 0

    names = [n.strip() for n in a.datasets.split(",") if n.strip()]
    if a.quick and a.datasets == p.get_default("datasets"):
        names = ["sim"]
    bad = [n for n in names if n not in DATASETS]
    if bad:
        p.error(f"unknown data set(s) {bad}; choose from {', '.join(DATASETS)}")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        p.error("--modes takes " + ", ".join(MODES))
    try:
        seeds = [int(x) for x in a.seeds.split(",") if x.strip()] if a.seeds else [a.seed]
    except ValueError:
        p.error(f"--seeds {a.seeds!r}: expected whole numbers separated by commas")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        p.error(f"--seeds {a.seeds!r}: expected distinct seeds >= 0")
    extra = {}
    for item in a.set:
        k, eq, v = item.partition("=")
        if not eq:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        extra[k.strip()] = v.strip()
    out = Path(a.out) if a.out else (DEFAULT_OUT / "quick" if a.quick else DEFAULT_OUT)
    runs_dir = out / "runs"
    data_root = Path(a.data_root)

    info = machine_info()
    res = {"machine": info, "command": command_line(), "device": a.device, "rows": [], "seed_rows": []}
    t_start = time.perf_counter()
    for name in names:
        preset, overrides, epochs = DATASETS[name]
        preset = a.preset or preset
        if a.preset:                  # an explicit preset replaces the per-data-set tuning
            overrides, epochs = {}, None
        overrides = {**overrides, **(TINY if a.quick else {}), **extra}
        epochs = a.epochs or (1 if a.quick else epochs)
        try:
            spec = data_spec(name, data_root, a.quick)
        except FileNotFoundError as e:
            print(f"[results] skipping {name}: {e}", file=sys.stderr)
            continue
        if not a.no_counting and name != "sim" and not a.quick:
            from cmkt.analysis.counting import counting_aucs
            from cmkt.data.source import load_eval_data
            train = load_eval_data(spec, "train")
            res.setdefault("counting", {})[name] = counting_aucs(
                train, load_eval_data(spec, "test", skill_labels=train.skill_labels, num_skills=train.num_skills))
        for mode in modes:
            for i, seed in enumerate(seeds):
                print(f"[results] {name} {mode} preset={preset} {overrides or ''} epochs={epochs or 'preset'}"
                      + (f" seed={seed}" if len(seeds) > 1 else ""), file=sys.stderr, flush=True)
                try:
                    row = run_one(name, mode, spec, preset, overrides, epochs, seed, runs_dir, a.device)
                except Exception as e:  # noqa: BLE001 - one failed run must not lose the others
                    traceback.print_exc()
                    row = {"dataset": name, "mode": mode, "preset": preset, "overrides": overrides,
                           "epochs": epochs, "seed": seed, "status": "failed",
                           "error": f"{type(e).__name__}: {e}", "run": ""}
                res["rows" if i == 0 else "seed_rows"].append(row)
                if row["status"] == "ok":
                    print(f"[results] {name} {mode}: test AUC {fmt(row['test_auc'])}, mastery-perf r "
                          f"{fmt(row['mastery_performance_corr'], 3)}, {row['train_seconds']:.0f}s training",
                          file=sys.stderr, flush=True)
                res["wall_seconds"] = time.perf_counter() - t_start
                write_json(out / "results.json", res)      # after every run: progress survives
    info["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    res["wall_seconds"] = time.perf_counter() - t_start
    text = report(res)
    write_json(out / "results.json", res)
    write_text(out / "results.csv", to_csv(res["rows"] + res["seed_rows"]))
    write_text(out / "results.md", text)
    print(text)
    print(f"[results] wrote {out}/results.json, results.csv, results.md "
          f"({res['wall_seconds'] / 60:.1f} min)", file=sys.stderr)
    if a.update_docs:
        update_docs(res, text, Path(a.docs_dir))
    failed = [r for r in res["rows"] + res["seed_rows"] if r["status"] != "ok"]
    return 1 if failed or not res["rows"] else 0


if __name__ == "__main__":
    sys.exit(main())
