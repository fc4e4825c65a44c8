"""The OSC address space over the parameter table, without sockets: what real clients send, and what they get."""

from __future__ import annotations

import math

import pytest

from liveshtr.control.commands import Commands
from liveshtr.control.osc_protocol import PREFIX, TELEMETRY_FIELDS, OscProtocol
from liveshtr.live.params import Params

L = 8


@pytest.fixture
def osc():
    return OscProtocol(Commands(Params(L)))


def test_scalars_accept_ints_and_floats(osc):
    assert osc.handle("/liveshtr/temperature", [2]) == []  # Max sends i for whole numbers
    assert osc.params.get("temperature") == 2.0
    assert osc.handle("/liveshtr/mix", [0.25]) == []  # Pd sends f
    assert osc.params.get("mix") == 0.25


def test_latent_whole_vector_one_dimension_and_one_for_all(osc):
    assert osc.handle("/liveshtr/latent", [float(i) / 4 for i in range(L)]) == []
    assert list(osc.params.get("latent")) == [i / 4 for i in range(L)]
    assert osc.handle("/liveshtr/latent/3", [-1.5]) == []  # TouchDesigner: one channel per address
    assert osc.params.get("latent")[3] == -1.5
    assert osc.handle("/liveshtr/target", [0.5]) == []
    assert list(osc.params.get("target")) == [0.5] * L


def test_out_of_range_is_clamped_and_told(osc):
    replies = osc.handle("/liveshtr/gain", [7])
    assert replies[0].address == f"{PREFIX}/clamped" and replies[0].args == ("/liveshtr/gain", 1.0)
    assert osc.params.get("gain") == 1.0
    replies = osc.handle("/liveshtr/latent/0", [-9.0])
    assert replies[0].args == ("/liveshtr/latent/0", -4.0)
    assert osc.errors == 0


def test_actions_and_queries(osc):
    assert osc.handle("/liveshtr/panic", []) == []
    assert osc.params.get("gain") == 0.0
    assert osc.handle("/liveshtr/reset", [1]) == []
    (reply,) = osc.handle("/liveshtr/get", ["temperature"])
    assert reply.address == "/liveshtr/temperature" and reply.args == (1.0,)
    everything = osc.handle("/liveshtr/get", [])
    assert {r.address for r in everything} == {f"{PREFIX}/{n}" for n in osc.params.table}
    assert [len(r.args) for r in everything if r.address.endswith("/latent")] == [L]
    listed = osc.handle("/liveshtr/list", [])
    assert [r.args[0] for r in listed] == list(osc.params.table)
    assert all(
        r.address == f"{PREFIX}/param" and all(not isinstance(a, float) or math.isfinite(a) for a in r.args)
        for r in listed
    )


@pytest.mark.parametrize(
    "address, args, problem",
    [
        ("/liveshtr/volume", [1.0], "unknown address"),
        ("/other/gain", [1.0], "not under"),
        ("/liveshtr/gain", [], "expected one value"),
        ("/liveshtr/gain", [1.0, 2.0], "expected one value"),
        ("/liveshtr/gain", ["loud"], "expected a number"),
        ("/liveshtr/gain", [float("nan")], "not a finite number"),
        ("/liveshtr/temperature", [float("inf")], "not a finite number"),
        ("/liveshtr/latent", [1.0, 2.0], "expected 8 values"),
        ("/liveshtr/latent/8", [1.0], "dimensions 0..7"),
        ("/liveshtr/latent/x", [1.0], "no dimension"),
        ("/liveshtr/gain/0", [1.0], "no dimension"),
        ("/liveshtr/reset/1", [], "takes no index"),
        ("/liveshtr/get", ["volume"], "unknown control"),
        ("/liveshtr/get", [1.0], "expected no argument"),
        ("/liveshtr/latent/3/4", [1.0], "unknown address"),
    ],
)
def test_malformed_messages_get_an_error_and_change_nothing(osc, address, args, problem):
    before = osc.params.snapshot
    (reply,) = osc.handle(address, args)
    assert reply.address == f"{PREFIX}/error"
    assert reply.args[0] == address and problem in reply.args[1], reply.args
    assert osc.params.snapshot is before
    assert osc.errors == 1


