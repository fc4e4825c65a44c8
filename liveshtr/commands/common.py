"""Arguments shared by the subcommands that read songs (inspect, train)."""

from __future__ import annotations

import argparse

from liveshtr.config import DOMAINS, AudioConfig, FrameConfig

_AUDIO = AudioConfig()
_FRAME = FrameConfig()


def add_signal_arguments(p: argparse.ArgumentParser) -> None:
    """Flags for AudioConfig and FrameConfig, with their defaults taken from the dataclasses."""
    g = p.add_argument_group("audio and frames")
    g.add_argument("--samplerate", type=int, default=_AUDIO.samplerate, help="model sample rate in Hz")
    g.add_argument(
        "--highpass",
        type=float,
        default=_AUDIO.highpass_hz,
        metavar="HZ",
        help="high-pass the songs above HZ before training (0: off; ~500 gives livelier results)",
    )
    g.add_argument("--domain", choices=DOMAINS, default=_FRAME.domain, help="frame transform")
    g.add_argument("--frame", type=int, default=_FRAME.frame, help="samples per frame")
    g.add_argument("--hop", type=int, default=_FRAME.hop, help="samples between frames")
    g.add_argument(
        "--max-hz",
        type=float,
        default=_FRAME.max_hz,
        metavar="HZ",
        help="keep only coefficients below HZ to shrink the model (0: keep all)",
    )


def signal_configs(args: argparse.Namespace) -> tuple[AudioConfig, FrameConfig]:
    """Build the configs from parsed flags; bad combinations raise ConfigError (exit 2, one line)."""
    audio = AudioConfig(samplerate=args.samplerate, highpass_hz=args.highpass)
    frame = FrameConfig(domain=args.domain, frame=args.frame, hop=args.hop, max_hz=args.max_hz)
    return audio, frame
