"""Tone on the way out: the contrast of the partials against the valleys between them.

A model trained to predict log-magnitudes predicts, where it is unsure which partial comes next, a level between
the candidates: peaks come out lower and the valleys between them higher than in any frame of the song. Heard,
that is a veil of noise over the notes; measured, a spectral flatness several times the song's. Statistical
speech synthesis knows the effect as over-smoothing and undoes it after the model (a postfilter that restores
the variance the model averaged away); `ContrastFilter` is that postfilter across frequency. It expands the pitch
bins' log-magnitudes around their local envelope (a moving average over `CONTRAST_BINS` bins, about 200 Hz at the
default 23 Hz bins):

    s' = envelope(s) + contrast * (s - envelope(s))

on the way out only: the model's own loop keeps the frames it predicted. Calibration chooses `contrast` so that
the model's renders are as tonal as its song, as `liveshtr.analysis.tone` measures both.
"""

from __future__ import annotations

import numpy as np

CONTRAST_BINS = 9  # the local envelope of the pitch bins: a moving average over this many bins


class ContrastFilter:
    """Expands log-magnitudes of one shape (..., n) around their local envelope along the last axis, in place.

    The buffers are made once, so filtering one frame after another allocates nothing.
    """

    def __init__(self, shape: int | tuple[int, ...], width: int = CONTRAST_BINS, dtype=np.float32):
        if width < 1 or width % 2 == 0:
            raise ValueError(f"contrast width {width} must be an odd number of bins")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.width, self.n = width, shape[-1]
        self._padded = np.empty(shape[:-1] + (self.n + width - 1,), dtype=dtype)
        self._summed = np.zeros(shape[:-1] + (self.n + width,), dtype=dtype)
        self._env = np.empty(shape, dtype=dtype)

    def envelope(self, s: np.ndarray) -> np.ndarray:
        """The moving average of `s` over `width` bins, edges extended; a reused array."""
        half, n, padded = self.width // 2, self.n, self._padded
        padded[..., half : half + n] = s
        padded[..., :half] = s[..., :1]
        padded[..., half + n :] = s[..., -1:]
        padded.cumsum(axis=-1, out=self._summed[..., 1:])
        np.subtract(self._summed[..., self.width :], self._summed[..., :n], out=self._env)
        self._env /= self.width
        return self._env

    def apply(self, s: np.ndarray, contrast: float) -> np.ndarray:
        """s <- envelope(s) + contrast * (s - envelope(s)); returns `s`."""
        if contrast == 1.0:
            return s
        env = self.envelope(s)
        s -= env
        s *= contrast
        s += env
        return s
