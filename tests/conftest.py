"""Shared fixtures: the real recordings in ../shared/audio decoded once per session, the demo model, a JACK server."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from liveshtr.config import AudioConfig
from liveshtr.sound.audio import load_song

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
SONG_FILES = sorted(p for p in SHARED_AUDIO.glob("*") if p.suffix in (".mp3", ".ogg", ".wav", ".flac"))


def shared_song(name: str) -> Path:
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.fail(f"real-music test material missing: {path} (clone with ../shared beside the repo)")
    return path


GROOVE = "violent_groove_4_berklee_olpc.mp3"
QUICK = ["--epochs", "3", "--hidden", "64", "--layers", "1", "--latent-dim", "8"]


def train(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`liveshtr train ARGS` in a fresh interpreter, as a performer runs it."""
    cmd = [sys.executable, "-m", "liveshtr", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def train_side_by_side(commands: list[list[str]], timeout: float) -> list[subprocess.CompletedProcess]:
    """Run the commands as many at a time as this process has CPUs, each pinned to one of them: small models train
    faster one thread each side by side than with every thread one after another (the reference run: 31 s on one
    core beside another training, 23 s alone on two)."""
    cpus: queue.Queue[int] = queue.Queue()
    for cpu in sorted(os.sched_getaffinity(0)):
        cpus.put(cpu)

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        cpu = cpus.get()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            os.sched_setaffinity(proc.pid, {cpu})  # before it reads its affinity to size its threads
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        finally:
            cpus.put(cpu)

    with ThreadPoolExecutor(max_workers=cpus.qsize()) as pool:
        return list(pool.map(run, commands))


@pytest.fixture(scope="session", autouse=True)
def demo_bundle_untouched():
    """The suite plays the repository's demo bundle but never writes beside it: a test that saves scenes or learns
    MIDI bindings gives `serve --scenes` a file of its own."""
    from liveshtr.commands.common import DEMO_MODEL

    before = sorted(p.name for p in DEMO_MODEL.iterdir())
    yield
    assert sorted(p.name for p in DEMO_MODEL.iterdir()) == before, "a test wrote into models/demo"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One short training run of the drum groove from the command line, shared by the tests that need a freshly
    trained bundle: (its folder, the run's CompletedProcess). Tests that change the bundle change a copy."""
    out = tmp_path_factory.mktemp("models") / "groove"
    # On one core, one thread, as `test_train`'s side-by-side trainings run: a run with two threads sums in
    # another order and trains another model, so the same-seed test compares it with one of those.
    cmd = [sys.executable, "-m", "liveshtr", "train", str(shared_song(GROOVE)), "-o", str(out), *QUICK]
    (result,) = train_side_by_side([cmd], timeout=600)
    assert result.returncode == 0, result.stderr
    return out, result


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
def jack():
    """A JACK server with the dummy driver: a real audio clock at 48 kHz / 256-frame periods, no sound card."""
    if shutil.which("jackd") is None:
        pytest.fail("jackd is missing (Debian package jackd2; `make test` installs it)")
    name = f"liveshtr-test-{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        for _ in range(100):
            if subprocess.run(["jack_lsp"], capture_output=True, env=env).returncode == 0:
                break
            if proc.poll() is not None:
                pytest.fail(f"jackd exited: {proc.stderr.read().decode()[-500:]}")
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
    from tests.test_serve import SAFE_LOOKAHEAD_MS, osc_port, start_serve, stop_serve, wait_started

    stats = tmp_path / "stats.json"
    # Tests using it assert no underrun: at the look-ahead the default adapts to on a shared two-core machine.
    proc = start_serve(
        "--sink", "null", "--status-every", "0", "--stats-json", str(stats), "--lookahead-ms", SAFE_LOOKAHEAD_MS
    )
    try:
        yield osc_port(wait_started(proc)), proc, stats
    finally:
        stop_serve(proc)
