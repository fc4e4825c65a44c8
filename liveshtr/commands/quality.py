"""Measure trained bundles as the quality tests and docs/quality.md do: each rendered through ONNX beside its song.

The first table is spectral (numpy and scipy): does it stay alive, move, not loop, sound like its own song, and do
the controls change it. The second (the `quality` extra) is what noise cannot pass, for the song, two noises made
from it, the default render and the temperature-0 render: beat, onsets, pitch classes, flatness, harmonic share and
how near it comes to copying the song. `--controls` adds what each control changes in that music (slow).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from liveshtr.analysis.spectral import WINDOW_S

MIN_SECONDS = WINDOW_S  # one window of the level
QUALITY_EXTRA = (
    'the music measures need the quality extra: pip install "liveshtr[quality]" and pip install --no-deps '
    "basic-pitch==0.4.0 (or make setup-quality); --no-music gives the spectral table alone"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help="bundle folders")
    p.add_argument("--songs", required=True, help="folder (or files) of the songs to compare signatures with")
    p.add_argument("--seconds", type=float, default=60.0, help="render length")
    p.add_argument("--no-music", action="store_true", help="skip the beat, pitch and tone table")
    p.add_argument("--pictures", type=Path, help="write each song's spectrograms to this folder")
    p.add_argument("--json", type=Path, help="also write the first table's figures to this file, a list of rows")
    p.add_argument("--controls", action="store_true", help="also measure what each control changes in the music (slow)")


def music_measures_missing() -> bool:
    """Whether the music measures' packages (librosa, basic-pitch with its model) are missing. basic-pitch is only
    looked for: importing it logs a warning for every runtime it does without."""
    import importlib.util

    try:
        import librosa  # noqa: F401
    except ImportError:
        return True
    return importlib.util.find_spec("basic_pitch") is None


def run(args: argparse.Namespace) -> int:
    from liveshtr.analysis.report import controls_table, floors_table, music_table, quality_report, spectral_table
    from liveshtr.bundle import load_bundle
    from liveshtr.errors import ConfigError
    from liveshtr.sound.audio import load_songs

    if not MIN_SECONDS <= args.seconds <= 3600:
        raise ConfigError(f"--seconds {args.seconds:g}: choose {MIN_SECONDS:g} s (a window of the level) to an hour")
    if (not args.no_music or args.controls) and music_measures_missing():
        raise ConfigError(QUALITY_EXTRA)
    if args.json is not None and not args.json.parent.is_dir():
        raise ConfigError(f"--json {args.json}: folder {args.json.parent} does not exist")
    bundles = [load_bundle(m) for m in args.models]
    songs = load_songs([args.songs], bundles[0].audio)
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
    signals = {s.name: s.samples for s in songs}
    rows = [quality_report(b, signals, b.audio.samplerate, args.seconds) for b in bundles]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    spectral_table(rows)
    if not args.no_music:
        floors_table(bundles, music_table(bundles, rows, signals, args.seconds, args.pictures))
    if args.controls:
        controls_table(bundles, rows, signals, min(args.seconds, 30.0))
    return 0