def test_subscribe_aims_feedback_at_the_senders_host_only(osc):
    replies = osc.handle("/liveshtr/subscribe", [9100.0], sender=("10.0.0.5", 5555))  # Pd sends the port as f
    assert replies[0] == (f"{PREFIX}/subscribed", (9100,), None)  # the confirmation goes back to the sender
    state = {r.address: r.args for r in replies[1:]}
    assert all(r.to == ("10.0.0.5", 9100) for r in replies[1:])  # the whole state goes where feedback will go
    assert state[f"{PREFIX}/latent"] == (0.0,) * L and state[f"{PREFIX}/temperature"] == (1.0,)
    assert osc.subscribers == [("10.0.0.5", 9100)]
    osc.handle("/liveshtr/subscribe", [], sender=("10.0.0.5", 5555))  # no port: the one it sends from
    osc.handle("/liveshtr/subscribe", [9100], sender=("10.0.0.5", 5555))  # twice: still once
    assert osc.subscribers == [("10.0.0.5", 9100), ("10.0.0.5", 5555)]
    (reply,) = osc.handle("/liveshtr/unsubscribe", [9100], sender=("10.0.0.5", 1))
    assert reply == (f"{PREFIX}/unsubscribed", (9100,), None)
    assert osc.subscribers == [("10.0.0.5", 5555)]


def test_errors_and_clamps_also_reach_the_feedback_port_the_sender_subscribed(osc):
    """Max, Pd and TouchDesigner send from one port and listen on another: they would never see an error."""
    pd, listen = ("127.0.0.1", 40001), ("127.0.0.1", 9003)
    osc.handle("/liveshtr/subscribe", [9003], sender=pd)
    error = osc.handle("/liveshtr/latent/9", [1.0], sender=pd)
    assert [r.to for r in error] == [None, listen] and error[0].args == error[1].args
    clamped = osc.handle("/liveshtr/gain", [3.0], sender=pd)
    assert [(r.address, r.to) for r in clamped] == [(f"{PREFIX}/clamped", None), (f"{PREFIX}/clamped", listen)]
    assert len(osc.handle("/liveshtr/gain", ["x"], sender=("127.0.0.1", 40002))) == 1  # another sender: its own
    assert osc.errors == 2  # counted once each
    osc.handle("/liveshtr/unsubscribe", [9003], sender=pd)
    assert len(osc.handle("/liveshtr/gain", ["x"], sender=pd)) == 1 and osc.reply_to == {}


@pytest.mark.parametrize("args", [["9000"], [1.5], [0], [70000], [math.nan], [1, 2], [True]])
def test_bad_subscriptions_are_errors(osc, args):
    (reply,) = osc.handle("/liveshtr/subscribe", args, sender=("127.0.0.1", 5555))
    assert reply.address == f"{PREFIX}/error" and reply.args[0] == "/liveshtr/subscribe"
    assert osc.subscribers == []


def test_subscribers_are_capped(osc):
    for port in range(1000, 1000 + 64):
        osc.handle("/liveshtr/subscribe", [port], sender=("127.0.0.1", 5555))
    assert len(osc.subscribers) == 16
    assert osc.errors == 64 - 16


def test_telemetry_messages_keep_their_documented_order(osc):
    t = {f: float(i) for i, f in enumerate(TELEMETRY_FIELDS)} | {"spectrum": [0, 128, 255]}
    numbers, spectrum = osc.telemetry(t)
    assert numbers.address == f"{PREFIX}/telemetry" and numbers.args == tuple(float(i) for i in range(10))
    assert spectrum == (f"{PREFIX}/spectrum", (0, 128, 255), None)


def test_learn_refuses_what_it_cannot_train_and_answers_the_state(tmp_path):
    from liveshtr.live.learner import Learning, LearnState

    osc = OscProtocol(Commands(Params(L), learning=Learning(None, tmp_path / "models")))
    for args, problem in [
        ((), "expected the path of a song"),
        ((3.0,), "expected the path of a song"),
        ((str(tmp_path / "gone.wav"),), "no such file"),
    ]:
        (reply,) = osc.handle("/liveshtr/learn", args)
        assert reply.address == f"{PREFIX}/error" and problem in reply.args[1], reply
    for command in ("hold", "back", "stop"):
        (reply,) = osc.handle(f"/liveshtr/learn/{command}", [])
        assert reply.address == f"{PREFIX}/error" and "nothing is training" in reply.args[1]
    (reply,) = osc.handle("/liveshtr/learn/state", [])
    assert "nothing has trained yet" in reply.args[1]
    (reply,) = osc.handle("/liveshtr/learn/pause", [])
    assert "has hold, back, stop, state" in reply.args[1]
    assert not (tmp_path / "models").exists()  # nothing started, nothing written
    state = LearnState(["song.wav"], "models/song", stage="training", epoch=3, epochs=20, fraction=0.15)
    state.playing, state.loaded = "song-01", ["song-01"]
    reply = OscProtocol.learn_progress(state.to_dict())
    assert reply.address == f"{PREFIX}/learn/progress"
    assert reply.args == ("training", 3, 20, 0.15, -1.0, -1.0, "song-01", 0, 1)  # val and ETA unknown yet: -1
    no_learning = OscProtocol(Commands(Params(L)))
    (reply,) = no_learning.handle("/liveshtr/learn/stop", [])
    assert "no training here" in reply.args[1]
