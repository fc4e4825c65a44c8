"""Control latency: from an OSC datagram leaving the sender to the first output sample computed with it leaving the
audio callback, through a real audio device (the JACK dummy server in `scripts/control_latency.sh`).

It runs `serve`'s own parts in this process (engine, device sink, OSC and WebSocket servers, feedback thread) and
watches two places without changing them: every hop records which parameter snapshot it was made with and where its
first sample lands in the output stream (the resampler's delay and the hop the phase stage holds each frame
included); every callback records when it returned.
A probe sender sends `/liveshtr/temperature v` over UDP at --probe-hz with a new value each time, stamping the
moment before `sendto`. A probe's latency is the return time of the callback that played the first sample made
with its value, minus its send time. --flood N adds a second process sending N messages a second of other controls
(latent and target dimensions, mix) to the same port. --probe midi sends the probes as MIDI instead: controller 1
(the mod wheel, temperature in the default map) from a JACK MIDI output into `serve --midi`'s virtual input.
--switch-every S, given a set (MODEL MODEL ...), also sends `/liveshtr/model` every S seconds, round the set, each
with the default 2 s crossfade: what matters then is the underruns (the probes continue, but a switch brings the
new model's own temperature, so a probe or two around each switch can be matched to the wrong hop). --learn SONG
trains beside the set as `serve --learn` does, from the start, and probes until the training has ended (or
--seconds): when each model came in, and the underruns while it trained.

    .venv/bin/python scripts/control_latency.py --seconds 30 [--flood 5000] [--probe midi] [serve's flags: ...]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

STARTED = time.monotonic()  # about when the command was given (the imports below take a second)
STARTED_UNIX = time.time()  # the same moment on the wall clock, to line the run up with system counters

from liveshtr.bundle import load_bundle  # noqa: E402
from liveshtr.commands import serve  # noqa: E402
from liveshtr.commands.common import DEMO_MODEL, build_engine  # noqa: E402
from liveshtr.control.surfaces import Surfaces  # noqa: E402
from liveshtr.live.sinks import DeviceSink, find_output_device  # noqa: E402

LATE_HOP_S = 0.010  # a hop this long is listed with when it began (a hop takes 1-3 ms on two cores)

FLOODER = """
import random, socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
port, rate, latent = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def dgram(address, value):
    b = OscMessageBuilder(address); b.add_arg(value); return b.build().dgram
