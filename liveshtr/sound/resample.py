"""Streaming resampling from the model's rate to the device's, with steady output and a known delay.

Why not soxr everywhere: `soxr.ResampleStream` works in internal blocks, and for the ratios that matter most to us it
hands its output back in bursts. At 24 kHz -> 48 kHz (quality "LQ", 256-sample hops) it returns 0 samples, then 940,
alternately, and holds back up to ~20 ms of audio; the engine must run that much further ahead of the speaker to
keep the ring filled, and every control change (OSC message -> audio out, budget 25 ms p99 in all) waits for it.
Other small rational ratios burst too (32 -> 48 kHz, 24 -> 32 kHz, 48 -> 44.1 kHz, 48 -> 24 kHz). Ratios such as
24 -> 44.1 kHz or 22.05 -> 48 kHz come back steady (470/471 samples per 256 in) with under 1 ms of delay.

So an integer up-ratio (out_rate = U * in_rate) gets its own polyphase FIR here: a linear-phase Kaiser-window
lowpass from `scipy.signal.firwin` (flat to 0.45 * in_rate within +-0.1 dB, images above the input Nyquist at least
70 dB down, gain U), run on the last `taps_per_phase - 1` input samples plus the new chunk, so that every call returns
exactly len(chunk) * U samples. Any other ratio wraps soxr ("LQ") behind the same interface.

The delay. Every resampler here has an integer `delay` in output samples with the same meaning: input sample i
(time i / in_rate) comes out centred at output index i * ratio + delay, and after n input samples about n * ratio
samples have come out (exactly n * U for the polyphase path; within a sample for steady soxr pairs, within the
burst for bursting ones). So `delay / out_rate` is the latency the resampler adds, and output index k corresponds to
input time (k - delay) / out_rate.
- Polyphase: (numtaps - 1) / 2, the group delay of the symmetric FIR; 94 samples (1.96 ms) at 24 -> 48 kHz.
- soxr: soxr removes its filter delay from the output's timing and holds output back instead (its `delay()`); we
  measure that hold-back once with a probe stream fed in hops of `probe_hop` zeros, round its mean, and emit that
  many zeros at the start of the stream, which turns the hold-back into the same positional delay as the
  polyphase path without changing the latency (38 samples, 0.86 ms, at 24 -> 44.1 kHz).

`flush()` returns the end of the stream as if silence followed (`delay` samples: the total output of a stream is
round(n * ratio) + delay) and starts a new stream. `make_resampler` returns None for equal rates: the caller skips
resampling altogether.

Cost: the polyphase path does one small matrix product per call (a sliding window over a preallocated buffer times
the (taps_per_phase, U) polyphase matrix) and allocates only its output: a median ~11 us per 256-sample hop at
24 -> 48 kHz on a 2-core EPYC (soxr at 24 -> 44.1 kHz: ~8 us). `scipy.signal.upfirdn` gives the same samples
(kernel="upfirdn") but takes ~75-90 us there: its scalar loop also computes the filter's head and tail every call.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

PASSBAND = 0.45  # of in_rate: flat within +-0.1 dB up to here
STOPBAND = 0.5  # of in_rate: images at least 70 dB down from here (the input's Nyquist frequency)
ATTENUATION_DB = 75.0  # Kaiser design target; the design measures ~74.4 dB, a margin over the 70 dB required
SOXR_QUALITY = "LQ"
PROBE_HOP = 256


def design_lowpass(
    in_rate: float,
    up: int,
    passband: float = PASSBAND,
    stopband: float = STOPBAND,
    attenuation_db: float = ATTENUATION_DB,
) -> np.ndarray:
    """The interpolation filter for `in_rate` -> `up * in_rate`: odd length (integer group delay), gain `up`."""
    fs = in_rate * up
    width = (stopband - passband) * in_rate / (fs / 2)  # transition width, as a fraction of the output Nyquist
    numtaps, beta = signal.kaiserord(attenuation_db, width)
    numtaps |= 1
    cutoff = 0.5 * (passband + stopband) * in_rate
    return signal.firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs) * up


class StreamResampler:
    """Mono float32 streaming resampler: call `process` hop after hop; see the module docstring for `delay`."""

    in_rate: float
    out_rate: float
    ratio: float  # out_rate / in_rate
    delay: int  # output samples; output index i * ratio + delay plays input sample i

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample the next chunk (1-D, any length, 0 included); returns a new float32 array."""
        raise NotImplementedError

    def flush(self) -> np.ndarray:
        """The rest of the stream as if silence followed (`delay` samples for the polyphase path), then reset."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the past: the next `process` starts a new stream."""
        raise NotImplementedError


