"""serve, render, bench and devices from the command line, with a real JACK server (dummy driver) as the clock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liveshtr.bundle import load_bundle
from liveshtr.commands.common import DEMO_MODEL
from tests.helpers import (
    CEILING,
    SAFE_LOOKAHEAD_MS,
    ask,
    cli,
    message,
    one_line_error,
    osc_port,
    serve_stats,
    shared_song,
    start_serve,
    stop_serve,
    wait_started,
)


def test_serve_plays_the_demo_through_jack_for_20_seconds(jack, tmp_path):
    # The tests share two cores with a non-real-time JACK server, so they ask for the look-ahead the adaptive default
    # rises to after a glitch; test_each_underrun_raises_the_look_ahead_one_block_up_to_its_ceiling covers that.
    stats, result = serve_stats(
        tmp_path, "--audio-device", "system", "--seconds", "20", "--lookahead-ms", SAFE_LOOKAHEAD_MS, env=jack
    )
    assert "JACK" in result.stdout and "48000 Hz" in result.stdout
    for line in ("model", "provider", "audio", "latency", "controls"):
        assert any(out.startswith(line) for out in result.stdout.splitlines()), line
    assert stats["played_s"] >= 20.0
    assert stats["underruns"] == 0
    assert stats["non_finite_blocks"] == 0 and stats["callback_errors"] == 0 and stats["producer_errors"] == 0
    assert 0.0 < stats["output_peak"] <= CEILING
    assert stats["output_rms_db"] > -40  # not silent
    assert stats["torch_loaded"] is False  # the serving path never imports torch


def test_overloaded_producer_counts_underruns_and_the_stream_survives(jack, tmp_path):
    # 15 ms of extra work per 10.7 ms hop: the producer cannot keep up, on purpose.
    stats, _ = serve_stats(tmp_path, "--audio-device", "system", "--seconds", "6", "--simulate-load-ms", "15", env=jack)
    assert stats["played_s"] >= 6.0
    assert stats["underruns"] > 10
    assert stats["underruns"] < stats["played_s"] * 48000 / 256  # it still plays between underruns
    assert stats["lookahead_ms"] == 40.0  # every underrun raised the look-ahead a block, up to its ceiling
    assert stats["non_finite_blocks"] == 0 and stats["callback_errors"] == 0
    assert stats["output_peak"] <= CEILING and stats["output_rms_db"] > -60


def test_devices_lists_the_jack_output(jack):
    result = cli("devices", "--json", env=jack)
    assert result.returncode == 0, result.stderr
    devices = json.loads(result.stdout)["audio"]
    assert any(d["name"] == "system" and d["hostapi"].startswith("JACK") for d in devices)


def test_device_errors_are_one_line(jack, tmp_path):
    one_line_error(cli("serve", "--audio-device", "no-such-card", "--seconds", "1", env=jack), "no-such-card")
    one_line_error(
        cli("serve", "--audio-device", "system", "--samplerate", "22050", "--seconds", "1", env=jack), "22050"
    )


def test_serve_stops_cleanly_on_sigterm_and_keeps_the_file(tmp_path):
    out = tmp_path / "live.wav"
    proc = start_serve("--sink", f"file:{out}")
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "stopped" in stdout
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 48000 and len(audio) > rate  # a complete, readable file
    assert np.isfinite(audio).all() and np.abs(audio).max() <= CEILING


def test_render_is_byte_identical_for_a_seed_and_equals_what_serve_plays(tmp_path):
    a, b, live = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "live.wav"
    for path in (a, b):
        result = cli(
            "render", str(DEMO_MODEL), "-o", str(path), "--seconds", "8", "--seed", "7", "--temperature", "1.3"
        )
        assert result.returncode == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    # A generous look-ahead: the comparison needs every block on time even on a busy CI machine (the look-ahead
    # changes when hops are made, not what they are).
    stats, _ = serve_stats(
        tmp_path,
        "--sink",
        f"file:{live}",
        "--seconds",
        "8",
        "--seed",
        "7",
        "--temperature",
        "1.3",
        "--lookahead-ms",
        "400",
    )
    assert stats["underruns"] == 0
    rendered, _ = sf.read(a, dtype="float32")
    played, _ = sf.read(live, dtype="float32")
    assert len(rendered) == 8 * 48000 and len(played) >= len(rendered)
    assert np.array_equal(played[: len(rendered)], rendered)
    other = tmp_path / "other.wav"
    assert cli("render", str(DEMO_MODEL), "-o", str(other), "--seconds", "8", "--seed", "8").returncode == 0
    assert other.read_bytes() != a.read_bytes()


def test_render_follows_an_automation_file(tmp_path):
    controls = tmp_path / "set.jsonl"
    controls.write_text('{"time": 2.0, "name": "gain", "value": 0}\n')
    out = tmp_path / "auto.wav"
    result = cli("render", str(DEMO_MODEL), "-o", str(out), "--seconds", "4", "--controls", str(controls))
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(out, dtype="float32")
    assert np.sqrt(np.mean(audio[:rate] ** 2)) > 0.01
    assert np.all(audio[int(2.1 * rate) :] == 0.0)


def test_bad_input_is_one_clear_line(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(DEMO_MODEL, broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes()[:1000])
    future = tmp_path / "future"
    shutil.copytree(DEMO_MODEL, future)
    meta = json.loads((future / "model.json").read_text())
    (future / "model.json").write_text(json.dumps(dict(meta, format_version=99)))
    wav = str(tmp_path / "x.wav")
    one_line_error(cli("render", str(tmp_path / "missing"), "-o", wav, "--seconds", "1"), "no such model folder")
    one_line_error(cli("render", str(broken), "-o", wav, "--seconds", "1"), "model.onnx does not match")
    one_line_error(cli("render", str(future), "-o", wav, "--seconds", "1"), "format version 99")
    one_line_error(cli("render", str(DEMO_MODEL), "-o", wav, "--samplerate", "1000"), "--samplerate")
    one_line_error(cli("render", str(DEMO_MODEL), "-o", wav, "--blocksize", "0"), "--blocksize")
    one_line_error(cli("render", str(DEMO_MODEL), "-o", wav, "--latent", *["1"] * 20), "latent dimensions")
    one_line_error(cli("render", str(DEMO_MODEL), "-o", str(tmp_path / "no" / "x.wav")), "does not exist")
    bad_controls = tmp_path / "bad.jsonl"
    bad_controls.write_text('{"time": 1, "name": "volume", "value": 1}\n')
    one_line_error(cli("render", str(DEMO_MODEL), "-o", wav, "--controls", str(bad_controls)), "bad.jsonl:1")
    one_line_error(cli("serve", "--sink", "speakers"), "--sink")
    one_line_error(cli("serve", "--sink", "null", "--lookahead-ms", "-5"), "--lookahead-ms")
    assert not Path(wav).exists()  # nothing half-written


def test_cuda_request_fails_clearly_without_a_gpu_and_auto_falls_back(tmp_path):
    result = cli("render", str(DEMO_MODEL), "-o", str(tmp_path / "x.wav"), "--seconds", "1", "--device", "cuda")
    if result.returncode == 0:
        pytest.skip("this machine has a usable CUDA GPU")  # the GPU path is measured with `liveshtr bench`
    one_line_error(result, "--device cuda")
    assert "Failed to load" not in result.stdout  # looking for pip's CUDA libraries is quiet; the error says it
    stats, out = serve_stats(tmp_path, "--sink", "null", "--seconds", "2", "--device", "auto")
    assert "running on the CPU" in out.stdout and stats["provider"] == "CPUExecutionProvider"
    assert "Failed to load" not in out.stdout


def test_no_sound_card_names_the_alternatives_and_auto_writes_a_file(tmp_path):
    env = dict(os.environ, JACK_DEFAULT_SERVER="liveshtr-no-such-server", JACK_NO_START_SERVER="1")
    result = cli("serve", "--seconds", "1", env=env)
    one_line_error(result, "--sink file:PATH", "--sink null")
    stats, out = serve_stats(tmp_path, "--sink", "auto", "--seconds", "2", env=env, cwd=tmp_path)
    assert "writes out/serve.wav" in out.stdout and stats["played_s"] >= 2.0
    assert sf.info(tmp_path / "out" / "serve.wav").duration >= 2.0
    # Without a sound card, a missing model is still the error: it is named before any device is looked for.
    one_line_error(cli("serve", str(tmp_path / "no-such-model"), "--seconds", "1", env=env), "no such model folder")


def test_bench_reports_step_engine_and_render(tmp_path):
    result = cli("bench", str(DEMO_MODEL), "--json", "--steps", "300", "--render-seconds", "5")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("step_iobinding", "step_plain_run", "engine_per_hop", "torch_eager_step"):
        assert report[key]["median_us"] > 0 and report[key]["p99_us"] >= report[key]["median_us"], key
    assert report["realtime_factor"] > 1 and report["render_x_realtime_at_48000"] > 1
    assert report["engine_over_step"] >= 1.0


def test_a_closed_terminal_does_not_stop_the_music(tmp_path):
    """Status lines into a pipe nobody reads any more (a closed terminal, `| head`): serve plays on to the end."""
    stats = tmp_path / "stats.json"
    proc = start_serve(
        "--sink", "null", "--seconds", "3", "--status-every", "0.2", "--stats-json", str(stats), text=False
    )
    proc.stdout.close()  # the reader goes away before the first line
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    assert json.loads(stats.read_text())["played_s"] >= 3.0


class Subscriber:
    """An OSC client subscribed to serve's feedback: every message it got, in order, read on a thread."""

    def __init__(self, port: int):
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.got: list[tuple[str, list]] = []
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.sock.sendto(message("/liveshtr/subscribe"), ("127.0.0.1", port))

    def _read(self) -> None:
        from pythonosc.osc_packet import OscPacket

        while self.running:
            try:
                packet = OscPacket(self.sock.recv(65535))
            except TimeoutError:
                continue
            self.got += [(m.message.address, list(m.message.params)) for m in packet.messages]

    def wait(self, what, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [args for address, args in list(self.got) if what(address, args)]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"not heard in {timeout} s: {[a for a, _ in self.got if 'telemetry' not in a][-20:]}")

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def status_of(path: Path, key: str) -> str:
    """One field of a /proc status file (a process's or one of its threads')."""
    return next(
        line.split(":", 1)[1].strip() for line in (path / "status").read_text().splitlines() if line.startswith(key)
    )


