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

from liveshtr.commands.common import DEMO_MODEL
from tests.helpers import CEILING, SAFE_LOOKAHEAD_MS, cli, one_line_error, serve_stats, start_serve


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
