"""`cmkt validate`, `compare`, `export` and `report`: a trained run scored on data."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cmkt.cli.common import DATA_HELP, metric_table, run_data, split_used
from cmkt.errors import CmktError


def add_parsers(sub) -> None:
    data_help = DATA_HELP
    v = sub.add_parser("validate", help="score a run or checkpoint on a data set")
    v.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    v.add_argument("--data", default=None, help=data_help + " (default: the data the run was trained on)")
    v.add_argument("--split", choices=("test", "valid", "train"), default=None,
                   help="on a folder or sim: which split (default test); a file is scored whole")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    c = sub.add_parser("compare", help="score two (or more) runs on the same data, side by side, with the "
                       "difference to the first run and its 95%% paired bootstrap interval")
    c.add_argument("checkpoints", nargs="+", metavar="RUN")
    c.add_argument("--data", required=True, help=data_help)
    c.add_argument("--split", choices=("test", "valid", "train"), default=None)
    c.add_argument("--json", action="store_true",
                   help="one JSON object: a metrics column per run and 'differences' (B - A with its interval)")
    c.add_argument("--rounds", type=int, default=1000,
                   help="paired bootstrap rounds over students for the differences (default 1000)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed: same seed, same interval (default 0)")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    e = sub.add_parser("export", help="write per-step mastery, gain, prediction and response as CSV")
    e.add_argument("checkpoint", metavar="RUN")
    e.add_argument("--data", required=True, help=data_help)
    e.add_argument("--split", choices=("test", "valid", "train"), default=None)
    who_e = e.add_mutually_exclusive_group()
    who_e.add_argument("--student", default=None, help="only this student id")
    who_e.add_argument("--all", action="store_true", help="every student, scored and written in chunks "
                       "(memory bounded by the chunk; .parquet or .csv)")
    e.add_argument("--chunk", type=int, default=2048, help="students per chunk with --all (default 2048)")
    e.add_argument("--format", choices=("cmkt", "kt-audit"), default="cmkt",
                   help="cmkt: per-step mastery, gain and prediction (default); kt-audit: every student's "
                        "predictions in the kt-audit data contract (user_id, timestamp, split, kc_ids, "
                        "y_true, y_pred; train/valid/test on sim or a folder, a file as one split 'test'; "
                        "--split: that split only), for `kt-audit run F.csv`")
    e.add_argument("--out", required=True, help="file to write (CSV; with --all also .parquet)")

    r = sub.add_parser("report", help="write a self-contained HTML report of one student (or the class)")
    r.add_argument("checkpoint", metavar="RUN")
    r.add_argument("--data", required=True, help=data_help)
    r.add_argument("--split", choices=("test", "valid", "train"), default=None)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", help="the student id")
    who.add_argument("--class", dest="whole_class", action="store_true", help="the whole class instead")
    r.add_argument("--out", required=True, help="HTML file to write")


def cmd_validate(a):
    from cmkt.runs.checkpoint import load_checkpoint
    from cmkt.runs.evaluate import score_checkpoint
    from cmkt.train.trainer import pick_device
    device = pick_device(a.device)
    model_and_meta = load_checkpoint(a.checkpoint, device)
    data = a.data if a.data is not None else run_data(a.checkpoint, model_and_meta[1])
    scored = score_checkpoint(a.checkpoint, data, a.split, device, model_and_meta=model_and_meta)
    m = scored.metrics
    if a.json:
        print(json.dumps({"run": str(Path(a.checkpoint).resolve()), "data": data,
                          "split": split_used(data, a.split), **m, "reference": scored.reference}))
    else:
        print(metric_table({Path(a.checkpoint).name or a.checkpoint: m}))
    return 0


def cmd_compare(a):
    from cmkt.analysis.bootstrap import compare_trajectories, difference_lines, named_difference
    from cmkt.runs.evaluate import score_checkpoint
    from cmkt.train.trainer import pick_device
    if len(a.checkpoints) < 2:
        raise CmktError("compare needs at least two runs or checkpoints")
    if a.rounds < 1000:
        raise CmktError(f"--rounds {a.rounds}: the bootstrap needs at least 1000 rounds")
    cols, scored = {}, {}
    for ck in a.checkpoints:
        name = Path(ck).name
        while name in cols or name == "differences":
            name += "'"
        scored[name] = score_checkpoint(ck, a.data, a.split, pick_device(a.device))
        cols[name] = {**scored[name].metrics, "reference": scored[name].reference}
    names = list(cols)
    diffs = []
    for b in names[1:]:                 # each run against the first: B - A
        d = compare_trajectories(scored[names[0]].traj, scored[b].traj, rounds=a.rounds, seed=a.seed)
        diffs.append(named_difference(names[0], b, d))
    if a.json:
        print(json.dumps({**cols, "differences": diffs}))
    else:
        print(metric_table(cols))
        print()
        print("\n".join(difference_lines(diffs)))
    return 0


def cmd_export(a):
    if a.format == "kt-audit":
        return _export_kt_audit(a)
    if a.all:
        from cmkt.runs.export import export_all
        if a.chunk < 1:
            raise CmktError(f"--chunk {a.chunk}: needs at least 1 student")
        done = export_all(a.checkpoint, a.data, a.split, a.out, a.chunk)
        print(a.out)
        print(f"{done['rows']} rows, {done['students']} students, {done['chunks']} chunks", file=sys.stderr)
        return 0
    from cmkt.runs.evaluate import score_checkpoint, trajectory_frame
    from cmkt.io import atomic_target
    scored = score_checkpoint(a.checkpoint, a.data, a.split)
    try:
        df = trajectory_frame(scored, a.student)
    except KeyError as e:
        split = split_used(a.data, a.split)
        ids = scored.data.student_ids
        where = f"the {split} split of {a.data}" if split else a.data
        raise CmktError(f"{e.args[0]} in {where} ({len(ids):,} students, e.g. "
                        f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})") from None
    with atomic_target(a.out) as tmp:
        df.to_csv(tmp, index=False)
    print(a.out)
    print(f"{len(df)} rows", file=sys.stderr)
    return 0


KT_AUDIT_MAX_ROWS = 200_000        # kt-audit 0.2: no cheap baseline on a bigger file


def _export_kt_audit(a):
    from cmkt.runs.audit import export_kt_audit
    if a.student is not None:
        raise CmktError("--format kt-audit writes every student (with --all); drop --student")
    if a.chunk < 1:
        raise CmktError(f"--chunk {a.chunk}: needs at least 1 student")
    done = export_kt_audit(a.checkpoint, a.data, a.out, a.split, a.chunk)
    print(a.out)
    per = ", ".join(f"{k} {v:,}" for k, v in done["splits"].items())
    print(f"{done['rows']:,} rows ({per}), {done['students']:,} students; audit it with: "
          f"kt-audit run {a.out}", file=sys.stderr)
    if "train" not in done["splits"]:
        print("note: no train rows, so kt-audit skips its cheap baseline (export sim or a folder with "
              "train.csv / test.csv to get it)", file=sys.stderr)
    elif done["rows"] > KT_AUDIT_MAX_ROWS:
        print(f"note: kt-audit 0.2 skips its cheap baseline above {KT_AUDIT_MAX_ROWS:,} rows (its other "
              "checks still run)", file=sys.stderr)
    return 0


def cmd_report(a):
    from cmkt.runs.evaluate import score_checkpoint
    from cmkt.io import write_text_atomic
    from cmkt.educator.report import class_report, student_report
    scored = score_checkpoint(a.checkpoint, a.data, a.split)
    try:
        html = class_report(scored) if a.whole_class else student_report(scored, a.student)
    except KeyError as e:
        raise CmktError(f"{a.data}: {e.args[0]}") from None
    write_text_atomic(a.out, html)
    print(a.out)
    return 0


COMMANDS = {"validate": cmd_validate, "compare": cmd_compare, "export": cmd_export, "report": cmd_report}