def trainer_pids(serve_pid: int) -> list[int]:
    """The processes serve started (its trainers), from the kernel's list of each of its threads' children."""
    pids = []
    for task in Path(f"/proc/{serve_pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def test_serve_learns_a_song_while_the_set_plays_and_a_killed_trainer_leaves_it_playing(jack, tmp_path):
    """`serve --learn` end to end through JACK with the real trainer (a small model, one epoch): a first model
    from training crossfades in, then the final one; progress reaches OSC subscribers; a second training started
    over OSC and killed as the kernel's out-of-memory killer would is one error line, and the set plays on."""
    loop = tmp_path / "loop.wav"
    with sf.SoundFile(shared_song("electronic_happy_song_maddirtmonkey.mp3")) as f:
        f.seek(30 * f.samplerate)
        sf.write(loop, f.read(4 * f.samplerate), f.samplerate)
    settings = tmp_path / "small.toml"
    settings.write_text("epochs = 1\nhidden = 64\nlayers = 1\n")
    models, stats = tmp_path / "models", tmp_path / "stats.json"
    proc = start_serve(
        *("--audio-device", "system", "--no-web", "--lookahead-ms", SAFE_LOOKAHEAD_MS, "--stats-json", str(stats)),
        *("--learn", str(loop), "--learn-dir", str(models), "--learn-config", str(settings)),
        env=jack,
    )
    subscriber = None
    try:
        lines = wait_started(proc)
        subscriber = Subscriber(osc_port(lines))
        first = subscriber.wait(lambda a, args: a == "/liveshtr/learn/ready", 120)[0]
        assert first[1] == "loop-01"  # the first model, exported while training went on
        (trainer,) = [Path(f"/proc/{pid}") for pid in trainer_pids(proc.pid)]
        assert status_of(trainer, "THP_enabled") == "0"  # no huge pages for khugepaged to merge beside the engine
        if len(os.sched_getaffinity(0)) > 1:  # serve's threads on the engine's core, the trainer on the others
            serving = {status_of(task, "Cpus_allowed_list") for task in Path(f"/proc/{proc.pid}/task").iterdir()}
            assert len(serving) == 1 and serving.isdisjoint({status_of(trainer, "Cpus_allowed_list")}), serving
        assert subscriber.wait(lambda a, args: a == "/liveshtr/model" and args[1] == "loop-01", 30)
        progress = subscriber.wait(lambda a, args: a == "/liveshtr/learn/progress" and args[0] == "training", 5)
        assert progress[-1][2] == 1  # epochs
        subscriber.wait(lambda a, args: a == "/liveshtr/learn/progress" and args[0] == "done", 240)
        ready = subscriber.wait(lambda a, args: a == "/liveshtr/learn/ready", 1)
        assert [r[1] for r in ready] == ["loop-01", "loop"]  # then the final model, the folder's own bundle
        subscriber.wait(lambda a, args: a == "/liveshtr/model" and args[1] == "loop", 30)
        assert load_bundle(models / "loop").meta["training"]["epochs_done"] == 1
        assert load_bundle(models / "loop" / "stages" / "loop-01").meta["name"] == "loop-01"

        replies = ask(osc_port(lines), message("/liveshtr/learn", str(loop)))
        assert replies[0] == ("/liveshtr/learn/started", [str(models / "loop-2")]), replies
        subscriber.wait(lambda a, args: a == "/liveshtr/learn/progress" and args[0] in ("reading", "training"), 60)
        (pid,) = trainer_pids(proc.pid)
        os.kill(pid, signal.SIGKILL)
        subscriber.wait(lambda a, args: a == "/liveshtr/learn/progress" and args[0] == "failed", 30)
        played = subscriber.wait(lambda a, args: a == "/liveshtr/telemetry", 1)[-1][0]
        subscriber.wait(lambda a, args: a == "/liveshtr/telemetry" and args[0] > played + 2, 10)  # plays on
    finally:
        if subscriber is not None:
            subscriber.close()
        assert stop_serve(proc) == 0
    out, err = proc.stdout.read(), proc.stderr.read()
    assert lines["learn"] == "silent until the first model of loop.wav comes in"
    assert "learn     model 1 ready after" in out and "learn     the final model ready after" in out
    (killed,) = [line for line in err.splitlines() if line.startswith("learn     error:")]
    assert "the trainer was killed by SIGKILL" in killed and "the set plays on with loop" in killed, err
    summary = json.loads(stats.read_text())
    assert summary["switches"] == 2 and summary["producer_errors"] == 0 and not summary["torch_loaded"]
    assert summary["learn"]["stage"] == "failed"
