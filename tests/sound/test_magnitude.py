"""The magnitude model's features: the pitch bins at the frame's own resolution, bands above them, and back."""

from __future__ import annotations

import numpy as np
import pytest

from liveshtr.config import FrameConfig
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.magnitude import FLOOR, MagnitudeLayout
from liveshtr.sound.phase import PhaseReconstructor

RATE = 24000
FFT, DCT = (FrameCodec(FrameConfig(domain=d), RATE) for d in ("fft", "dct"))


def test_the_fft_grid_gives_every_pitch_bin_and_bands_above():
    layout = MagnitudeLayout.for_codec(FFT)
    assert (layout.pitch_bins, layout.pitch_end, layout.n_features, layout.pitch_step) == (128, 128, 192, 1)
    assert layout.to_dict() == {"pitch_hz": 3000.0, "bands": 64, "pitch_step": 1}
    mag = np.random.default_rng(0).random((5, FFT.n_bins)) + 0.1
    back = layout.to_magnitudes(layout.to_features(mag))
    np.testing.assert_allclose(back[:, :128], mag[:, :128], rtol=1e-5)  # every pitch bin as it is
    a, b = layout.edges[:2]
    np.testing.assert_allclose(
        back[:, a:b], np.sqrt(np.mean(mag[:, a:b] ** 2, axis=1, keepdims=True)).repeat(b - a, 1), rtol=1e-5
    )


def test_the_dct_grid_gives_the_frames_own_rfft_bins(songs):
    """The DCT's grid is an rfft zero-padded to twice the frame: its even bins are the frame's own rfft bins (at
    the orthonormal DCT's scale), the odd ones interpolation. The model is given the even ones."""
    layout = MagnitudeLayout.for_codec(DCT)
    assert (layout.pitch_bins, layout.pitch_end, layout.n_features, layout.pitch_step) == (128, 256, 192, 2)
    assert layout.to_dict()["pitch_step"] == 2
    x = songs[0].samples[20 * RATE : 26 * RATE]
    fft, dct = FFT.magnitudes(FFT.analyse(x)), DCT.magnitudes(DCT.analyse(x))
    np.testing.assert_allclose(dct[:, 2:256:2], np.sqrt(2.0) * fft[:, 1:128], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(layout.to_features(dct)[:, :128], np.log(dct[:, :256:2] + FLOOR), atol=1e-6)


@pytest.mark.parametrize("bin", [30.0, 31.0, 52.4, 97.7, 150.0])
def test_a_partial_between_the_pitch_features_keeps_its_frequency(bin):
    """The bins in between are interpolated (linearly in the log): a sine played through the phase stage from its
    features' magnitudes keeps its frequency (within 3 cents of its true magnitudes', measured 0-3) and its level,
    on a pitch feature's bin, on the bin between two and anywhere between. Cubic interpolation, whose outer taps
    fall in the window's nulls, put sines on the features' bins up to 12 cents off."""
    hz = bin * RATE / DCT.fft_size
    layout = MagnitudeLayout.for_codec(DCT)
    x = 0.5 * np.sin(2 * np.pi * hz * np.arange(2 * RATE) / RATE)
    mag = DCT.magnitudes(DCT.analyse(x))
    phase = PhaseReconstructor(DCT.frame, DCT.hop, DCT.n_bins, fft_size=DCT.fft_size)
    spectra = [phase.process(m).copy() for m in layout.to_magnitudes(layout.to_features(mag))]
    y = DCT.decode(DCT.from_spectrum(np.stack(spectra)), len(x))[RATE // 2 : 3 * RATE // 2]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), 16 * len(y)))
    assert abs(1200 * np.log2(np.argmax(spectrum) * RATE / (16 * len(y)) / hz)) < 3
    assert abs(20 * np.log10(np.sqrt(2 * np.mean(y**2)) / 0.5)) < 1.0


def test_real_music_comes_back_from_the_pitch_features(songs):
    """The pitch region of a real song's DCT-grid magnitudes from every other bin: the sampled bins exactly, all
    of them within -15 dB (measured -17.8 dB on the guitar)."""
    layout = MagnitudeLayout.for_codec(DCT)
    mag = DCT.magnitudes(DCT.analyse(songs[0].samples[: 8 * RATE]))
    back = layout.to_magnitudes(layout.to_features(mag))
    np.testing.assert_allclose(back[:, :256:2], mag[:, :256:2], rtol=1e-4, atol=1e-9)
    assert 20 * np.log10(np.linalg.norm(back[:, :256] - mag[:, :256]) / np.linalg.norm(mag[:, :256])) < -15


def test_a_pitch_step_must_be_positive():
    with pytest.raises(ValueError, match="pitch_step"):
        MagnitudeLayout(1024, 11.71875, pitch_step=0)
