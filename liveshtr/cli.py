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


def build_parser(help_all: bool = False) -> argparse.ArgumentParser:
    """Every subcommand; `help_all`: their research and engine flags in `--help` too."""
    from liveshtr.commands.options import HelpFormatter, add_common, hide_advanced

    parser = argparse.ArgumentParser(
        prog="liveshtr",
        description="Learn one song's signature with an LSTM+VAE, then improvise new sound from it live.",
    )
    parser.add_argument("--version", action="version", version=f"liveshtr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in SUBCOMMANDS.items():
        module = importlib.import_module(f"liveshtr.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(p)
        add_common(p)
        if not help_all:
            hide_advanced(p, getattr(module, "ADVANCED", ()), name)
        p.set_defaults(_module=module, _parser=p)
    return parser


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand."""
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _option(argv: list[str], name: str) -> str | None:
    """The value of `name` in argv (`--config F` or `--config=F`), before the parser runs."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from liveshtr.commands.options import apply_config

    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    if command is not None and "--help-all" in argv:
        build_parser(help_all=True).parse_args([command, "--help"])  # prints every flag and exits
    parser = build_parser()
    config = _option(argv, "--config") if command is not None else None
    if config is not None:
        try:
            apply_config(command_parser(parser, command), Path(config))
        except LiveshtrError as exc:
            print(f"liveshtr {command}: error: {exc}", file=sys.stderr)
            return 2
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