class PolyphaseResampler(StreamResampler):
    """Integer up-sampling by U with a linear-phase FIR: exactly len(chunk) * U samples out per call, no bursts.

    kernel="matmul" (default) computes only the new outputs; kernel="upfirdn" runs `scipy.signal.upfirdn` on history
    plus chunk and keeps the new outputs (same samples to float32 rounding, ~7x slower per hop)."""

    def __init__(self, in_rate: float, out_rate: float, kernel: str = "matmul", capacity: int = 1024):
        up = out_rate / in_rate
        if up < 2 or not float(up).is_integer():
            raise ValueError(f"{in_rate} -> {out_rate} is not an integer up-ratio")
        if kernel not in ("matmul", "upfirdn"):
            raise ValueError(f"unknown kernel {kernel!r}")
        self.in_rate, self.out_rate, self.up = in_rate, out_rate, int(up)
        self.ratio = float(self.up)
        self.kernel = kernel
        self.h = design_lowpass(in_rate, self.up).astype(np.float32)
        self.numtaps = len(self.h)
        self.delay = (self.numtaps - 1) // 2
        k = math.ceil(self.numtaps / self.up)  # taps per phase
        padded = np.zeros(k * self.up, dtype=np.float32)
        padded[: self.numtaps] = self.h
        # Row j of the sliding window over [history | chunk] times column p gives output j * U + p.
        self._phases = np.ascontiguousarray(padded.reshape(k, self.up)[::-1])
        self._hist = k - 1
        self._alloc(max(int(capacity), 1))

    def _alloc(self, capacity: int) -> None:
        buf = np.zeros(self._hist + capacity, dtype=np.float32)
        if hasattr(self, "_buf"):
            buf[: self._hist] = self._buf[: self._hist]
        self._buf = buf
        self._windows = sliding_window_view(buf, self._hist + 1)  # (capacity, taps per phase), a view
        self._capacity = capacity

    def process(self, x: np.ndarray) -> np.ndarray:
        n, hist = len(x), self._hist
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        if n > self._capacity:
            self._alloc(n)
        buf = self._buf
        buf[hist : hist + n] = x
        if self.kernel == "matmul":
            y = np.matmul(self._windows[:n], self._phases).reshape(-1)
        else:
            y = signal.upfirdn(self.h, buf[: hist + n], self.up)[hist * self.up : (hist + n) * self.up]
        buf[:hist] = buf[n : n + hist]  # the last inputs become the history (numpy handles the overlap)
        return y

    def flush(self) -> np.ndarray:
        tail = self.process(np.zeros(math.ceil(self.delay / self.up), dtype=np.float32))[: self.delay]
        self.reset()
        return tail

    def reset(self) -> None:
        self._buf[: self._hist] = 0.0


class SoxrResampler(StreamResampler):
    """Any ratio, through `soxr.ResampleStream`; the measured hold-back is turned into leading zeros (`delay`)."""

    def __init__(self, in_rate: float, out_rate: float, quality: str = SOXR_QUALITY, probe_hop: int = PROBE_HOP):
        if in_rate == out_rate:
            raise ValueError("equal rates: nothing to resample")
        self.in_rate, self.out_rate, self.quality = in_rate, out_rate, quality
        self.ratio = out_rate / in_rate
        self._stream = self._new_stream()
        self.delay = self.measure_holdback(probe_hop)
        self._lead = self.delay

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality)

    def measure_holdback(self, hop: int = PROBE_HOP, hops: int = 96, warmup: int = 16) -> int:
        """soxr's mean hold-back, in output samples, at hop boundaries of a stream fed `hop` samples at a time: the
        latency it adds. For a bursting ratio this includes the average burst."""
        stream, zeros = self._new_stream(), np.zeros(hop, dtype=np.float32)
        out, held = 0, []
        for i in range(1, warmup + hops + 1):
            out += len(stream.resample_chunk(zeros))
            if i > warmup:
                held.append(i * hop * self.ratio - out)
        return max(0, round(float(np.mean(held))))

    def process(self, x: np.ndarray) -> np.ndarray:
        y = self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32))
        if self._lead:
            y = np.concatenate([np.zeros(self._lead, dtype=np.float32), y])
            self._lead = 0
        return y

    def flush(self) -> np.ndarray:
        tail = self.process(np.zeros(0, dtype=np.float32))  # the leading zeros, if nothing came yet
        tail = np.concatenate([tail, self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)])
        self.reset()
        return tail

    def reset(self) -> None:
        self._stream.clear()
        self._lead = self.delay


def make_resampler(in_rate: float, out_rate: float, probe_hop: int = PROBE_HOP) -> StreamResampler | None:
    """The resampler for `in_rate` -> `out_rate`: polyphase for an integer up-ratio, soxr otherwise, None (play the
    input as it is) for equal rates. `probe_hop`: the caller's hop, for soxr's delay measurement."""
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"rates must be positive, got {in_rate} -> {out_rate}")
    if in_rate == out_rate:
        return None
    up = out_rate / in_rate
    if up >= 2 and float(up).is_integer():
        return PolyphaseResampler(in_rate, out_rate)
    return SoxrResampler(in_rate, out_rate, probe_hop=probe_hop)
