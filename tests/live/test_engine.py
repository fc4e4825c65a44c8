"""The engine in-process, on the committed demo bundle: the callback's contract, safety, controls, determinism."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from liveshtr.errors import LiveshtrError
from liveshtr.live.automation import load_schedule
from liveshtr.live.engine import FADE_S, Engine
from liveshtr.live.generator import Generator
from liveshtr.live.params import ParamError, Params
from tests.helpers import BLOCK, RATE, make_engine


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)


def test_callback_never_allocates_and_always_fills_outdata(bundle):
    engine = make_engine(bundle)
    outdata = np.empty((BLOCK, 2), dtype=np.float32)
    tracemalloc.start()
    try:
        for _ in range(20):  # warm tracemalloc and numpy's caches up
            engine.fill()
            engine.callback(outdata, BLOCK, None, 0)
        worst_peak = growth = 0
        for i in range(600):
            if i % 100 < 90:  # mostly a fed ring; every 100 blocks ten underruns in a row
                engine.fill()
            else:
                engine.ring.drop()
            outdata.fill(np.nan)
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            engine.callback(outdata, BLOCK, None, 0)
            current, peak = tracemalloc.get_traced_memory()
            worst_peak, growth = max(worst_peak, peak - before), growth + current - before
            assert np.isfinite(outdata).all()
            assert np.array_equal(outdata[:, 0], outdata[:, 1])
    finally:
        tracemalloc.stop()
    # A block-sized temporary would be 1 KB; only Python scalars (tens of bytes, freed at once) are allowed,
    # and nothing accumulates.
    assert worst_peak < 512, worst_peak
    assert growth < 1024, growth
    assert engine.stats.underruns == 60
    assert engine.stats.blocks == 620
    assert engine.stats.callback_errors == 0


def test_underrun_fades_out_and_back_in_without_a_jump(bundle):
    engine = make_engine(bundle)
    out = np.zeros((BLOCK * 300, 1), dtype=np.float32)
    for i in range(300):
        if 100 <= i < 110:
            engine.ring.drop()  # the producer stalls for ten blocks
        else:
            engine.fill()
        engine.callback(out[i * BLOCK : (i + 1) * BLOCK], BLOCK, None, 0)
    x = out[:, 0]
    assert engine.stats.underruns == 10
    assert np.all(x[101 * BLOCK : 110 * BLOCK] == 0.0)  # silence after a one-block fade
    steps = np.abs(np.diff(x))
    typical = np.percentile(steps[: 100 * BLOCK], 99.9)
    assert steps[100 * BLOCK - 2 : 101 * BLOCK].max() <= typical  # the fade-out is no larger than the music's steps
    # Back in: the gain ramps up from 0 over FADE_S, so the first returning samples are quiet.
    back = x[110 * BLOCK : 110 * BLOCK + 16]
    assert np.abs(back).max() <= np.abs(x[: 100 * BLOCK]).max() * 0.1
    assert rms_db(x[130 * BLOCK :]) > -40


def test_non_finite_and_runaway_model_output_never_reaches_the_speaker(bundle):
    engine = make_engine(bundle)
    model = engine.generator.model
    real_step = model.step
    calls = {"n": 0}

    def poisoned():
        calls["n"] += 1
        if calls["n"] in (100, 101):
            model.set_state(np.nan, np.nan)  # a corrupted recurrent state
        out = real_step()
        if calls["n"] == 300:
            out["next_frame"][:] = np.inf
        if calls["n"] == 500:
            out["next_frame"][:] = 1e30
        return out

    model.step = poisoned
    audio = engine.render(8.0)
    assert engine.generator.resets >= 3
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= engine.generator.safety.ceiling
    assert rms_db(audio[-RATE:]) > -60  # it plays again after the resets (a stuck reset: silence, under -90)
    assert engine.summary()["non_finite_blocks"] == 0


def test_render_is_deterministic_for_a_seed_and_seeds_differ(bundle):
    a = make_engine(bundle, seed=5).render(3.0)
    b = make_engine(bundle, seed=5).render(3.0)
    c = make_engine(bundle, seed=6).render(3.0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[RATE:], c[RATE:])


def test_gain_is_ramped_and_panic_fades_to_silence_then_restarts(bundle):
    engine = make_engine(bundle)
    blocks_per_fade = int(np.ceil(FADE_S * RATE / BLOCK))
    out = np.zeros((BLOCK * 400, 1), dtype=np.float32)
    for i in range(400):
        if i == 150:
            engine.params.set("panic")
        if i == 250:
            engine.params.set("gain", 1.0)
        engine.fill()
        engine.callback(out[i * BLOCK : (i + 1) * BLOCK], BLOCK, None, 0)
    x = out[:, 0]
    silent_from = (150 + blocks_per_fade) * BLOCK
    assert np.all(x[silent_from : 250 * BLOCK] == 0.0)
    fade = np.abs(np.diff(x[150 * BLOCK : silent_from]))
    assert fade.max() <= np.abs(np.diff(x[: 150 * BLOCK])).max()  # the fade adds no step larger than the music's
    assert engine.generator.position == 0.5 and engine.params.get("gain") == 1.0
    assert rms_db(x[300 * BLOCK :]) > -40  # raised gain: it plays from the song again


def test_freeze_holds_the_sound_and_pauses_the_model(bundle):
    engine = make_engine(bundle)
    before = engine.render(2.0)[-RATE // 2 :, 0]
    steps = {"n": 0}
    real_step = engine.generator.model.step

    def counted():
        steps["n"] += 1
        return real_step()

    engine.generator.model.step = counted
    engine.params.set("freeze", 1)
    frozen = engine.render(3.0)[RATE // 2 :, 0]
    assert steps["n"] <= 8  # only what the look-ahead had already asked for before the freeze arrived
    engine.params.set("freeze", 0)
    playing = engine.render(3.0)[RATE // 2 :, 0]
    assert steps["n"] > 200

    def spectrum_drift_db(x):
        """How far the sound's spectrum moves: mean |dB| change between consecutive half-second average spectra.
        (A frame-by-frame flux would also count the beating of neighbouring bins that a held sound keeps.)"""
        halves = x[: len(x) // (RATE // 2) * (RATE // 2)].reshape(-1, RATE // 2)
        frames = np.lib.stride_tricks.sliding_window_view(halves, 2048, axis=1)[:, ::512] * np.hanning(2048)
        power = np.mean(np.abs(np.fft.rfft(frames, axis=2)) ** 2, axis=1)[:, 10:800]  # (halves, bins), 230 Hz-19 kHz
        return float(np.mean(np.abs(np.diff(10 * np.log10(power + 1e-12), axis=0))))

    # frozen is held where it was, not silenced (music has rests: the level is the one it was frozen at)
    assert rms_db(before) > -70 and abs(rms_db(frozen) - rms_db(before)) < 10
    assert spectrum_drift_db(frozen) < 1.0 and spectrum_drift_db(frozen) < 0.5 * spectrum_drift_db(playing)


def test_controls_move_the_sound_and_are_clamped(bundle):
    base = make_engine(bundle, seed=1).render(4.0)
    hot = make_engine(bundle, seed=1, temperature=3.0).render(4.0)
    assert not np.array_equal(base, hot)
    params = Params.for_bundle(bundle)
    assert params.set("temperature", 99) == 4.0
    assert params.set("latent", 9.0, 2) == 4.0
    assert params.get("latent")[2] == 4.0 and params.get("latent")[0] == 0.0
    assert params.set("target", [1.0] * bundle.latent_dim) == [1.0] * bundle.latent_dim
    for name, value, index in [
        ("nope", 1, None),
        ("gain", float("nan"), None),
        ("gain", "loud", None),
        ("gain", 1.0, 0),
        ("latent", 1.0, bundle.latent_dim),
        ("latent", [1.0, 2.0], None),
    ]:
        with pytest.raises(ParamError):
            params.set(name, value, index)


def test_automation_applies_at_its_times_and_bad_lines_are_refused(bundle, tmp_path):
    good = tmp_path / "set.jsonl"
    good.write_text(
        "# a short set\n"
        + "\n".join(
            json.dumps(e)
            for e in [
                {"time": 1.0, "name": "gain", "value": 0.0},
                {"time": 2.0, "name": "gain", "value": 1.0},
                {"time": 2.0, "name": "latent", "index": 7, "value": 1.0},
            ]
        )
    )
    engine = make_engine(bundle)
    engine.schedule = load_schedule(good, engine.params)
    x = engine.render(3.0)[:, 0]
    # Events apply when the producer reaches their time; the gain acts in the callback, up to a look-ahead earlier.
    assert np.all(x[int((1.0 + FADE_S) * RATE) : int((2.0 - engine.latency_s) * RATE)] == 0.0)
    assert rms_db(x[int(0.5 * RATE) : int(0.9 * RATE)]) > -45
    assert rms_db(x[int(2.3 * RATE) :]) > -45
    assert engine.params.get("latent")[7] == 1.0
    for text, expected in [
        ("{not json", ":1: not JSON"),
        ('{"time": -1, "name": "gain", "value": 1}', "time must be"),
        ('{"time": 1, "name": "volume", "value": 1}', "unknown control"),
        ('{"time": 1, "name": "gain", "value": "x"}', "not a number"),
        ("[1, 2]", "expected"),
    ]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(LiveshtrError, match=expected):
            load_schedule(bad, engine.params)


def test_resampled_output_keeps_the_level_of_the_model_rate_output(bundle):
    at_model = make_engine(bundle, seed=2, samplerate=bundle.audio.samplerate).render(4.0)[:, 0]
    at_48k = make_engine(bundle, seed=2).render(4.0)[:, 0]
    assert abs(rms_db(at_model) - rms_db(at_48k)) < 0.5
    assert len(at_48k) == 2 * len(at_model)


def test_no_sample_over_the_ceiling_after_resampling(bundle):
    """The limiter holds -1 dBFS at the model's rate; resampling can peak between those samples, and the engine
    holds the ceiling after it too (44.1 kHz: a ratio with no common structure)."""
    for rate in (44100, 48000):
        engine = make_engine(bundle, seed=3, samplerate=rate, temperature=2.5)
        audio = engine.render(20.0)
        assert np.abs(audio).max() <= engine.generator.safety.ceiling
        assert np.isfinite(audio).all()


def test_each_underrun_raises_the_look_ahead_one_block_up_to_its_ceiling(bundle):
    engine = Engine(Generator(bundle), Params.for_bundle(bundle), RATE, BLOCK, lookahead_ms=10, max_lookahead_ms=20)
    engine.fill()
    start = engine.target_fill
    outdata = np.zeros((BLOCK, 1), dtype=np.float32)
    for expected in (start + BLOCK, start + 2 * BLOCK, engine.max_fill, engine.max_fill):
        while engine.ring.available >= BLOCK:  # the producer falls behind: the callback drains the ring ...
            engine.callback(outdata, BLOCK, None, 0)
        engine.callback(outdata, BLOCK, None, 0)  # ... and underruns
        engine.fill()
        assert engine.target_fill == min(expected, engine.max_fill)
        assert engine.ring.available >= engine.target_fill
    assert engine.stats.underruns == 4 and engine.max_fill == 20 * RATE // 1000