rng = random.Random(1)
names = [f"/liveshtr/latent/{i}" for i in range(latent)] + [f"/liveshtr/target/{i}" for i in range(latent)]
names.append("/liveshtr/mix")
pool = [dgram(rng.choice(names), rng.uniform(0, 1)) for _ in range(4096)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
batch, sent, start = max(1, int(rate / 200)), 0, time.monotonic()
while True:
    for _ in range(batch):
        s.sendto(pool[sent % len(pool)], ("127.0.0.1", port)); sent += 1
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
"""


def message(address: str, value: float) -> bytes:
    builder = OscMessageBuilder(address)
    builder.add_arg(value)
    return builder.build().dgram


def model_message(n: int, models: int) -> bytes:
    """The n-th switch: round the set, from model 0."""
    builder = OscMessageBuilder("/liveshtr/model")
    builder.add_arg(n % models)
    return builder.build().dgram


def midi_probe(port_name: str):
    """A JACK MIDI output connected to `serve`'s virtual input."""
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="liveshtr-probe")
    index = next(i for i, p in enumerate(out.get_ports()) if p.endswith(port_name))
    out.open_port(index, "probe")
    time.sleep(0.5)  # connected on JACK's next cycle
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    serve.add_arguments(p)
    p.add_argument("--probe-hz", type=float, default=20.0, help="probe messages per second")
    p.add_argument("--flood", type=float, default=0.0, help="other OSC messages per second from a second process")
    p.add_argument("--json", type=str, default=None, help="also write the results to this file")
    p.add_argument("--probe", choices=("osc", "midi"), default="osc", help="how the probes travel")
    p.add_argument("--switch-every", type=float, default=0.0, help="switch the set's model every S seconds")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (7200.0 if args.learn else 30.0)
    if args.probe == "midi":
        args.midi = "" if args.midi is None else args.midi  # serve's virtual input, through JACK
        args.midi_api = "jack"

    device = find_output_device(args.audio_device)
    paths = [Path(m) for m in args.models] or [DEMO_MODEL]
    bundles = [load_bundle(path) for path in paths]
    engine, _ = build_engine(args, args.samplerate or device["samplerate"], bundles[0])
    setlist = serve.make_setlist(args, engine, paths, bundles)
    from liveshtr.live.learner import Learning

    learning = Learning(setlist, args.learn_dir, args.learn_threads, args.learn_config)
    heard: list[dict] = []  # what the training said, with when (seconds since the command)

    def hear(kind: str, payload: dict) -> None:
        if kind in ("ready", "line"):
            heard.append({"at_s": round(time.monotonic() - STARTED, 2), "kind": kind, **payload})
            if kind == "line":
                print(f"{heard[-1]['at_s']:8.1f} s  learn  {payload['text']}", file=sys.stderr, flush=True)

    learning.listeners.append(hear)
    surfaces = Surfaces(serve.check_surfaces(args), setlist, learning=learning)

    # Where each hop's first sample lands, and which snapshot made it (read back after the run).
    ratio = engine.samplerate / engine.model_rate
    hop = engine.generator.hop
    # the resampler's delay, and the hop the phase stage holds each frame before it is heard
    delay = (engine.resampler.delay if engine.resampler is not None else 0) + round(
        engine.generator.phase_delay * hop * ratio
    )
    hop_marks: list[tuple[int, np.ndarray, float]] = []
    hop_times: list[float] = []  # how long each hop took to make (GIL waits included)
    late_hops: list[tuple[float, float]] = []  # (seconds since the command, ms) of each hop over LATE_HOP_S
    produce = engine.produce_hop

    def traced_hop() -> int:
        position = round(engine.stats.hops * hop * ratio) + delay
        started = time.monotonic()
        n = produce()
        hop_marks.append((position, engine.voice._snap, time.monotonic()))
        hop_times.append(hop_marks[-1][2] - started)
        if hop_times[-1] > LATE_HOP_S:
            late_hops.append((round(started - STARTED, 3), round(hop_times[-1] * 1000, 1)))
        return n

    engine.produce_hop = traced_hop
    returned = np.zeros(int(args.seconds * engine.samplerate / engine.blocksize) + 4096)
    callback = engine.callback

    underrun_at: list[float] = []  # when each underrun played (seconds of output)
    underrun_since: list[float] = []  # and when it happened (seconds since the command)

    def traced_callback(outdata, frames, time_info, status) -> None:
        read, underruns = engine.ring._read, engine.stats.underruns
        callback(outdata, frames, time_info, status)
        if engine.stats.underruns != underruns:
            underrun_at.append(engine.played_s)
            underrun_since.append(round(time.monotonic() - STARTED, 3))
        if engine.ring._read != read:  # a block of the stream was played (not an underrun's silence)
            returned[(engine.ring._read // engine.blocksize - 1) % len(returned)] = time.monotonic()

    engine.callback = traced_callback
    sink = DeviceSink(engine, device, min(2, device["channels"]))

    surfaces.open()
    setlist.listeners.append(surfaces.switched)
    setlist.on_load.append(surfaces.prepare)
    # The probe's own JACK client joins the graph before the audio starts: a client that activates while the
    # stream runs makes JACK reorder its graph, and that first cycle runs late (an underrun at 0.02 s, which then
    # holds the look-ahead a block higher for the whole run).
    midi = midi_probe(surfaces.midi.name) if args.probe == "midi" else None
    engine.start()
    surfaces.start()
    sink.start()
    port = surfaces.osc.port
    flooder = None
    if args.flood:
        flooder = subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(port), str(args.flood), str(engine.generator.bundle.latent_dim)]
        )
    if args.learn:
        learning.start(args.learn, silent_start=not args.models)
    switch_times: list[float] = []  # when each switch was taken (seconds since the command)
    probes: list[tuple[float, float]] = []  # (value, send time)
    switched: list[float] = []  # when each switch was asked for (seconds of output)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    temperature = engine.params.slots["temperature"].start
    high = engine.params.table["temperature"].high
    try:
        time.sleep(1.0)  # settle
        i = 0
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            if engine.switches > len(switch_times):
                switch_times.append(round(time.monotonic() - STARTED, 2))
            if args.learn and learning.learner.ended.is_set():
                break
            if midi is not None:
                cc = 20 + i % 100  # the mod wheel: temperature = cc / 127 * 4
                sent = time.monotonic()
                midi.send_message([0xB0, 1, cc])
                probes.append((cc / 127 * high, sent))
            else:
                value = round(0.5 + (i % 100) * 0.01, 2)
                data = message("/liveshtr/temperature", value)
                sent = time.monotonic()
                sender.sendto(data, ("127.0.0.1", port))
                probes.append((float(np.float32(value)), sent))  # OSC carries float32
            i += 1
            if args.switch_every and i % max(1, round(args.switch_every * args.probe_hz)) == 0:
                switched.append(engine.played_s)
                sender.sendto(model_message(len(switched), len(setlist.models)), ("127.0.0.1", port))
            time.sleep(max(0.0, started + i / args.probe_hz - time.monotonic()))
        time.sleep(0.5)
    finally:
        if flooder is not None:
            flooder.terminate()  # by its PID
            flooder.wait()
        if midi is not None:
            midi.close_port()
        sink.stop()
        surfaces.stop()
        engine.stop()
        sender.close()
        learning.close()

    # A probe has been applied once a hop's snapshot no longer holds the previous probe's value (a later probe's
    # value counts too: two probes can land between hops while the ring is full). Match each probe with that hop.
    latencies = []
    missed = 0
    same = (lambda a, b: a == b) if midi is None else (lambda a, b: abs(a - b) < 1e-9)
    mark = 0
    played = engine.ring._read // engine.blocksize
    previous = float(np.float32(engine.params.table["temperature"].default))
    for value, sent in probes:
        while mark < len(hop_marks) and (
            hop_marks[mark][2] < sent or same(float(hop_marks[mark][1][temperature]), previous)
        ):
            mark += 1
        previous = value
        if mark == len(hop_marks):
            missed += 1
            continue
        block = hop_marks[mark][0] // engine.blocksize
        if block >= played:
            missed += 1  # made, never played (the run ended)
            continue
        latencies.append(((returned[block % len(returned)] - sent) * 1000, sent))
    ms = np.array([latency for latency, _ in latencies])
    # Around a switch a probe can be matched to the wrong hop (the new model brings its own temperature): the
    # figures without the probes sent from 2 s before a switch was taken to 4 s after.
    taken = [STARTED + t for t in switch_times]
    clear = np.array([lat for lat, sent in latencies if not any(t - 2.0 <= sent <= t + 4.0 for t in taken)])
    s = engine.summary()
    result = {
        "probes": len(probes),
        "matched": len(ms),
        "missed": missed,
        "median_ms": round(float(np.median(ms)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "min_ms": round(float(ms.min()), 2),
        "away_from_switches": {
            "probes": len(clear),
            "median_ms": round(float(np.median(clear)), 2) if len(clear) else None,
            "p99_ms": round(float(np.percentile(clear, 99)), 2) if len(clear) else None,
        },
        "probe": args.probe,
        "flood_per_s": args.flood,
        "osc_received": surfaces.osc.received,
        "osc_errors": surfaces.osc.protocol.errors,
        "lookahead_ms": engine.lookahead_ms,
        "lookahead_ms_at_end": s["lookahead_ms"],
        "engine_latency_ms": round(engine.latency_s * 1000, 2),
        "samplerate": engine.samplerate,
        "blocksize": engine.blocksize,
        "underruns": s["underruns"],
        "device_xruns": s["device_xruns"],
        "producer_load": s["producer_load"],
        "hop_ms_median": round(float(np.median(hop_times)) * 1000, 3),
        "hop_ms_p99": round(float(np.percentile(hop_times, 99)) * 1000, 3),
        "hop_ms_max": round(float(np.max(hop_times)) * 1000, 3),
        "producer_realtime": engine.realtime,
        "played_s": s["played_s"],
        "models": len(setlist.models),
        "switches_asked": len(switched),
        "switches": s["switches"],
        "switch_asked_at_s": [round(t, 2) for t in switched],
        "underrun_at_s": [round(t, 2) for t in underrun_at],
        "started_unix": round(STARTED_UNIX, 3),
        "underrun_since_start_s": underrun_since,
        "late_hops": late_hops,
        "learn": learning.state(),
        "learn_heard": heard,
        "switch_taken_at_s": switch_times,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
