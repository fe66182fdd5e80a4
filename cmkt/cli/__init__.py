"""Command line: every dashboard action can also be done headless (python -m cmkt ...).
One module per group of commands; each adds its parsers and names its handlers."""
from __future__ import annotations

import argparse
import sys

from cmkt.cli import importer, scoring, serve, train
from cmkt.errors import CmktError

EPILOG = """examples:
  python -m cmkt simulate --students 500 --skills 12 --seed 0 --out sim.csv
  python -m cmkt train --data sim --model cumulative --preset quick
  python -m cmkt train --data ../shared/data/assist2015 --model original --preset quick --epochs 3
  python -m cmkt train --data ../shared/data/assist2009 --model dkt --preset standard   # or bkt, pfa
  python -m cmkt validate runs/RUN --json                  # on the run's own data (test split)
  python -m cmkt validate runs/RUN --data ../shared/data/assist2015 --json
  python -m cmkt compare runs/RUN_A runs/RUN_B --data sim
  python -m cmkt export runs/RUN --data sim --student T0001 --out student.csv
  python -m cmkt report runs/RUN --data sim --student T0005 --out T0005.html
"""


GROUPS = (train, scoring, importer, serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cmkt", description="Cumulative Mastery Knowledge Tracing: train "
                                "knowledge-tracing transformers whose per-skill mastery never falls after "
                                "practice, and check that it does not.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return p


COMMANDS = {name: fn for group in GROUPS for name, fn in group.COMMANDS.items()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CmktError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
