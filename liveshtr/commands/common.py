"""Arguments shared by the subcommands: songs (inspect, train) and the engine (serve, render, bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from liveshtr.config import DOMAINS, PERCUSSIVE_FRAMES, AudioConfig, FrameConfig

_AUDIO = AudioConfig()
_FRAME = FrameConfig()


def add_signal_arguments(p: argparse.ArgumentParser, framing_open: bool = False) -> None:
    """Flags for AudioConfig and FrameConfig, with their defaults taken from the dataclasses. `framing_open`:
    --frame and --hop stay unset unless given (the training recipe chooses them from the material)."""
    g = p.add_argument_group("audio and frames")
    g.add_argument("--samplerate", type=int, default=_AUDIO.samplerate, help="model sample rate in Hz")
    g.add_argument(
        "--highpass",
        type=float,
        default=_AUDIO.highpass_hz,
        metavar="HZ",
        help="high-pass the songs above HZ before training (0: off; ~500 gives livelier results)",
    )
    g.add_argument(
        "--trim-db",
        type=float,
        default=_AUDIO.trim_db,
        metavar="DB",
        help="cut the songs' quiet start and end, where they lie DB below their median level (0: keep them)",
    )
    g.add_argument("--domain", choices=DOMAINS, default=_FRAME.domain, help="frame transform")
    for flag, default, doc in (
        ("--frame", _FRAME.frame, "samples per frame"),
        ("--hop", _FRAME.hop, "samples between frames"),
    ):
        if framing_open:  # unset unless given: the recipe chooses
            doc += f" (default {default}; {PERCUSSIVE_FRAMES[flag[2:]]} for percussive material)"
        g.add_argument(flag, type=int, default=argparse.SUPPRESS if framing_open else default, help=doc)
    g.add_argument(
        "--max-hz",
        type=float,
        default=_FRAME.max_hz,
        metavar="HZ",
        help="keep only coefficients below HZ to shrink the model (0: keep all)",
    )


def signal_configs(args: argparse.Namespace) -> tuple[AudioConfig, FrameConfig]:
    """Build the configs from parsed flags; bad combinations raise ConfigError (exit 2, one line)."""
    audio = AudioConfig(samplerate=args.samplerate, highpass_hz=args.highpass, trim_db=args.trim_db)
    frame = FrameConfig(
        domain=args.domain,
        frame=getattr(args, "frame", _FRAME.frame),
        hop=getattr(args, "hop", _FRAME.hop),
        max_hz=args.max_hz,
    )
    return audio, frame


# -- the engine's commands (serve, render, bench) ------------------------------------------------------------

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo"


def add_model_argument(p: argparse.ArgumentParser, optional: bool, many: bool = False) -> None:
    if many:
        p.add_argument(
            "models",
            nargs="*",
            default=[],
            metavar="MODEL",
            help="model bundle folders, a set list: the first plays, /liveshtr/model switches (default: the "
            "bundled demo, models/demo)",
        )
    elif optional:
        p.add_argument(
            "model",
            nargs="?",
            default=None,
            metavar="MODEL",
            help="model bundle folder (default: the bundled demo, models/demo)",
        )
    else:
        p.add_argument("model", metavar="MODEL", help="model bundle folder (models/<name>)")


# The engine's flags a performer rarely needs: behind `--help-all` (and settable with --config).
ENGINE_ADVANCED = ("--threads", "--precision", "--blocksize", "--lookahead-ms", "--max-lookahead-ms", "--samplerate")


def add_engine_arguments(p: argparse.ArgumentParser, samplerate_help: str) -> None:
    from liveshtr.live.engine import BLOCKSIZE, LOOKAHEAD_MS, MAX_LOOKAHEAD_MS

    g = p.add_argument_group("engine")
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="cpu",
        help="where the model runs (auto: CUDA when usable, else the CPU)",
    )
    g.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: 1, 2 for hidden >= 512)")
    add_precision_argument(g)
    g.add_argument("--samplerate", type=int, default=None, help=samplerate_help)
    g.add_argument("--blocksize", type=int, default=BLOCKSIZE, help="samples per audio callback")
    g.add_argument(
        "--lookahead-ms",
        type=float,
        default=LOOKAHEAD_MS,
        help="how far the model runs ahead of the speaker at the start, the main term of control latency "
        "(default: %(default)s ms); each underrun raises it by one block, up to --max-lookahead-ms",
    )
    g.add_argument(
        "--max-lookahead-ms",
        type=float,
        default=None,
        help=f"the most underruns may raise the look-ahead to (default: {MAX_LOOKAHEAD_MS:g} ms, or --lookahead-ms "
        "if that is more)",
    )
    c = p.add_argument_group("controls at the start")
    c.add_argument("--seed", type=int, default=0, help="seed of the latent noise (same seed, same sound)")
    c.add_argument("--temperature", type=float, default=None, help="spread of the sampled latent (default 1)")
    c.add_argument(
        "--latent",
        type=float,
        nargs="+",
        default=None,
        metavar="V",
        help="latent offsets in spread units, dimension 0 first (0 is the strongest)",
    )
    c.add_argument(
        "--prime", type=float, default=None, metavar="POS", help="where in the song to start, 0..1 (default 0.5)"
    )
    c.add_argument(
        "--controls",
        type=Path,
        default=None,
        metavar="FILE",
        help='timed control changes, JSON lines: {"time": s, "name": "temperature", "value": 0.5}',
    )


def add_precision_argument(g) -> None:
    g.add_argument(
        "--precision",
        choices=("auto", "float32", "int8"),
        default="auto",
        help="weights of the step graph (auto: int8 on the CPU when the bundle has it, else float32)",
    )


def check_engine_settings(args: argparse.Namespace) -> None:
    from liveshtr.errors import ConfigError
    from liveshtr.live.engine import MAX_LOOKAHEAD_MS

    if args.samplerate is not None and not 8000 <= args.samplerate <= 384000:
        raise ConfigError(f"--samplerate {args.samplerate}: choose a rate between 8000 and 384000 Hz")
    if not 16 <= args.blocksize <= 8192:
        raise ConfigError(f"--blocksize {args.blocksize}: choose 16..8192 samples")
    if not 0 < args.lookahead_ms <= 2000:
        raise ConfigError(f"--lookahead-ms {args.lookahead_ms}: choose more than 0 and at most 2000 ms")
    if args.max_lookahead_ms is None:
        args.max_lookahead_ms = max(args.lookahead_ms, MAX_LOOKAHEAD_MS)
    if not args.lookahead_ms <= args.max_lookahead_ms <= 2000:
        raise ConfigError(f"--max-lookahead-ms {args.max_lookahead_ms}: choose --lookahead-ms .. 2000 ms")
    if args.threads is not None and not 1 <= args.threads <= 64:
        raise ConfigError(f"--threads {args.threads}: choose 1..64")


def build_voice(args: argparse.Namespace, bundle, samplerate: int, start_values=None):
    """Bundle -> onnxruntime session -> generator -> parameter table -> the engine's voice for it, at the start
    controls of the shared flags (or a recorded session's `start_values`). Returns (voice, device actually used)."""
    from liveshtr.errors import ConfigError
    from liveshtr.live.generator import Generator
    from liveshtr.live.params import ParamError, Params
    from liveshtr.live.runtime import StepModel
    from liveshtr.live.voice import Voice

    initial = {}
    if args.temperature is not None:
        initial["temperature"] = args.temperature
    if args.prime is not None:
        initial["prime"] = args.prime
    try:
        params = Params.for_bundle(bundle, **initial)
        if start_values:  # a recorded session's controls at its start (actions are counts, not settings)
            params.set_many({k: v for k, v in start_values.items() if not params.table[k].action})
        if args.latent is not None:
            if len(args.latent) > bundle.latent_dim:
                raise ParamError(f"the model has {bundle.latent_dim} latent dimensions, got {len(args.latent)}")
            for i, v in enumerate(args.latent):
                params.set("latent", v, i)
    except ParamError as exc:
        raise ConfigError(str(exc)) from None
    model = StepModel(bundle, device=args.device, threads=args.threads, precision=args.precision)
    generator = Generator(bundle, model, seed=args.seed)
    return Voice(generator, params, samplerate), model.device


def build_engine(args: argparse.Namespace, samplerate: int, bundle=None, start_values=None, **engine_options):
    """The engine of one model (loaded from MODEL unless the caller already has it), from the shared flags.

    Returns (engine, device actually used)."""
    from liveshtr.bundle import load_bundle
    from liveshtr.live.automation import load_schedule
    from liveshtr.live.engine import Engine

    check_engine_settings(args)
    bundle = bundle or load_bundle(args.model or DEMO_MODEL)
    voice, device = build_voice(args, bundle, samplerate, start_values)
    schedule = load_schedule(args.controls, voice.params) if args.controls is not None else None
    engine = Engine(
        voice.generator,
        voice.params,
        samplerate,
        args.blocksize,
        args.lookahead_ms,
        schedule,
        max_lookahead_ms=args.max_lookahead_ms,
        voice=voice,
        **engine_options,
    )
    return engine, device


def describe_model(bundle) -> str:
    m, f = bundle.meta["model"], bundle.frames
    songs = ", ".join(s["file"] for s in bundle.meta["training"]["songs"])
    return (
        f"{bundle.path} ({m['layers']}x{m['hidden']} LSTM, latent {m['latent_dim']}, {f.domain} "
        f"{f.frame}/{f.hop} at {bundle.audio.samplerate} Hz; learned from {songs})"
    )
