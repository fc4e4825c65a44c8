"""The WebSocket messages over the parameter table, without sockets: every request either applies or is answered."""

from __future__ import annotations

import json
import random

import pytest

from liveshtr.control.commands import Commands
from liveshtr.control.web_protocol import WebProtocol
from liveshtr.live.params import Params

L = 8


@pytest.fixture
def web():
    return WebProtocol(Commands(Params(L)), {"name": "demo", "latent_dim": L}, 20.0, {"bands": 96})


def send(web, message) -> list[dict]:
    return web.handle(json.dumps(message))


def test_full_state_carries_the_table_the_values_and_json_has_no_infinity(web):
    state = web.full_state()
    assert state["type"] == "state" and state["full"] is True
    table = {p["name"]: p for p in state["params"]}
    assert table["latent"]["size"] == L and table["panic"]["action"] is True and table["panic"]["max"] is None
    assert state["values"]["latent"] == [0.0] * L and state["values"]["temperature"] == 1.0
    json.loads(json.dumps(state, allow_nan=False))  # strict JSON: a browser's JSON.parse rejects Infinity


def test_set_scalars_vectors_dimensions_and_actions(web):
    assert send(web, {"type": "set", "name": "temperature", "value": 2}) == []
    assert send(web, {"type": "set", "name": "latent", "index": 3, "value": 1.5}) == []
    assert send(web, {"type": "set", "name": "target", "value": [0.5] * L}) == []
    assert send(web, {"type": "set", "name": "mix", "value": 9}) == []  # clamped; the broadcast says 1.0
    assert send(web, {"type": "action", "name": "panic"}) == []
    p = web.params
    assert p.get("temperature") == 2.0 and p.get("latent")[3] == 1.5 and list(p.get("target")) == [0.5] * L
    assert p.get("mix") == 1.0 and p.get("panic") == 1 and p.get("gain") == 0.0
    assert web.errors == 0


def test_get_returns_state_with_the_request_id(web):
    (reply,) = send(web, {"type": "get", "name": "gain", "id": 7})
    assert reply == {"type": "state", "values": {"gain": 1.0}, "id": 7}
    (reply,) = send(web, {"type": "get"})
    assert reply["full"] is True


BAD = [
    "not json",
    "[1, 2]",
    '"set"',
    "{}",
    '{"type": "launch"}',
    '{"type": "set"}',
    '{"type": "set", "name": "volume", "value": 1}',
    '{"type": "set", "name": "gain"}',
    '{"type": "set", "name": "gain", "value": "loud"}',
    '{"type": "set", "name": "gain", "value": true}',
    '{"type": "set", "name": "gain", "value": NaN}',
    '{"type": "set", "name": "gain", "value": Infinity}',
    '{"type": "set", "name": "gain", "value": 1e999}',
    '{"type": "set", "name": "gain", "value": [1, 2]}',
    '{"type": "set", "name": "gain", "index": 0, "value": 1}',
    '{"type": "set", "name": "latent", "index": 8, "value": 1}',
    '{"type": "set", "name": "latent", "index": "3", "value": 1}',
    '{"type": "set", "name": "latent", "index": 1.0, "value": 1}',
    '{"type": "set", "name": "latent", "value": [1, 2, 3]}',
    '{"type": "set", "name": "latent", "value": []}',
    '{"type": "set", "name": "latent", "value": [1, 2, 3, 4, 5, 6, 7, 8, 9]}',
    '{"type": "set", "name": "latent", "value": [null, 1, 1, 1, 1, 1, 1, 1]}',
    '{"type": "action", "name": "gain"}',
    '{"type": "action", "name": ["panic"]}',
    '{"type": "get", "name": "volume"}',
    '{"type": "get", "name": {"a": 1}}',
]


@pytest.mark.parametrize("text", BAD)
def test_malformed_messages_get_one_error_and_change_nothing(web, text):
    before = web.params.snapshot
    (reply,) = web.handle(text)
    assert reply["type"] == "error" and reply["error"]
    assert web.params.snapshot is before and web.errors == 1
    json.dumps(reply, allow_nan=False)


