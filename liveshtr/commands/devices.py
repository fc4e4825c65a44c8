"""List the audio outputs PortAudio sees (host APIs, channels, default rates) and the MIDI inputs."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help='print {"audio": [...], "midi": {...}} as JSON')
    p.add_argument(
        "--midi-api",
        choices=("auto", "alsa", "jack", "coremidi", "windows"),
        default="auto",
        help="the MIDI system to list (auto: ALSA's sequencer where it exists, else JACK, on Linux)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from liveshtr.control.midi import choose_api, input_names
    from liveshtr.live.sinks import output_devices

    devices = output_devices()
    api, midi = choose_api(args.midi_api), input_names(args.midi_api)
    if args.json:
        print(json.dumps({"audio": devices, "midi": {"api": api, "inputs": midi}}))
        return 0
    if not devices:
        print(
            "no audio output devices (no sound card or audio server running); "
            "`liveshtr serve --sink file:PATH` or `--sink null` play without one"
        )
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  [{d['hostapi']}]  {d['channels']} ch, {d['samplerate']} Hz")
    if devices:
        print("* default output; pass a name or index to `liveshtr serve --audio-device`")
    if midi:
        print(f"MIDI inputs ({api}):")
        for i, name in enumerate(midi):
            print(f"  {i:3d}  {name}")
        print("pass a name (or part of it) or index to `liveshtr serve MODEL --midi`; --midi alone creates one")
    else:
        print(f"no MIDI inputs ({api}); `liveshtr serve MODEL --midi` creates a virtual one to connect to")
    return 0
