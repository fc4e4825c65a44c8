"""Train a model on one song (or several) and write a model bundle under models/: the ONNX step graph,
model.json, primes, a checkpoint for --resume, loss curves, a 20 s preview rendered through the ONNX graph and a
spectrogram comparison. The model (log-magnitudes of the frames' spectra, a beat clock, a recurrent latent;
2 x 384) trains on FFT frames (the default) or DCT frames."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from liveshtr.commands.common import add_signal_arguments, signal_configs
from liveshtr.config import (
    AUTO_POSITION,
    BEAT_RECIPE,
    LOOP_MAX_S,
    LOOP_TRAIN_S,
    MIN_AUTO_POSITION_S,
    MIN_POSITION_PERIOD_S,
    PERCUSSIVE_FRAMES,
    PULSE_CLEAR,
    FrameConfig,
    MagnitudeConfig,
    TrainConfig,
    position_harmonics_for,
)

# Research flags: behind `--help-all`, settable with --config (the defaults are the recipe, docs/design.md).
ADVANCED = (
    *("--samplerate", "--highpass", "--trim-db", "--domain", "--frame", "--hop", "--max-hz"),
    *("--clock-harmonics", "--position-harmonics", "--latent-dim", "--batch-size", "--seq-len", "--lr"),
    *("--beta", "--prior-weight", "--input-noise", "--own-samples", "--snapshots", "--events"),
)

MODELS_DIR = Path("models")
STAGES_DIR = "stages"  # --snapshots: the models played while training went on, each a bundle
_MAGNITUDE = MagnitudeConfig(features=1)
_TRAIN = TrainConfig()


# Training flags left unset unless given (the recipe for the material may choose): (TrainConfig field, type, help).
TRAINING_FLAGS = (
    ("seq_len", int, "frames per training sequence"),
    ("lr", float, "Adam learning rate"),
    ("beta", float, "weight of the KL on the posterior's side"),
    ("prior_weight", float, "weight of the KL on the prior's side"),
    ("input_noise", float, "noise on the teacher-forced inputs"),
    (
        "own_samples",
        float,
        "share of the input frames replaced by the model's own playing (0.3 for loops and percussive songs)",
    ),
)


def _unset_unless_given(group, name: str, kind, doc: str, default) -> None:
    """A flag left unset (absent from the namespace) unless given, so the recipe can tell it was not."""
    group.add_argument(
        "--" + name.replace("_", "-"), type=kind, default=argparse.SUPPRESS, help=f"{doc} (default {default})"
    )


def _harmonics(text: str) -> tuple[int, ...]:
    """`--clock-harmonics`, `--position-harmonics`: "16" is 1..16, "4,1,8" those three, "0" none."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a list of numbers such as 4,1,8") from None
    return tuple(range(1, values[0] + 1)) if len(values) == 1 else tuple(values)


def _position(text: str) -> tuple[int, ...] | None:
    """`--position-harmonics`: "auto" (None: chosen by the song's length) or harmonics as `_harmonics` reads them."""
    return None if text == "auto" else _harmonics(text)


def _place_in_song(model_cfg: MagnitudeConfig, seconds: float, auto: bool, pulsed: bool) -> MagnitudeConfig:
    """Keep the position harmonics that turn slowly enough for the shortest song, and say which the model gets;
    `auto`: AUTO_POSITION for songs of MIN_AUTO_POSITION_S and more without a clear pulse, none for the rest."""
    if auto and pulsed:
        if seconds >= MIN_AUTO_POSITION_S:
            print("position  none: the bar's clock tells a song with a pulse its time (--position-harmonics 4 adds it)")
        return replace(model_cfg, position_harmonics=())
    asked = (AUTO_POSITION if seconds >= MIN_AUTO_POSITION_S else ()) if auto else model_cfg.position_harmonics
    kept = position_harmonics_for(asked, seconds)
    if asked:
        limit = f"faster than once in {MIN_POSITION_PERIOD_S:.0f} s of a {seconds:.0f} s song"
        if not kept:
            print(f"position  none: every harmonic asked turns {limit}, which tells the bar, not the part of the song")
        else:
            finer = "" if kept == asked else f" (finer ones turn {limit})"
            print(f"position  harmonics {','.join(map(str, kept))} of the song's length{finer}: where in it it plays")
    return replace(model_cfg, position_harmonics=kept)


