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

    c = sub.add_parser("compare", help="score two (or more) runs on the same data, side by side")
    c.add_argument("checkpoints", nargs="+", metavar="RUN")
    c.add_argument("--data", required=True, help=data_help)
    c.add_argument("--split", choices=("test", "valid", "train"), default=None)
    c.add_argument("--json", action="store_true")
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
                          "split": split_used(data, a.split), **m}))
    else:
        print(metric_table({Path(a.checkpoint).name or a.checkpoint: m}))
    return 0


def cmd_compare(a):
    from cmkt.runs.evaluate import score_checkpoint
    from cmkt.train.trainer import pick_device
    if len(a.checkpoints) < 2:
        raise CmktError("compare needs at least two runs or checkpoints")
    cols = {}
    for ck in a.checkpoints:
        name = Path(ck).name
        while name in cols:
            name += "'"
        cols[name] = score_checkpoint(ck, a.data, a.split, pick_device(a.device)).metrics
    print(json.dumps(cols) if a.json else metric_table(cols))
    return 0


def cmd_export(a):
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
