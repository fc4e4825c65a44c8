"""The output stage's contrast filter (calibration sets its contrast: tests/analysis/test_flatness.py measures
what it matches)."""

import tracemalloc

import numpy as np
import pytest

from liveshtr.sound.tone import ContrastFilter


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
