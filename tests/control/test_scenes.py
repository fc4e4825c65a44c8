"""Scenes: saved per model, durably; recalled at once or morphed (the performer's own moves win); over OSC and in
a running `serve`, where a restart finds them again."""

from __future__ import annotations

import json
import os

import pytest

from liveshtr.control.commands import Commands
from liveshtr.control.midi_protocol import MidiMap, MidiProtocol
from liveshtr.control.osc_protocol import OscProtocol
from liveshtr.control.scenes import Morph, SceneError, SceneMorpher, Scenes, SceneStore
from liveshtr.live.params import Params
from tests.helpers import ask, cli, message, one_line_error, osc_port, start_serve, stop_serve, wait_started


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def scenes(tmp_path, clock=None) -> Scenes:
    params = Params(4, tempo=120.0)
    return Scenes(SceneStore(tmp_path / "scenes.json", params), SceneMorpher(params, clock or Clock()))


def test_a_scene_holds_the_continuous_controls_and_comes_back_from_the_file(tmp_path):
    s = scenes(tmp_path)
    p = s.store.params
    p.set("temperature", 2.0)
    p.set("latent", [1.0, -1.0, 0.5, 0.0])
    p.set("prime", 0.9)
    p.set("freeze", 1.0)
    p.set("reset")
    s.save("verse")
    saved = json.loads((tmp_path / "scenes.json").read_text())["scenes"]["verse"]
    assert saved["temperature"] == 2.0 and saved["latent"] == [1.0, -1.0, 0.5, 0.0] and saved["tempo"] == 120.0
    assert not {"prime", "freeze", "reset", "panic"} & set(saved)
    p.set("temperature", 0.5)
    p.set("latent", 3.0)
    s.save("chorus")
    again = SceneStore(tmp_path / "scenes.json", Params(4, tempo=120.0))
    assert again.names() == ["verse", "chorus"] and again.get("verse") == s.store.get("verse")
    s.recall("verse")
    assert p.get("temperature") == 2.0 and list(p.get("latent")) == [1.0, -1.0, 0.5, 0.0]
    assert p.get("prime") == 0.9 and p.get("freeze") == 1.0 and p.get("reset") == 1  # untouched, not replayed
    s.save("verse")  # saved again: now last
    assert s.names() == ["chorus", "verse"]
    s.delete("chorus")
    assert SceneStore(tmp_path / "scenes.json", Params(4, tempo=120.0)).names() == ["verse"]
    for bad in ("", " lead", "a/b", "x" * 65, "tab\there", 3):
        with pytest.raises(SceneError):
            s.save(bad)
    with pytest.raises(SceneError, match="no scene"):
        s.recall("bridge")


def test_a_failed_write_keeps_the_file_and_the_scenes_as_they_were(tmp_path, monkeypatch):
    s = scenes(tmp_path)
    s.save("one")
    before = (tmp_path / "scenes.json").read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(SceneError, match="No space left"):
        s.save("two")
    with pytest.raises(SceneError):
        s.delete("one")
    monkeypatch.undo()
    assert (tmp_path / "scenes.json").read_bytes() == before and s.names() == ["one"]
    assert [f.name for f in tmp_path.iterdir()] == ["scenes.json"]  # no temporary file left behind


def test_a_damaged_or_foreign_file_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "scenes.json"
    for text, words in (
        ("{not json", "not JSON"),
        ('{"format": 7, "scenes": {}}', "format"),
        ('{"format": 1, "scenes": {"a": {"latent": [1, 2]}}}', "4 finite"),
        ('{"format": 1, "scenes": {"a": {"prime": 0.2}}}', "prime"),
        ('{"format": 1, "scenes": {"a/b": {}}}', "scene name"),
    ):
        path.write_text(text)
        with pytest.raises(SceneError, match=words):
            SceneStore(path, Params(4))
        assert path.read_text() == text


def test_a_morph_moves_in_a_straight_line_and_leaves_what_the_performer_moves():
    params = Params(2)
    clock = Clock()
    params.set("temperature", 1.0)
    params.set("mix", 0.0)
    scene = {"temperature": 3.0, "mix": 1.0, "latent": [2.0, -2.0]}
    morph = Morph(params, scene, 2.0, clock.now)
    clock.now = 1.0
    assert morph.step(clock.now)
    assert params.get("temperature") == 2.0 and params.get("mix") == 0.5 and list(params.get("latent")) == [1, -1]
    params.set("mix", 0.1)  # the performer takes the mix
    clock.now = 1.5
    morph.step(clock.now)
    assert params.get("temperature") == 2.5 and params.get("mix") == 0.1
    clock.now = 2.5
    assert not morph.step(clock.now)
    assert params.get("temperature") == 3.0 and params.get("mix") == 0.1 and list(params.get("latent")) == [2, -2]


def test_the_morpher_runs_a_recall_on_its_thread_and_a_new_recall_replaces_it(tmp_path):
    s = scenes(tmp_path, clock=None)
    s.morpher.clock = __import__("time").monotonic
    p = s.store.params
    p.set("gain", 0.2)
    s.save("quiet")
    p.set("gain", 1.0)
    s.start()
    try:
        s.recall("quiet", 0.3)
        assert s.morpher.running
        __import__("time").sleep(0.1)
        assert 0.2 < p.get("gain") < 1.0  # on its way
        s.recall("quiet", 0.0)  # at once: replaces the morph
        assert p.get("gain") == pytest.approx(0.2) and not s.morpher.running
        with pytest.raises(SceneError, match="0..600"):
            s.recall("quiet", -1.0)
    finally:
        s.stop()


