"""Feedback to the control surfaces: parameter changes made by anyone, and telemetry, fanned out from one thread.

    Params.snapshot --(diffed 60 times a second)--> changes --> OSC subscribers, WebSocket clients
    Engine counters + the callback's last blocks --(telemetry_hz)--> meters, spectrum --> the same

Writers (OSC, WebSocket, the automation schedule in the producer) never wait on the fan-out: they only publish a
new snapshot, and this thread compares it with the last one it sent. A flood of 5,000 messages a second therefore
becomes at most 60 change messages a second per client, and automation changes are broadcast like any other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import scipy.fft

from liveshtr.control.osc_protocol import FLOOR_DB, SPECTRUM_BANDS, SPECTRUM_LOW_HZ
from liveshtr.live.engine import Engine
from liveshtr.live.params import Params
from liveshtr.live.sched import CONTROL_PRIORITY, Worker

CHANGES_HZ = 60.0  # how often the snapshot is compared: a change reaches every surface within ~17 ms
TELEMETRY_HZ = 20.0
SPECTRUM_SIZE = 2048  # FFT length: ~43 ms at 48 kHz


class Listener(Protocol):
    """A control surface that wants feedback (the OSC server, the WebSocket server)."""

    def publish_changes(self, changes: dict) -> None: ...

    def publish_telemetry(self, telemetry: dict) -> None: ...


def db(x: float) -> float:
    return round(20 * math.log10(max(x, 1e-5)), 1)  # -100 dB floor


class Spectrum:
    """Log-spaced band levels of the output (0 = FLOOR_DB .. 255 = 0 dBFS), one spectrogram column per call."""

    def __init__(self, samplerate: int, bands: int = SPECTRUM_BANDS, low_hz: float = SPECTRUM_LOW_HZ):
        self.samplerate = samplerate
        self.bands = bands
        self.low_hz = low_hz
        self.high_hz = samplerate / 2
        self.window = np.hanning(SPECTRUM_SIZE).astype(np.float32)
        self._scale = 2.0 / self.window.sum()  # a full-scale sine reads 0 dB
        edges = np.geomspace(low_hz, self.high_hz, bands + 1)
        bins = np.clip(np.round(edges * SPECTRUM_SIZE / samplerate).astype(int), 1, SPECTRUM_SIZE // 2)
        # Each band takes the loudest bin from its lower edge; narrow low bands share a bin rather than be empty.
        self._starts = np.minimum(bins[:-1], SPECTRUM_SIZE // 2 - 1)

    def describe(self) -> dict:
        return {"bands": self.bands, "low_hz": self.low_hz, "high_hz": self.high_hz, "floor_db": FLOOR_DB}

    def __call__(self, samples: np.ndarray) -> list[int]:
        if len(samples) < SPECTRUM_SIZE:
            samples = np.concatenate([np.zeros(SPECTRUM_SIZE - len(samples), dtype=np.float32), samples])
        magnitude = np.abs(scipy.fft.rfft(samples[-SPECTRUM_SIZE:] * self.window)) * self._scale  # (SIZE/2+1,)
        level = np.maximum.reduceat(magnitude, self._starts)  # (bands,)
        level_db = 20 * np.log10(np.maximum(level, 1e-12))
        return np.clip(np.round((level_db - FLOOR_DB) * 255 / -FLOOR_DB), 0, 255).astype(int).tolist()


class Feedback:
    """The fan-out thread: diffs the parameter snapshot and measures the engine, then tells every listener."""

    def __init__(
        self,
        engine: Engine,
        params: Params,
        listeners: list[Listener],
        telemetry_hz: float = TELEMETRY_HZ,
        errors: Callable[[], int] = lambda: 0,
        since=None,
    ):
        """`since`: the snapshot the surfaces started from (default: now); changes after it are published."""
        self.engine = engine
        self.params = params
        self.listeners = listeners
        self.telemetry_hz = telemetry_hz
        self.errors = errors
        self.spectrum = Spectrum(engine.samplerate)
        self._sent = params.snapshot if since is None else since
        self._next: Params | None = None  # the table of the model switched to, from the switching thread
        self._blocks = engine.stats.blocks
        self._busy = (engine.stats.producer_busy_s, engine.stats.hops)
        self._worker = Worker("liveshtr-feedback", self._run, CONTROL_PRIORITY)
        self.failures = 0  # listener errors (counted, never fatal)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _run(self) -> None:
        period = 1.0 / CHANGES_HZ
        telemetry_every = 1.0 / self.telemetry_hz if self.telemetry_hz > 0 else math.inf
        next_telemetry = time.monotonic()
        while not self._worker.stopping.wait(period):
            try:
                self._tell("publish_changes", self.changes())
                now = time.monotonic()
                if now >= next_telemetry:
                    next_telemetry = max(next_telemetry + telemetry_every, now)
                    self._tell("publish_telemetry", self.telemetry())
            except Exception:  # feedback is never worth a silent surface: count it and go on
                self.failures += 1

    def _tell(self, method: str, message: dict) -> None:
        if not message:
            return
        for listener in self.listeners:
            try:
                getattr(listener, method)(message)
            except Exception:  # a broken surface must not silence the others
                self.failures += 1

    def changes(self) -> dict:
        """Parameters that changed since the last call, by name (all of them after a switch of model)."""
        if self._next is not None:
            self.params, self._next = self._next, None
            self._sent = None
        snap = self.params.snapshot
        changed = self.params.values(snap) if self._sent is None else self.params.changed(self._sent, snap)
        self._sent = snap
        return changed

    def use(self, params: Params) -> None:
        """Follow another model's table from the next tick: its whole state goes out first."""
        self._next = params

    def telemetry(self) -> dict:
        """Counters, meters over the audio played since the last call, and a spectrum column."""
        e, st = self.engine, self.engine.stats
        played = st.blocks - self._blocks
        self._blocks = st.blocks
        recent = e.recent_output(max(played * e.blocksize, SPECTRUM_SIZE))
        window = recent[-max(played * e.blocksize, 1) :]
        busy, hops = st.producer_busy_s - self._busy[0], st.hops - self._busy[1]
        self._busy = (st.producer_busy_s, st.hops)
        hop_s = e.generator.hop / e.model_rate
        return {
            "played_s": round(e.played_s, 3),
            "fill_ms": round(e.buffered_s * 1000, 2),
            "underruns": st.underruns,
            "device_xruns": st.device_xruns,
            "resets": e.generator.resets,
            "step_us": round(busy / hops * 1e6, 1) if hops else 0.0,
            "load": round(busy / (hops * hop_s), 4) if hops else 0.0,
            "peak_db": db(float(np.abs(window).max())) if played else FLOOR_DB,
            "rms_db": db(float(np.sqrt(np.mean(np.square(window))))) if played else FLOOR_DB,
            "errors": self.errors(),
            "spectrum": self.spectrum(recent),
        }
