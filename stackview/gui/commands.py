"""``stackview gui [FILES] [--session DIR]``: open the desktop window (Qt is imported only
when it runs)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gui", help="open the desktop window (also: 'stackview' with no command)",
        description="Open the stackview window; drop ADF-STEM images or folders on it, pick a "
                    "model and run the slip/twist analysis.",
        epilog="Example: stackview gui stackview/resources/samples/ReS2_bilayer_tedgen_sample4.png",
    )
    p.add_argument("files", nargs="*", metavar="IMAGE|FOLDER", help="images or folders to open")
    p.add_argument("--session", metavar="DIR", default=None,
                   help="reopen a session saved from the window (File → Save session): its "
                        "images, settings, results and inspected window")
    p.set_defaults(func=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from stackview.gui.app import main

    return main(list(args.files), session=getattr(args, "session", None))
