"""Streaming resampling: chunking never changes the samples, the polyphase path never bursts, the filter keeps the
passband and rejects the images, and `delay` is where an input sample really comes out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from liveshtr.sound.resample import PolyphaseResampler, SoxrResampler, make_resampler

POLYPHASE = [(24000, 48000), (16000, 48000), (24000, 96000), (22050, 44100)]
STEADY_SOXR = [(24000, 44100), (22050, 48000), (44100, 48000)]  # soxr LQ returns these without bursts
BURSTY_SOXR = [(32000, 48000), (48000, 44100)]  # soxr LQ holds these back in blocks
ALL_PAIRS = POLYPHASE + STEADY_SOXR + BURSTY_SOXR


def random_chunks(rng: np.random.Generator, total: int) -> list[int]:
    """Chunk sizes covering 0, 1, sizes below and above the filter's history, and whole hops."""
    sizes, left = [], total
    while left > 0:
        n = min(left, int(rng.choice([0, 1, 1, 2, 3, 17, 93, 94, 95, 256, 256, 257, 700, 2000])))
        sizes.append(n)
        left -= n
    return sizes


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.3 * rng.standard_normal(n)).astype(np.float32)


def stream(resampler, x: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    outs, start = [], 0
    for n in sizes:
        outs.append(resampler.process(x[start : start + n]))
        start += n
    assert start == len(x)
    return np.concatenate(outs), [len(o) for o in outs]


def build(in_rate: int, out_rate: int, kernel: str | None = None):
    return make_resampler(in_rate, out_rate) if kernel is None else PolyphaseResampler(in_rate, out_rate, kernel)


@pytest.mark.parametrize("in_rate,out_rate,kernel", [(*p, None) for p in ALL_PAIRS] + [(24000, 48000, "upfirdn")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_one_shot(in_rate, out_rate, kernel, seed):
    rng = np.random.default_rng(seed)
    x = noise(rng, 6000)
    whole = build(in_rate, out_rate, kernel)
    one_shot = np.concatenate([whole.process(x), whole.flush()])
    chunked = build(in_rate, out_rate, kernel)
    y, _ = stream(chunked, x, random_chunks(rng, len(x)))
    y = np.concatenate([y, chunked.flush()])
    assert y.dtype == np.float32 and len(y) == len(one_shot) == round(len(x) * whole.ratio) + whole.delay
    np.testing.assert_allclose(y, one_shot, rtol=0, atol=1e-6)
    # flush starts a new stream: the same input gives the same output again
    again = np.concatenate([chunked.process(x), chunked.flush()])
    np.testing.assert_allclose(again, one_shot, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kernel", ["matmul", "upfirdn"])
@pytest.mark.parametrize("in_rate,out_rate", POLYPHASE)
def test_polyphase_is_upfirdn_on_the_whole_signal_and_never_bursts(in_rate, out_rate, kernel):
    rng = np.random.default_rng(7)
    x = noise(rng, 5000)
    r = PolyphaseResampler(in_rate, out_rate, kernel=kernel, capacity=64)  # small: chunks also grow the buffer
    sizes = random_chunks(rng, len(x))
    y, lengths = stream(r, x, sizes)
    assert lengths == [n * r.up for n in sizes]  # every call: exactly len(chunk) * U, nothing held back
    reference = signal.upfirdn(r.h, x, r.up)  # scipy's one-shot polyphase filter on the whole signal
    np.testing.assert_allclose(y, reference[: len(x) * r.up], rtol=0, atol=1e-6)
    np.testing.assert_allclose(r.flush(), reference[len(x) * r.up : len(x) * r.up + r.delay], rtol=0, atol=1e-6)


@pytest.mark.parametrize("in_rate,out_rate", STEADY_SOXR + BURSTY_SOXR)
def test_soxr_output_tracks_the_ratio(in_rate, out_rate):
    r = make_resampler(in_rate, out_rate)
    assert isinstance(r, SoxrResampler)
    hop, count, off = 256, 0, []
    for i in range(1, 200):
        count += len(r.process(np.zeros(hop, np.float32)))
        off.append(count - i * hop * r.ratio)
    off = np.array(off)
    assert np.all(np.abs(off) <= r.delay + 1)  # within the delay, whatever soxr holds back
    assert abs(off.mean()) <= 0.05 * r.delay + 1  # the leading zeros centre the hold-back: no drift
    if (in_rate, out_rate) in STEADY_SOXR:
        assert np.all(np.abs(off) <= 1)  # and steady pairs never stray by more than a sample


@pytest.mark.parametrize("in_rate,out_rate", POLYPHASE)
def test_filter_is_flat_in_the_passband_and_rejects_images(in_rate, out_rate):
    r = PolyphaseResampler(in_rate, out_rate)
    assert r.numtaps % 2 == 1 and r.delay == (r.numtaps - 1) // 2
    np.testing.assert_allclose(r.h, r.h[::-1], atol=1e-9)  # symmetric: linear phase, group delay = delay
    f, response = signal.freqz(r.h.astype(np.float64), worN=1 << 16, fs=out_rate)
    db = 20 * np.log10(np.abs(response) / r.up + 1e-30)
    passband = db[f <= 0.45 * in_rate]
    assert passband.min() >= -0.1 and passband.max() <= 0.1
    assert db[f >= 0.5 * in_rate].max() <= -70.0
    assert r.delay / out_rate <= 0.0021 * 24000 / in_rate  # ~2 ms at 24 kHz in; a narrower band takes longer


@pytest.mark.parametrize("in_rate,out_rate,freqs", [(24000, 48000, [1000, 10000]), (16000, 48000, [1000, 7000])])
def test_a_sine_keeps_its_level_and_frequency_and_its_images_are_gone(in_rate, out_rate, freqs):
    r = make_resampler(in_rate, out_rate)
    n = out_rate // 10  # 10 Hz bins; every test frequency is a whole number of cycles
    for f in freqs:
        r.reset()
        t = np.arange(in_rate // 2) / in_rate
        y = r.process((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32))
        segment = y[r.numtaps : r.numtaps + n].astype(np.float64)
        amplitude = np.abs(np.fft.rfft(segment)) * 2 / n
        assert np.argmax(amplitude) == f // 10
        assert abs(20 * np.log10(amplitude[f // 10] / 0.5)) <= 0.1
        images = [k * in_rate + s * f for k in range(1, r.up + 1) for s in (-1, 1)]
        for image in [i for i in images if i < out_rate / 2]:
            assert 20 * np.log10(amplitude[image // 10] / 0.5) <= -70.0, (f, image)


def test_soxr_keeps_the_level_and_frequency_of_a_sine():
    r = make_resampler(24000, 44100)
    n = 4410
    t = np.arange(12000) / 24000
    y = r.process((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    amplitude = np.abs(np.fft.rfft(y[1000 : 1000 + n].astype(np.float64))) * 2 / n
    assert np.argmax(amplitude) == 100
    assert abs(20 * np.log10(amplitude[100] / 0.5)) <= 0.1


@pytest.mark.parametrize("in_rate,out_rate", ALL_PAIRS)
@pytest.mark.parametrize("position", [1000, 1337])
def test_an_impulse_comes_out_centred_at_the_stated_delay(in_rate, out_rate, position):
    r = make_resampler(in_rate, out_rate)
    x = np.zeros(3000, np.float32)
    x[position] = 1.0
    y, _ = stream(r, x, [256] * 11 + [184])
    y = np.concatenate([y, r.flush()]).astype(np.float64)
    expected = position * r.ratio + r.delay
    k = np.arange(len(y))
    near = np.abs(k - expected) < 400
    centroid = (k[near] * y[near]).sum() / y[near].sum()  # exact for a linear-phase band-limited response
    assert abs(centroid - expected) < 0.05
    assert abs(np.argmax(y) - expected) <= 0.5 * r.ratio
    if isinstance(r, PolyphaseResampler):
        assert np.argmax(y) == expected  # on the grid: the filter's centre tap
        assert abs(y.sum() - r.up) < 1e-3  # and the gain is U at DC


def test_the_factory_picks_the_path():
    assert make_resampler(48000, 48000) is None  # equal rates: the caller passes audio through untouched
    assert isinstance(make_resampler(24000, 48000), PolyphaseResampler)
    assert isinstance(make_resampler(16000, 48000), PolyphaseResampler)
    assert isinstance(make_resampler(24000, 44100), SoxrResampler)
    assert isinstance(make_resampler(48000, 24000), SoxrResampler)  # down-sampling goes to soxr
    with pytest.raises(ValueError):
        PolyphaseResampler(24000, 44100)
    with pytest.raises(ValueError):
        make_resampler(0, 48000)
