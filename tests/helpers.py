"""Plain helpers the test modules share (their fixtures are in conftest.py): the shared recordings and the short
training recipe, `liveshtr` and `serve` run as a performer runs them, OSC, WebSocket and JACK MIDI clients, the
exact replay of a recorded take, and an engine in-process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import rtmidi
import soundfile
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from liveshtr.live.engine import Engine
from liveshtr.live.generator import Generator
from liveshtr.live.params import Params
from liveshtr.live.safety import SafetyStage

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


def cli(*args: str, timeout: int = 300, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    if args and args[0] == "serve":  # any free ports: tests must not depend on 9000 and 9001 being free
        args = ("serve", "--osc-port", "0", "--web-port", "0", *args[1:])  # a test's own ports come later and win
    cmd = [sys.executable, "-m", "liveshtr", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def start_serve(*args: str, text: bool = True, env: dict | None = None) -> subprocess.Popen:
    """`serve` in the background on any free ports, its output piped; stop it by its PID."""
    cmd = [sys.executable, "-m", "liveshtr", "serve", "--osc-port", "0", "--web-port", "0", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, env=env)


def wait_started(proc: subprocess.Popen, timeout: float = 60) -> dict:
    """Read `serve`'s start-up lines until it plays; returns them by their first word (osc, page, ...)."""
    lines = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"serve ended early: {proc.stderr.read()}")
        key, _, rest = line.partition(" ")
        lines[key] = rest.strip()
        if key == "controls":
            return lines
    pytest.fail("serve did not start in time")


def osc_port(lines: dict) -> int:
    return int(lines["osc"].split("udp://127.0.0.1:")[1].split()[0])


def web_url(lines: dict) -> str:
    return lines["page"].split()[0]


def stop_serve(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # by PID
    return proc.wait(timeout=30)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


CEILING = SafetyStage(24000, 256).ceiling
SAFE_LOOKAHEAD_MS = "40"  # where the JACK tests assert zero underruns (the default starts at 10 and adapts)


def serve_stats(tmp_path: Path, *args: str, env=None, cwd=None) -> tuple[dict, subprocess.CompletedProcess]:
    stats = tmp_path / "stats.json"
    result = cli("serve", *args, "--stats-json", str(stats), "--status-every", "0", env=env, cwd=cwd)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(stats.read_text()), result


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def ask(port: int, data: bytes, timeout: float = 2.0) -> list:
    """Send one datagram from a fresh socket and collect the replies (address, args)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        replies = []
        try:
            while True:
                packet = OscPacket(s.recv(65535))
                replies.extend((m.message.address, list(m.message.params)) for m in packet.messages)
                s.settimeout(0.3)
        except TimeoutError:
            return replies


def send(port: int, data: bytes) -> None:
    """One datagram, no reply awaited (changes are not answered)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))


def osc(port: int, address: str, *args) -> None:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(builder.build().dgram, ("127.0.0.1", port))


def ws_url(lines: dict, token: str | None = None) -> str:
    base = web_url(lines).split("?")[0].replace("http://", "ws://")
    return f"{base}ws" + (f"?token={token}" if token else "")


def next_of(ws, kind: str, timeout: float = 5.0, where=lambda m: True) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind and where(message):
            return message
    raise AssertionError(f"no {kind} message in {timeout} s")


@contextlib.contextmanager
def jack_client(env: dict):
    """libjack reads the server's name from this process's environment."""
    keys = ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def midi_out(env: dict, port_part: str = "liveshtr") -> rtmidi.MidiOut:
    """A JACK MIDI output connected to the input whose name contains `port_part`."""
    client = f"liveshtr-test-{uuid.uuid4().hex[:8]}"  # JACK renames a client whose name is taken
    with jack_client(env):
        out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        ports = out.get_ports()
        index = next(i for i, p in enumerate(ports) if port_part in p)
        out.open_port(index, "controller")
    wait_connected(env, f"{client}:controller", port_part)
    return out


def wait_connected(env: dict, port: str, to_part: str, timeout: float = 10.0) -> None:
    """Until JACK lists `port` connected to a port whose name contains `to_part` (a busy machine can take a
    while: a message sent before that is lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, env=env).stdout
        block, connected = None, False
        for line in listing.splitlines():
            if not line.startswith(" "):
                block = line.strip()
            elif block == port and to_part in line:
                connected = True
        if connected:
            time.sleep(0.05)  # delivered from JACK's next cycle on
            return
        time.sleep(0.05)
    pytest.fail(f"JACK did not connect {port} to {to_part} in {timeout:g} s: {listing}")


def replays_exactly(session_dir, out, take: int = 1) -> tuple[np.ndarray, int]:
    """`render --replay` of a take equals the take, sample for sample; returns the take (24-bit as int32) and rate."""
    result = cli("render", "--replay", str(session_dir), "--take", str(take), "-o", str(out))
    assert result.returncode == 0, result.stderr
    recorded, rate = soundfile.read(session_dir / f"take-{take}.wav", dtype="int32")
    replayed, rate2 = soundfile.read(out, dtype="int32")
    assert rate == rate2 and np.array_equal(recorded, replayed), (
        f"take {take}: {np.flatnonzero(recorded != replayed)[:5]}"
    )
    return recorded, rate


RATE, BLOCK = 48000, 256


def make_engine(bundle, seed=0, samplerate=RATE, **params) -> Engine:
    return Engine(Generator(bundle, seed=seed), Params.for_bundle(bundle, **params), samplerate, BLOCK)


def scenes_for(params, path: Path):
    """A model's scenes as serve wires them: a store at `path` and a morpher over `params`."""
    from liveshtr.control.scenes import SceneMorpher, Scenes, SceneStore

    return Scenes(SceneStore(path, params), SceneMorpher(params))
