"""Calibrate a trained bundle again, as export does at the end of `liveshtr train`, with the code as it is now:

    python scripts/recalibrate.py BUNDLE SONG [SONG ...]

The songs are the ones it was trained on (read with the bundle's audio settings). The sampling, the EQ and the
partials' contrast in its model.json are replaced and its preview rendered again; the weights are not touched.
For trying a calibration on models that took minutes to train; a bundle that ships says how it was made."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liveshtr.bundle import META_FILE, load_bundle, write_meta
from liveshtr.sound.audio import load_songs
from liveshtr.sound.frames import FrameCodec
from liveshtr.training.calibrate import calibrate_bundle, identity_calibration, write_preview


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("songs", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    codec = FrameCodec(bundle.frames, bundle.audio.samplerate)
    songs = load_songs(args.songs, bundle.audio)
    loops = [s.get("loop", {}).get("repeated", 0) > 0 for s in bundle.meta["training"]["songs"]]
    if len(loops) != len(songs):
        print(f"{args.bundle} was trained on {len(loops)} song(s), {len(songs)} given", file=sys.stderr)
        return 2
    frames = [
        bundle.stats.normalise(bundle.layout.to_features(codec.magnitudes(codec.analyse(s.samples, loop))))
        for s, loop in zip(songs, loops, strict=True)
    ]
    meta = json.loads((args.bundle / META_FILE).read_text())
    meta["sampling"] = {"pitch_sharpness": meta["sampling"]["pitch_sharpness"]}
    meta["calibration"] = identity_calibration(codec.n_bins)
    write_meta(args.bundle, meta, with_int8=(args.bundle / "model.int8.onnx").exists())
    bundle = calibrate_bundle(args.bundle, meta, songs, frames, args.seed)
    write_preview(args.bundle, bundle, args.seed)
    print(json.dumps({"sampling": bundle.meta["sampling"], "contrast": bundle.contrast}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
