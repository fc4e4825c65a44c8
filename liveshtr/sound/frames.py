"""Frames: signal <-> windowed frames in the DCT or FFT domain, with perfect-reconstruction overlap-add.

Analysis multiplies each frame by a periodic Hann window and takes an orthonormal DCT-II, or an rfft whose real
and imaginary parts are laid side by side. Synthesis inverts the transform and overlap-adds with the *dual*
window w / sum_k w(n + k*hop)^2, so that analysis followed by synthesis reproduces the input for any hop shorter
than the frame, not only for the hops where Hann happens to sum to a constant.

Timing: the signal is preceded by (frame - hop) zeros, so frame t covers padded samples [t*hop, t*hop + frame)
and, once frame t has been added, output block t (padded samples [t*hop, (t+1)*hop)) is final. The streaming
synthesiser therefore returns exactly one finished hop per frame, and the one-shot synthesiser returns the same
blocks stacked.

Spectra: the magnitude model sees every frame as the magnitudes of its spectrum on the domain's grid of bins and
gets coefficients back from a complex spectrum (`magnitudes`, `from_spectrum`). For FFT frames that spectrum is the
rfft itself. A DCT-II coefficient swings with the phase of the partial under it, so DCT frames take the spectrum
on their own grid (bin k at k * sr / (2 * frame)): the rfft of the windowed frame zero-padded to twice its length,
Z_k. Then exactly X_k = Re(Z_k * exp(-i pi k / (2 frame))) (scaled to the orthonormal DCT), so a spectrum whose
phases advance as a partial's do gives DCT frames that overlap-add into that partial, at twice the FFT's resolution.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.signal import get_window

from liveshtr.config import FrameConfig
from liveshtr.errors import ConfigError

STD_FLOOR = 1e-4  # relative floor for per-coefficient spreads (the imaginary parts at DC and Nyquist are always 0)


class FrameCodec:
    """Analysis and one-shot synthesis for one FrameConfig at one samplerate."""

    def __init__(self, cfg: FrameConfig, samplerate: int):
        self.cfg = cfg
        self.samplerate = samplerate
        self.frame, self.hop = cfg.frame, cfg.hop
        self.n_bins = cfg.n_bins(samplerate)
        self.dim = cfg.dim(samplerate)
        self.pad = cfg.frame - cfg.hop  # zeros before the signal, so every real sample is fully overlapped
        self.window = get_window("hann", cfg.frame, fftbins=True)  # (frame,) periodic Hann, float64
        # Sum of squared windows seen by each sample position within a hop (periodic with period hop).
        reps = -(-cfg.frame // cfg.hop)
        w2 = np.zeros(reps * cfg.hop)
        w2[: cfg.frame] = self.window**2
        coverage = w2.reshape(reps, cfg.hop).sum(axis=0)  # (hop,)
        if coverage.min() < 1e-3 * coverage.max():
            raise ConfigError(f"frame {cfg.frame} / hop {cfg.hop} overlap too little for reconstruction")
        self.synthesis_window = (self.window / np.tile(coverage, reps)[: cfg.frame]).astype(np.float32)
        # The length of the FFT whose bins are the domain's grid (see the module's notes on spectra).
        self.fft_size = 2 * cfg.frame if cfg.domain == "dct" else cfg.frame
        if cfg.domain == "dct":  # the orthonormal DCT's scale of the zero-padded rfft (DC's apart), the half-bin turn
            k = np.arange(self.n_bins)
            self._scale = np.where(k == 0, np.sqrt(1.0 / cfg.frame), np.sqrt(2.0 / cfg.frame)).astype(np.float32)
            self._turn = np.exp(-1j * np.pi * k / (2 * cfg.frame)).astype(np.complex64)

    # -- analysis ----------------------------------------------------------------------------------------

    def n_frames(self, n_samples: int) -> int:
        """Frames needed so that the last real sample lies in a finished output block."""
        return (n_samples - 1 + self.pad) // self.hop + 1

    def analyse(self, x: np.ndarray, loop: bool = False) -> np.ndarray:
        """Signal (N,) -> coefficient frames (T, dim) float32. `loop`: the signal repeats, so its N // hop frames
        go round it once, the frames over its start hearing its end where a song's hear silence."""
        x = np.asarray(x, dtype=np.float64)
        if loop:
            n_frames = max(1, len(x) // self.hop)
            padded = np.resize(np.roll(x, self.pad), (n_frames - 1) * self.hop + self.frame)
        else:
            n_frames = self.n_frames(len(x))
            padded = np.zeros((n_frames - 1) * self.hop + self.frame)
            padded[self.pad : self.pad + len(x)] = x
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.frame)[:: self.hop]  # (T, frame)
        return self.forward(frames * self.window)

    def forward(self, windowed: np.ndarray) -> np.ndarray:
        """Windowed time-domain frames (..., frame) -> coefficients (..., dim) float32; `inverse` undoes it."""
        if self.cfg.domain == "dct":
            coeffs = scipy.fft.dct(windowed, type=2, norm="ortho", axis=-1)[..., : self.n_bins]
        else:
            spec = scipy.fft.rfft(windowed, norm="ortho", axis=-1)[..., : self.n_bins]
            coeffs = np.concatenate([spec.real, spec.imag], axis=-1)  # (..., 2 * n_bins): [re..., im...]
        return coeffs.astype(np.float32)

    def magnitudes(self, coeffs: np.ndarray) -> np.ndarray:
        """Coefficient frames (..., dim) -> magnitudes of their spectra on the domain's grid (..., n_bins), scaled
        so that `from_spectrum` of a spectrum with these magnitudes and the frames' own phases gives the frames."""
        coeffs = np.asarray(coeffs, dtype=np.float32)
        n = self.n_bins
        if self.cfg.domain == "fft":
            return np.hypot(coeffs[..., :n], coeffs[..., n:])
        windowed = self.inverse(coeffs)  # (..., frame): the orthonormal DCT's inverse is the windowed frame
        spectrum = scipy.fft.rfft(windowed, n=self.fft_size, axis=-1)[..., :n]
        return (np.abs(spectrum) * self._scale).astype(np.float32)

    def from_spectrum(self, spectrum: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Complex spectra on the domain's grid (..., n_bins) -> coefficient frames (..., dim) float32, into
        `out` if given (no allocation for one FFT frame)."""
        n = self.n_bins
        if out is None:
            out = np.empty(spectrum.shape[:-1] + (self.dim,), dtype=np.float32)
        if self.cfg.domain == "fft":
            out[..., :n] = spectrum.real
            out[..., n:] = spectrum.imag
        else:
            out[...] = (spectrum * self._turn).real
        return out

    # -- synthesis ---------------------------------------------------------------------------------------

    def inverse(self, coeffs: np.ndarray) -> np.ndarray:
        """Coefficient frames (..., dim) -> time-domain frames (..., frame), not yet windowed."""
        coeffs = np.asarray(coeffs, dtype=np.float32)
        if self.cfg.domain == "dct":
            full = np.zeros(coeffs.shape[:-1] + (self.frame,), dtype=np.float32)
            full[..., : self.n_bins] = coeffs
            return scipy.fft.idct(full, type=2, norm="ortho", axis=-1).astype(np.float32, copy=False)
        spec = np.zeros(coeffs.shape[:-1] + (self.frame // 2 + 1,), dtype=np.complex64)
        spec[..., : self.n_bins] = coeffs[..., : self.n_bins] + 1j * coeffs[..., self.n_bins :]
        return scipy.fft.irfft(spec, n=self.frame, norm="ortho", axis=-1).astype(np.float32, copy=False)

    def synthesise(self, coeffs: np.ndarray) -> np.ndarray:
        """Coefficient frames (T, dim) -> T finished hops (T * hop,) float32: what streaming returns, stacked."""
        frames = self.inverse(coeffs) * self.synthesis_window  # (T, frame)
        n_frames = len(frames)
        out = np.zeros((n_frames - 1) * self.hop + self.frame, dtype=np.float32)
        for t in range(n_frames):
            out[t * self.hop : t * self.hop + self.frame] += frames[t]
        return out[: n_frames * self.hop]

    def decode(self, coeffs: np.ndarray, n_samples: int) -> np.ndarray:
        """Inverse of `analyse`: coefficient frames -> the signal of length n_samples."""
        return self.synthesise(coeffs)[self.pad : self.pad + n_samples]

    def streaming(self) -> StreamingSynthesis:
        return StreamingSynthesis(self)


class StreamingSynthesis:
    """One coefficient frame in, one finished hop of samples out; every buffer is allocated here, up front.

    The transform library returns a fresh array per inverse; everything liveshtr itself touches is reused.
    """

    def __init__(self, codec: FrameCodec):
        self.codec = codec
        self._acc = np.zeros(codec.frame, dtype=np.float32)  # overlap-add accumulator, block 0 first
        self._scratch = np.empty(codec.frame, dtype=np.float32)
        self._windowed = np.empty(codec.frame, dtype=np.float32)
        self._out = np.empty(codec.hop, dtype=np.float32)
        if codec.cfg.domain == "dct":
            self._spec = np.zeros(codec.frame, dtype=np.float32)
        else:
            self._spec = np.zeros(codec.frame // 2 + 1, dtype=np.complex64)

    def reset(self) -> None:
        """Forget the overlap tail (after a model reset the old tail would not match the new frames)."""
        self._acc.fill(0.0)

    def process(self, coeffs: np.ndarray) -> np.ndarray:
        """Add one frame (dim,) and return the finished hop (hop,). The array is reused: copy it out."""
        codec, hop, n = self.codec, self.codec.hop, self.codec.n_bins
        if codec.cfg.domain == "dct":
            self._spec[:n] = coeffs
            frame = scipy.fft.idct(self._spec, type=2, norm="ortho")
        else:
            self._spec.real[:n] = coeffs[:n]
            self._spec.imag[:n] = coeffs[n:]
            frame = scipy.fft.irfft(self._spec, n=codec.frame, norm="ortho")
        np.multiply(frame, codec.synthesis_window, out=self._windowed)
        np.add(self._acc, self._windowed, out=self._acc)
        self._out[:] = self._acc[:hop]
        # Shift the accumulator one hop left through the scratch buffer (no temporary arrays).
        tail = codec.frame - hop
        self._scratch[:tail] = self._acc[hop:]
        self._acc[:tail] = self._scratch[:tail]
        self._acc[tail:] = 0.0
        return self._out

    def process_many(self, coeffs: np.ndarray) -> np.ndarray:
        """`process` for a block of frames (N, dim): the N hops as one new array (N * hop,), the same samples and
        the same state after. For offline work (calibration) that plays many frames at once."""
        codec, hop, n = self.codec, self.codec.hop, self.codec.n_bins
        coeffs = np.asarray(coeffs, dtype=np.float32)
        count = len(coeffs)
        if codec.cfg.domain == "dct":
            spec = np.zeros((count, codec.frame), dtype=np.float32)
            spec[:, :n] = coeffs
            frames = scipy.fft.idct(spec, type=2, norm="ortho", axis=-1)
        else:
            spec = np.zeros((count, codec.frame // 2 + 1), dtype=np.complex64)
            spec.real[:, :n] = coeffs[:, :n]
            spec.imag[:, :n] = coeffs[:, n:]
            frames = scipy.fft.irfft(spec, n=codec.frame, norm="ortho", axis=-1)
        frames *= codec.synthesis_window
        out = np.zeros(count * hop + codec.frame, dtype=np.float32)
        out[: codec.frame] = self._acc  # what is already sounding, added first as `process` adds it
        for i, frame in enumerate(frames):  # in time order, so every sample sums in the order `process` sums it
            out[i * hop : i * hop + codec.frame] += frame
        self._acc[:] = out[count * hop : count * hop + codec.frame]
        return out[: count * hop]


class FrameStats:
    """Per-coefficient mean and spread of the training frames; the model sees normalised frames."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32)  # (dim,)
        self.std = np.asarray(std, dtype=np.float32)  # (dim,)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} must be equal 1-D shapes")

    @classmethod
    def fit(cls, frames: np.ndarray) -> FrameStats:
        """Statistics of coefficient frames (T, dim)."""
        frames = np.asarray(frames, dtype=np.float64)
        std = frames.std(axis=0)
        floor = STD_FLOOR * max(float(std.max()), 1e-12)
        return cls(frames.mean(axis=0), np.maximum(std, floor))

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        return ((frames - self.mean) / self.std).astype(np.float32)

    def denormalise(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Inverse of normalise; with `out` it writes in place and allocates nothing."""
        out = np.multiply(frames, self.std, out=out)
        return np.add(out, self.mean, out=out)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> FrameStats:
        return cls(np.array(d["mean"]), np.array(d["std"]))
