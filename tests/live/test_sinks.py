"""The --sink forms, and the paced sinks' clock: one callback a block period, in real time, to a file or nowhere.

The clock runs on a loaded machine: rates are asserted within generous bounds, never exact timings.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liveshtr.errors import LiveshtrError
from liveshtr.live.sinks import LATE, STALL_BLOCKS, PacedSink, SinkSpec, parse_sink

RATE, BLOCK = 16000, 256
PERIOD = BLOCK / RATE  # 16 ms


class FakeEngine:
    """What a sink needs of the engine: its block size, its rate and its callback. Each block gets fresh random
    samples, kept for comparison with what the sink wrote."""

    def __init__(self, blocksize=BLOCK, samplerate=RATE, stall_at=None, stall_s=0.0):
        self.blocksize, self.samplerate = blocksize, samplerate
        self.stall_at, self.stall_s = stall_at, stall_s
        self.blocks: list[np.ndarray] = []
        self.statuses: list = []
        self.shapes: set = set()
        self.rng = np.random.default_rng(0)

    def callback(self, outdata, frames, time_info, status):
        assert frames == self.blocksize and time_info is None
        self.shapes.add((outdata.shape, outdata.dtype))
        outdata[:] = self.rng.uniform(-0.9, 0.9, outdata.shape)
        self.blocks.append(outdata.copy())
        self.statuses.append(status)
        if len(self.blocks) == self.stall_at:
            time.sleep(self.stall_s)  # the clock thread itself held up


def play(sink: PacedSink, seconds: float) -> float:
    """Run the sink for about `seconds`; returns the time it really ran."""
    start = time.perf_counter()
    sink.start()
    time.sleep(seconds)
    sink.stop()
    return time.perf_counter() - start


def test_parse_sink_accepts_every_form(tmp_path, monkeypatch):
    for kind in ("device", "null", "auto"):
        assert parse_sink(kind) == SinkSpec(kind)
    assert parse_sink(f"file:{tmp_path}/set.wav") == SinkSpec("file", tmp_path / "set.wav")
    assert parse_sink(f"file:{tmp_path}/set.flac") == SinkSpec("file", tmp_path / "set.flac")
    assert parse_sink(f"file:{tmp_path}/SET.WAV").path == tmp_path / "SET.WAV"
    monkeypatch.chdir(tmp_path)
    assert parse_sink("file:here.wav") == SinkSpec("file", Path("here.wav"))  # the current folder exists
    assert parse_sink("file:C:take.wav").path == Path("C:take.wav")  # only the first colon separates


@pytest.mark.parametrize(
    "text, message",
    [
        ("file:", "--sink file:PATH needs a path, e.g. --sink file:out/set.wav"),
        ("file:set.mp3", "--sink file:set.mp3: write a .wav or .flac file"),
        ("file:set", "--sink file:set: write a .wav or .flac file"),
        ("file:/no/such/folder/set.wav", "--sink file:/no/such/folder/set.wav: folder /no/such/folder does not exist"),
        ("speakers", "--sink 'speakers': use device, auto, null or file:PATH"),
        ("", "--sink '': use device, auto, null or file:PATH"),
        ("null:x", "--sink 'null:x': use device, auto, null or file:PATH"),
        ("device:2", "--sink 'device:2': use device, auto, null or file:PATH"),
        ("FILE:set.wav", "--sink 'FILE:set.wav': use device, auto, null or file:PATH"),
    ],
)
def test_parse_sink_refuses_with_one_clear_line(text, message):
    with pytest.raises(LiveshtrError) as info:
        parse_sink(text)
    assert str(info.value) == message


def test_a_file_path_whose_folder_is_a_file_is_refused(tmp_path):
    (tmp_path / "notes").write_text("")
    with pytest.raises(LiveshtrError, match="folder .*notes does not exist"):
        parse_sink(f"file:{tmp_path}/notes/set.wav")


def test_null_sink_calls_the_callback_once_per_block_period():
    engine = FakeEngine()
    sink = PacedSink(engine, None, channels=2)
    assert sink.description == "null (real-time paced, discarded)"
    assert sink.latency_s == PERIOD
    elapsed = play(sink, 0.6)
    calls = len(engine.blocks)
    expected = elapsed / PERIOD
    assert 0.7 * expected <= calls <= 1.3 * expected + 1, (calls, expected)
    assert engine.shapes == {((BLOCK, 2), np.dtype(np.float32))}
    assert sink.error == ""


def test_the_rate_follows_the_block_period():
    """A block twice as long is called half as often: the clock paces by blocksize / samplerate."""
    short, long = FakeEngine(blocksize=128), FakeEngine(blocksize=512)
    elapsed_short, elapsed_long = play(PacedSink(short, None), 0.5), play(PacedSink(long, None), 0.5)
    rate_short = len(short.blocks) / elapsed_short
    rate_long = len(long.blocks) / elapsed_long
    assert 0.7 * RATE / 128 <= rate_short <= 1.3 * RATE / 128, rate_short
    assert 0.7 * RATE / 512 <= rate_long <= 1.3 * RATE / 512, rate_long


def test_file_sink_writes_exactly_the_blocks_the_callback_produced(tmp_path):
    path = tmp_path / "set.wav"
    engine = FakeEngine()
    sink = PacedSink(engine, path, channels=2)
    assert sink.description == f"file {path} (real-time paced)"
    play(sink, 0.4)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 2, "PCM_24")
    written, _ = sf.read(path, dtype="float64", always_2d=True)
    played = np.concatenate(engine.blocks)
    assert len(engine.blocks) >= 10
    assert written.shape == played.shape  # every block played is written, and nothing else
    assert np.abs(written - played).max() <= 2**-22
    assert sink.error == ""


def test_a_flac_file_sink_holds_the_same_audio(tmp_path):
    path = tmp_path / "set.flac"
    engine = FakeEngine()
    play(PacedSink(engine, path), 0.2)
    written, rate = sf.read(path, dtype="float64", always_2d=True)
    assert rate == RATE
    np.testing.assert_allclose(written, np.concatenate(engine.blocks), atol=2**-22, rtol=0)


def test_an_unwritable_file_is_a_one_line_error_and_starts_no_clock(tmp_path):
    engine = FakeEngine()
    path = tmp_path / "gone" / "set.wav"
    sink = PacedSink(engine, path)
    before = threading.active_count()
    with pytest.raises(LiveshtrError) as info:
        sink.start()
    message = str(info.value)
    assert message.startswith(f"--sink file:{path}: cannot write it (") and "\n" not in message
    assert threading.active_count() == before and engine.blocks == []
    sink.stop()  # stopping a sink that never started is harmless
    assert not path.exists()


def test_stop_joins_the_clock_thread_and_no_callback_follows():
    engine = FakeEngine()
    sink = PacedSink(engine, None)
    sink.start()
    time.sleep(0.1)
    assert any(t.name == "liveshtr-clock" for t in threading.enumerate())
    sink.stop()
    assert not any(t.name == "liveshtr-clock" for t in threading.enumerate())
    calls = len(engine.blocks)
    time.sleep(3 * PERIOD)
    assert len(engine.blocks) == calls


def test_a_stalled_clock_skips_ahead_and_reports_the_underflow():
    """When the clock thread itself is held up for more than STALL_BLOCKS periods, a sound card would have skipped
    the lost time: the sink counts a late wake-up, resumes from now (it does not play the lost blocks back to
    back) and passes the next callback PortAudio's underflow flag."""
    stall_s = 0.3  # about 19 periods
    engine = FakeEngine(stall_at=5, stall_s=stall_s)
    sink = PacedSink(engine, None)
    elapsed = play(sink, 0.7)
    assert stall_s > STALL_BLOCKS * PERIOD
    assert sink.late >= 1
    status = engine.statuses[5]  # the callback right after the stalled one
    assert status is LATE and bool(status) and status.output_underflow
    assert engine.statuses[0] == 0  # a normal block's status is 0, as PortAudio's
    calls, paced = len(engine.blocks), elapsed / PERIOD
    lost = stall_s / PERIOD
    assert calls <= paced - 0.5 * lost, (calls, paced, lost)  # caught up would be about `paced`
    assert calls >= 0.6 * (paced - lost), (calls, paced, lost)