def _recipe_for_material(
    model_cfg: MagnitudeConfig,
    train_cfg: TrainConfig,
    pulsed: bool,
    clock_given: bool,
    own_given: bool,
    looped: bool,
    percussive: float | None,
):
    """The recipe chosen from the material where the flags leave it open, each choice said in one line: a song
    with a clear pulse (PULSE_CLEAR) and a loop get the bar's 16-harmonic clock; loops and percussive material
    (`percussive`: how flat it is against noise with its spectrum, None for tonal material) also train on their own
    playing (BEAT_RECIPE)."""
    if pulsed and not clock_given:
        model_cfg = replace(model_cfg, clock_harmonics=BEAT_RECIPE["clock_harmonics"])
        print(
            "clock     the bar's first 16 harmonics (any pattern of sixteenths), for a song with a pulse "
            "(--clock-harmonics 4,1,8: the beat, the bar and the half beat only)"
        )
    if own_given:
        return model_cfg, train_cfg
    if looped:
        material = "a loop"
    elif percussive is None:
        return model_cfg, train_cfg
    else:
        material = f"percussive (as flat as noise with its spectrum x{percussive:.2f})"
    train_cfg = replace(train_cfg, own_samples=BEAT_RECIPE["own_samples"])
    print(
        f"material  {material}: {train_cfg.own_samples:g} of its inputs its own playing, so that the sampled beat "
        "holds (--own-samples 0: teacher-forced only)"
    )
    return model_cfg, train_cfg


def _percussive(songs, seed: int) -> float | None:
    """How flat the material is against noise with its spectrum (`analysis.tone.noise_likeness`) where that makes
    it percussive (PERCUSSIVE_SHARE), else None."""
    from liveshtr.analysis.tone import PERCUSSIVE_SHARE, noise_likeness

    share = noise_likeness([s.samples for s in songs], songs[0].samplerate, seed)
    return share if share >= PERCUSSIVE_SHARE else None


def _frames_for_material(frame_cfg: FrameConfig, songs, percussive: float | None, given: bool) -> FrameConfig:
    """The frames: PERCUSSIVE_FRAMES for percussive material that is long enough for them, unless --frame or --hop
    was given; else `frame_cfg`."""
    from liveshtr.sound.frames import FrameCodec
    from liveshtr.training.dataset import min_samples

    if percussive is None or given:
        return frame_cfg
    longer = replace(frame_cfg, **PERCUSSIVE_FRAMES)
    shortest = min(len(s.samples) for s in songs)
    return longer if shortest >= min_samples(FrameCodec(longer, songs[0].samplerate)) else frame_cfg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("songs", nargs="+", metavar="SONG", help="audio files or folders (WAV, FLAC, OGG, MP3)")
    p.add_argument(
        "-o", "--output", metavar="DIR", type=Path, help="bundle folder (default: models/<name of the first song>)"
    )
    p.add_argument("--resume", action="store_true", help="continue training from the bundle's checkpoint.pt")
    p.add_argument("--force", action="store_true", help="replace a bundle that already exists in the folder")
    add_signal_arguments(p, framing_open=True)
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=int, default=_MAGNITUDE.layers, help="stacked LSTM layers, 1..3")
    g.add_argument("--hidden", type=int, default=_MAGNITUDE.hidden, help="LSTM width, 64..1024")
    g.add_argument("--latent-dim", type=int, default=_MAGNITUDE.latent_dim, help="latent size: the steering dimensions")
    g.add_argument(
        "--clock-harmonics",
        type=_harmonics,
        default=argparse.SUPPRESS,  # unset unless given: a song with a pulse then gets the bar's clock
        metavar="N|LIST",
        help="the clock: harmonics of the bar, N for 1..N or a list such as 4,1,8 (the beat, the bar, the half "
        "beat); 16 holds any pattern of sixteenths (FFT frames; default "
        f"{','.join(map(str, _MAGNITUDE.clock_harmonics))}, "
        f"{len(BEAT_RECIPE['clock_harmonics'])} for a song with a clear pulse and for loops)",
    )
    g.add_argument(
        "--position-harmonics",
        type=_position,
        default="auto",  # a string, which argparse parses as it shows it
        metavar="auto|N|LIST",
        help="where in the song each frame lies, as harmonics of the song's length, N for 1..N, 0 for none: the "
        "model plays the part of the song it was primed from and moves on through the song; only harmonics that "
        f"turn no faster than once in {MIN_POSITION_PERIOD_S:.0f} s are kept (default auto: 1..4 for a song of "
        f"{MIN_AUTO_POSITION_S:.0f} s and more without a clear pulse, where it made the prime a clear control; none "
        "for shorter ones and for songs with a pulse, whose clock tells the time)",
    )
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs",
        type=int,
        default=_TRAIN.epochs,
        help=f"passes over the song, each at least {_TRAIN.min_steps} optimiser steps",
    )
    g.add_argument("--batch-size", type=int, default=_TRAIN.batch_size, help="parallel streams through the song")
    for name, kind, doc in TRAINING_FLAGS:
        _unset_unless_given(g, name, kind, doc, getattr(_TRAIN, name))
    g.add_argument(
        "--loop",
        choices=("auto", "on", "off"),
        default=_TRAIN.loop,
        help="train the material as a loop: a whole number of beats whose end runs into its start, its training "
        f"frames repeated to {LOOP_TRAIN_S:.0f} s (auto: material shorter than {LOOP_MAX_S:.0f} s)",
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=_TRAIN.device,
        help="where to train (auto: cuda when available)",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=_TRAIN.threads,
        metavar="N",
        help="CPU threads to train with (default: every core this process may use)",
    )
    g.add_argument("--seed", type=int, default=_TRAIN.seed, help="random seed: the same seed trains the same model")
    g = p.add_argument_group("training while serve plays")
    g.add_argument(
        "--snapshots",
        action="store_true",
        help=f"also export models to play as training goes on, into OUT/{STAGES_DIR}/NAME-NN (a first one within "
        "seconds, then better ones), and stop cleanly, saving the best model so far, on a line 'stop' or the end "
        "of stdin (serve --learn)",
    )
    g.add_argument(
        "--events",
        type=int,
        default=None,
        metavar="FD",
        help="write progress as JSON lines to this open file descriptor (serve --learn)",
    )


