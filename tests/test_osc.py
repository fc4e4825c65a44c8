"""A running `serve` controlled over OSC by real clients: liblo's oscsend, and a python-osc client reading replies."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from tests.test_serve import start_serve


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


@pytest.fixture
def served(tmp_path):
    stats = tmp_path / "stats.json"
    proc = start_serve("--sink", "null", "--status-every", "0", "--stats-json", str(stats))
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"serve ended early: {proc.stderr.read()}")
        if line.startswith("controls") and "udp://127.0.0.1:" in line:
            port = int(line.split("udp://127.0.0.1:")[1].split()[0])
    try:
        yield port, proc, stats
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # by PID
            proc.wait(timeout=30)


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


def test_oscsend_changes_the_engine_and_errors_are_answered(served):
    port, proc, stats = served
    if shutil.which("oscsend") is None:
        pytest.fail("oscsend is missing (Debian package liblo-tools; `make test` installs it)")
    subprocess.run(["oscsend", "localhost", str(port), "/liveshtr/temperature", "f", "2.5"], check=True)
    subprocess.run(["oscsend", "localhost", str(port), "/liveshtr/latent/3", "i", "2"], check=True)  # Max-style int
    time.sleep(0.3)
    state = dict(ask(port, message("/liveshtr/get")))
    assert state["/liveshtr/temperature"] == [pytest.approx(2.5)]
    assert state["/liveshtr/latent"][3] == pytest.approx(2.0)
    (error,) = ask(port, message("/liveshtr/gain", "loud"))
    assert error[0] == "/liveshtr/error" and error[1][0] == "/liveshtr/gain"
    (clamped,) = ask(port, message("/liveshtr/temperature", 40.0))
    assert clamped == ("/liveshtr/clamped", ["/liveshtr/temperature", 4.0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # not OSC at all: dropped, counted
        s.sendto(b"\x00garbage", ("127.0.0.1", port))
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    summary = json.loads(stats.read_text())
    assert summary["osc"]["errors"] == 1 and summary["osc"]["unparsable"] == 1
    assert summary["underruns"] == 0 and summary["non_finite_blocks"] == 0
