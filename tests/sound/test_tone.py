"""The output stage's tone: the contrast filter and the flatness that export matches to the song's."""

import tracemalloc

import numpy as np
import pytest

from liveshtr.sound.bands import band_edges_bins, ltas_noise
from liveshtr.sound.tone import (
    NOISE_SHARE,
    PERCUSSIVE_SHARE,
    ContrastFilter,
    median_flatness,
    noise_likeness,
    tone_target,
    tone_window,
)

SR = 24000


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    padded = np.concatenate([np.full(half, x[0]), x, np.full(half, x[-1])])
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def test_envelope_is_the_moving_average_with_edges_extended():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((3, 40))
    env = ContrastFilter(frames.shape, 9, np.float64).envelope(frames)
    for frame, e in zip(frames, env, strict=True):
        np.testing.assert_allclose(e, moving_average(frame, 9), atol=1e-12)


def test_contrast_scales_the_fine_structure_and_keeps_the_envelope():
    rng = np.random.default_rng(1)
    s = np.cumsum(rng.standard_normal(128)) + 3 * np.sin(np.arange(128))  # a slope with peaks on it
    f = ContrastFilter(128, 9, np.float64)
    before = s - moving_average(s, 9)
    same = f.apply(s.copy(), 1.0)
    np.testing.assert_array_equal(same, s)
    sharp = f.apply(s.copy(), 2.0)
    np.testing.assert_allclose(sharp - moving_average(s, 9), 2 * before, atol=1e-9)
    soft = f.apply(s.copy(), 0.5)
    assert np.std(soft - moving_average(soft, 9)) < np.std(before)


def test_filtering_frame_after_frame_allocates_nothing():
    frame = np.random.default_rng(2).standard_normal(4096)
    f = ContrastFilter(4096, 9, np.float64)  # 32 KB: a temporary array would show
    for _ in range(3):  # warm numpy's caches up
        f.apply(frame, 1.5)
    peaks = []
    for _ in range(3):  # tracemalloc sees every thread: the least of three windows is the filter's own
        tracemalloc.start()
        for _ in range(100):
            f.apply(frame, 1.5)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert min(peaks) < 4096, peaks  # views and their shapes only


def test_even_width_is_refused():
    with pytest.raises(ValueError, match="odd"):
        ContrastFilter(128, 8)


def test_flatness_tells_a_chord_from_noise_and_from_its_own_blur():
    t = np.arange(2 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0)) / 4
    noise = np.random.default_rng(3).standard_normal(len(t)) * 0.3
    tonal, veiled, flat = (median_flatness([x], SR) for x in (chord, chord + 0.01 * noise, noise))
    assert tonal < veiled < flat
    assert tonal < 1e-3 and flat > 0.3  # white noise: about exp(-Euler's gamma) = 0.56
    assert tone_window(SR) == 2048 and tone_window(48000) == 4096
    assert median_flatness([chord[:100]], SR) == 1.0  # nothing to measure: as flat as can be


def test_ltas_noise_keeps_every_band_power_and_loses_the_notes():
    t = np.arange(4 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0)) / 4
    noise = ltas_noise(chord, SR, seed=1)
    assert noise.shape == chord.shape and noise.dtype == np.float32
    a, b = (np.abs(np.fft.rfft(x.astype(np.float64))) ** 2 for x in (chord, noise))
    edges = band_edges_bins(len(a), SR / len(chord), SR)
    assert np.all(np.diff(edges) >= 3)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        assert b[lo:hi].sum() == pytest.approx(a[lo:hi].sum(), rel=1e-4)
    assert median_flatness([noise], SR) > 100 * median_flatness([chord], SR)


def test_tone_target_is_the_song_unless_the_song_is_nearly_as_flat_as_its_noise():
    rng = np.random.default_rng(4)
    t = np.arange(4 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * k * t) / k for f in (220.0, 277.2, 329.6) for k in range(1, 20)) / 10
    tonal = tone_target([chord + 0.003 * rng.standard_normal(len(t))], SR)  # partials over the whole spectrum
    assert tonal["target"] == tonal["song"] < NOISE_SHARE * tonal["noise"]
    hiss = tone_target([rng.standard_normal(len(t))], SR)  # a song that is noise: aim below it
    assert hiss["target"] == pytest.approx(NOISE_SHARE * hiss["noise"]) and hiss["target"] < 0.6 * hiss["song"]


def test_a_drum_kit_is_percussive_and_struck_chords_are_not():
    """What picks the percussive training recipe: a kit of noise hits and a decaying kick is nearly as flat as noise
    with its spectrum; struck chords, and struck chords over a quieter kit, are far from it."""
    rng = np.random.default_rng(5)
    t = np.arange(4 * SR) / SR
    noise = rng.standard_normal(len(t))

    def hits(period: float, decay: float, source: np.ndarray) -> np.ndarray:
        return np.exp(-(t % period) / decay) * source

    kit = 0.5 * hits(0.5, 0.08, noise) + 0.3 * hits(0.125, 0.02, np.diff(noise, prepend=0.0))
    kit += 0.8 * hits(0.5, 0.15, np.sin(2 * np.pi * 55 * t))
    chords = hits(0.5, 0.3, sum(np.sin(2 * np.pi * f * k * t) / k for f in (220.0, 277.2, 329.6) for k in range(1, 20)))
    share = {
        name: noise_likeness([x], SR) for name, x in {"kit": kit, "chords": chords, "both": chords + 0.1 * kit}.items()
    }
    assert share["kit"] > PERCUSSIVE_SHARE > share["both"] > share["chords"], share
    assert noise_likeness([noise], SR) == pytest.approx(1.0, abs=0.05)
