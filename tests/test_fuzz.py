"""Fuzz: thousands of random and malformed OSC datagrams and WebSocket messages against `serve` playing through a
JACK dummy server. It stays up, plays on without an underrun, and answers every parsable-but-wrong message."""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from websockets.sync.client import connect

from tests.helpers import SAFE_LOOKAHEAD_MS, osc_port, start_serve, stop_serve, wait_started, web_url

L = 8


def build(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for arg in args:
        b.add_arg(arg)
    return b.build().dgram


def wrong_osc(rng: random.Random) -> tuple[str, bytes]:
    """A well-formed OSC message that cannot be applied: the server must answer /liveshtr/error naming it."""
    choice = rng.randrange(8)
    if choice == 0:
        address = rng.choice(["/liveshtr/volume", "/liveshtr", "/other/gain", "/liveshtr/latent/x", "/liveshtr/a/b/c"])
        return address, build(address, 1.0)
    if choice == 1:
        return "/liveshtr/gain", build("/liveshtr/gain", "loud")
    if choice == 2:
        return "/liveshtr/temperature", build("/liveshtr/temperature", rng.choice([math.nan, math.inf, -math.inf]))
    if choice == 3:
        return "/liveshtr/latent", build("/liveshtr/latent", *([0.5] * rng.choice([2, 3, 7, 9, 20])))
    if choice == 4:
        address = f"/liveshtr/latent/{rng.randint(L, 999)}"
        return address, build(address, 0.5)
    if choice == 5:
        return "/liveshtr/mix", build("/liveshtr/mix", 0.1, 0.2)
    if choice == 6:
        return "/liveshtr/subscribe", build("/liveshtr/subscribe", rng.choice([0, 70000, 1.5, "port"]))
    return "/liveshtr/gain", build("/liveshtr/gain", b"\x00\x01blob")


def good_osc(rng: random.Random) -> bytes:
    """Applies (perhaps clamped): no error. Sometimes in a bundle with a future timetag, as TouchDesigner sends."""
    choice = rng.randrange(4)
    if choice == 0:
        data = build(f"/liveshtr/latent/{rng.randrange(L)}", rng.uniform(-3, 3))
    elif choice == 1:
        data = build("/liveshtr/temperature", rng.choice([rng.uniform(0.5, 1.5), rng.randint(0, 2)]))
    elif choice == 2:
        data = build("/liveshtr/target", *[rng.uniform(-9, 9) for _ in range(L)])
    else:
        data = build("/liveshtr/mix", rng.uniform(0, 1))
    if rng.random() < 0.3:
        bundle = OscBundleBuilder(time.time() + 5 if rng.random() < 0.5 else IMMEDIATELY)
        bundle.add_content(OscPacket(data).messages[0].message)
        data = bundle.build().dgram
    return data


def garbage(rng: random.Random) -> bytes:
    """Not OSC at all (OSC starts with '/' or '#bundle'): dropped and counted, never answered."""
    data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
    return (b"x" + data[1:]) if data[:1] in (b"/", b"#") else data


def wrong_ws(rng: random.Random) -> str:
    return rng.choice(
        [
            "{oops",
            "[]",
            "null",
            '{"type": "launch"}',
            '{"type": "set", "name": "volume", "value": 1}',
            '{"type": "set", "name": "gain", "value": "x"}',
            '{"type": "set", "name": "gain", "value": NaN}',
            '{"type": "set", "name": "latent", "index": 99, "value": 1}',
            '{"type": "set", "name": "latent", "value": [1, 2]}',
            '{"type": "action", "name": "gain"}',
            json.dumps(
                {
                    "type": "set",
                    "name": "temperature",
                    "value": "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(20)),
                }
            ),
        ]
    )


def good_ws(rng: random.Random) -> str:
    return json.dumps({"type": "set", "name": "latent", "index": rng.randrange(L), "value": rng.uniform(-2, 2)})


def test_fuzzed_controls_never_stop_the_music(jack, tmp_path):
    stats = tmp_path / "stats.json"
    proc = start_serve(
        "--audio-device",
        "system",
        "--status-every",
        "0",
        "--stats-json",
        str(stats),
        "--telemetry-hz",
        "30",
        "--lookahead-ms",
        SAFE_LOOKAHEAD_MS,
        env=jack,
    )
    try:
        lines = wait_started(proc)
        port = osc_port(lines)
        rng = random.Random(2026)
        expected_osc: list[str] = []  # addresses that must each get one error reply
        replies: list[tuple[str, list]] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        done = threading.Event()

        def listen() -> None:
            while True:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    if done.is_set():
                        return
                    continue
                for m in OscPacket(data).messages:
                    replies.append((m.message.address, list(m.message.params)))

        listener = threading.Thread(target=listen)
        listener.start()
        with connect(web_url(lines).split("?")[0].replace("http://", "ws://") + "ws", max_queue=None) as ws:
            json.loads(ws.recv(timeout=5))
            ws_wrong = 0
            for i in range(4000):
                kind = rng.random()
                if kind < 0.35:
                    address, data = wrong_osc(rng)
                    expected_osc.append(address)
                    sock.sendto(data, ("127.0.0.1", port))
                elif kind < 0.6:
                    sock.sendto(good_osc(rng), ("127.0.0.1", port))
                elif kind < 0.75:
                    sock.sendto(garbage(rng), ("127.0.0.1", port))
                elif kind < 0.9:
                    ws.send(wrong_ws(rng))
                    ws_wrong += 1
                else:
                    ws.send(good_ws(rng))
                if i % 50 == 0:
                    time.sleep(0.02)  # ~2,500 messages a second, within the socket buffers
            time.sleep(1.0)
            errors_seen = 0
            deadline = time.monotonic() + 10  # telemetry keeps coming: read until the errors are all in
            while errors_seen < ws_wrong and time.monotonic() < deadline:
                errors_seen += json.loads(ws.recv(timeout=5))["type"] == "error"
        done.set()
        listener.join()
        sock.close()
        time.sleep(1.0)  # a second more of music after the storm
        assert proc.poll() is None, "serve died"
    finally:
        code = stop_serve(proc)
    assert code == 0
    summary = json.loads(stats.read_text())
    errors = sorted(r[1][0] for r in replies if r[0] == "/liveshtr/error")
    assert errors == sorted(expected_osc)  # every wrong message answered, once, naming its address
    assert errors_seen == ws_wrong
    assert summary["osc"]["errors"] == len(expected_osc) and summary["web"]["errors"] == ws_wrong
    assert summary["osc"]["unparsable"] > 500
    assert summary["underruns"] == 0 and summary["callback_errors"] == 0 and summary["producer_errors"] == 0
    assert summary["non_finite_blocks"] == 0 and summary["played_s"] > 2
