"""The parameter table every control surface writes: ranges, clamping, refusals, and whole-snapshot publication."""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import pytest

from liveshtr.errors import LiveshtrError
from liveshtr.live.params import LATENT_RANGE, TEMPO_RANGE, ParamError, Params, param_table

L = 8
SCALARS = ("gain", "temperature", "mix", "drift", "prime", "freeze")


def test_the_table_lists_every_control_with_its_default_and_range():
    params = Params(L)
    assert list(params.table) == [
        "gain",
        "temperature",
        "latent",
        "target",
        "mix",
        "drift",
        "prime",
        "freeze",
        "reset",
        "panic",
    ]
    expected = {
        "gain": (1.0, 0.0, 1.0),
        "temperature": (1.0, 0.0, 4.0),
        "latent": (0.0, -LATENT_RANGE, LATENT_RANGE),
        "target": (0.0, -LATENT_RANGE, LATENT_RANGE),
        "mix": (0.0, 0.0, 1.0),
        "drift": (0.0, 0.0, 0.999),
        "prime": (0.5, 0.0, 1.0),
        "freeze": (0.0, 0.0, 1.0),
        "reset": (0.0, 0.0, math.inf),
        "panic": (0.0, 0.0, math.inf),
    }
    for p in params.describe():
        assert (p["default"], p["min"], p["max"]) == expected[p["name"]], p
        assert p["size"] == (L if p["name"] in ("latent", "target") else 1)
        assert p["action"] == (p["name"] in ("reset", "panic"))
        assert p["doc"]
    # the snapshot holds every value once, at its default
    assert params.snapshot.shape == (len(expected) - 2 + 2 * L,)
    for name, (default, _, _) in expected.items():
        assert np.all(params.get(name) == default), name
    assert params.values()["latent"] == [0.0] * L


def test_every_default_lies_in_its_range():
    for p in param_table(3, tempo=120.0):
        assert p.low <= p.default <= p.high, p


def test_tempo_is_a_control_only_of_a_model_with_a_clock(bundle):
    assert "tempo" not in Params(L).table
    with pytest.raises(ParamError, match="unknown control 'tempo'"):
        Params(L).set("tempo", 120)
    clocked = Params(L, tempo=153.756)
    assert clocked.get("tempo") == 153.76  # the song's tempo, to a hundredth of a beat
    assert clocked.set("tempo", 1000) == TEMPO_RANGE[1]
    assert clocked.set("tempo", 1) == TEMPO_RANGE[0]
    # a song tempo outside the clock's range starts at the nearest end of it
    assert Params(L, tempo=5.0).get("tempo") == TEMPO_RANGE[0]
    assert Params(L, tempo=900.0).get("tempo") == TEMPO_RANGE[1]
    # the demo bundle has a clock: its table has the tempo, and its latent size
    demo = Params.for_bundle(bundle)
    assert demo.get("tempo") == round(bundle.tempo, 2)
    assert demo.table["latent"].size == bundle.latent_dim


def test_a_snapshot_is_never_written_in_place():
    """The producer and the callback hold a snapshot while control threads write: what they hold must not move."""
    params = Params(L)
    held = params.snapshot
    before = held.copy()
    params.set("gain", 0.25)
    params.set("latent", 2.0, 3)
    params.set("target", [1.0] * L)
    params.set("reset")
    params.set_many({"mix": 1.0, "temperature": 2.0})
    np.testing.assert_array_equal(held, before)
    assert params.snapshot is not held
    assert not held.flags.writeable and not params.snapshot.flags.writeable
    with pytest.raises(ValueError):
        params.snapshot[0] = 0.5  # read-only: a writer cannot bypass set() by accident


def test_every_set_publishes_a_new_whole_snapshot_and_a_refused_one_publishes_nothing():
    params = Params(L)
    seen = [params.snapshot]
    for name, value, index in [("gain", 0.5, None), ("latent", 1.0, 0), ("target", 0.5, None), ("panic", 1, None)]:
        params.set(name, value, index)
        assert all(params.snapshot is not s for s in seen), name
        seen.append(params.snapshot)
    last = params.snapshot
    for name, value, index in [("gain", math.nan, None), ("latent", 1.0, L), ("nope", 1.0, None)]:
        with pytest.raises(ParamError):
            params.set(name, value, index)
        assert params.snapshot is last, name


