"""Play a model live: the model runs ahead in a producer thread, the audio callback plays from a ring buffer.

With no MODEL it plays the bundled demo; several MODELs are a set list, the first playing and /liveshtr/model
crossfading to another. The default sink is the audio output device; `--sink auto` falls back to a real-time WAV
file when there is no sound card, `--sink file:PATH` always writes one, `--sink null` paces and discards. Stop with
Ctrl-C (or SIGTERM), or give --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from liveshtr.commands.common import (
    DEMO_MODEL,
    ENGINE_ADVANCED,
    add_engine_arguments,
    add_model_argument,
    build_engine,
    describe_model,
)
from liveshtr.control.surfaces import OSC_PORT, WEB_PORT

# Flags for networks, tests, measurements and the engine: behind `--help-all`, settable with --config.
ADVANCED = (
    *ENGINE_ADVANCED,
    *("--host", "--token", "--osc-allow", "--insecure", "--no-osc", "--no-web", "--midi-api", "--scenes"),
    *("--status-every", "--stats-json", "--simulate-load-ms", "--telemetry-hz", "--channels", "--device"),
    *("--seed", "--controls", "--learn-dir", "--learn-threads", "--learn-config"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p, optional=True, many=True)
    p.add_argument("--sink", default="device", help="device | auto | null | file:PATH")
    p.add_argument(
        "--audio-device",
        default=None,
        metavar="NAME|INDEX",
        help="output device (see `liveshtr devices`; default: the system's default output)",
    )
    p.add_argument(
        "--channels",
        type=int,
        default=None,
        help="output channels, the mono signal on each (default: 2 on a device that has them, 1 for files)",
    )
    p.add_argument("--seconds", type=float, default=None, help="stop after this much audio (default: run on)")
    p.add_argument(
        "--status-every", type=float, default=10.0, metavar="S", help="print a status line every S seconds (0: never)"
    )
    p.add_argument(
        "--stats-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the closing counters (underruns, resets, peak RSS, ...) to FILE as JSON",
    )
    p.add_argument(
        "--simulate-load-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="testing aid: sleep MS in the producer after every hop, as a slower machine would",
    )
    c = p.add_argument_group("control surfaces")
    c.add_argument(
        "--host",
        default="127.0.0.1",
        help="address both servers listen on (default: %(default)s, this machine only; 0.0.0.0: every network, "
        "which needs --token and --osc-allow, or --insecure)",
    )
    c.add_argument("--osc-port", type=int, default=OSC_PORT, help="OSC UDP port (default: %(default)s; 0: any free)")
    c.add_argument(
        "--web-port", type=int, default=WEB_PORT, help="page and WebSocket port (default: %(default)s; 0: any free)"
    )
    c.add_argument("--no-osc", action="store_true", help="no OSC server")
    c.add_argument("--no-web", action="store_true", help="no page and WebSocket server")
    c.add_argument("--token", default=None, help="secret the page and WebSocket clients must present (?token=...)")
    c.add_argument(
        "--osc-allow",
        nargs="+",
        default=None,
        metavar="CIDR",
        help="networks that may send OSC when --host is not loopback (this machine always may)",
    )
    c.add_argument(
        "--insecure", action="store_true", help="allow --host beyond this machine without a token or allow-list"
    )
    c.add_argument(
        "--midi",
        nargs="?",
        const="",
        default=None,
        metavar="PORT",
        help="play from MIDI: an input's name (or part of it) or index from `liveshtr devices`; alone, a virtual "
        "input called liveshtr for a DAW or controller to connect to (put it after MODEL)",
    )
    c.add_argument(
        "--midi-map",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON: which controller moves which control, beside the default map (docs/control.md: MIDI)",
    )
    c.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the set: the output as played (24-bit WAV) and every control change, in a session folder "
        "under DIR, from the start (/liveshtr/record stop|start for takes); `render --replay` plays it again",
    )
    c.add_argument(
        "--scenes",
        type=Path,
        default=None,
        metavar="FILE",
        help="where the model's scenes and learned MIDI map are kept; when not given, scenes.json beside its bundle",
    )
    c.add_argument(
        "--link",
        action="store_true",
        help='follow an Ableton Link session\'s tempo and beat on this network (pip install "liveshtr[link]")',
    )
    c.add_argument(
        "--midi-api",
        choices=("auto", "alsa", "jack", "coremidi", "windows"),
        default="auto",
        help="the MIDI system (auto: ALSA's sequencer where it exists, else JACK, on Linux)",
    )
    c.add_argument(
        "--telemetry-hz",
        type=float,
        default=20.0,
        help="meters and counters sent to subscribers and pages, per second (default: %(default)s)",
    )
    c.add_argument(
        "--learn",
        nargs="+",
        default=None,
        metavar="SONG",
        help="train on SONG(s) as the set plays: better models come in at a bar",
    )
    g = p.add_argument_group("training beside the set")
    g.add_argument(
        "--learn-dir",
        type=Path,
        default=Path("models"),
        metavar="DIR",
        help="where trainings keep their models: DIR/<song>/, with every model played in its stages/ "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--learn-threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads the training takes (default: the cores the engine leaves, at least 1)",
    )
    g.add_argument(
        "--learn-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML of `liveshtr train` settings for the trainings, keyed by its flags' long names",
    )
    add_engine_arguments(p, "output rate in Hz (default: the device's rate; 48000 for file and null sinks)")


class Terminal:
    """stdout (or stderr) for the performer's status lines: a closed terminal or pipe must not stop the music."""

    def __init__(self, name: str = "stdout"):
        self.name = name

    def write(self, text: str) -> int:
        try:
            return getattr(sys, self.name).write(text)
        except OSError:  # from now on, these lines go nowhere
            setattr(sys, self.name, open(os.devnull, "w"))  # noqa: SIM115  (lives as long as the process)
            return 0

    def flush(self) -> None:
        try:
            getattr(sys, self.name).flush()
        except OSError:
            setattr(sys, self.name, open(os.devnull, "w"))  # noqa: SIM115