def test_osc_saves_recalls_deletes_and_lists_scenes(tmp_path):
    s = scenes(tmp_path)
    osc = OscProtocol(Commands(s.store.params, scenes=s))
    (r,) = osc.handle("/liveshtr/scene/save", ["intro"])
    assert (r.address, r.args) == ("/liveshtr/scene/saved", ("intro",))
    s.store.params.set("temperature", 3.0)
    (r,) = osc.handle("/liveshtr/scene/recall", ["intro", 0])
    assert (r.address, r.args) == ("/liveshtr/scene/recalled", ("intro", 0.0))
    assert s.store.params.get("temperature") == 1.0
    rows = osc.handle("/liveshtr/list", [])
    assert rows[-1].address == "/liveshtr/scene" and rows[-1].args == ("intro",)
    for address, args in (
        ("/liveshtr/scene/recall", ["outro"]),
        ("/liveshtr/scene/recall", ["intro", "slow"]),
        ("/liveshtr/scene/recall", ["intro", 1e9]),
        ("/liveshtr/scene/save", []),
        ("/liveshtr/scene/save", ["a/b"]),
        ("/liveshtr/scene/delete", ["outro"]),
        ("/liveshtr/scene/rename", ["intro"]),
    ):
        (r,) = osc.handle(address, args)
        assert r.address == "/liveshtr/error", (address, args)
    (r,) = osc.handle("/liveshtr/scene/delete", ["intro"])
    assert r.address == "/liveshtr/scene/deleted" and s.names() == []
    (r,) = OscProtocol(Commands(Params(4))).handle("/liveshtr/scene/save", ["x"])
    assert r.address == "/liveshtr/error"


def test_a_learned_midi_map_is_kept_with_the_scenes(tmp_path):
    s = scenes(tmp_path)
    params = s.store.params
    midi = MidiProtocol(params, on_learn=lambda m: s.store.save_midi_map(m.to_dict()))
    midi.learn("target", 2)
    midi.handle([0xB0, 90, 127])
    again = SceneStore(tmp_path / "scenes.json", Params(4, tempo=120.0))
    assert MidiMap.from_dict(again.midi_map, again.params).cc[90].control == "target"


def test_serve_keeps_scenes_across_a_restart_and_a_damaged_file_is_one_line(tmp_path):
    path = tmp_path / "set" / "scenes.json"
    common = ("--sink", "null", "--no-web", "--scenes", str(path), "--seconds", "60")
    proc = start_serve(*common)
    try:
        port = osc_port(wait_started(proc))
        ask(port, message("/liveshtr/temperature", 2.5))
        assert ask(port, message("/liveshtr/scene/save", "hot")) == [("/liveshtr/scene/saved", ["hot"])]
        ask(port, message("/liveshtr/temperature", 0.5))
        assert ask(port, message("/liveshtr/scene/recall", "hot", 0.5))[0][0] == "/liveshtr/scene/recalled"
        __import__("time").sleep(1.0)
        assert dict(ask(port, message("/liveshtr/get", "temperature")))["/liveshtr/temperature"] == [2.5]
    finally:
        assert stop_serve(proc) == 0
    proc = start_serve(*common)
    try:
        lines = wait_started(proc)
        assert "1 in" in lines["scenes"] and "hot" in lines["scenes"]
        assert ("/liveshtr/scene", ["hot"]) in ask(osc_port(lines), message("/liveshtr/list"))
    finally:
        assert stop_serve(proc) == 0
    path.write_text("{half a file")
    one_line_error(cli("serve", "--sink", "null", "--seconds", "1", "--scenes", str(path)), "not JSON")
    assert path.read_text() == "{half a file"


def test_a_program_change_recalls_the_scene_of_its_number(tmp_path):
    s = scenes(tmp_path)
    params = s.store.params
    for gain in (0.1, 0.2, 0.3):
        params.set("gain", gain)
        s.save(f"g{gain}")
    midi = MidiProtocol(params, scenes=s)
    midi.handle([0xC0, 1])
    assert params.get("gain") == 0.2
    midi.handle([0xC3, 0])  # any channel by default
    assert params.get("gain") == 0.1
    midi.handle([0xC0, 5])  # no sixth scene
    assert params.get("gain") == 0.1 and midi.ignored == 1 and midi.errors == 0


def test_keys_recall_scenes_when_the_map_says_so(tmp_path):
    s = scenes(tmp_path)
    params = s.store.params
    for gain in (0.1, 0.2):
        params.set("gain", gain)
        s.save(f"g{gain}")
    midi = MidiProtocol(params, MidiMap.from_dict({"notes": "scenes", "keys": [60, 72]}, params), scenes=s)
    midi.handle([0x90, 60, 100])  # the lowest key: the first scene
    assert params.get("gain") == 0.1 and params.get("prime") == 0.5  # no jump through the song
    midi.handle([0x90, 61, 100])
    assert params.get("gain") == 0.2
    midi.handle([0x90, 62, 100])  # no third scene
    assert params.get("gain") == 0.2 and midi.errors == 0
