"""Render a model to a file as fast as possible, through the same engine (producer, ring, callback) that plays
live. With --seed the file is the same every time, and the same as `serve` plays with that seed and controls.

`--replay SESSION` plays a set recorded by `serve --record` again: the same model, seed and settings, every
control change at the hop that used it and the gain at the block that played it; for a single-model set the file
is the recorded take, sample for sample.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from liveshtr.commands.common import (
    ENGINE_ADVANCED,
    add_engine_arguments,
    add_model_argument,
    build_engine,
    describe_model,
)

ADVANCED = ENGINE_ADVANCED  # behind `--help-all`, settable with --config


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p, optional=True)
    p.add_argument("-o", "--output", type=Path, required=True, help="audio file to write (.wav or .flac)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the render")
    p.add_argument(
        "--replay", type=Path, default=None, metavar="SESSION", help="a session folder of `serve --record DIR`"
    )
    p.add_argument("--take", type=int, default=1, help="which take of the session --replay writes (default 1)")
    add_engine_arguments(p, "output rate in Hz (default 48000)")


def run(args: argparse.Namespace) -> int:
    from liveshtr.errors import ConfigError
    from liveshtr.sound.audio import write_audio

    if args.output.suffix.lower() not in (".wav", ".flac"):
        raise ConfigError(f"-o {args.output}: write a .wav or .flac file")
    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: folder {args.output.parent} does not exist")
    if args.replay is not None:
        return replay(args)
    if not 0 < args.seconds <= 24 * 3600:
        raise ConfigError(f"--seconds {args.seconds}: choose more than 0 and at most a day")
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


class Replay:
    """A session's control log, applied at the start of the hop each change was first used in (and each switch of
    model at the hop its crossfade began), before that hop's snapshot is read: as live."""

    def __init__(self, events: list[dict], voices: list):
        from liveshtr.live.recorder import RecordError

        self.voices = voices
        self.events: dict[int, list[dict]] = {}
        for e in events:
            if "model" in e and not 0 <= int(e["model"]) < len(voices):
                raise RecordError(f"the control log switches to model {e['model']}, which the session does not list")
            self.events.setdefault(int(e["hop"]), []).append(e)

    def __call__(self, engine) -> None:
        for e in self.events.get(engine.stats.hops, ()):
            if "model" in e:
                engine.switch(self.voices[int(e["model"])], float(e["seconds"]), bool(e.get("bar", False)))
                engine.take_switch()
            elif "beat" in e:
                engine.generator.set_beat(float(e["beat"]))
            elif engine.params.table[e["name"]].action:
                engine.params.set(e["name"])
            else:
                engine.params.set(e["name"], e["value"])


def replay_notes(session: dict, blocks, first: int, end: int, block_s: float) -> list[str]:
    """One line for each way the take and its replay part: blocks the recorder lost, or underruns a session of the
    first format did not locate. Blocks that ran dry live are replayed as played (a fade, then the model a block
    later) and need no note."""
    lines = []
    lost = [(k, n) for k, n in blocks.lost if k < end and k + n > first]
    if lost:
        spans = ", ".join(f"{k - first}-{k - first + n - 1}" if n > 1 else f"{k - first}" for k, n in lost)
        count = sum(n for _, n in lost)
        lines.append(
            f"blocks {spans} of the take ({count * block_s:.2f} s) were lost by the recorder, which fell behind: the "
            "take is silent there and the replay has them as played (after them it matches unless the gain moved)"
        )
    if session.get("format", 1) < 2 and session.get("underruns"):
        lines.append(
            f"the set ran dry {session['underruns']} time(s) and this session (format 1) does not say where: the "
            "replay follows the take until the first of them and is a block ahead of it after each"
        )
    return lines


def replay(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile

    from liveshtr.bundle import load_bundle
    from liveshtr.commands.common import build_voice
    from liveshtr.errors import ConfigError
    from liveshtr.live.recorder import SESSION_FORMAT, SUBTYPE, RecordError, read_session

    session, events, blocks = read_session(args.replay)
    if session.get("format", 1) > SESSION_FORMAT:
        raise RecordError(
            f"--replay {args.replay}: session format {session['format']} is newer than this liveshtr reads "
            f"({SESSION_FORMAT}); replay it with the version that recorded it ({session.get('liveshtr', '?')})"
        )
    takes = session.get("takes") or []
    if not 1 <= args.take <= len(takes):
        raise RecordError(f"--take {args.take}: the session has {len(takes)} take(s)")
    take = takes[args.take - 1]
    if take.get("blocks") is None:
        raise RecordError(f"--replay {args.replay}: take {args.take} was never closed (the set ended in a crash)")
    if args.model is not None or args.controls is not None:
        raise ConfigError("--replay takes the model, seed, settings and controls from the session; give neither")
    args.model, args.seed = session["model"], session["seed"]
    args.samplerate, args.blocksize = session["samplerate"], session["blocksize"]
    args.precision, args.threads, args.device = session["precision"], session["threads"], "cpu"
    args.temperature = args.prime = args.latent = None
    engine, _ = build_engine(args, args.samplerate, start_values=session["initial"])
    g = engine.generator
    if (g.hop, engine.model_rate) != (session["hop"], session["model_rate"]):
        raise RecordError(f"--replay {args.replay}: the model at {args.model} is not the one recorded")
    voices = [engine.voice]
    for model in session.get("models", [])[1:]:  # a set list's other models, at their controls when loaded
        voices.append(build_voice(args, load_bundle(model["path"]), engine.samplerate, model["initial"])[0])
    engine.replay = Replay(events, voices)
    first, end = take["first_block"], take["first_block"] + take["blocks"]
    targets = np.empty(max(end, 1), dtype=np.float64)
    value = float(session["initial"]["gain"])
    for k in range(len(targets)):
        value = blocks.gains.get(k, value)
        targets[k] = value
    engine.replay_gains = targets
    dry = np.zeros(max(end, 1), dtype=bool)
    dry[[k for k in blocks.dry if k < end]] = True
    engine.replay_dry = dry
    started = time.perf_counter()
    audio = engine.render(end * engine.blocksize / engine.samplerate)[take["first_block"] * engine.blocksize :]
    wall = time.perf_counter() - started
    with soundfile.SoundFile(args.output, "w", engine.samplerate, 1, subtype=SUBTYPE) as f:
        f.write(audio[: take["blocks"] * engine.blocksize])
    note = "" if session.get("device", "cpu") == "cpu" else " (recorded on cuda: the CPU's numbers differ slightly)"
    print(
        f"replayed  take {args.take} of {args.replay}: {take['blocks'] * engine.blocksize / engine.samplerate:.1f} s "
        f"in {wall:.2f} s -> {args.output}{note}"
    )
    for line in replay_notes(session, blocks, first, end, engine.blocksize / engine.samplerate):
        print(f"note: {line}")
    return 0