def run(args: argparse.Namespace) -> int:
    from liveshtr.bundle import CHECKPOINT_FILE, BundleError, check_output_folder, folder_name
    from liveshtr.sound.audio import expand_paths, load_songs
    from liveshtr.sound.frames import FrameCodec
    from liveshtr.training.dataset import min_samples, prepare

    audio_cfg, frame_cfg = signal_configs(args)
    codec = FrameCodec(frame_cfg, audio_cfg.samplerate)
    clock = getattr(args, "clock_harmonics", None)  # None: not given
    from liveshtr.sound.magnitude import MagnitudeLayout

    model_cfg = MagnitudeConfig(  # its features once the frames are chosen from the material
        features=MagnitudeLayout.for_codec(codec).n_features,
        layers=args.layers,
        hidden=args.hidden,
        latent_dim=args.latent_dim,
        clock_harmonics=_MAGNITUDE.clock_harmonics if clock is None else clock,
        position_harmonics=args.position_harmonics or (),
    )
    given = {name: getattr(args, name, None) for name, _, _ in TRAINING_FLAGS}
    train_cfg = TrainConfig.given(
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        loop=args.loop,
        **given,
    )
    first = expand_paths(args.songs)[0]
    out = args.output or MODELS_DIR / folder_name(first.stem)
    status = check_output_folder(out)
    if status == "bundle" and not (args.resume or args.force):
        raise BundleError(
            f"{out} already holds a model: --resume continues it, --force replaces it, -o picks another folder"
        )
    if args.resume and status == "new":
        raise BundleError(f"--resume: {out} holds no checkpoint to resume; train without --resume first")

    from liveshtr.live.sched import usable_cores
    from liveshtr.training.fit import Progress, pick_device

    device = pick_device(train_cfg.device)  # a missing GPU is a flag error: refuse before creating anything
    events = _events(args.events)
    progress = Progress(train_cfg.epochs, events=events)
    stop = _stop_channel() if args.snapshots else None
    started = time.perf_counter()
    progress.stage("reading", f"reading {', '.join(str(s) for s in args.songs)}")
    songs = load_songs(args.songs, audio_cfg, min_samples=min_samples(codec))
    percussive = _percussive(songs, train_cfg.seed)
    framing_given = hasattr(args, "frame") or hasattr(args, "hop")
    chosen = _frames_for_material(frame_cfg, songs, percussive, framing_given)
    longer = chosen != frame_cfg
    frame_cfg, codec = chosen, FrameCodec(chosen, audio_cfg.samplerate)
    layout = MagnitudeLayout.for_codec(codec)
    model_cfg = replace(model_cfg, features=layout.n_features)
    size = f"{layout.n_features} features ({layout.pitch_bins} bins, then bands)"
    total_s = sum(s.duration_s for s in songs)
    print(
        f"{len(songs)} song(s), {total_s:.1f} s at {audio_cfg.samplerate} Hz -> {frame_cfg.domain.upper()} frames "
        f"{frame_cfg.frame}/{frame_cfg.hop}, {size}; model {model_cfg.layers}x{model_cfg.hidden}, "
        f"latent {model_cfg.latent_dim}"
    )
    if longer:
        default = FrameConfig()
        print(
            f"frames    {frame_cfg.frame}/{frame_cfg.hop} for percussive material: its drums keep their pitch and "
            f"their partials through the live phase (--frame {default.frame} --hop {default.hop}: the default frames)"
        )
    data = prepare(
        songs,
        codec,
        layout.to_features,
        loops=None if train_cfg.loop == "auto" else [train_cfg.loop == "on"] * len(songs),
    )
    for song, copies, beats in zip(songs, data.loops, data.song_beats, strict=True):
        if copies:
            count = round(float(beats[1] - beats[0]) * len(beats))
            print(
                f"loop      {song.name} ({song.duration_s:.1f} s) trains as a loop: {count} beat(s) whose end runs "
                f"into its start, {copies} times over (--loop off: as it is)"
            )
    print(f"tempo     {data.pulse.bpm:.1f} beats a minute (pulse clarity {data.pulse.clarity:.2f}): the clock")
    looped = all(data.loops)
    pulsed = looped or data.pulse.clarity >= PULSE_CLEAR
    model_cfg = _place_in_song(model_cfg, min(s.duration_s for s in songs), args.position_harmonics is None, pulsed)
    model_cfg, train_cfg = _recipe_for_material(
        model_cfg, train_cfg, pulsed, clock is not None, given["own_samples"] is not None, looped, percussive
    )

    from liveshtr.training.export import export_bundle
    from liveshtr.training.fit import fit, load_checkpoint, run_signature

    signature = run_signature(audio_cfg, frame_cfg, model_cfg, train_cfg, songs)
    checkpoint = out / CHECKPOINT_FILE
    resume = load_checkpoint(checkpoint, signature) if args.resume else None
    if resume is not None and resume["epochs_done"] >= train_cfg.epochs:
        raise BundleError(f"--resume: {out} already trained {resume['epochs_done']} epochs; raise --epochs")
    out.mkdir(parents=True, exist_ok=True)
    print(f"device    {_describe_device(device, train_cfg.threads or usable_cores())}")
    snapshot = _snapshots(out, progress, data, songs, audio_cfg, frame_cfg, train_cfg) if args.snapshots else None
    progress.stage("training", f"training {train_cfg.epochs} epochs")
    result = fit(
        data, model_cfg, train_cfg, checkpoint, signature, resume, progress=progress, snapshot=snapshot, stop=stop
    )
    progress.stage("exporting", f"exporting the best model (epoch {result.best_epoch}) to {out}")
    bundle = export_bundle(out, result, data, songs, audio_cfg, frame_cfg, train_cfg)
    sampling = bundle.meta["sampling"]
    progress.emit("ready", **_ready(out, 0, result, sampling, final=True, trained_s=result.history.seconds))
    base = result.baselines
    beats = result.best_val_mse < min(base.values())
    print(
        f"\nbundle    {out}/  ({bundle.onnx_path.stat().st_size / 1e6:.1f} MB model.onnx)\n"
        f"trained   {result.epochs_done} epochs on {result.device} in {result.history.seconds:.1f} s "
        f"(total {time.perf_counter() - started:.1f} s with loading and export); best epoch {result.best_epoch}\n"
        f"val MSE   {result.best_val_mse:.4f} next frame  baselines: repeat last frame {base['repeat_last']:.4f}, "
        f"mean frame {base['mean_frame']:.4f}  -> {'beats both' if beats else 'DOES NOT beat both baselines'}\n"
        f"listen    {out / 'preview.wav'}   look: {out / 'loss.png'}, {out / 'spectrogram.png'}"
    )
    sampling = bundle.meta["sampling"]
    print(
        f"sampling  latent at x{bundle.latent_scale:g} of its spread (to play the song's "
        f"{sampling['events_per_s']['song']:g} events a second and keep its harmonic share and its lasting partials: "
        f"{sampling['harmonic_share']['played']:.2f} against {sampling['harmonic_share']['song']:.2f}, "
        f"{sampling['partial_persistence']['played']:.2f} against {sampling['partial_persistence']['song']:.2f}); "
        f"feature noise x{sampling['noise'][0]:g} at temperature 1, x{sampling['noise'][0] * bundle.noise_floor:g} at 0"
    )
    cal = bundle.meta["calibration"]
    flat = cal["flatness"]
    print(
        f"output    partials' contrast x{bundle.contrast:g}, EQ level {cal['level_db']:+.1f} dB (renders as tonal "
        f"as the song: flatness {flat['render']:.4g}, the song's {flat['song']:.4g}, noise with its spectrum "
        f"{flat['noise']:.4g})"
    )
    progress.stage("done", f"done: {out}")
    if result.interrupted:
        print(f"resume    liveshtr train {' '.join(map(str, args.songs))} -o {out} --resume", file=sys.stderr)
        return 130
    return 0


