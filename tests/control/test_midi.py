"""Real MIDI into a running `serve`: its virtual input on a JACK dummy server, a python-rtmidi client sending
controllers, notes, the wheel, a clock and a SysEx flood, and the engine's parameters read back over OSC."""

from __future__ import annotations

import json
import socket
import time

import pytest
import rtmidi
from pythonosc.osc_packet import OscPacket

from tests.helpers import (
    ask,
    cli,
    jack_client,
    message,
    midi_out,
    one_line_error,
    osc_port,
    start_serve,
    stop_serve,
    wait_started,
)


def heard(sock: socket.socket, address: str, timeout: float = 5.0) -> list:
    """The arguments of the first datagram for `address` a subscribed socket receives (telemetry skipped)."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            packet = OscPacket(sock.recv(65535))
        except TimeoutError:
            continue
        for m in packet.messages:
            if m.message.address == address:
                return list(m.message.params)
    pytest.fail(f"no {address} in {timeout:g} s")


def state(port: int) -> dict:
    return dict(ask(port, message("/liveshtr/get")))


def test_midi_through_jack_moves_the_engine_and_bad_midi_is_counted(jack, tmp_path):
    stats = tmp_path / "stats.json"
    proc = start_serve(
        "--sink", "null", "--no-web", "--midi", "--midi-api", "jack", "--seconds", "30", "--status-every", "0",
        "--stats-json", str(stats), "--scenes", str(tmp_path / "scenes.json"), env=jack,
    )  # fmt: skip
    out = None
    try:
        lines = wait_started(proc)
        assert "virtual input 'liveshtr'" in lines["midi"]
        port = osc_port(lines)
        out = midi_out(jack)
        out.send_message([0xB0, 7, 32])  # volume: gain
        out.send_message([0xB0, 16, 0])  # latent 0 to -4
        out.send_message([0xB0, 17, 127])  # latent 1, MSB ...
        out.send_message([0xB0, 49, 127])  # ... and its LSB: the top exactly
        out.send_message([0x90, 96, 100])  # the top key: the end of the song
        for _ in range(1000):  # a SysEx flood
            out.send_message([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])
        time.sleep(0.5)
        s = state(port)
        assert s["/liveshtr/gain"] == [pytest.approx(32 / 127)]
        assert s["/liveshtr/latent"][:2] == [-4.0, 4.0]
        assert s["/liveshtr/prime"] == [1.0]
        # MIDI learn from OSC: the next controller moved drives target 5, and subscribers hear of it
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", 0))
        listener.sendto(message("/liveshtr/subscribe"), ("127.0.0.1", port))
        (reply,) = ask(port, message("/liveshtr/midi/learn", "target", 5))
        assert reply == ("/liveshtr/midi/learning", ["target/5"])
        out.send_message([0xB0, 85, 127])
        assert heard(listener, "/liveshtr/midi/learned") == ["cc 85", "target/5"]
        listener.close()
        out.send_message([0xE0, 0, 0])  # the wheel down: latent 0 at its bottom (it was there already)
        time.sleep(0.3)
        assert state(port)["/liveshtr/target"][5] == 4.0
        assert ("/liveshtr/midi/cc", [85, "target/5"]) in ask(port, message("/liveshtr/midi/map"))
        # a clock at 132 beats a minute sets the tempo of the model's clock
        start = time.perf_counter()
        for i in range(49):
            time.sleep(max(0.0, start + i * 60 / 132 / 24 - time.perf_counter()))
            out.send_message([0xF8])
        time.sleep(0.2)
        assert state(port)["/liveshtr/tempo"] == [pytest.approx(132, abs=3)]
    finally:
        if out is not None:
            out.close_port()
            out.delete()  # the JACK client too
        code = stop_serve(proc)
    assert code == 0, proc.stderr.read()
    summary = json.loads(stats.read_text())
    # JACK's MIDI buffers drop part of a burst of 1000 SysEx on the sending side; what arrives is ignored, not an error
    assert summary["midi"]["applied"] >= 7 and summary["midi"]["ignored"] > 100 and summary["midi"]["errors"] == 0
    assert summary["producer_errors"] == 0 and summary["callback_errors"] == 0


def test_midi_errors_are_one_line(jack, tmp_path):
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--midi", "no-such-port", "--midi-api", "jack",
                       env=jack), "no-such-port")  # fmt: skip
    bad = tmp_path / "map.json"
    bad.write_text('{"cc": {"21": "loudness"}}')
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--midi", "--midi-map", str(bad), env=jack),
                   "loudness")  # fmt: skip
    bad.write_text("{not json")
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--midi", "--midi-map", str(bad)), "not JSON")
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--midi-map", str(bad)), "needs --midi")
    no_server = dict(jack, JACK_DEFAULT_SERVER="liveshtr-no-such-server")
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--midi", "--midi-api", "jack", env=no_server),
                   "JACK server not running")  # fmt: skip


def test_serve_opens_a_controller_s_port_by_part_of_its_name_and_devices_lists_it(jack):
    with jack_client(jack):
        keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="liveshtr-keys")
        keys.open_virtual_port("Test Keys")  # a controller's output, as a USB keyboard shows under JACK
    proc = None
    try:
        result = cli("devices", "--json", "--midi-api", "jack", env=jack)
        assert result.returncode == 0, result.stderr
        midi = json.loads(result.stdout)["midi"]
        assert midi["api"] == "UNIX_JACK" and any("Test Keys" in name for name in midi["inputs"])
        assert "Test Keys" in cli("devices", "--midi-api", "jack", env=jack).stdout
        proc = start_serve("--sink", "null", "--no-web", "--midi", "test keys", "--midi-api", "jack", env=jack)
        lines = wait_started(proc)
        assert "Test Keys" in lines["midi"]
        keys.send_message([0xB0, 1, 127])  # the mod wheel: temperature to its top
        time.sleep(0.5)
        assert state(osc_port(lines))["/liveshtr/temperature"] == [4.0]
    finally:
        keys.close_port()
        keys.delete()
        if proc is not None:
            assert stop_serve(proc) == 0, proc.stderr.read()
