"""Decode songs exactly as training will see them (mono, resampled, high-passed, normalised), report their
levels and the frame layout, and check that analysis followed by synthesis reproduces them. With -o, write the
resynthesised audio so you can hear what a --highpass or --max-hz setting keeps."""

from __future__ import annotations

import argparse

from liveshtr.commands.common import add_signal_arguments, signal_configs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("songs", nargs="+", metavar="SONG", help="audio files or folders (WAV, FLAC, OGG, MP3)")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write the resynthesised audio of the first song here (.wav, .flac or .ogg)",
    )
    add_signal_arguments(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from liveshtr.sound.audio import load_songs, write_audio
    from liveshtr.sound.frames import FrameCodec

    audio_cfg, frame_cfg = signal_configs(args)
    codec = FrameCodec(frame_cfg, audio_cfg.samplerate)
    songs = load_songs(args.songs, audio_cfg)
    top_hz = codec.n_bins * frame_cfg.bin_hz(audio_cfg.samplerate)
    print(
        f"frames: {frame_cfg.domain.upper()} {frame_cfg.frame}/{frame_cfg.hop} at {audio_cfg.samplerate} Hz, "
        f"{codec.dim} coefficients per frame (up to {min(top_hz, audio_cfg.samplerate / 2):.0f} Hz), "
        f"{audio_cfg.samplerate / frame_cfg.hop:.1f} frames/s"
    )
    for i, song in enumerate(songs):
        x = song.samples.astype(np.float64)
        coeffs = codec.analyse(x)
        y = codec.decode(coeffs, len(x))
        err = float(np.sum((x - y) ** 2))
        snr = 10 * np.log10(float(np.sum(x**2)) / err) if err > 0 else float("inf")
        rms_db = 20 * np.log10(float(np.sqrt(np.mean(x**2))) + 1e-12)
        print(
            f"{song.path}: {song.source_channels} ch {song.source_samplerate} Hz, {song.duration_s:.1f} s, "
            f"source peak {song.source_peak:.3f}; {len(coeffs)} frames, RMS {rms_db:.1f} dBFS, "
            f"round-trip SNR {snr:.1f} dB"
        )
        if i == 0 and args.output:
            write_audio(args.output, y, audio_cfg.samplerate)
            print(f"wrote {args.output}")
    return 0
