"""Command line: `liveshtr <subcommand> ...`, dispatched from a table.

Each subcommand lives in `liveshtr/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`.
Those modules import their heavy dependencies (torch, onnxruntime, sounddevice) inside `run`, so `--help`
is instant and serving never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from liveshtr import __version__
from liveshtr.errors import LiveshtrError

# name -> one-line help. Order is the order shown in --help.
SUBCOMMANDS: dict[str, str] = {
    "train": "learn a song: LSTM+VAE -> ONNX model bundle in models/",
    "serve": "play a model live (audio device, real-time file or null sink)",
    "render": "render a model to a file through the live engine, as fast as possible",
    "bench": "measure step, engine and render speed of a model on this machine",
    "devices": "list audio outputs",
    "controls": "print the OSC address table of a model (what patches send and receive)",
    "inspect": "decode songs as training sees them and check the frame round trip",
    "quality": "measure trained bundles beside their songs: the quality tests' figures and the music measures",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liveshtr",
        description="Learn one song's signature with an LSTM+VAE, then improvise new sound from it live.",
    )
    parser.add_argument("--version", action="version", version=f"liveshtr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        module = importlib.import_module(f"liveshtr.commands.{name}")
        p = sub.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except LiveshtrError as exc:
        print(f"liveshtr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"liveshtr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