def test_a_short_delay_is_caught_up_without_an_underflow():
    """A clock held up for less than STALL_BLOCKS periods plays the missed blocks at once, keeping time: no
    underflow is reported for it (a device's buffer covers that much)."""
    stall_s = 3 * PERIOD  # late by more than a period (counted), less than STALL_BLOCKS (no skip)
    engine = FakeEngine(stall_at=5, stall_s=stall_s)
    sink = PacedSink(engine, None)
    elapsed = play(sink, 0.6)
    assert sink.late >= 1
    assert engine.statuses[5] == 0
    calls, paced = len(engine.blocks), elapsed / PERIOD
    assert calls >= 0.85 * paced, (calls, paced)


FULL_DISK = """
import resource, signal, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_sinks import FakeEngine, play
from liveshtr.live.sinks import PacedSink
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails (EFBIG) instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
engine = FakeEngine()
sink = PacedSink(engine, Path({path!r}))
play(sink, 0.5)
print(len(engine.blocks), sink.error)
"""


def test_a_failing_write_is_reported_once_and_the_clock_keeps_going(tmp_path):
    """A full disk (here: a file size limit, in a child process) must not stop the audio clock: the sink keeps
    calling the callback and says what failed, once."""
    path = tmp_path / "set.wav"
    code = FULL_DISK.format(tests=str(Path(__file__).parent), path=str(path))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2]
    )
    assert result.returncode == 0, result.stderr
    calls, _, error = result.stdout.strip().partition(" ")
    assert int(calls) * BLOCK * 3 > 2 * 4096  # 24-bit mono: the callback went on well past what the file could take
    assert int(calls) >= 0.6 * 0.5 / PERIOD
    assert error.startswith(f"writing {path} failed:") and "\n" not in error
