"""The OSC address space over the parameter table, without sockets: what real clients send, and what they get."""

from __future__ import annotations

import math

import pytest

from liveshtr.params import Params
from liveshtr.protocol import PREFIX, OscProtocol

L = 8


@pytest.fixture
def osc():
    return OscProtocol(Params(L))


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
        ("/liveshtr/gain", ["loud"], "expected numbers"),
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
