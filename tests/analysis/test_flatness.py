"""How tonal a sound is: the flatness that calibration matches to the song's, and the share of its noise's
flatness that picks the percussive recipe."""

import numpy as np
import pytest

from liveshtr.analysis.tone import (
    NOISE_SHARE,
    PERCUSSIVE_SHARE,
    median_flatness,
    noise_likeness,
    tone_target,
    tone_window,
)
from liveshtr.sound.bands import band_edges_bins, ltas_noise

SR = 24000


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
