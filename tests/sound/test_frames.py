"""Frames: analysis followed by synthesis reproduces real music; streaming equals one-shot; cut-off low-passes."""

from __future__ import annotations

import numpy as np
import pytest

from liveshtr.config import FrameConfig
from liveshtr.errors import ConfigError
from liveshtr.sound.frames import STD_FLOOR, FrameCodec, FrameStats

EXCERPT_S = 20  # seconds of each recording used per check, taken from its middle


def excerpt(song) -> np.ndarray:
    n = EXCERPT_S * song.samplerate
    start = max(0, (len(song.samples) - n) // 2)
    return song.samples[start : start + n].astype(np.float64)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def brickwall(x: np.ndarray, cutoff_hz: float, samplerate: int) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / samplerate) >= cutoff_hz] = 0
    return np.fft.irfft(spec, len(x))


FRAME_HOPS = [(2048, 512), (1024, 256), (2048, 1024), (1000, 300)]


@pytest.mark.parametrize("domain", ["dct", "fft"])
@pytest.mark.parametrize("frame, hop", FRAME_HOPS, ids=[f"{f}/{h}" for f, h in FRAME_HOPS])
def test_round_trip_reproduces_real_music(songs, domain, frame, hop):
    codec = FrameCodec(FrameConfig(domain=domain, frame=frame, hop=hop), songs[0].samplerate)
    for song in songs:
        x = excerpt(song)
        coeffs = codec.analyse(x)
        assert coeffs.shape == (codec.n_frames(len(x)), codec.dim)
        assert snr_db(x, codec.decode(coeffs, len(x))) >= 90, song.name


@pytest.mark.parametrize("domain", ["dct", "fft"])
def test_streaming_synthesis_equals_one_shot(songs, domain):
    codec = FrameCodec(FrameConfig(domain=domain, frame=1024, hop=256), songs[0].samplerate)
    coeffs = codec.analyse(excerpt(songs[3])[: 5 * songs[3].samplerate])
    one_shot = codec.synthesise(coeffs)
    stream = codec.streaming()
    hops = [stream.process(frame).copy() for frame in coeffs]
    assert all(h.shape == (codec.hop,) for h in hops)
    np.testing.assert_allclose(np.concatenate(hops), one_shot, rtol=0, atol=1e-6)
    # After a reset the synthesiser starts from silence again, exactly like a fresh one.
    stream.reset()
    again = np.concatenate([stream.process(frame).copy() for frame in coeffs])
    np.testing.assert_array_equal(again, np.concatenate(hops))
    # A block at once plays the same samples and leaves the same tail, whatever the blocks' sizes.
    stream.reset()
    blocks = [stream.process_many(coeffs[:3]), stream.process_many(coeffs[3:3]), stream.process_many(coeffs[3:-1])]
    np.testing.assert_array_equal(np.concatenate(blocks + [stream.process(coeffs[-1])]), np.concatenate(hops))


@pytest.mark.parametrize("domain", ["dct", "fft"])
def test_cutoff_reproduces_the_low_passed_signal(songs, domain):
    max_hz = 4000.0
    sr = songs[0].samplerate
    codec = FrameCodec(FrameConfig(domain=domain, frame=2048, hop=512, max_hz=max_hz), sr)
    full = FrameCodec(FrameConfig(domain=domain, frame=2048, hop=512), sr)
    assert codec.dim <= full.dim // 3 + 2  # 4 kHz of 12 kHz
    inner = slice(2048, -2048)  # away from the abrupt start and end of the excerpt
    for song in songs:
        x = excerpt(song)
        # A signal with nothing above 3 kHz passes the 4 kHz cut-off untouched ...
        band_limited = brickwall(x, 3000, sr)
        y = codec.decode(codec.analyse(band_limited), len(x))
        assert snr_db(band_limited[inner], y[inner]) >= 90, song.name
        # ... and the whole song comes back as its low-passed self, up to the window's transition band.
        y = codec.decode(codec.analyse(x), len(x))
        assert snr_db(brickwall(x, max_hz, sr)[inner], y[inner]) >= 40, song.name
        above = np.fft.rfftfreq(len(y), 1 / sr) >= max_hz + 200
        assert np.sum(np.abs(np.fft.rfft(y))[above] ** 2) < 1e-5 * np.sum(y**2) * len(y)


