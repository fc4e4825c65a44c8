"""Shared fixtures: the real recordings in ../shared/audio decoded once per session, the demo model, a JACK server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liveshtr.config import AudioConfig
from liveshtr.sound.audio import load_song
from tests.background import BACKGROUND, Job

# Before its import: an assert in a shared helper reports its values, as one in a test module does.
pytest.register_assert_rewrite("tests.helpers")

from tests.helpers import (  # noqa: E402
    GROOVE,
    QUICK,
    SAFE_LOOKAHEAD_MS,
    SHARED_AUDIO,
    SONG_FILES,
    osc_port,
    shared_song,
    start_serve,
    stop_serve,
    wait_started,
)


@BACKGROUND.plan("trained")
def trained_jobs(folder: Path) -> dict[str, Job]:
    out = folder / "groove"
    return {
        "groove": Job(
            [[sys.executable, "-m", "liveshtr", "train", str(shared_song(GROOVE)), "-o", str(out), *QUICK]], out
        )
    }


@BACKGROUND.plan("other_model")
def other_model_jobs(folder: Path) -> dict[str, Job]:
    out = folder / "groove-16k"
    small = ["--epochs", "1", "--hidden", "64", "--layers", "1", "--latent-dim", "4", "--samplerate", "16000"]
    return {
        "groove": Job(
            [[sys.executable, "-m", "liveshtr", "train", str(shared_song(GROOVE)), "-o", str(out), *small]], out
        )
    }


@pytest.fixture(scope="session")
def other_model(background) -> Path:
    """A bundle unlike the demo in every way a set list meets: another song, rate (16 kHz), size (1 x 64) and
    latent size (4); for switching between models."""
    job = background.wait("other_model", timeout=1200)["groove"]
    assert job.result.returncode == 0, job.result.stderr
    return job.output


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory):
    """The slow trainings of the fixtures the collected tests use, started now in the order the tests need them
    (tests/background.py), and stopped when the session ends."""
    needed = dict.fromkeys(name for item in request.session.items for name in item.fixturenames)
    BACKGROUND.start(list(needed), lambda name: tmp_path_factory.mktemp(name))
    yield BACKGROUND
    BACKGROUND.stop()


def pytest_terminal_summary(terminalreporter):
    """Beside pytest's slowest tests, the background jobs' times: the suite waits on them at the end."""
    timings = BACKGROUND.timings()
    if timings:
        terminalreporter.section("background jobs (one core each, idle priority)")
        for name, seconds in timings:
            terminalreporter.write_line(f"{seconds:8.1f}s  {name}")


@pytest.fixture(scope="session")
def trained(background):
    """One short training run of the drum groove from the command line, shared by the tests that need a freshly
    trained bundle: (its folder, the run's CompletedProcess). Tests that change the bundle change a copy. Like every
    background training it runs on one core with one thread, as `test_train`'s do: a run with two threads sums in
    another order and trains another model, and the same-seed test compares it with one of those."""
    job = background.wait("trained", timeout=1200)["groove"]
    assert job.result.returncode == 0, job.result.stderr
    return job.output, job.result


@pytest.fixture(scope="session")
def song_files() -> list[Path]:
    if len(SONG_FILES) < 5:
        pytest.fail(f"expected the five recordings of {SHARED_AUDIO}, found {len(SONG_FILES)}")
    return SONG_FILES


@pytest.fixture(scope="session")
def bundle():
    """The committed demo model."""
    from liveshtr.bundle import load_bundle
    from liveshtr.commands.common import DEMO_MODEL

    return load_bundle(DEMO_MODEL)


@pytest.fixture(scope="session")
def songs(song_files):
    """Every shared recording decoded at the default AudioConfig."""
    return [load_song(p, AudioConfig()) for p in song_files]


@pytest.fixture(scope="session")
def jack(tmp_path_factory):
    """A JACK server with the dummy driver: a real audio clock at 48 kHz / 256-frame periods, no sound card.

    Its log goes to a file: a pipe nobody reads fills up (64 KiB of xrun and client messages over a loaded session)
    and then blocks the server, and every JACK client with it."""
    if shutil.which("jackd") is None:
        pytest.fail("jackd is missing (Debian package jackd2; `make test` installs it)")
    name = f"liveshtr-test-{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        for _ in range(100):
            if subprocess.run(["jack_lsp"], capture_output=True, env=env).returncode == 0:
                break
            if proc.poll() is not None:
                pytest.fail(f"jackd exited: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        else:
            pytest.fail("jackd did not come up in 10 s")
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)  # by PID, never by name
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def served(tmp_path):
    """`serve` on a null sink and free ports: yields (OSC port, process, path of its --stats-json)."""
    stats = tmp_path / "stats.json"
    # Tests using it assert no underrun: at the look-ahead the default adapts to on a shared two-core machine.
    proc = start_serve(
        "--sink", "null", "--status-every", "0", "--stats-json", str(stats), "--lookahead-ms", SAFE_LOOKAHEAD_MS
    )
    try:
        yield osc_port(wait_started(proc)), proc, stats
    finally:
        stop_serve(proc)
