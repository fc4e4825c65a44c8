"""Render a model to a file as fast as possible, through the same engine (producer, ring, callback) that plays
live. With --seed the file is the same every time, and the same as `serve` plays with that seed and controls.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from liveshtr.commands.common import add_engine_arguments, add_model_argument, build_engine, describe_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p, optional=False)
    p.add_argument("-o", "--output", type=Path, required=True, help="audio file to write (.wav or .flac)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the render")
    add_engine_arguments(p, "output rate in Hz (default 48000)")


def run(args: argparse.Namespace) -> int:
    from liveshtr.errors import ConfigError
    from liveshtr.sound.audio import write_audio

    if not 0 < args.seconds <= 24 * 3600:
        raise ConfigError(f"--seconds {args.seconds}: choose more than 0 and at most a day")
    if args.output.suffix.lower() not in (".wav", ".flac"):
        raise ConfigError(f"-o {args.output}: write a .wav or .flac file")
    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: folder {args.output.parent} does not exist")
    engine, used = build_engine(args, args.samplerate or 48000)
    print(f"model     {describe_model(engine.generator.bundle)} on {used}, {engine.generator.model.precision} weights")
    started = time.perf_counter()
    audio = engine.render(args.seconds)
    wall = time.perf_counter() - started
    write_audio(args.output, audio, engine.samplerate, exact=True)
    s = engine.summary()
    print(
        f"rendered  {args.seconds:.1f} s in {wall:.2f} s ({args.seconds / wall:.0f}x real time), "
        f"resets {s['resets']}, limiter active in {s['limited_hops']} hops -> {args.output}"
    )
    return 0