@pytest.mark.parametrize("domain", ["dct", "fft"])
@pytest.mark.parametrize("max_hz", [0.0, 4000.0])
def test_a_spectrum_with_the_frames_own_phases_gives_the_frames_back(songs, domain, max_hz):
    """The magnitude model's way in and out: magnitudes on the domain's grid, and coefficients from a complex
    spectrum. A DCT frame's spectrum is the rfft of the windowed frame zero-padded to twice its length (bins
    sr / (2 frame) apart, as the DCT's); with the frames' own phases the coefficients come back exactly."""
    sr = songs[0].samplerate
    codec = FrameCodec(FrameConfig(domain=domain, frame=1024, hop=256, max_hz=max_hz), sr)
    coeffs = codec.analyse(excerpt(songs[1])[: 2 * sr])
    mags = codec.magnitudes(coeffs)
    assert mags.shape == (len(coeffs), codec.n_bins) and codec.fft_size == (2048 if domain == "dct" else 1024)
    windowed = codec.inverse(coeffs)
    phases = np.angle(np.fft.rfft(windowed, n=codec.fft_size, axis=-1)[:, : codec.n_bins])
    back = codec.from_spectrum(mags * np.exp(1j * phases))
    assert back.dtype == np.float32 and back.shape == coeffs.shape
    np.testing.assert_allclose(back, coeffs, rtol=0, atol=1e-5 * np.abs(coeffs).max())
    out = np.empty(codec.dim, dtype=np.float32)  # one frame into a buffer, as the engine makes them
    assert codec.from_spectrum(mags[5] * np.exp(1j * phases[5]), out=out) is out
    np.testing.assert_array_equal(out, back[5])
    if domain == "dct":  # a coefficient swings within its bin's magnitude, reaching it at some phase
        assert np.all(np.abs(coeffs) <= mags * (1 + 1e-4) + 1e-6)


def test_cutoff_bin_counts():
    sr = 24000
    assert FrameConfig(domain="dct", frame=1024, max_hz=6000).n_bins(sr) == 512  # DCT bin = 11.7 Hz
    assert FrameConfig(domain="fft", frame=1024, max_hz=6000).n_bins(sr) == 256  # rfft bin = 23.4 Hz
    assert FrameConfig(domain="fft", frame=1024, max_hz=6000).dim(sr) == 512
    assert FrameConfig(domain="fft", frame=1024).dim(sr) == 2 * 513
    assert FrameConfig(domain="dct", frame=1024, max_hz=50000).n_bins(sr) == 1024


def test_normalisation_stats_round_trip(songs):
    codec = FrameCodec(FrameConfig(domain="fft"), songs[0].samplerate)
    coeffs = codec.analyse(excerpt(songs[1]))
    stats = FrameStats.fit(coeffs)
    z = stats.normalise(coeffs)
    assert np.isfinite(z).all()
    # Every coefficient with real spread has zero mean and unit spread; DC/Nyquist imaginary parts stay 0.
    live = coeffs.std(axis=0) > 2 * STD_FLOOR * coeffs.std(axis=0).max()
    np.testing.assert_allclose(z.mean(axis=0)[live], 0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=0)[live], 1, atol=1e-3)
    out = np.empty_like(coeffs)
    np.testing.assert_allclose(stats.denormalise(z, out=out), coeffs, atol=1e-4 * np.abs(coeffs).max())
    restored = FrameStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(restored.mean, stats.mean)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hop": 2048, "frame": 1024}, "must be shorter than frame"),
        ({"hop": 1024, "frame": 1024}, "must be shorter than frame"),
        ({"hop": 0}, "at least 1"),
        ({"frame": 8}, "16..65536"),
        ({"domain": "wavelet"}, "not one of"),
        ({"max_hz": -5}, "max-hz"),
    ],
)
def test_impossible_frame_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FrameConfig(**kwargs)
