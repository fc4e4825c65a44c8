"""How tonal a sound is: the flatness that calibration matches to the song's, the share of its noise's flatness
that picks the percussive recipe, and the harmonic share that bounds the latent's spread."""

import numpy as np
import pytest

from liveshtr.analysis import music
from liveshtr.analysis.tone import (
    NOISE_SHARE,
    PERCUSSIVE_SHARE,
    harmonic_share,
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


def test_harmonic_share_is_what_lasts_and_agrees_with_librosas():
    """A held chord is nearly all harmonic, clicks nearly all percussive, noise between; the same chord plucked four
    times a second keeps less than half of it. It agrees with the listening measure that the floors are checked
    with (librosa's HPSS)."""
    t = np.arange(4 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * k * t) / k for f in (220.0, 277.2, 329.6) for k in range(1, 8)) / 8
    clicks = np.zeros(len(t))
    clicks[:: SR // 4] = 0.9
    plucked = chord * np.exp(-(t % 0.25) / 0.03)  # four short plucks a second
    noise = 0.3 * np.random.default_rng(6).standard_normal(len(t))
    share = {
        name: harmonic_share([x], SR)
        for name, x in {"chord": chord, "plucked": plucked, "noise": noise, "clicks": clicks}.items()
    }
    assert share["chord"] > 0.95 and share["clicks"] < 0.1, share
    assert share["clicks"] < share["plucked"] < 0.5 and 0.3 < share["noise"] < 0.7, share
    assert harmonic_share([chord, clicks], SR) == pytest.approx(
        harmonic_share([np.concatenate([chord, clicks])], SR), abs=0.02
    )  # over the signals together, by their energy
    assert harmonic_share([chord[:100]], SR) == 0.0  # nothing to measure
    for x in (chord + 0.1 * noise, plucked + 0.05 * noise, noise):
        y = music.to_measure_rate(x, SR)
        assert harmonic_share([x], SR) == pytest.approx(music.harmonic_share(y), abs=0.05)
