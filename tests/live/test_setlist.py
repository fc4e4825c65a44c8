"""A set list in-process: the equal-power crossfade between models of other rates and latent sizes, the order of
switches, and the models a set refuses while it plays on."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from liveshtr.bundle import load_bundle
from liveshtr.live.engine import Engine
from liveshtr.live.generator import Generator
from liveshtr.live.params import Params
from liveshtr.live.setlist import Model, SetError, SetList
from liveshtr.live.voice import Crossfade, Voice

RATE, BLOCK = 48000, 256


def voice(bundle, seed=0) -> Voice:
    return Voice(Generator(bundle, seed=seed), Params.for_bundle(bundle), RATE)


def make_set(bundle, other_model, load=None) -> SetList:
    first, second = voice(bundle), voice(load_bundle(other_model))
    engine = Engine(first.generator, first.params, RATE, BLOCK, voice=first)
    models = [Model("demo", bundle.path, first), Model("groove", other_model, second)]
    return SetList(engine, models, load)


def window_rms(x: np.ndarray, n: int) -> np.ndarray:
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=1))


class Noise:
    """What a crossfade asks of the voice going out: exactly n samples at the output rate."""

    samplerate = RATE

    def __init__(self, seed: int, level: float):
        self.rng, self.level = np.random.default_rng(seed), level

    def take(self, n: int) -> np.ndarray:
        return (self.level * self.rng.standard_normal(n)).astype(np.float32)


def test_the_crossfade_is_equal_power_and_the_sum_of_two_loud_models_stays_under_the_ceiling():
    ceiling = 0.89
    fade = Crossfade(Noise(1, 0.1), RATE, ceiling)  # one second
    incoming = Noise(2, 0.1)
    out = np.concatenate([fade.mix(incoming.take(512)) for _ in range(RATE * 3 // 2 // 512)])
    # Two unrelated sounds of one level keep it through the whole fade, within the noise of 50 ms windows; a
    # linear fade would lose 3 dB mid-way.
    level_db = 20 * np.log10(window_rms(out, RATE // 20) / 0.1)
    assert np.abs(level_db).max() < 0.6, level_db.round(2)
    assert fade.finished and fade.gain == 1.0

    # The worst case: the same loud sound on both sides adds up to 3 dB; the limiter holds it under the ceiling
    # and lets go after the fade.
    t = np.arange(RATE * 3) / RATE
    sine = (ceiling * np.sin(2 * np.pi * 220 * t)).astype(np.float32)

    class Same:
        samplerate, done = RATE, 0

        def take(self, n):
            self.done += n
            return sine[self.done - n : self.done]

    fade = Crossfade(Same(), RATE // 2, ceiling)
    out = np.concatenate([fade.mix(sine[i : i + 512]) for i in range(0, len(sine) - 512, 512)])
    assert np.abs(out).max() <= ceiling
    assert fade.finished and np.abs(out[-RATE // 10 :]).max() > 0.99 * ceiling


def test_a_switch_between_models_of_other_rates_and_sizes_plays_on_safely_and_without_a_click(bundle, other_model):
    s = make_set(bundle, other_model)
    engine = s.engine
    before = engine.render(3.0)[:, 0]
    s.switch(1, 2.0)
    assert engine.voice is s.models[0].voice  # until the producer's next hop
    fade = engine.render(2.0)[:, 0]
    assert engine.params is s.models[1].params and engine.params.table["latent"].size == 4
    after = engine.render(3.0)[:, 0]
    assert engine.switches == 1 and engine.crossfade is None  # over, the first model no longer runs
    assert engine.generator.samplerate == 16000 and engine.stats.callback_errors == 0
    every = np.concatenate([before, fade, after])
    assert np.isfinite(every).all() and np.abs(every).max() <= engine.generator.safety.ceiling
    # No click: no sample-to-sample step in the fade larger than the steps of the models' own playing.
    assert np.abs(np.diff(fade)).max() <= 1.2 * max(np.abs(np.diff(before)).max(), np.abs(np.diff(after)).max())


def test_the_level_is_the_performers_and_each_model_keeps_its_own_settings(bundle, other_model):
    s = make_set(bundle, other_model)
    s.playing.params.set("gain", 0.5)
    s.playing.params.set("temperature", 0.3)
    s.switch("groove", 0.1)
    assert s.playing.name == "groove" and s.playing.params.get("gain") == 0.5
    assert s.playing.params.get("temperature") == 1.0  # its own
    s.playing.params.set("gain", 0.8)
    s.engine.render(0.5)
    s.switch(0, 0.1)
    assert s.playing.params.get("temperature") == 0.3 and s.playing.params.get("gain") == 0.8


def test_a_switch_asked_for_during_a_crossfade_follows_it_and_the_last_one_wins(bundle, other_model):
    s = make_set(bundle, other_model)
    engine = s.engine
    s.switch(1, 1.0)
    engine.render(0.3)
    s.switch(0, 0.5)  # waits for the first crossfade
    s.switch(1, 0.5)  # replaces it: the set is back where the fade goes
    engine.render(0.3)
    assert engine.switches == 1 and engine.voice is s.models[1].voice
    s.switch(0, 0.5)
    engine.render(0.8)  # the first crossfade ends at 1.0 s (and its limiter lets go), then this one begins
    assert engine.switches == 2 and engine.voice is s.models[0].voice
    engine.render(1.0)
    assert engine.crossfade is None and s.current == 0


def test_models_are_found_by_index_or_name_and_the_rest_is_refused_while_it_plays(bundle, other_model, tmp_path):
    def load(path):
        return voice(load_bundle(path))

    s = make_set(bundle, other_model, load)
    engine = s.engine
    engine.render(0.2)
    for key, problem in [
        (5, "no model 5 in the set (0 demo, 1 groove)"),
        ("verse", "no model 'verse'"),
        (True, "no model True"),
        (str(tmp_path / "missing"), "not loaded"),
    ]:
        with pytest.raises(SetError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            s.switch(key)
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle.path, damaged, ignore=shutil.ignore_patterns("scenes.json"))
    (damaged / "model.onnx").write_bytes(b"not a graph")
    (damaged / "model.int8.onnx").write_bytes(b"not a graph")
    with pytest.raises(SetError, match="damaged: not loaded"):
        s.switch(str(damaged))
    for seconds in (-1, 61, "soon", float("nan")):
        with pytest.raises(SetError, match="fade"):
            s.switch(1, seconds)
    assert s.current == 0 and len(s.models) == 2 and engine.switches == 0
    assert np.abs(engine.render(0.5)).max() > 0.01  # it played on

    loaded = s.switch(str(other_model) + "/", 0.1)  # a folder already in the set is that model
    assert loaded is s.models[1]
    engine.render(0.3)
    copy = shutil.copytree(other_model, tmp_path / "groove", ignore=shutil.ignore_patterns("scenes.json"))
    added = s.switch(str(copy), 0.1)
    assert len(s.models) == 3 and added.name == "groove-2" and s.find("groove-2") == 2
    engine.render(0.5)
    assert engine.voice is added.voice and engine.switches == 2
    assert [m["playing"] for m in s.describe()] == [False, False, True]


def test_a_midi_clocks_beat_puts_the_models_clock_where_the_band_will_be_when_it_is_heard(bundle):
    import time

    first = voice(bundle)
    engine = Engine(first.generator, first.params, RATE, BLOCK, voice=first)
    engine.render(0.5)
    at = time.monotonic() - 0.1  # the band's fourth beat came 100 ms ago, at 120 beats a minute
    engine.sync_beat(3.0, 120.0, at)
    g = engine.generator
    step = engine.controls.tempo / 60.0 * g.hop / g.samplerate  # the clock's own advance over the hop made
    before = time.monotonic()
    engine.produce_hop()
    after = time.monotonic()
    # Where the band will be when this hop is heard (a look-ahead from now), then one hop of the model's clock.
    low = (3.0 + (before - at + engine.latency_s) * 2.0 + step) % 4.0
    high = (3.0 + (after - at + engine.latency_s) * 2.0 + step) % 4.0
    assert low <= g._beat <= high or (high < low and (g._beat >= low or g._beat <= high)), (low, g._beat, high)


def test_loading_is_answered_before_whatever_the_loader_says(bundle, other_model, tmp_path):
    """The loader runs on the server's thread: the protocol answers "loading" first, and the loading comes after
    it as work whose replies (here an error: a folder that fails at once) go back to the sender."""
    from liveshtr.control.commands import Commands, Later
    from liveshtr.control.osc_protocol import OscProtocol

    def load(path):
        return voice(load_bundle(path))

    s = make_set(bundle, other_model, load)
    protocol = OscProtocol(Commands(s.engine.params, setlist=s))
    me = ("127.0.0.1", 5555)
    loading, later = protocol.handle("/liveshtr/model", [str(tmp_path / "missing")], me)
    assert loading == ("/liveshtr/model/loading", (str(tmp_path / "missing"),), None) and isinstance(later, Later)
    assert protocol.errors == 0  # nothing has failed yet: the loading is still to come
    ((error, (where, text), to),) = later.work()
    assert error == "/liveshtr/error" and "not loaded" in text
    assert to == me and where == "/liveshtr/model" and protocol.errors == 1
