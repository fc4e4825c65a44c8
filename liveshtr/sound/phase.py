"""Phase from magnitudes, one frame at a time: phase-gradient integration for a live engine.

A model that predicts log-magnitudes leaves the phase to the synthesis. Random or frozen phase turns partials into
noise; offline iterative methods (Griffin-Lim) cannot run frame by frame. Phase-gradient heap integration (PGHI,
Průša, Balazs and Søndergaard 2017; its real-time form RTPGHI, Průša and Holighaus 2017) derives both phase
derivatives from the log-magnitude alone, exactly for a Gaussian window and closely for Hann:

    time derivative (instantaneous frequency):  dphi/dt = (1/lambda) ds/domega + 2 pi omega
    frequency derivative (local group delay):   dphi/domega = -lambda ds/dt

with s the log-magnitude, omega in cycles per sample, and lambda = 0.25645 * frame^2 for a Hann window. RTPGHI
integrates them with a heap (strongest coefficients first); that costs a heap operation per bin, too slow for a
Python producer. This module integrates the same gradients in numpy, in the order the heap would take for the
coefficients that matter: each spectral peak takes its phase from the previous frame through its instantaneous
frequency, and every other bin takes its phase from the peak uphill of it through the frequency derivative. A
steady partial then keeps its frequency and its neighbouring bins lock to it; an onset gets the group delay of
its attack. Bins far below the frame's peak get random phase, as in RTPGHI.

The causal form (`delay=0`, the default) takes the time derivative of the log-magnitude from the current and two
previous frames, so no frame waits for the next one; `delay=1` uses the centred difference and returns the frame
before the newest one.

Conventions: frames as `FrameCodec` makes them (periodic Hann starting at the frame's first sample), so a
stationary sinusoid's neighbouring bins differ by -2 pi (frame / 2) / fft_size in phase (pi for the rfft of the frame
itself); `spectrum` bins 0..n_bins-1 of an rfft of `fft_size` samples: the frame, zero-padded beyond its length for
the DCT's grid (`FrameCodec.fft_size`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

HANN_LAMBDA = 0.25645  # lambda = HANN_LAMBDA * frame^2: the Gaussian that matches a Hann window (Průša)
TOLERANCE_DB = -100.0  # bins this far below the frame's peak get random phase


class PhaseReconstructor:
    """Magnitude frames in, complex spectra out; all state from earlier frames is kept here.

    `streams` independent streams can run side by side (offline, to play several renders through one stage's
    transforms): frames (streams, n_bins) in and out, each stream exactly what a stage of its own would make, its
    random phases from its own generator seeded with `seed`."""

    def __init__(
        self,
        frame: int,
        hop: int,
        n_bins: int,
        delay: int = 0,
        seed: int = 0,
        fft_size: int | None = None,
        streams: int = 1,
        time_gradient: float = 1.0,
    ):
        if delay not in (0, 1):
            raise ValueError(f"delay {delay} must be 0 (causal) or 1 (one frame late, centred gradients)")
        self.frame, self.hop, self.n_bins, self.delay, self.streams = frame, hop, n_bins, delay, streams
        # How much of the causal estimate of each bin's change over time to trust (delay 0): it places an event
        # within the frame, from a backward difference over three frames that is noisy.
        self.time_gradient = time_gradient
        size = self.fft_size = fft_size or frame  # the bins are samplerate / size apart
        lam = HANN_LAMBDA * frame * frame  # the window's: its length, not the transform's
        self._tgrad_scale = hop * size / lam / 2  # per hop, times the centred difference over bins
        self._tgrad_offset = 2 * math.pi * hop * np.arange(n_bins) / size  # per hop: the bin's own frequency
        self._fgrad_scale = -lam / (hop * size)  # per bin, times the change of log-magnitude per hop
        # Phase from one bin to the next for a window that starts, not centres, at the frame's first sample:
        # -2 pi (frame / 2) / size, taken in 0..2 pi (pi for the frame's own rfft). An event inside the frame lies
        # at most half a frame from its centre, which bounds the group delay's step to +-pi frame / size.
        self._bin_step = 2 * math.pi - math.pi * frame / size
        self._fgrad_limit = math.pi * frame / size
        self._rngs = [np.random.default_rng(seed) for _ in range(streams)]
        self._index = np.arange(n_bins)
        self._rows = (np.arange(streams) * n_bins)[:, None]  # each stream's offset in a flat gather
        self._flat_index = np.arange(streams * n_bins)
        self._edge = np.full((streams, 1), -np.inf)
        self._start = np.zeros((streams, 1))
        self._tilt = 1e-9 * self._index
        self._log = np.full((3, streams, n_bins), -30.0)  # log-magnitudes of the newest three frames, oldest first
        self._mag = np.zeros((2, streams, n_bins))  # the newest two magnitude frames, older first
        self._tgrad_prev = np.tile(self._tgrad_offset, (streams, 1))
        self._phase = np.zeros((streams, n_bins))  # phase of the last frame returned
        self._out = np.zeros((streams, n_bins), dtype=np.complex128)

    def reset(self, stream: int | None = None) -> None:
        """Forget everything (or one stream's everything)."""
        which = slice(None) if stream is None else stream
        self._log[:, which] = -30.0
        self._mag[:, which] = 0.0
        self._tgrad_prev[which] = self._tgrad_offset
        self._phase[which] = 0.0

    def process(self, magnitude: np.ndarray) -> np.ndarray:
        """One magnitude frame (n_bins,), or one a stream (streams, n_bins) -> the complex spectrum of the same
        shape of the frame `delay` frames back.

        The array is reused: copy it out."""
        mag = np.maximum(np.asarray(magnitude, dtype=np.float64), 0.0)
        self._log[:-1] = self._log[1:]
        self._log[-1] = np.log(mag + 1e-12)
        self._mag[0] = self._mag[1]
        self._mag[1] = mag
        if self.delay == 0:
            s = self._log[2]
            ds_dt = (3 * self._log[2] - 4 * self._log[1] + self._log[0]) / 2  # backward difference, per hop
            ds_dt *= self.time_gradient
            current = self._mag[1]
        else:
            s = self._log[1]
            ds_dt = (self._log[2] - self._log[0]) / 2  # centred difference, one frame late
            current = self._mag[0]
        ds_dm = np.empty_like(s)  # centred difference over bins, one-sided at the ends
        ds_dm[:, 1:-1] = s[:, 2:] - s[:, :-2]
        ds_dm[:, 0], ds_dm[:, -1] = 2 * (s[:, 1] - s[:, 0]), 2 * (s[:, -1] - s[:, -2])
        tgrad = self._tgrad_scale * ds_dm + self._tgrad_offset  # (streams, n_bins) phase advance per hop
        # Phase step per bin, centred-window convention. An attack out of silence makes the log-magnitude jump by
        # tens of nepers in one hop; no event inside the frame is further than half a frame from its centre,
        # which bounds the step (`_fgrad_limit`).
        fgrad = np.clip(self._fgrad_scale * ds_dt, -self._fgrad_limit, self._fgrad_limit)

        # Each bin's peak: follow the larger neighbour uphill, by pointer doubling (log2(n_bins) gathers, all
        # streams in one flat array). A tilt far below any real level difference breaks ties downwards, so a flat
        # spectrum (a click) is one region integrated across frequency from its lowest bin, not a row of peaks
        # that each keep their old phase.
        tilted = s - self._tilt
        left = np.concatenate((self._edge, tilted[:, :-1]), axis=1)
        right = np.concatenate((tilted[:, 1:], self._edge), axis=1)
        step = np.where((right > tilted) & (right >= left), 1, np.where(left > tilted, -1, 0))
        flat = (self._index + step + self._rows).ravel()
        for _ in range(int(math.ceil(math.log2(self.n_bins))) + 1):
            flat = flat[flat]
        is_peak = (flat == self._flat_index).reshape(self.streams, self.n_bins)

        # Peaks carry on from the last frame at their instantaneous frequency (trapezoidal in time) ...
        phase = self._phase + (self._tgrad_prev + tgrad) / 2
        # ... and every other bin is integrated from its peak across frequency (trapezoidal; `_bin_step` a bin for
        # the window that starts, not centres, at the frame's first sample).
        increments = (fgrad[:, :-1] + fgrad[:, 1:]) / 2 + self._bin_step  # from bin k to bin k+1
        along = np.concatenate((self._start, np.cumsum(increments, axis=1)), axis=1)
        from_peak = phase.ravel()[flat].reshape(phase.shape)
        from_peak += along
        from_peak -= along.ravel()[flat].reshape(phase.shape)
        phase = np.where(is_peak, phase, from_peak)
        quiet = s < s.max(axis=1, keepdims=True) + TOLERANCE_DB / 20 * math.log(10)
        if quiet.any():
            for b in range(self.streams):
                if (count := int(np.count_nonzero(quiet[b]))) > 0:
                    phase[b, quiet[b]] = self._rngs[b].uniform(0, 2 * math.pi, count)
        np.remainder(phase, 2 * math.pi, out=self._phase)
        self._tgrad_prev[:] = tgrad
        np.multiply(current, np.exp(1j * self._phase), out=self._out)
        return self._out if mag.ndim == 2 else self._out[0]


ITERATIONS = 5  # passes over the frame to commit and the newest (nine songs: 3 -20.7 dB, 5 -22.4, 8 -23.9; ~37 us each)
MOMENTUM = 0.99  # the fast Griffin-Lim's step past each consistent estimate (Perraudin, Balazs, Søndergaard 2013)
# The share of the causal time gradient the first pass takes: the refinement places events better from the overlap
# than from a noisy estimate (the nine songs' own magnitudes, 20 s each: at 1, 0.5, 0.25 and 0 the median -24.0,
# -25.1, -25.1 and -24.8 dB, the drum groove -11.9, -13.2, -14.4 and -13.5 dB; chosen on ../shared/audio)
FIRST_TIME_GRADIENT = 0.25


class LookaheadPhase:
    """Magnitude frames in, complex spectra out one frame late: PGHI's phase refined against the overlap.

    Real-time iterative spectrogram inversion with look-ahead (RTISI-LA, Zhu, Beauregard and Wyse 2007), with
    one frame of look-ahead: the newest frame gets PGHI's phase (`PhaseReconstructor`, causal, carried on from the
    phase it refined one frame back), then both the frame about to be committed and the newest are refined in
    turn by iterations of Griffin-Lim against everything already committed. Each iteration overlap-adds the two
    frames onto the committed tail, divides by the windows' coverage (so the newest frame's edge, which later
    frames have not reached yet, is not heard as fading), analyses both frames again, keeps the phase and puts the
    magnitudes back, stepping past it by the fast Griffin-Lim's momentum. The older frame is then final: its
    spectrum is returned, and its samples join the tail.

    On the songs' own magnitudes (FFT 1024 / 256 at 24 kHz) this brings the spectral convergence from about -16 dB
    (one pass, causal) to about -22 dB, at one hop of latency and a few transforms a hop. Both domains: the DCT's
    spectrum is taken on its own grid, as `FrameCodec.magnitudes` takes it.
    """

    def __init__(
        self, codec, iterations: int = ITERATIONS, momentum: float = MOMENTUM, seed: int = 0, streams: int = 1
    ):
        if iterations < 0:
            raise ValueError(f"iterations {iterations} must be 0 or more")
        self.codec, self.iterations, self.momentum, self.streams = codec, iterations, momentum, streams
        self.frame, self.hop, self.n_bins = codec.frame, codec.hop, codec.n_bins
        self.delay = 1
        size, hop, n = self.frame, self.hop, self.n_bins
        self._first = PhaseReconstructor(
            size, hop, n, seed=seed, fft_size=codec.fft_size, streams=streams, time_gradient=FIRST_TIME_GRADIENT
        )
        self._window = codec.window.astype(np.float64)
        self._synthesis = codec.synthesis_window.astype(np.float64)
        # The windows' coverage over the two frames in flight: every frame up to the newest, none after it.
        coverage = np.zeros(size + hop)
        product = self._window * self._synthesis
        frames_over_a_sample = -(-size // hop)
        for start in range(-(frames_over_a_sample - 1) * hop, hop + 1, hop):
            lo, hi = max(start, 0), min(start + size, size + hop)
            coverage[lo:hi] += product[lo - start : hi - start]
        self._uncover = np.where(coverage > 1e-3, 1.0 / np.maximum(coverage, 1e-3), 0.0)
        self._tail = np.zeros((streams, size + hop))  # the committed frames' samples under the two frames in flight
        self._mix = np.zeros((streams, size + hop))
        row, step = self._mix.strides  # the two frames in flight as views of it, a hop apart
        self._pair = np.lib.stride_tricks.as_strided(self._mix, (streams, 2, size), (row, hop * step, step))
        self._windowed = np.zeros((streams, 2, size))
        self._size_of = np.zeros((streams, 2, n))
        self._step = np.zeros((streams, 2, n), dtype=np.complex128)
        self._mags = np.zeros((streams, 2, n))  # the frame to commit, then the newest
        self._spectra = np.zeros((streams, 2, n), dtype=np.complex128)
        self._dct = codec.cfg.domain == "dct"
        if self._dct:
            k = np.arange(n)
            self._scale = np.where(k == 0, np.sqrt(1.0 / size), np.sqrt(2.0 / size))
            self._turn = np.exp(-1j * np.pi * k / (2 * size))
            self._coeffs = np.zeros((streams, 2, size))
            self._coeffs_rows = self._coeffs.reshape(-1, size)
        else:
            self._full = np.zeros((streams, 2, size // 2 + 1), dtype=np.complex128)
            self._full_rows = self._full.reshape(-1, size // 2 + 1)
        self._out = np.zeros((streams, n), dtype=np.complex128)

    def reset(self, stream: int | None = None) -> None:
        """Forget everything (or one stream's everything): the next frames start from silence."""
        which = slice(None) if stream is None else stream
        self._first.reset(stream)
        self._tail[which] = 0.0
        self._mags[which] = 0.0
        self._spectra[which] = 0.0

    def _synthesise(self, spectra: np.ndarray) -> np.ndarray:
        """(streams, 2, n_bins) spectra -> (streams, 2, frame) windowed samples, as the overlap-add will play
        them."""
        n = self.n_bins
        if self._dct:
            self._coeffs[..., :n] = (spectra * self._turn).real
            frames = scipy.fft.idct(self._coeffs_rows, type=2, norm="ortho", axis=-1)
        else:
            self._full[..., :n] = spectra
            frames = scipy.fft.irfft(self._full_rows, n=self.frame, norm="ortho", axis=-1)
        frames *= self._synthesis
        return frames.reshape(self._windowed.shape)

    def _analyse(self, windowed: np.ndarray) -> np.ndarray:
        """(streams, 2, frame) windowed samples -> (streams, 2, n_bins) spectra on the domain's grid."""
        rows = windowed.reshape(-1, self.frame)  # a view: one transform call over two dimensions is quicker
        if self._dct:
            found = scipy.fft.rfft(rows, n=self.codec.fft_size, axis=-1)[:, : self.n_bins] * self._scale
        else:
            found = scipy.fft.rfft(rows, norm="ortho", axis=-1)[:, : self.n_bins]
        return found.reshape(self._spectra.shape)

    def process(self, magnitude: np.ndarray) -> np.ndarray:
        """One magnitude frame (n_bins,), or one a stream (streams, n_bins) -> the complex spectrum of the same
        shape of the frame before it, now final. A stream given a magnitude that is not a number starts again
        from silence (the others play on).

        The array is reused: copy it out."""
        hop, size = self.hop, self.frame
        mags, spectra = self._mags, self._spectra
        mags[:, 0] = mags[:, 1]
        np.maximum(magnitude, 0.0, out=mags[:, 1])
        spectra[:, 0] = spectra[:, 1]
        spectra[:, 1] = self._first.process(mags[:, 1])
        frames = self._synthesise(spectra)
        mix, pair, windowed, size_of = self._mix, self._pair, self._windowed, self._size_of
        before = None
        for _ in range(self.iterations):
            np.copyto(mix, self._tail)
            mix[:, :size] += frames[:, 0]
            mix[:, hop:] += frames[:, 1]
            mix *= self._uncover
            np.multiply(pair, self._window, out=windowed)
            found = self._analyse(windowed)
            if before is None:
                step, before = found, found.copy()
            else:  # step past the consistent estimate, away from the last one
                step = self._step
                np.subtract(found, before, out=step)
                step *= self.momentum
                step += found
                before, found = found, before
            step += 1e-30  # a bin that analyses to exactly 0 keeps its magnitude, at phase 0
            np.abs(step, out=size_of)
            np.divide(mags, size_of, out=size_of)
            np.multiply(step, size_of, out=spectra)
            frames = self._synthesise(spectra)
        if not np.isfinite(spectra).all():  # a magnitude that was not a number: that stream starts again
            for b in np.flatnonzero(~np.isfinite(spectra).all(axis=(1, 2))):  # from silence
                self.reset(b)
                frames[b] = 0.0
        # The older frame is final; the newest carries its refined phase into the next frame's PGHI.
        self._tail[:, :size] += frames[:, 0]
        self._tail[:, :-hop] = self._tail[:, hop:]
        self._tail[:, -hop:] = 0.0
        np.remainder(np.arctan2(spectra[:, 1].imag, spectra[:, 1].real), 2 * math.pi, out=self._first._phase)
        self._out[:] = spectra[:, 0]
        return self._out if np.ndim(magnitude) == 2 else self._out[0]

    def process_many(self, magnitudes: np.ndarray) -> np.ndarray:
        """`process` for a block of frames (N, n_bins), or (N, streams, n_bins): the spectra of the same shape, a
        new array, the same state after. (The refinement runs frame after frame; only the allocation is saved.)"""
        magnitudes = np.asarray(magnitudes, dtype=np.float64)
        out = np.empty(magnitudes.shape, dtype=np.complex128)
        for t, magnitude in enumerate(magnitudes):
            out[t] = self.process(magnitude)
        return out
