"""The ``pdenet-analysis`` command. Each subcommand lives in its own module (:mod:`.analyze`,
:mod:`.train`, :mod:`.evaluate`, :mod:`.misc`); :mod:`.common` holds what they share. A user
mistake is one line on stderr and exit status 2, never a traceback; an internal error is one
line and exit status 1 (``--debug`` shows its traceback)."""

from __future__ import annotations

import argparse
import sys

from . import analyze, evaluate, misc, train
from .common import HelpFormatter, check_common

DESCRIPTION = """Deep residual networks read as discretised PDEs (Ruthotto & Haber, arXiv 1804.04272).

commands:
  quickstart   train the four networks on the embedded digits, analyse them, write a report
  train        train a preset on a data set by the paper's protocol (any scheme, steps, tolerance)
  evaluate     test accuracy of a checkpoint, as trained or integrated another way (--grid: a table)
  analyze      stability, conditioning, spectra, reversibility, order, energy of a network's blocks
  study        run a study (a cached sweep with figures and a page); study --list names them
  schemes      list the schemes and their metadata
  tableaux     the published Butcher tableaux and their certificates (order by rooted trees, ...)
  presets      list the network presets and their weight counts
  demo         integrate the paper's three operators and print what happened

pdenet-analysis COMMAND --help describes a command's options."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdenet-analysis", description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of the commands above")
    misc.add_parsers(sub, HelpFormatter)
    train.add_parser(sub, HelpFormatter)
    evaluate.add_parser(sub, HelpFormatter)
    analyze.add_parser(sub, HelpFormatter)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..errors import PDENetError

    args = build_parser().parse_args(argv)
    try:
        check_common(args)
        return args.func(args)
    except (PDENetError, ValueError) as e:
        if args.debug:
            raise
        print(f"pdenet-analysis: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pdenet-analysis: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): nothing more to say to it
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug of the library, not a user mistake
        if args.debug:
            raise
        print(f"pdenet-analysis: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, "
              "and please report it)", file=sys.stderr)
        return 1


__all__ = ["main", "build_parser"]