def test_values_are_clamped_to_the_range_and_returned_as_applied():
    params = Params(L)
    assert params.set("gain", 7) == 1.0
    assert params.set("gain", -3) == 0.0
    assert params.set("temperature", 99.0) == 4.0
    assert params.set("drift", 1.0) == 0.999  # an AR(1) coefficient of 1 would never forget
    assert params.set("latent", -9.0, 2) == -LATENT_RANGE
    assert params.set("target", [9.0, -9.0, 0.5, 0, 0, 0, 0, 0]) == [4.0, -4.0, 0.5, 0, 0, 0, 0, 0]
    assert params.get("gain") == 0.0 and params.get("temperature") == 4.0 and params.get("drift") == 0.999
    assert list(params.get("target")) == [4.0, -4.0, 0.5, 0, 0, 0, 0, 0]
    assert params.set("mix", np.float32(0.5)) == 0.5  # numpy scalars are numbers too
    assert params.set("mix", True) == 1.0  # a bool is a number to float(); a toggle button sends one


def test_a_vector_is_set_by_index_whole_or_one_value_for_all():
    params = Params(L)
    assert params.set("latent", 1.5, 3) == 1.5
    assert list(params.get("latent")) == [0, 0, 0, 1.5, 0, 0, 0, 0]
    assert params.set("latent", -0.5, np.int64(7)) == -0.5  # a numpy integer index (a MIDI map's) is an index
    assert params.get("latent")[7] == -0.5
    whole = [i / 4 for i in range(L)]
    assert params.set("latent", whole) == whole
    assert list(params.get("latent")) == whole
    assert params.set("latent", 0.75) == [0.75] * L  # one number, no index: every dimension
    assert params.set("target", np.full(L, -1.0)) == [-1.0] * L
    assert params.set("target", (2.0,) * L) == [2.0] * L
    got = params.get("target")
    got[:] = 0.0  # get() hands out a copy: changing it changes nothing
    assert list(params.get("target")) == [2.0] * L


def test_an_index_must_be_an_integer_within_the_vector():
    params = Params(L)
    for index in (-1, L, 100, 1.0, True, "2"):
        with pytest.raises(ParamError, match=r"latent: index .* out of range 0\.\.7"):
            params.set("latent", 1.0, index)
    with pytest.raises(ParamError, match="gain: takes no index"):
        params.set("gain", 1.0, 0)
    with pytest.raises(ParamError, match="latent: expected one number, got 2"):
        params.set("latent", [1.0, 2.0], 0)
    with pytest.raises(ParamError, match=r"latent: expected 8 values \(or one for all\), got 3"):
        params.set("latent", [1.0, 2.0, 3.0])
    assert list(params.get("latent")) == [0.0] * L


def test_non_finite_and_non_numbers_are_refused_naming_the_control():
    params = Params(L)
    before = params.snapshot
    for name, value, index, message in [
        ("gain", math.nan, None, "gain: nan is not a finite number"),
        ("gain", math.inf, None, "gain: inf is not a finite number"),
        ("temperature", -math.inf, None, "temperature: -inf is not a finite number"),
        ("gain", "loud", None, "gain: 'loud' is not a number"),
        ("gain", None, None, "gain: None is not a number"),
        ("gain", [], None, "gain: .* is not a finite number"),
        ("latent", [0.0] * (L - 1) + [math.nan], None, "latent: .* is not a finite number"),
        ("latent", math.inf, 2, "latent: inf is not a finite number"),
        ("target", [[1.0, 2.0]], None, "target: .* is not a number"),
        ("gain", [0.5, 0.5], None, "gain: expected one number, got 2"),
    ]:
        with pytest.raises(ParamError, match=message):
            params.set(name, value, index)
    assert params.snapshot is before


def test_an_unknown_control_is_refused_naming_the_known_ones():
    params = Params(L)
    for call in (lambda: params.set("volume", 1.0), lambda: params.get("volume"), lambda: Params(L, volume=1.0)):
        with pytest.raises(ParamError) as info:
            call()
        message = str(info.value)
        assert message.startswith("unknown control 'volume'; known: gain, temperature")
        assert "\n" not in message
    assert issubclass(ParamError, LiveshtrError)  # reported as one line, never a traceback