def _describe_device(device, threads: int) -> str:
    """Where training runs, in one line."""
    if device.type == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(device)} (--device cpu: the CPU)"
    return f"cpu, {threads} thread(s) of {os.cpu_count()} core(s) (--threads N; --device cuda where a GPU is)"


def _events(fd: int | None):
    """--events FD as a line-buffered text file, or None."""
    from liveshtr.errors import ConfigError

    if fd is None:
        return None
    try:
        return os.fdopen(fd, "w", buffering=1)
    except OSError as exc:
        raise ConfigError(f"--events {fd}: not an open file descriptor ({exc.strerror})") from None


def _stop_channel() -> threading.Event:
    """--snapshots: an event set when stdin says 'stop' or ends (serve stopped, or died), read on a thread."""
    stop = threading.Event()

    def read() -> None:
        try:
            for line in sys.stdin:
                if line.strip() == "stop":
                    break
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=read, name="liveshtr-stop", daemon=True).start()
    return stop


def _ready(
    path: Path, number: int, result, sampling: dict, final: bool, trained_s: float, export_s: float = 0.0
) -> dict:
    """A model exported and in place, as an event: where, which, how good on the held-out block, and whether its
    calibration (`sampling`, from its model.json) heard it keep the song's sustained sound
    (`training.calibrate.keeps_the_song`)."""
    from liveshtr.training.calibrate import keeps_the_song

    return {
        "keeps_the_song": keeps_the_song(sampling),
        "harmonic_share": sampling["harmonic_share"],
        "partial_persistence": sampling["partial_persistence"],
        "path": str(path.resolve()),
        "number": number,
        "final": final,
        "epoch": result.best_epoch,
        "val": result.best_val,
        "val_mse": result.best_val_mse,
        "trained_s": round(trained_s, 1),
        "export_s": round(export_s, 1),
    }