def check_surfaces(args: argparse.Namespace):
    """The control surfaces' flags, checked before anything starts: ports, rates, who may connect, the MIDI map."""
    from liveshtr.control.access import Exposure, check_exposure, parse_host, parse_networks
    from liveshtr.control.surfaces import SurfaceOptions
    from liveshtr.errors import ConfigError

    for flag, port in (("--osc-port", args.osc_port), ("--web-port", args.web_port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{flag} {port}: choose 1..65535, or 0 for any free port")
    if not 0 <= args.telemetry_hz <= 60:
        raise ConfigError(f"--telemetry-hz {args.telemetry_hz}: choose 0..60 (0: none)")
    exposure = Exposure(
        host=parse_host(args.host),
        osc=not args.no_osc,
        web=not args.no_web,
        token=args.token,
        osc_allow=parse_networks(args.osc_allow),
        insecure=args.insecure,
    )
    check_exposure(exposure)
    midi_map = None
    if args.midi_map is not None:
        if args.midi is None:
            raise ConfigError("--midi-map needs --midi (the input it maps)")
        midi_map = read_midi_map(args.midi_map)
    return SurfaceOptions(
        exposure,
        osc_port=args.osc_port,
        web_port=args.web_port,
        telemetry_hz=args.telemetry_hz,
        midi=args.midi,
        midi_api=args.midi_api,
        midi_map=midi_map,
        midi_map_source=f"--midi-map {args.midi_map}",
        link=args.link,
        scenes=args.scenes,
    )


def check_learning(args: argparse.Namespace):
    """--learn's songs and flags, checked before anything starts: the songs' paths, or None without --learn."""
    from liveshtr.errors import ConfigError
    from liveshtr.live.learner import LearnError, check_songs, check_trainer

    if args.learn_threads < 0:
        raise ConfigError(f"--learn-threads {args.learn_threads}: choose 1 or more (0: the cores the engine leaves)")
    if args.learn_config is not None and not args.learn_config.is_file():
        raise ConfigError(f"--learn-config {args.learn_config}: no such file")
    if args.learn is None:
        return None
    try:
        check_trainer()
        return check_songs(args.learn)
    except LearnError as exc:
        raise ConfigError(f"--{exc}") from None


def say_learning(kind: str, said: dict, out: Terminal, log: Terminal) -> None:
    """A training's lines on the terminal, errors on stderr."""
    if kind == "line":
        text = said["text"]
        print(f"learn     {text}", file=log if text.startswith("error:") else out, flush=True)


def learning_status(learning) -> str:
    """The status line's part for a training under way."""
    state = learning.state()
    if state is None or not state["running"]:
        return ""
    eta = f", ETA {int(state['eta_s']) // 60}:{int(state['eta_s']) % 60:02d}" if state["eta_s"] is not None else ""
    return f"  learning: {state['stage']} epoch {state['epoch']}/{state['epochs']}{eta}"


def end_learning(learning, out: Terminal) -> None:
    """Serve's end: the training stops and saves the best model so far; a second Ctrl-C leaves it where it is."""
    learner = learning.learner
    if learner is None or not learner.state.running:
        return
    print(f"learn     saving the best model so far in {learner.folder} (Ctrl-C again leaves it)", file=out, flush=True)
    try:
        learning.close()
    except KeyboardInterrupt:
        learner.kill()
        print(f"learn     left as it was: its models so far are in {learner.folder}", file=out, flush=True)


def read_midi_map(path: Path) -> dict:
    from liveshtr.errors import ConfigError

    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--midi-map {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ConfigError(f"--midi-map {path}: not JSON ({exc})") from None


def start_recording(args: argparse.Namespace, engine, device: str, models: list):
    """A session folder under --record, its first take started: every block and control change from the start."""
    import datetime

    from liveshtr import __version__
    from liveshtr.live.recorder import SESSION_FORMAT, Recorder

    g = engine.generator
    session = {
        "format": SESSION_FORMAT,
        "liveshtr": __version__,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": str(g.bundle.path.resolve()),
        "seed": args.seed,
        "samplerate": engine.samplerate,
        "blocksize": engine.blocksize,
        "model_rate": engine.model_rate,
        "hop": g.hop,
        "device": device,
        "precision": g.model.precision,
        "threads": g.model.threads,
        "initial": engine.params.values(engine.initial_snapshot),
        "models": [{"path": str(m.path.resolve()), "initial": m.params.values(m.voice.initial)} for m in models],
        "automation": str(args.controls) if args.controls is not None else None,
    }
    recorder = Recorder(args.record, engine, session)
    recorder.models = models
    engine.attach_recorder(recorder)
    recorder.start_take()
    recorder.start()
    return recorder


def make_setlist(args: argparse.Namespace, engine, paths: list[Path], bundles: list):
    """The set: the engine's model first, a voice for each other bundle at the engine's output rate, and a loader
    for bundles named by path during the set."""
    from liveshtr.bundle import load_bundle
    from liveshtr.commands.common import build_voice
    from liveshtr.live.setlist import Model, SetList

    names = SetList.unique_names(paths)
    models = [Model(names[0], paths[0], engine.voice)]
    for name, path, bundle in zip(names[1:], paths[1:], bundles[1:], strict=True):
        models.append(Model(name, path, build_voice(args, bundle, engine.samplerate)[0]))
    return SetList(engine, models, load=lambda path: build_voice(args, load_bundle(path), engine.samplerate)[0])


def run(args: argparse.Namespace) -> int:
    from liveshtr.bundle import load_bundle
    from liveshtr.errors import ConfigError
    from liveshtr.live.sinks import (
        FALLBACK_FILE,
        AudioDeviceError,
        DeviceSink,
        PacedSink,
        find_output_device,
        parse_sink,
    )

    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds {args.seconds}: must be more than 0")
    if args.channels is not None and not 1 <= args.channels <= 64:
        raise ConfigError(f"--channels {args.channels}: choose 1..64")
    if args.simulate_load_ms < 0:
        raise ConfigError("--simulate-load-ms must be >= 0")
    from liveshtr.live.sched import BACKGROUND_PRIORITY, make_realtime
    from liveshtr.live.setlist import MAX_MODELS

    options = check_surfaces(args)
    spec = parse_sink(args.sink)
    learn = check_learning(args)
    paths = [Path(m) for m in args.models] or [DEMO_MODEL]
    silent_start = learn is not None and not args.models  # nothing to play until the first model comes
    if len(paths) > 1 and args.controls is not None:
        raise ConfigError("--controls drives one model; give one MODEL with it")
    if len(paths) > 1 and args.scenes is not None:
        raise ConfigError("--scenes FILE keeps one model's scenes; in a set each keeps scenes.json beside its bundle")
    if len(paths) > MAX_MODELS:
        raise ConfigError(f"{len(paths)} models: a set holds at most {MAX_MODELS}")
    # The models first: a missing or damaged bundle is the error to report, not the sound card it would play on.
    bundles = [load_bundle(path) for path in paths]
    bundle = bundles[0]
    device, note = None, ""
    if spec.kind in ("device", "auto"):
        try:
            device = find_output_device(args.audio_device)
        except AudioDeviceError as exc:
            if spec.kind == "device" or args.audio_device is not None:
                raise
            FALLBACK_FILE.parent.mkdir(parents=True, exist_ok=True)
            spec = type(spec)("file", FALLBACK_FILE)
            reason = str(exc).split(";")[0]  # the cause, without the advice on alternatives
            note = f"{reason}, so --sink auto writes {FALLBACK_FILE} in real time instead"
    samplerate = args.samplerate or (device["samplerate"] if device else 48000)
    engine, used = build_engine(args, samplerate, bundle, simulate_load_ms=args.simulate_load_ms)
    setlist = make_setlist(args, engine, paths, bundles)
    if device is not None:
        channels = args.channels or min(2, device["channels"])
        sink = DeviceSink(engine, device, channels)
    else:
        channels = args.channels or 1
        sink = PacedSink(engine, spec.path, channels)

    provider = engine.generator.model.session.get_providers()[0]
    out, log = Terminal(), Terminal("stderr")
    if note:
        print(f"note: {note}", file=out)
    if args.device == "auto" and used == "cpu":
        print("note: --device auto: no usable CUDA GPU, running on the CPU", file=out)
    for i, b in enumerate(bundles):
        print(f"model     {describe_model(b)}" + (f"  [{i}]" if len(bundles) > 1 else ""), file=out)
    model = engine.generator.model
    print(f"provider  {provider} ({used}, {model.precision} weights, {model.threads} thread(s))", file=out)
    resampling = f", resampled from {engine.model_rate} Hz" if engine.resampler else ""
    print(
        f"audio     {sink.description}: {engine.samplerate} Hz{resampling}, block {engine.blocksize} "
        f"({engine.blocksize / engine.samplerate * 1000:.1f} ms), {channels} ch",
        file=out,
    )
    automation = f"automation from {args.controls}" if args.controls else "no automation file (--controls FILE)"
    # Before any other thread starts: each one started from here on takes the GIL at a real-time priority at least
    # (live.sched), so none can hold it while a busy machine preempts it.
    make_realtime(BACKGROUND_PRIORITY)
    recorder = start_recording(args, engine, used, setlist.models) if args.record is not None else None
    from liveshtr.control.surfaces import Surfaces
    from liveshtr.live.learner import Learning

    learning = Learning(setlist, args.learn_dir, args.learn_threads, args.learn_config)
    surfaces = Surfaces(options, setlist, recorder, learning)
    try:
        surfaces.open()
    except BaseException:
        if recorder is not None:
            recorder.stop()
        raise
    setlist.listeners.append(surfaces.switched)
    setlist.on_load.append(surfaces.prepare)
    learning.listeners += [lambda kind, said: say_learning(kind, said, out, log), surfaces.learned]
    for line in surfaces.describe():
        print(line, file=out)
    if silent_start:
        engine.params.set("gain", 0.0)
        print(f"learn     silent until the first model of {', '.join(p.name for p in learn)} comes in", file=out)

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        engine.start()
        engine_ms, output_ms = engine.latency_s * 1000, sink.latency_s * 1000
        print(
            f"latency   a control change leaves the engine within ~{engine_ms:.0f} ms (look-ahead "
            f"{engine.lookahead_ms:g} ms, raised by underruns up to {engine.max_fill / engine.samplerate * 1000:g} ms; "
            f"one hop, and {engine.generator.phase_delay} more for the phase; resampler), + output {output_ms:.1f} ms",
            file=out,
        )
        print(f"controls  {automation}; stop with Ctrl-C", file=out, flush=True)
        surfaces.start()
        sink.start()
        if learn is not None:
            learning.start([str(p) for p in learn], silent_start)
        next_status = args.status_every
        next_log = 0.0
        while not stop.is_set():
            stop.wait(0.05)
            played = engine.played_s
            if played >= next_log:  # malformed messages: logged at most once a second, with a count
                next_log = played + 1.0
                for line in surfaces.error_lines():
                    print(line, file=log, flush=True)
            if args.seconds is not None and played >= args.seconds:
                break
            if args.status_every and played >= next_status:
                next_status += args.status_every
                s = engine.summary()
                print(
                    f"{played:8.1f} s  underruns {s['underruns']}  device xruns {s['device_xruns']}  "
                    f"resets {s['resets']}  producer load {s['producer_load'] * 100:.1f}%  "
                    f"look-ahead {s['lookahead_ms']:g} ms{learning_status(learning)}",
                    file=out,
                    flush=True,
                )
    finally:
        surfaces.stop()
        sink.stop()
        engine.stop()
        if recorder is not None:
            recorder.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        end_learning(learning, out)
    summary = engine.summary()
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    summary["torch_loaded"] = "torch" in sys.modules
    summary["provider"] = provider
    summary["precision"] = model.precision
    summary.update(surfaces.summary())
    summary["learn"] = learning.state()
    if recorder is not None:
        summary["record"] = recorder.summary()
    if isinstance(sink, PacedSink):
        summary["sink_late"] = sink.late
    if getattr(sink, "error", ""):
        summary["sink_error"] = sink.error
    print(
        f"stopped   {summary['played_s']:.1f} s played, underruns {summary['underruns']}, device xruns "
        f"{summary['device_xruns']}, resets {summary['resets']}, producer errors {summary['producer_errors']}, "
        f"peak RSS {summary['peak_rss_mb']:.0f} MB",
        file=out,
    )
    if getattr(sink, "error", ""):
        print(f"liveshtr serve: error: {sink.error}", file=sys.stderr)
    if spec.kind == "file":
        print(f"wrote     {spec.path}", file=out)
    if recorder is not None:
        print(f"recorded  {recorder.folder} ({len(recorder.session['takes'])} take(s))", file=out)
    if args.stats_json is not None:
        args.stats_json.write_text(json.dumps(summary, indent=1))
    time.sleep(0)  # let print buffers flush before exit
    return 0
