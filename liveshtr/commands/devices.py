"""List the audio outputs PortAudio sees, with their host APIs, channels and default rates."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from liveshtr.live.sinks import output_devices

    devices = output_devices()
    if args.json:
        print(json.dumps(devices))
        return 0
    if not devices:
        print(
            "no audio output devices (no sound card or audio server running); "
            "`liveshtr serve --sink file:PATH` or `--sink null` play without one"
        )
        return 0
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  [{d['hostapi']}]  {d['channels']} ch, {d['samplerate']} Hz")
    print("* default output; pass a name or index to `liveshtr serve --audio-device`")
    return 0
