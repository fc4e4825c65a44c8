"""A running `serve` played from WebSocket clients and the browser page: one state, shared with OSC, safe defaults."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from tests.helpers import (
    SAFE_LOOKAHEAD_MS,
    cli,
    next_of,
    one_line_error,
    osc,
    osc_port,
    start_serve,
    stop_serve,
    wait_started,
    web_url,
    ws_url,
)

TOKEN = "stage-secret-42"


@pytest.fixture
def served(tmp_path, request):
    stats = tmp_path / "stats.json"
    extra = getattr(request, "param", ())
    proc = start_serve(
        "--sink", "null", "--status-every", "0", "--stats-json", str(stats), "--lookahead-ms", SAFE_LOOKAHEAD_MS, *extra
    )
    try:
        lines = wait_started(proc)
        yield lines, proc, stats
    finally:
        stop_serve(proc)


def test_every_change_reaches_every_client_whoever_made_it(served):
    lines, proc, stats = served
    with connect(ws_url(lines)) as a, connect(ws_url(lines)) as b:
        for ws in (a, b):
            full = json.loads(ws.recv(timeout=5))
            assert full["type"] == "state" and full["full"] and full["model"]["latent_dim"] == 8
            assert {p["name"] for p in full["params"]} >= {"gain", "temperature", "latent", "freeze", "panic"}
        a.send(json.dumps({"type": "set", "name": "temperature", "value": 2.5}))
        seen = next_of(b, "state", where=lambda m: "temperature" in m["values"])
        assert seen["values"]["temperature"] == 2.5
        osc(osc_port(lines), "/liveshtr/latent/2", -1.25)  # OSC changes are broadcast to the pages too
        for ws in (a, b):
            seen = next_of(ws, "state", where=lambda m: "latent" in m["values"])
            assert seen["values"]["latent"][2] == -1.25
        a.send(json.dumps({"type": "set", "name": "mix", "value": 7}))  # clamped: everyone sees what applied
        assert next_of(b, "state", where=lambda m: "mix" in m["values"])["values"]["mix"] == 1.0
        telemetry = next_of(a, "telemetry")
        assert telemetry["played_s"] > 0 and len(telemetry["spectrum"]) == 96 and telemetry["underruns"] == 0
        a.send("{not json")
        a.send(json.dumps({"type": "set", "name": "volume", "value": 1, "id": 3}))
        assert "not JSON" in next_of(a, "error")["error"]
        assert next_of(a, "error")["id"] == 3
        a.send(json.dumps({"type": "get", "name": "temperature"}))
        assert (
            next_of(a, "state", where=lambda m: m["values"].keys() == {"temperature"})["values"]["temperature"] == 2.5
        )
    with connect(ws_url(lines)) as big:  # beyond the size limit: that connection is closed, the server plays on
        json.loads(big.recv(timeout=5))
        big.send(json.dumps({"type": "set", "name": "latent", "value": [0.0] * 100000}))
        with pytest.raises(ConnectionClosedError) as info:
            while True:
                big.recv(timeout=5)
        assert info.value.rcvd.code == 1009  # message too big
    with connect(ws_url(lines)) as c:
        assert json.loads(c.recv(timeout=5))["values"]["temperature"] == 2.5
    assert stop_serve(proc) == 0
    summary = json.loads(stats.read_text())
    assert summary["web"]["errors"] == 2 and summary["underruns"] == 0


def test_the_page_is_served_without_anything_from_the_internet(served):
    lines, proc, stats = served
    url = web_url(lines)
    for path, kind in (("", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")):
        with urllib.request.urlopen(url + path, timeout=5) as response:
            assert response.headers["Content-Type"].startswith(kind)
            body = response.read().decode()
            assert "http://" not in body and "https://" not in body and "//cdn" not in body, path
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + "missing.js", timeout=5)
    assert info.value.code == 404


@pytest.mark.parametrize("served", [("--token", TOKEN)], indirect=True)
def test_a_token_is_required_and_foreign_origins_are_refused(served):
    lines, proc, stats = served
    assert web_url(lines).endswith(f"/?token={TOKEN}")
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(lines))
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(ws_url(lines, "wrong-token-123"))
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(web_url(lines).split("?")[0], timeout=5)
    assert page.value.code == 403
    with urllib.request.urlopen(web_url(lines), timeout=5) as response:
        assert response.status == 200
    with pytest.raises(InvalidStatus):  # a web site the performer has open may not drive the instrument
        connect(ws_url(lines, TOKEN), origin="http://evil.example")
    with connect(ws_url(lines, TOKEN), origin=web_url(lines).split("/?")[0]) as ws:
        assert json.loads(ws.recv(timeout=5))["full"] is True
    assert stop_serve(proc) == 0
    assert json.loads(stats.read_text())["web"]["refused"] == 4


def test_listening_beyond_this_machine_needs_protection():
    one_line_error(cli("serve", "--sink", "null", "--host", "0.0.0.0"), "--token", "--osc-allow", "--insecure")
    one_line_error(cli("serve", "--sink", "null", "--host", "0.0.0.0", "--token", TOKEN), "--osc-allow")
    one_line_error(cli("serve", "--sink", "null", "--token", "short"), "--token")
    one_line_error(cli("serve", "--sink", "null", "--host", "my-laptop"), "--host")
    one_line_error(cli("serve", "--sink", "null", "--osc-allow", "10.0.0.0/99"), "--osc-allow")


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--sink", "null", "--seconds", "1", "--web-port", str(port))
    one_line_error(result, "--web-port", str(port))


def test_a_client_that_stops_reading_does_not_hold_up_the_others():
    """A stalled client (a phone on bad Wi-Fi) is skipped once its backlog is large, and caught up with the whole
    state when it drains; the others get every message on time."""
    import base64
    import os

    from liveshtr.control.commands import Commands
    from liveshtr.control.web import SLOW_CLIENT_BYTES, WebServer
    from liveshtr.control.web_protocol import WebProtocol
    from liveshtr.live.params import Params

    params = Params(8)
    server = WebServer(WebProtocol(Commands(params), {"name": "test", "latent_dim": 8}, 20.0, {"bands": 96}))
    server.start()
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small TCP window
        stalled.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        stalled.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert stalled.recv(12) == b"HTTP/1.1 101"  # upgraded; from now on it reads nothing
        with connect(f"ws://127.0.0.1:{server.port}/ws") as healthy:
            json.loads(healthy.recv(timeout=5))
            while len(server.clients) < 2:
                time.sleep(0.01)
            payload = {"spectrum": list(range(96)) * 40}  # ~15 kB a message
            started = time.monotonic()
            for i in range(600):  # ~9 MB: far beyond the stalled client's socket buffers and the limit
                server.publish_telemetry({"n": i, **payload})
                assert json.loads(healthy.recv(timeout=5))["n"] == i
            assert time.monotonic() - started < 10
        assert server.skipped > 0
        backlog = max(c.transport.get_write_buffer_size() for c in server.clients)
        assert backlog <= SLOW_CLIENT_BYTES + 16 * 1024  # bounded: one message past the limit at most
        stalled.close()
    finally:
        server.stop()