def _snapshots(out: Path, progress, data, songs, audio_cfg, frame_cfg, train_cfg):
    """--snapshots: a function that exports a model handed over by `fit` into OUT/stages/NAME-NN, calibrated on
    less playing (`training.calibrate.QUICK`), written in a hidden folder and renamed into place whole, so that
    nothing half-written is ever loaded; then says so as a "ready" event, and returns whether it keeps the song's
    sustained sound (a model that does not is not played, and `fit` hands over the next better one)."""
    from liveshtr.training.calibrate import QUICK
    from liveshtr.training.export import export_bundle

    folder = out / STAGES_DIR
    folder.mkdir(exist_ok=True)
    pattern = re.compile(rf"{re.escape(out.name)}-(\d+)")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    made = [max(numbers, default=0)]  # a resumed run numbers on

    def snapshot(result, trained_s: float) -> bool:
        number = made[0] + 1
        name = f"{out.name}-{number:02d}"
        partial, final = folder / f".{name}.partial", folder / name
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        began = time.perf_counter()
        progress.emit("stage", stage="exporting", message=f"exporting model {number} (epoch {result.best_epoch})")
        # the folder's own name in its model.json: the hidden one it is written in is renamed
        bundle = export_bundle(partial, result, data, songs, audio_cfg, frame_cfg, train_cfg, plan=QUICK, name=name)
        os.replace(partial, final)
        made[0] = number
        seconds = time.perf_counter() - began
        print(
            f"stage     {final}: epoch {result.best_epoch}, held-out {result.best_val:.4f} "
            f"(exported in {seconds:.1f} s)",
            flush=True,
        )
        sampling = bundle.meta["sampling"]
        ready = _ready(final, number, result, sampling, final=False, trained_s=trained_s, export_s=seconds)
        progress.emit("ready", **ready)
        progress.emit("stage", stage="training", message="training")
        return ready["keeps_the_song"]

    return snapshot
