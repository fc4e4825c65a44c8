"""A running `serve` controlled over OSC by real clients: liblo's oscsend, and a python-osc client reading replies.

Pure Data plays it through the patch performers use, in tests/control/test_patches.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from pythonosc.osc_packet import OscPacket

from tests.helpers import ask, message, osc_port, start_serve, stop_serve, wait_started


def test_oscsend_changes_the_engine_and_errors_are_answered(served):
    port, proc, stats = served
    if shutil.which("oscsend") is None:
        pytest.fail("oscsend is missing (Debian package liblo-tools; `make test` installs it)")
    subprocess.run(["oscsend", "127.0.0.1", str(port), "/liveshtr/temperature", "f", "2.5"], check=True)
    subprocess.run(["oscsend", "127.0.0.1", str(port), "/liveshtr/latent/3", "i", "2"], check=True)  # Max-style int
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
    assert "osc error: /liveshtr/gain: value: expected a number" in proc.stderr.read()  # logged, not only counted
    assert summary["underruns"] == 0 and summary["non_finite_blocks"] == 0


def test_subscription_feedback_reaches_a_python_osc_client(served):
    """Changes by another client and telemetry arrive at 10-30 Hz; unsubscribing stops them."""
    port, proc, stats = served
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as me:
        me.bind(("127.0.0.1", 0))
        me.settimeout(2.0)
        me.sendto(message("/liveshtr/subscribe"), ("127.0.0.1", port))  # no port: feedback to where it came from
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/liveshtr/mix", "f", "0.75"], check=True)
        received = []
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            for m in OscPacket(me.recv(65535)).messages:
                received.append((time.monotonic() - started, m.message.address, list(m.message.params)))
        me.sendto(message("/liveshtr/unsubscribe"), ("127.0.0.1", port))
        time.sleep(0.2)
        me.settimeout(0.3)
        after = []
        try:
            while True:
                after.append(me.recv(65535))
        except TimeoutError:
            pass
        me.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing more once the last in-flight datagram has been read
            me.recv(65535)
    addresses = [a for _, a, _ in received]
    assert addresses[0] == "/liveshtr/subscribed"
    assert ["/liveshtr/mix", [pytest.approx(0.75)]] in [[a, p] for _, a, p in received]
    telemetry = [(t, p) for t, a, p in received if a == "/liveshtr/telemetry"]
    # per second, once steady: what queued while oscsend started (slow on a busy machine) all arrives at t = 0
    assert 10 <= len([t for t, _ in telemetry if t >= 0.5]) / 1.5 <= 30
    assert all(len(p) == 10 for _, p in telemetry) and telemetry[-1][1][0] > 0  # played_s moves
    assert all(len(p) == 96 for _, a, p in received if a == "/liveshtr/spectrum")


OSCDUMP_SCRIPT = """
set -e
ip link set lo up
oscdump -L 9100 > "$OUT/dump.txt" 2>&1 & DUMP=$!
"$PYTHON" -m liveshtr serve --sink null --no-web --osc-port 9000 --seconds 5 --status-every 0 > "$OUT/serve.txt" 2>&1 &
SERVE=$!
for i in $(seq 300); do grep -q '^controls' "$OUT/serve.txt" && break; sleep 0.1; done
oscsend 127.0.0.1 9000 /liveshtr/subscribe i 9100
oscsend 127.0.0.1 9000 /liveshtr/drift f 0.5
wait $SERVE
kill $DUMP
"""


def test_oscdump_receives_the_feedback(tmp_path):
    """liblo's oscdump as the subscriber. It binds every interface, so it and `serve` run in a network namespace
    of their own, where every interface is a private loopback and the fixed ports are free."""
    for tool in ("oscdump", "oscsend", "unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing (Debian packages liblo-tools, util-linux, iproute2; `make test` installs them)"
            )
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", OSCDUMP_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    lines = [line.partition(" ")[2] for line in (tmp_path / "dump.txt").read_text().splitlines()]  # no timetag
    assert result.returncode == 0, (result.stderr, (tmp_path / "serve.txt").read_text())
    assert any(line.startswith("/liveshtr/gain f 1.0") for line in lines), lines[:5]  # the whole state first
    assert any(line.startswith("/liveshtr/telemetry ffffffffff") for line in lines), lines[:5]
    assert any(line.startswith("/liveshtr/drift f 0.5") for line in lines), lines[:5]


def test_localhost_as_ipv6_reaches_the_server_too(tmp_path):
    """Clients that resolve "localhost" to ::1 first (macOS does) get answered on [::1] at the same port."""
    proc = start_serve("--sink", "null", "--status-every", "0", "--no-web")
    try:
        lines = wait_started(proc)
        port = osc_port(lines)
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
                probe.bind(("::1", 0))
        except OSError:  # this machine has no IPv6 loopback: serve must not claim one
            assert "[::1]" not in lines["osc"]
            return
        assert f"udp://[::1]:{port}" in lines["osc"]
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            s.sendto(message("/liveshtr/gain", 0.5), ("::1", port))
            s.sendto(message("/liveshtr/get", "gain"), ("::1", port))
            reply = OscPacket(s.recv(65535)).messages[0].message
            assert (reply.address, list(reply.params)) == ("/liveshtr/gain", [0.5])
    finally:
        stop_serve(proc)


def test_messages_wait_for_the_producers_hop_but_a_busy_producer_never_starves_them():
    from liveshtr.control.commands import Commands
    from liveshtr.control.osc import DEFER_S, DEFER_STEP_S, OscServer
    from liveshtr.control.osc_protocol import OscProtocol
    from liveshtr.live.params import Params

    params, seen, state = Params(8), [], {"busy": True}

    def busy() -> bool:
        seen.append(state["busy"])
        return state["busy"]

    server = OscServer(OscProtocol(Commands(params)), busy=busy)
    server.start()
    try:
        ask(server.port, message("/liveshtr/gain", 0.5), timeout=0.5)  # the producer never finishes: handled anyway
        assert params.get("gain") == 0.5
        assert len(seen) >= DEFER_S / DEFER_STEP_S * 0.9 and all(seen)  # after waiting its longest
        state["busy"], seen[:] = False, []
        ask(server.port, message("/liveshtr/gain", 0.25), timeout=0.5)
        assert params.get("gain") == 0.25 and seen == [False]  # at once
    finally:
        server.stop()
