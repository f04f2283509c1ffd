"""The ``stackview`` command: a thin face on the jobs of :mod:`stackview.workflows`.

Each subcommand lives in the module that owns its science (``stackview/<pkg>/commands.py``)
and exposes ``register(subparsers)``; this module assembles the parser and holds what every
command shares, once:

- the options several commands take (:func:`add_out`, :func:`add_device`);
- one wrapper around every run (:func:`main`): Ctrl-C sets the job's cancel token
  (``args.cancel``) and a cancelled job ends with exit code 130 and the command's hint
  (``set_defaults(cancelled=...)``); ``UsageError``/``ValueError``/``OSError`` become one
  sentence on stderr with exit code 2, never a traceback;
- provenance: ``args.command_line`` is the command as given to :func:`main` (its ``argv``;
  ``sys.argv`` only for the console script itself), recorded by the jobs that write it;
- :func:`parse_job`, which reads a command line back into the job's configuration (the
  wizard's commands and the workflows' ``*_argv`` functions round-trip through it).

Start-up stays cheap (subcommand modules import torch/abTEM only inside their ``run``
functions).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys

from stackview import __version__
from stackview.errors import Cancelled, UsageError, one_sentence

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


#: help of ``--device`` wherever a network runs (one default for every command)
DEVICE_HELP = ("where the network runs: auto (a CUDA GPU when torch sees one), cpu or cuda "
               "(default auto)")


def add_out(parser, help: str, required: bool = True, metavar: str | None = None) -> None:
    """The ``--out`` option (what a command writes, and where)."""
    parser.add_argument("--out", required=required, metavar=metavar, help=help)


def add_device(parser) -> None:
    """The ``--device`` option of every command that runs a network (default ``auto``)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


@contextlib.contextmanager
def cancel_on_sigint():
    """A :class:`CancelToken` set by the first Ctrl-C (jobs then stop cleanly and save what they
    can); a second Ctrl-C interrupts at once."""
    from stackview.engine.jobs import CancelToken

    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if token.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        token.cancel()
        print("\nstackview: stopping after the current step (Ctrl-C again to abort)...",
              file=sys.stderr)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread
        pass
    try:
        yield token
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stackview`` console script; returns the process exit code."""
    from stackview.workflows.commandline import command_text

    argv = list(sys.argv[1:] if argv is None else argv)
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
    args.command_line = command_text(argv)
    try:
        with cancel_on_sigint() as cancel:
            args.cancel = cancel
            return int(args.func(args) or 0)
    except (KeyboardInterrupt, Cancelled):
        hint = getattr(args, "cancelled", None)
        hint = hint(args) if callable(hint) else hint
        print(f"stackview: cancelled{'; ' + hint if hint else ''}.", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as exc:
        if args.verbose:
            logging.exception("failed")
        print(f"stackview: error: {one_sentence(exc)}", file=sys.stderr)
        return 2


def parse_job(argv: list[str]):
    """The job configuration a command line stands for (``argv`` without ``stackview``, or a
    whole command text): the inverse of the workflows' ``*_argv`` functions."""
    import shlex

    if isinstance(argv, str):
        argv = shlex.split(argv)
    argv = list(argv)
    if argv[:1] == ["stackview"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if not getattr(args, "job", None):
        raise UsageError(f"'stackview {' '.join(argv[:2])}' has no job configuration")
    return args.job(args)


if __name__ == "__main__":
    sys.exit(main())
