"""The ``stackview`` command: a thin face on the library's jobs.

Each subcommand lives in the module that owns its science (``stackview/<pkg>/commands.py``)
and exposes ``register(subparsers)``; this module only assembles the parser, turns
``UsageError``/``ValueError``/``OSError`` into one sentence on stderr with exit code 2, and keeps
start-up cheap (subcommand modules import torch/abTEM only inside their ``run`` functions).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stackview import __version__
from stackview.errors import UsageError, one_sentence

#: modules that provide ``register(subparsers)``; a module that is missing is skipped so that
#: a partial install still gives a working CLI.
COMMAND_MODULES = (
    "stackview.materials.commands",
    "stackview.simulation.commands",
    "stackview.style.commands",
    "stackview.datasets.commands",
    "stackview.inference.commands",
    "stackview.models.commands",
    "stackview.analysis.commands",
    "stackview.pel.commands",
    "stackview.gui.commands",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one sentence with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"stackview: error: {message[0].upper() + message[1:]}.\n"
                     f"Run '{self.prog} --help' for the options.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stackview",
        description=(
            "Interlayer slip (Da, Db) and twist angle of 2D van der Waals bilayers and trilayers "
            "from ADF-STEM images: simulate labelled images, train and apply models, map images."
        ),
    )
    parser.add_argument("--version", action="version", version=f"stackview {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a command package that is not there (yet) is skipped, not a broken import.
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stackview`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        if args.command is None and "gui" in parser._subparsers._group_actions[0].choices:
            args = parser.parse_args(["gui"])
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("stackview: cancelled.", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as exc:
        if args.verbose:
            logging.exception("failed")
        print(f"stackview: error: {one_sentence(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
