"""The command core every surface shares: a command applies whole or is refused in one line with nothing changed,
and OSC and the WebSocket, its two codecs, do the same thing for the same command."""

from __future__ import annotations

import json
import math

import pytest

from liveshtr.control.commands import CommandError, Commands, Later
from liveshtr.control.midi_protocol import MidiProtocol
from liveshtr.control.osc_protocol import OscProtocol
from liveshtr.control.web_protocol import WebProtocol
from liveshtr.errors import LiveshtrError
from liveshtr.live.params import Params
from tests.helpers import scenes_for

L = 4


class Takes:
    """A recorder as the core sees it (the real one: tests/live/test_recorder.py)."""

    folder, recording, takes = "sets/now", False, 0

    def start_take(self) -> str:
        if self.recording:
            raise CommandError("already recording")
        self.recording, self.takes = True, self.takes + 1
        return self.folder

    def stop_take(self) -> None:
        self.recording = False


@pytest.fixture
def commands(tmp_path) -> Commands:
    params = Params(L, tempo=120.0)
    return Commands(params, scenes_for(params, tmp_path / "scenes.json"), MidiProtocol(params), Takes())


def test_a_value_applies_clamped_and_says_so(commands):
    assert commands.set("mix", [0.25]) == ([0.25], False)
    assert commands.set("gain", [3]) == ([1.0], True)
    assert commands.set("latent", [9.0]) == ([4.0] * L, True)  # one value for every dimension
    assert commands.set("latent", [0.5], 2).values == [0.5]
    assert commands.values("latent") == {"latent": [4.0, 4.0, 0.5, 4.0]}
    assert commands.set("target", [0.1, 0.2, 0.3, 0.4]).values == pytest.approx([0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    "name, values, index, problem",
    [
        ("volume", [1.0], None, "unknown control"),
        (None, [1.0], None, "unknown control"),
        ("reset", [1.0], None, "is an action"),
        ("gain", [], None, "expected one value"),
        ("gain", [1.0, 2.0], None, "expected one value"),
        ("gain", [0], 0, "no dimension"),
        ("latent", [1.0], L, f"dimensions 0..{L - 1}"),
        ("latent", [1.0, 2.0], None, f"expected {L} values"),
        ("gain", ["loud"], None, "expected a number"),
        ("gain", [True], None, "expected a number"),
        ("gain", [None], None, "expected a number"),
        ("temperature", [math.nan], None, "not a finite number"),
        ("latent", [1.0, 1.0, math.inf, 1.0], None, "not a finite number"),
    ],
)
def test_what_cannot_apply_is_refused_and_changes_nothing(commands, name, values, index, problem):
    before = commands.params.snapshot
    with pytest.raises(CommandError, match=problem):
        commands.set(name, values, index)
    assert commands.params.snapshot is before


def test_actions_and_values_do_not_mix(commands):
    commands.act("panic")
    assert commands.values("panic") == {"panic": 1.0} and commands.values("gain") == {"gain": 0.0}
    with pytest.raises(CommandError, match="not an action"):
        commands.act("gain")


def test_scenes_records_and_midi_learn(commands):
    commands.set("mix", [0.7])
    commands.scene("save", "verse")
    commands.set("mix", [0.0])
    assert commands.scene("recall", "verse") == 0.0 and commands.values("mix") == {"mix": 0.7}
    assert commands.scene_names() == ["verse"]
    commands.scene("delete", "verse")
    assert commands.scene_names() == []
    assert commands.record("start") == "sets/now" and commands.record("stop") is None
    assert commands.learn("latent", 2.0) == "latent/2"  # Pd sends every number as a float
    assert commands.midi_state()["learning"] == "latent/2"
    commands.cancel_learn()
    assert commands.midi_state()["learning"] is None
    for bad in (
        lambda: commands.scene("rename", "verse"),
        lambda: commands.scene("save", 3),
        lambda: commands.scene("recall", "chorus"),
        lambda: commands.scene("recall", "verse", "slow"),
        lambda: commands.record("pause"),
        lambda: commands.learn("latent", 1.5),
        lambda: commands.learn(["latent"]),
        lambda: commands.learn("latent"),  # a vector needs its dimension
    ):
        with pytest.raises(LiveshtrError):
            bad()


def test_what_serve_was_started_without_is_named(commands):
    bare = Commands(Params(L))
    for command, flag in (
        (lambda: bare.scene("save", "verse"), "no scenes"),
        (lambda: bare.record("start"), "--record"),
        (lambda: bare.learn("gain"), "--midi"),
        (lambda: bare.midi_state(), "--midi"),
        (lambda: bare.switch_args(1, None), "several MODELs"),
    ):
        with pytest.raises(CommandError, match=flag):
            command()
    assert bare.models() == [] and bare.scene_names() is None and not bare.loads("some/folder")


# -- the two codecs ------------------------------------------------------------------------------------------

# The same commands as each surface sends them: (OSC address, arguments), WebSocket message.
SAME = [
    (("/liveshtr/temperature", [0.5]), {"type": "set", "name": "temperature", "value": 0.5}),
    (("/liveshtr/latent", [1.0, 2.0, 3.0, 4.0]), {"type": "set", "name": "latent", "value": [1, 2, 3, 4]}),
    (("/liveshtr/target/3", [-1.0]), {"type": "set", "name": "target", "index": 3, "value": -1.0}),
    (("/liveshtr/gain", [7.0]), {"type": "set", "name": "gain", "value": 7.0}),
    (("/liveshtr/reset", []), {"type": "action", "name": "reset"}),
    (("/liveshtr/scene/save", ["a"]), {"type": "scene", "action": "save", "name": "a"}),
    (("/liveshtr/mix", [1.0]), {"type": "set", "name": "mix", "value": 1.0}),
    (("/liveshtr/scene/recall", ["a", 0.0]), {"type": "scene", "action": "recall", "name": "a", "seconds": 0}),
    (("/liveshtr/midi/learn", ["latent", 1]), {"type": "midi", "action": "learn", "name": "latent", "index": 1}),
    (("/liveshtr/record/start", []), {"type": "record", "action": "start"}),
    (("/liveshtr/latent/9", [1.0]), {"type": "set", "name": "latent", "index": 9, "value": 1.0}),  # refused
    (("/liveshtr/scene/recall", ["b"]), {"type": "scene", "action": "recall", "name": "b"}),  # refused
    (("/liveshtr/record/start", []), {"type": "record", "action": "start"}),  # refused: already recording
    (("/liveshtr/model", [1]), {"type": "model", "model": 1}),  # refused: one model
]


def test_both_codecs_do_the_same_for_the_same_command(tmp_path):
    (tmp_path / "osc").mkdir(), (tmp_path / "web").mkdir()
    params = {side: Params(L, tempo=120.0) for side in ("osc", "web")}
    core = {
        side: Commands(p, scenes_for(p, tmp_path / side / "scenes.json"), MidiProtocol(p), Takes())
        for side, p in params.items()
    }
    osc, web = OscProtocol(core["osc"]), WebProtocol(core["web"], {}, 20.0, {})
    for (address, args), message in SAME:
        osc_replies = osc.handle(address, args, ("127.0.0.1", 9))
        web_replies = web.handle(json.dumps(message))
        assert not any(isinstance(r, Later) for r in osc_replies + web_replies)
        osc_refused = any(r.address == "/liveshtr/error" for r in osc_replies)
        web_refused = any(r["type"] == "error" for r in web_replies)
        assert osc_refused == web_refused, (address, osc_replies, web_replies)
        assert params["osc"].values() == params["web"].values(), address
        assert core["osc"].scene_names() == core["web"].scene_names()
        assert core["osc"].midi_state()["learning"] == core["web"].midi_state()["learning"]
        assert core["osc"].recorder.takes == core["web"].recorder.takes
    assert osc.errors == web.errors == 4
