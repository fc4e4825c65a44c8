"""Recording a set and replaying it: `serve --record` driven over OSC writes the output as played and every
control change; `render --replay` makes the same samples offline."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soundfile

from liveshtr.live.recorder import Tap, read_session
from tests.helpers import (
    ask,
    cli,
    message,
    midi_out,
    one_line_error,
    osc_port,
    replays_exactly,
    send,
    start_serve,
    wait_started,
)


def test_the_tap_never_waits_and_counts_what_it_loses():
    tap = Tap(4, 3)
    for k in range(5):
        tap.put(np.full(4, k, dtype=np.float32), float(k), k, dry=k == 1)
    assert tap.dropped == 2 and tap.written == 3
    audio, gains, numbers, dry = tap.take()
    assert audio.tolist() == [0.0] * 4 + [1.0] * 4 + [2.0] * 4 and gains.tolist() == [0.0, 1.0, 2.0]
    assert numbers.tolist() == [0, 1, 2] and dry.tolist() == [False, True, False]
    tap.put(np.full(4, 9, dtype=np.float32), 9.0, 5)
    audio, gains, numbers, dry = tap.take()
    assert audio.tolist() == [9.0] * 4 and gains.tolist() == [9.0] and numbers.tolist() == [5] and not dry.any()


def test_a_take_with_underruns_replays_sample_for_sample(tmp_path):
    # 15 ms of extra work per 10.7 ms hop: the producer cannot keep up and the callback runs dry again and again
    # while the take runs, with a control change among them.
    record = tmp_path / "sets"
    proc = start_serve(
        "--sink", "null", "--no-web", "--record", str(record), "--seed", "5", "--simulate-load-ms", "15",
        "--seconds", "4", "--status-every", "0",
    )  # fmt: skip
    try:
        port = osc_port(wait_started(proc))
        time.sleep(1.0)
        send(port, message("/liveshtr/temperature", 1.6))
        send(port, message("/liveshtr/gain", 0.7))
    finally:
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (session_dir,) = record.iterdir()
    session, events, blocks = read_session(session_dir)
    assert session["underruns"] > 10 and len(blocks.dry) == session["underruns"] and not blocks.lost
    assert "temperature" in {e.get("name") for e in events} and pytest.approx(0.7) in blocks.gains.values()
    replays_exactly(session_dir, tmp_path / "replay.wav")


def test_blocks_the_recorder_lost_are_named_and_the_rest_replays_exactly(tmp_path, monkeypatch):
    """A writer that falls behind (here: one that is not running while 300 blocks play into a tap of 200) loses
    blocks; the take stays on the set's timeline with silence there, and the replay says which blocks it has that
    the take has not."""
    from liveshtr.commands.common import DEMO_MODEL
    from liveshtr.live import recorder as recorder_module
    from liveshtr.live.engine import Engine

    engine = Engine(*demo_generator_and_params(seed=4))
    monkeypatch.setattr(recorder_module, "TAP_SECONDS", 200.5 * engine.blocksize / engine.samplerate)
    session = session_for(engine, DEMO_MODEL, seed=4)
    recorder = recorder_module.Recorder(tmp_path / "sets", engine, session)
    engine.attach_recorder(recorder)
    recorder.start_take()
    out = np.zeros((engine.blocksize, 1), dtype=np.float32)
    for i in range(500):
        if i != 50:  # one block runs dry too
            engine.fill()
        engine.callback(out, engine.blocksize, None, 0)
        if i in (20, 260, 400):
            recorder._drain()  # the writer looks at these blocks only: 221-260 are lost
    recorder.stop()
    assert engine.stats.underruns == 1 and recorder.lost == 40
    _, _, blocks = read_session(recorder.folder)
    assert blocks.dry == [50] and blocks.lost == [(221, 40)]
    result = cli("render", "--replay", str(recorder.folder), "-o", str(tmp_path / "replay.wav"))
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert "blocks 221-260 of the take" in note and "lost by the recorder" in note
    recorded, _ = soundfile.read(recorder.folder / "take-1.wav", dtype="int32")
    replayed, _ = soundfile.read(tmp_path / "replay.wav", dtype="int32")
    assert len(recorded) == len(replayed) == 500 * engine.blocksize
    lost = slice(221 * engine.blocksize, 261 * engine.blocksize)
    assert not recorded[lost].any() and replayed[lost].any()
    recorded[lost] = replayed[lost] = 0
    assert np.array_equal(recorded, replayed)


def demo_generator_and_params(seed: int):
    from liveshtr.bundle import load_bundle
    from liveshtr.commands.common import DEMO_MODEL
    from liveshtr.live.generator import Generator
    from liveshtr.live.params import Params

    bundle = load_bundle(DEMO_MODEL)
    return Generator(bundle, seed=seed), Params.for_bundle(bundle)


def session_for(engine, model, seed: int) -> dict:
    """The session.json fields `serve --record` writes for a single model."""
    from liveshtr.live.recorder import SESSION_FORMAT

    g = engine.generator
    return {
        "format": SESSION_FORMAT, "model": str(model.resolve()), "seed": seed, "samplerate": engine.samplerate,
        "blocksize": engine.blocksize, "model_rate": engine.model_rate, "hop": g.hop, "device": "cpu",
        "precision": g.model.precision, "threads": g.model.threads,
        "initial": engine.params.values(engine.initial_snapshot), "models": [], "automation": None,
    }  # fmt: skip


def test_a_set_driven_over_osc_replays_sample_for_sample(tmp_path):
    record = tmp_path / "sets"
    proc = start_serve(
        "--sink", f"file:{tmp_path / 'live.wav'}", "--no-web", "--record", str(record), "--seed", "7",
        "--lookahead-ms", "40", "--seconds", "9", "--status-every", "0",
    )  # fmt: skip
    try:
        port = osc_port(wait_started(proc))
        time.sleep(1.0)
        for address, value in (("/liveshtr/temperature", 1.8), ("/liveshtr/latent/0", 2.0), ("/liveshtr/mix", 0.5)):
            send(port, message(address, value))
            time.sleep(0.4)
        send(port, message("/liveshtr/gain", 0.4))
        time.sleep(0.3)
        send(port, message("/liveshtr/reset"))
        time.sleep(0.5)
        send(port, message("/liveshtr/prime", 0.2))
        assert ask(port, message("/liveshtr/record/stop")) == [("/liveshtr/record/stopped", [])]
        (error,) = ask(port, message("/liveshtr/record/stop"))
        assert error[0] == "/liveshtr/error" and "not recording" in error[1][1]
        time.sleep(0.5)
        ((started, _),) = ask(port, message("/liveshtr/record/start"))
        assert started == "/liveshtr/record/started"
        send(port, message("/liveshtr/gain", 1.0))
        send(port, message("/liveshtr/freeze", 1.0))
        time.sleep(1.0)
        send(port, message("/liveshtr/freeze", 0.0))
    finally:
        stdout, stderr = proc.communicate(timeout=60)  # it stops after --seconds
    assert proc.returncode == 0, stderr
    (session_dir,) = record.iterdir()
    assert "recorded" in stdout and str(session_dir) in stdout
    session, events, blocks = read_session(session_dir)
    assert [t["file"] for t in session["takes"]] == ["take-1.wav", "take-2.wav"]
    names = {e["name"] for e in events}
    assert {"temperature", "latent", "mix", "gain", "reset", "prime", "freeze"} <= names
    assert pytest.approx(0.4) in blocks.gains.values() and session["seed"] == 7  # OSC carries float32
    for take in (1, 2):
        recorded, rate = replays_exactly(session_dir, tmp_path / f"replay-{take}.wav", take)
        assert rate == 48000 and len(recorded) > 48000
    # the take is what was played: the live file's same stretch, as 24-bit
    live, _ = soundfile.read(tmp_path / "live.wav", dtype="float32")
    take1, _ = soundfile.read(session_dir / "take-1.wav", dtype="float32")
    assert np.abs(live[: len(take1)] - take1).max() < 2.0**-22


def test_replay_refuses_what_it_cannot_replay(tmp_path):
    wav = str(tmp_path / "x.wav")
    one_line_error(cli("render", "--replay", str(tmp_path / "none"), "-o", wav), "not a recorded session")
    session = tmp_path / "s"
    session.mkdir()
    (session / "session.json").write_text(json.dumps({"takes": [{"file": "take-1.wav", "first_block": 0}]}))
    (session / "controls.jsonl").write_text("")
    one_line_error(cli("render", "--replay", str(session), "-o", wav), "never closed")
    one_line_error(cli("render", "--replay", str(session), "--take", "3", "-o", wav), "1 take(s)")
    (session / "session.json").write_text("{")
    one_line_error(cli("render", "--replay", str(session), "-o", wav), "damaged")
    blocked = tmp_path / "file"
    blocked.write_text("")
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--record", str(blocked / "x")), "--record")
    (reply,) = [r for r in ask_without_recorder()]
    assert reply.address == "/liveshtr/error" and "--record" in reply.args[1]


def ask_without_recorder():
    from liveshtr.control.commands import Commands
    from liveshtr.control.osc_protocol import OscProtocol
    from liveshtr.live.params import Params

    return OscProtocol(Commands(Params(8))).handle("/liveshtr/record/start", [])


@pytest.mark.parametrize("line", ['{"hop": 3, "name": "mix", "value": 0.5}\n{"hop": 4, "na'])
def test_a_session_cut_short_by_a_crash_keeps_its_whole_lines(tmp_path, line):
    (tmp_path / "session.json").write_text(json.dumps({"takes": []}))
    (tmp_path / "controls.jsonl").write_text(line)
    _, events, _ = read_session(tmp_path)
    assert events == [{"hop": 3, "name": "mix", "value": 0.5}]


def test_a_set_played_through_jack_and_driven_by_midi_and_osc_replays_sample_for_sample(jack, tmp_path):
    record = tmp_path / "sets"
    proc = start_serve(
        "--audio-device", "system", "--no-web", "--midi", "--midi-api", "jack", "--record", str(record),
        "--seed", "3", "--lookahead-ms", "40", "--seconds", "8", "--status-every", "0", env=jack,
    )  # fmt: skip
    out = None
    try:
        port = osc_port(wait_started(proc))
        out = midi_out(jack)
        time.sleep(0.5)
        out.send_message([0xB0, 1, 90])  # the mod wheel: temperature
        time.sleep(0.4)
        send(port, message("/liveshtr/latent/1", -1.5))
        time.sleep(0.4)
        out.send_message([0xE0, 0, 100])  # the pitch wheel: latent 0
        out.send_message([0x90, 70, 100])  # a key: prime
        time.sleep(0.4)
        out.send_message([0xB0, 7, 80])  # volume: gain
        tick = 60.0 / 132.0 / 24  # a clock at 132 beats a minute: the tempo, then Start and three beats
        for i in range(100):
            if i == 30:
                out.send_message([0xFA])
            out.send_message([0xF8])
            time.sleep(tick)
        send(port, message("/liveshtr/freeze", 1.0))
    finally:
        if out is not None:
            out.close_port()
            out.delete()
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    (session_dir,) = record.iterdir()
    session, events, _ = read_session(session_dir)
    assert {"temperature", "latent", "prime", "gain", "freeze", "tempo"} <= {e.get("name") for e in events}
    assert len([e for e in events if "beat" in e]) >= 2  # the model's clock put on the band's beats
    recorded, _ = replays_exactly(session_dir, tmp_path / "replay.wav")
    assert len(recorded) > 6 * 48000