def test_random_garbage_never_raises(web):
    rng = random.Random(5)
    pieces = ['{"type":', '"set"', '"name":', '"latent"', '"index":', "3", '"value":', "[", "]", "1e308", ",", "}", "-"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for reply in web.handle(text):
            assert reply["type"] in ("error", "state")
    assert web.params.get("latent").max() <= 4.0


def test_scenes_and_midi_learn_over_the_websocket(tmp_path):
    from liveshtr.control.midi_protocol import MidiProtocol
    from tests.helpers import scenes_for

    params = Params(L)
    scenes, midi = scenes_for(params, tmp_path / "scenes.json"), MidiProtocol(params)
    web = WebProtocol(Commands(params, scenes, midi), {"name": "demo"}, 20.0, {"bands": 96})
    assert web.full_state()["scenes"] == [] and web.full_state()["midi"]["learning"] is None
    params.set("mix", 0.7)
    (reply,) = send(web, {"type": "scene", "action": "save", "name": "A"})
    assert reply == {"type": "scenes", "names": ["A"], "_all": True}  # to every page
    params.set("mix", 0.0)
    assert send(web, {"type": "scene", "action": "recall", "name": "A", "seconds": 0}) == []
    assert params.get("mix") == 0.7
    (reply,) = send(web, {"type": "midi", "action": "learn", "name": "target", "index": 1, "id": 4})
    assert reply["learning"] == "target/1" and reply["id"] == 4
    midi.handle([0xB0, 99, 127])
    (reply,) = send(web, {"type": "midi", "action": "get"})
    assert reply["learning"] is None and reply["learned"] == "cc 99 -> target/1" and reply["map"]["cc"]["99"]
    for bad in (
        {"type": "scene", "action": "rename", "name": "A"},
        {"type": "scene", "action": "save"},
        {"type": "scene", "action": "save", "name": "a/b"},
        {"type": "scene", "action": "recall", "name": "B"},
        {"type": "scene", "action": "recall", "name": "A", "seconds": "slow"},
        {"type": "scene", "action": "recall", "name": "A", "seconds": 1e9},
        {"type": "midi", "action": "learn", "name": "latent"},
        {"type": "midi", "action": "learn", "name": "latent", "index": 1.5},
        {"type": "midi", "action": "forget"},
    ):
        (reply,) = send(web, bad)
        assert reply["type"] == "error", bad
    plain = WebProtocol(Commands(Params(L)), {}, 20.0, {})
    assert plain.full_state()["scenes"] is None and plain.full_state()["midi"] is None
    for message in ({"type": "scene", "action": "save", "name": "A"}, {"type": "midi", "action": "get"}):
        assert send(plain, message)[0]["type"] == "error"


def test_recording_over_the_websocket(tmp_path):
    class FakeRecorder:  # the interface WebProtocol uses; the real one is tested in tests/live/test_recorder.py
        folder, session, recording, takes = tmp_path, {"takes": []}, False, 0

        def start_take(self):
            if self.recording:
                from liveshtr.live.recorder import RecordError

                raise RecordError("already recording; /liveshtr/record stop first")
            self.recording, self.takes = True, self.takes + 1

        def stop_take(self):
            self.recording = False

    web = WebProtocol(Commands(Params(L), recorder=FakeRecorder()), {}, 20.0, {})
    assert web.full_state()["record"] == {"type": "record", "recording": False, "folder": str(tmp_path), "takes": 0}
    (reply,) = send(web, {"type": "record", "action": "start"})
    assert reply["recording"] is True and reply["takes"] == 1 and reply["_all"] is True
    (reply,) = send(web, {"type": "record", "action": "start"})
    assert reply["type"] == "error" and "already recording" in reply["error"]
    (reply,) = send(web, {"type": "record", "action": "pause"})
    assert reply["type"] == "error"
    (reply,) = send(WebProtocol(Commands(Params(L)), {}, 20.0, {}), {"type": "record", "action": "start"})
    assert reply["type"] == "error" and "--record" in reply["error"]


def test_learn_messages_are_checked_before_anything_starts(tmp_path):
    from liveshtr.live.learner import Learning

    web = WebProtocol(Commands(Params(8), learning=Learning(None, tmp_path / "models")), {}, 20.0, {})
    assert web.full_state()["learn"] is None
    for message, problem in [
        ({"type": "learn", "action": "start"}, 'expected "songs"'),
        ({"type": "learn", "action": "start", "songs": [str(tmp_path / "gone.wav")]}, "no such file"),
        ({"type": "learn", "action": "start", "songs": [7]}, "expected a song's path"),
        ({"type": "learn", "action": "hold", "value": 1}, "nothing is training"),
        ({"type": "learn", "action": "louder"}, "expected start, hold, back, stop or get"),
    ]:
        (reply,) = send(web, message)
        assert reply["type"] == "error" and problem in reply["error"], reply
    (reply,) = send(web, {"type": "learn", "action": "get", "id": 4})
    assert reply == {"type": "learn", "state": None, "id": 4}
    assert not (tmp_path / "models").exists()