def test_actions_count_presses_and_panic_drops_the_gain_in_the_same_snapshot():
    params = Params(L)
    assert params.set("reset") == 1.0
    assert params.set("reset", 0.0) == 2.0  # any value is a press, even 0 (a button's release sends one)
    assert params.set("reset", math.nan) == 3.0
    assert params.get("reset") == 3.0
    params.set("gain", 0.8)
    held = params.snapshot
    assert params.set("panic") == 1.0
    after = params.values()
    assert after["panic"] == 1.0 and after["gain"] == 0.0 and after["reset"] == 3.0
    assert params.changed(held, params.snapshot) == {"gain": 0.0, "panic": 1.0}  # one update, both at once
    assert params.set("gain", 1.0) == 1.0  # raising the gain plays again
    assert params.get("panic") == 1.0


def test_presses_from_many_threads_are_never_lost():
    """Writers copy the snapshot, change it and publish it; without their lock two writers could both start from
    the same snapshot and one press would be lost."""
    params = Params(L)
    per_thread, n_threads = 400, 4
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows at once
    try:
        threads = [
            threading.Thread(target=lambda: [params.set("reset") for _ in range(per_thread)]) for _ in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert params.get("reset") == per_thread * n_threads


def test_set_many_is_one_snapshot_all_or_nothing():
    params = Params(L, gain=0.2)
    held = params.snapshot
    params.set_many({"gain": 5.0, "latent": [1.0] * L, "target": -9.0, "mix": 0.5})
    assert params.changed(held, params.snapshot) == {
        "gain": 1.0,
        "latent": [1.0] * L,
        "target": [-4.0] * L,
        "mix": 0.5,
    }
    good = params.snapshot
    for values, message in [
        ({"mix": 0.1, "volume": 1.0}, "unknown control 'volume'"),
        ({"mix": 0.1, "temperature": math.nan}, "temperature: nan is not a finite number"),
        ({"mix": 0.1, "latent": [1.0, 2.0]}, r"latent: expected 8 values \(or one for all\), got 2"),
        ({"mix": 0.1, "gain": [0.5, 0.5]}, r"gain: expected 1 values \(or one for all\), got 2"),
        ({"mix": 0.1, "reset": 1}, "reset: an action cannot be set with others"),
    ]:
        with pytest.raises(ParamError, match=message):
            params.set_many(values)
        assert params.snapshot is good  # the valid "mix" before the bad one was not applied either
    assert params.get("mix") == 0.5


def test_values_and_changed_round_trip():
    params = Params(L, tempo=120.0)
    start = params.snapshot
    params.set("temperature", 0.5)
    params.set("target", 2.0, 1)
    params.set("reset")
    values = params.values()
    assert values["temperature"] == 0.5 and values["target"][1] == 2.0 and values["reset"] == 1.0
    assert all(isinstance(v, float) for n, v in values.items() if n not in ("latent", "target"))
    assert params.changed(start, params.snapshot) == {
        "temperature": 0.5,
        "target": [0.0, 2.0, 0, 0, 0, 0, 0, 0],
        "reset": 1.0,
    }
    assert params.changed(params.snapshot, params.snapshot) == {}
    assert params.changed(start, start.copy()) == {}
    # the values of one table, set on another, give the same snapshot (the actions are counts, not settings)
    copy = Params(L, tempo=120.0)
    copy.set_many({n: v for n, v in values.items() if not params.table[n].action})
    copy.set("reset")
    np.testing.assert_array_equal(copy.snapshot, params.snapshot)
    assert params.values(start, ["gain", "latent"]) == {"gain": 1.0, "latent": [0.0] * L}


def test_index_is_the_place_of_a_scalar_in_the_snapshot():
    params = Params(L, tempo=100.0)
    for i, name in enumerate(SCALARS + ("tempo",)):
        params.set(name, 0.01 * (i + 1) if name != "tempo" else 99.0)
    for name in SCALARS + ("tempo",):
        assert params.snapshot[params.index(name)] == params.get(name), name
    assert params.index("gain") == 0  # the callback reads the gain there


def test_initial_values_are_set_through_the_same_checks():
    params = Params(L, temperature=2.0, latent=[0.5] * L, gain=7.0)
    assert params.get("temperature") == 2.0
    assert list(params.get("latent")) == [0.5] * L
    assert params.get("gain") == 1.0
    with pytest.raises(ParamError, match="temperature: nan is not a finite number"):
        Params(L, temperature=math.nan)
    with pytest.raises(ParamError, match="latent: expected 8 values"):
        Params(L, latent=[1.0, 2.0])
