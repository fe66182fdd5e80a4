"""`cmkt import`: a reference-system model folder or checkpoint into a run folder."""
from __future__ import annotations

import sys

EPILOG = """PATH is one of:
  a pyKT model folder: saved_model/<name>/ with qid_model.ckpt (<emb_type>_model.ckpt) and config.json
      (format A, pyKT's standard training; default variant: original)
  a cumulative-scripts folder: saved_model/gainakt2_cumulative_mastery_<suffix>/ with best_model.pth or
      model.pth (format B; default variant: cumulative)
  or the checkpoint file itself.
Only weights (and, for format B, numpy float64 numbers) are read: nothing in the files is run.
examples:
  python -m cmkt import saved_model/gainakt2_cumulative_mastery_v1 --out runs/
  python -m cmkt import saved_model/assist2015_gainakt2_qid_.../qid_model.ckpt --out runs/ --variant original
  python -m cmkt validate runs/RUN --data ../shared/data/assist2015 --json
"""


def add_parsers(sub) -> None:
    import argparse
    i = sub.add_parser("import", help="import a reference-system (pyKT GainAKT2) model as a run folder; "
                       "prints the run folder", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("path", metavar="PATH", help="a model folder of the reference system, or its checkpoint file")
    i.add_argument("--out", default=None, help="runs folder (default runs/ or $CMKT_RUNS_DIR)")
    i.add_argument("--variant", choices=("cumulative", "original"), default=None,
                   help="cumulative: relu gains, mastery accumulated (GainAKT2Monitored); original: the raw "
                        "heads (default: original for a pyKT .ckpt, cumulative for a .pth)")
    i.add_argument("--name", default=None, help="run folder name (default: time-source-gainakt2-ref-variant)")


def cmd_import(a):
    from cmkt.runs.importer import import_reference
    from cmkt.runs.jobs import runs_dir_default
    run = import_reference(a.path, a.out or runs_dir_default(), variant=a.variant, name=a.name)
    from cmkt.io import read_json
    cfg = read_json(run / "config.json", {}) or {}
    imp, model = cfg.get("imported") or {}, cfg.get("model") or {}
    print(f"imported {imp.get('source')} (format {imp.get('format')}: {imp.get('format_name')}) as "
          f"{model.get('kind')}, variant {model.get('variant')}, num_c {model.get('num_c')}", file=sys.stderr)
    print(run)
    return 0


COMMANDS = {"import": cmd_import}
