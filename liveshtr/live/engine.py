"""The real-time engine: a producer thread runs the model ahead of playback, the audio callback only copies.

    params snapshot --(once per hop, smoothed)--> Generator: step -> denormalise -> inverse FFT/DCT -> overlap-add
        -> safety (DC blocker, limiter) -> streaming resampler (model rate -> device rate, when they differ)
        -> RingBuffer (preallocated, single producer / single consumer) -> callback: copy, gain ramp -> outdata

The producer keeps the ring filled to the look-ahead (milliseconds of audio ahead of the speaker), which is the
main term of control latency. The callback never blocks, allocates arrays, logs or takes a lock: it reads one
block, ramps the gain toward the snapshot's value and copies into `outdata`. When the producer falls behind, the
callback fades from the last sample to silence, counts an underrun and fades back in when audio returns.

`render` drives the same producer and the same callback without a clock, so a render with a seed is what the live
engine plays with that seed, sample for sample.
"""

from __future__ import annotations

import math
import os
import select
import sys
import time
from dataclasses import dataclass

import numpy as np

from liveshtr.live.automation import Schedule
from liveshtr.live.generator import Controls, Generator
from liveshtr.live.params import Params
from liveshtr.live.ring import RingBuffer
from liveshtr.live.sched import PRODUCER_PRIORITY, Worker
from liveshtr.live.voice import Crossfade, Voice
from liveshtr.sound.tempo import BEATS_PER_BAR

FADE_S = 0.02  # the callback's gain moves at most full scale in this time: no zipper noise, panic in 20 ms
SWITCH_INTERVAL_S = 0.0001  # how long the callback can wait for the GIL while the producer runs Python code
LOOKAHEAD_MS = 10.0  # where the look-ahead starts: a control change leaves the callback within ~25 ms
MAX_LOOKAHEAD_MS = 40.0  # how far underruns may raise it (one block per underrun)
BLOCKSIZE = 256
MAX_BURST_HOPS = 8  # the most model hops a resampler returns at once (soxr on some ratios), with margin
WAKE = b"\x00"
SCOPE_BLOCKS = 32  # the callback keeps this many of its last blocks for meters and the spectrogram (~170 ms)


@dataclass
class EngineStats:
    blocks: int = 0  # blocks the callback delivered
    underruns: int = 0  # blocks with no audio ready (silence or a fade instead)
    device_xruns: int = 0  # callbacks where the audio device reported an output underflow
    callback_errors: int = 0
    producer_errors: int = 0
    peak: float = 0.0  # largest |sample| handed to the device
    energy: float = 0.0  # sum of squared samples handed to the device
    non_finite_blocks: int = 0  # blocks with NaN, inf or beyond full scale (muted; must stay 0)
    resampler_overs: int = 0  # resampled hops with an inter-sample peak over the ceiling (clipped to it)
    hops: int = 0  # hops produced
    producer_busy_s: float = 0.0  # time spent producing


MIN_FADE_S = FADE_S  # the shortest switch between models: a cut would click
MAX_FADE_S = 60.0
MAX_BAR_WAIT_S = 8.0  # a switch asked for at the next bar waits no longer than this (two bars at 60 beats a minute)


class Engine:
    def __init__(
        self,
        generator: Generator,
        params: Params,
        samplerate: int | None = None,
        blocksize: int = BLOCKSIZE,
        lookahead_ms: float = LOOKAHEAD_MS,
        schedule: Schedule | None = None,
        simulate_load_ms: float = 0.0,
        max_lookahead_ms: float = MAX_LOOKAHEAD_MS,
        voice: Voice | None = None,
    ):
        """`voice`: the generator's and the table's, when the caller made it (a set list's first model)."""
        self.samplerate = int(samplerate or generator.samplerate)
        self.voice = voice if voice is not None else Voice(generator, params, self.samplerate)
        self.blocksize = int(blocksize)
        self.lookahead_ms = float(lookahead_ms)
        self.schedule = schedule
        self.simulate_load_s = simulate_load_ms / 1000.0  # for tests and demos of an overloaded machine
        self.stats = EngineStats()
        self.last_error = ""
        hop = generator.hop
        self._ceiling = generator.safety.ceiling
        # The look-ahead adapts: it starts low for a quick response to the controls, and every underrun raises it
        # by one block, up to max_fill, so a machine that cannot keep up clicks once, not on and on.
        self.target_fill = max(self.blocksize, round(self.lookahead_ms * self.samplerate / 1000))
        self.max_fill = max(self.target_fill, round(max_lookahead_ms * self.samplerate / 1000))
        self._underruns_seen = 0
        # A burst waits here (producer side only) for room in the ring; nothing is ever dropped.
        burst = math.ceil(MAX_BURST_HOPS * hop * self.samplerate / self.model_rate) + 64
        self._pending = np.zeros(2 * burst, dtype=np.float32)
        self._pending_n = 0
        self._max_burst = 0
        self.ring = RingBuffer(self.blocksize, math.ceil((self.max_fill + burst) / self.blocksize) + 1)

        # Switching models: a request from a control thread (one reference), taken by the producer at a hop.
        self._switch: tuple[Voice, float, bool] | None = None  # voice, fade, at the next bar
        self._bar_wait = 0  # hops a switch at the next bar has waited
        self.crossfade: Crossfade | None = None
        self.switches = 0  # switches the producer has carried out
        self._time_base = (0.0, 0)  # seconds produced and hops at the last switch: produced_s across rates
        # While a switch waits and its crossfade runs (two models a hop), the look-ahead holds one hop more: the
        # producer gets a block period more for those hops (control latency is one hop longer meanwhile).
        self._extra_fill = 0
        self._beat_sync: tuple[float, float, float] | None = None  # from a clock's thread: beats, bpm, when
        self.initial_snapshot = params.snapshot  # what a recording's replay starts from
        # Recording (live.recorder): new snapshots with their hop (and switches of model: hop, voice, seconds), and
        # the blocks played with their gain target.
        self._snapshots = None
        self._logged = self.initial_snapshot
        self._tap = None
        self.replay_gains: np.ndarray | None = None  # a replay's gain target per block, as the live callback read it
        self.replay_dry: np.ndarray | None = None  # a replay's blocks where the live callback ran dry
        self.replay = None  # a replay's events: called with the engine at the start of every hop

        # Callback state, all preallocated.
        self._block = np.zeros(self.blocksize, dtype=np.float32)
        self._ramp = (np.arange(1, self.blocksize + 1, dtype=np.float32) / self.blocksize).astype(np.float32)
        self._fade = (1.0 - self._ramp).astype(np.float32)
        self._gains = np.empty(self.blocksize, dtype=np.float32)
        self._gain_index = params.index("gain")  # the first control of every model's table
        self._gain_step = self.blocksize / (FADE_S * self.samplerate)
        self._gain = float(params.snapshot[self._gain_index])
        self._gain_target = self._gain
        self._last = 0.0
        # What the callback played last, for meters and the spectrogram (read by the telemetry thread, never here).
        self._scope = np.zeros(SCOPE_BLOCKS * self.blocksize, dtype=np.float32)
        self._scope_blocks = [self._scope[i * self.blocksize : (i + 1) * self.blocksize] for i in range(SCOPE_BLOCKS)]

        self._worker = Worker("liveshtr-producer", self._run, PRODUCER_PRIORITY)
        self._switch_interval = sys.getswitchinterval()
        # While the producer thread runs, the callback wakes it through a pipe: one non-blocking write of a
        # preallocated byte, no lock.
        self._wake_r = self._wake_w = -1
        self.producing = False  # a fill is under way

    # -- the model playing ----------------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        return self.voice.generator

    @property
    def params(self) -> Params:
        return self.voice.params

    @property
    def controls(self) -> Controls:
        return self.voice.controls

    @property
    def model_rate(self) -> int:
        return self.voice.model_rate

    @property
    def resampler(self):
        return self.voice.resampler

    def switch(self, voice: Voice, seconds: float, at_bar: bool = False) -> None:
        """Crossfade to `voice` (another model's, made for this output rate) over `seconds`, from the producer's
        next hop (`at_bar`: from the hop where the model playing starts its next bar, the new one primed from a
        place in its song where a bar starts); from a control thread. A request made during a crossfade waits for
        its end (the last one wins)."""
        if voice.samplerate != self.samplerate or voice.params.index("gain") != self._gain_index:
            raise ValueError("the voice was made for another engine")
        self._switch = (voice, min(max(float(seconds), MIN_FADE_S), MAX_FADE_S), bool(at_bar))

    def _prepare_switch(self) -> None:
        """First the extra hop of look-ahead, made by the model playing; then, at a hop with the usual look-ahead
        already in the ring (and at the bar's first hop, where asked), the crossfade."""
        voice, _, at_bar = self._switch
        if voice is self.voice:
            self._switch = None
            return
        if not self._extra_fill:
            self._extra_fill = max(round(v.generator.hop * self.samplerate / v.model_rate) for v in (self.voice, voice))
        if at_bar and not self._bar_starts():
            return
        if self.ring.available >= self.target_fill and self.take_switch() is not None and self._snapshots is not None:
            self._snapshots.append((self.stats.hops, self.voice, self.crossfade.samples / self.samplerate, at_bar))

    def _bar_starts(self) -> bool:
        """Whether the model playing starts a bar with its next hop (always, for a model without a clock, or once
        a switch has waited MAX_BAR_WAIT_S)."""
        g = self.generator
        self._bar_wait += 1
        if "tempo" not in self.params.table or self._bar_wait * g.hop / self.model_rate >= MAX_BAR_WAIT_S:
            return True
        return g.beat + g.beats_per_hop(self.controls) >= BEATS_PER_BAR

    def sync_beat(self, beats: float, bpm: float, at: float) -> None:
        """From a clock's thread (MIDI clock): the band was `beats` into its bar at `at` (time.monotonic()), playing
        at `bpm`. The next hop puts the model's clock where the band will be when that hop is heard."""
        self._beat_sync = (float(beats), float(bpm), float(at))

    def _apply_beat(self) -> None:
        beats, bpm, at = self._beat_sync
        self._beat_sync = None
        if "tempo" not in self.params.table:  # a model without a clock input
            return
        beats = (beats + (time.monotonic() - at + self.latency_s) * bpm / 60.0) % BEATS_PER_BAR
        self.generator.set_beat(beats)
        if self._snapshots is not None:
            self._snapshots.append((self.stats.hops, "beat", beats))

    def take_switch(self) -> Voice | None:
        """On the producer's thread (or a replay's): start the crossfade asked for, unless one is under way."""
        request = self._switch
        if request is None or self.crossfade is not None:
            return None
        self._switch = None
        self._bar_wait = 0
        voice, seconds, at_bar = request
        if voice is self.voice:
            return None
        if at_bar:
            voice.generator.prime_on_bar()
        self._time_base = (self.produced_s, self.stats.hops)
        self.crossfade = Crossfade(self.voice, round(seconds * self.samplerate), self._ceiling)
        self.voice = voice
        self.switches += 1
        return voice

    # -- producer ------------------------------------------------------------------------------------

    @property
    def produced_s(self) -> float:
        """Model time produced: hops times their length, each model's since it came in."""
        seconds, hops = self._time_base
        return seconds + (self.stats.hops - hops) * self.generator.hop / self.model_rate

    @property
    def played_s(self) -> float:
        return self.stats.blocks * self.blocksize / self.samplerate

    def produce_hop(self) -> int:
        """Generate one hop into the ring; returns the number of samples written."""
        started = time.perf_counter()
        if self.replay is not None:
            self.replay(self)
        if self._switch is not None and self.crossfade is None:
            self._prepare_switch()
        if self.schedule is not None:
            self.schedule.apply_due(self.produced_s, self.params)
        if self._beat_sync is not None:
            self._apply_beat()
        voice = self.voice
        snap = voice.params.snapshot  # read once: the snapshot logged is the one this hop uses
        if self._snapshots is not None and snap is not self._logged:
            self._snapshots.append((self.stats.hops, snap))
            self._logged = snap
        overs = voice.overs
        out = voice.next(snap)
        self.stats.resampler_overs += voice.overs - overs
        if self.crossfade is not None:
            overs = self.crossfade.outgoing.overs
            out = self.crossfade.mix(out)
            self.stats.resampler_overs += self.crossfade.outgoing.overs - overs
            if self.crossfade.finished:
                self.crossfade.outgoing.release()
                self.crossfade = None
                self._extra_fill = 0
        n, start = len(out), self._pending_n
        if n > self._max_burst:
            self._max_burst = n
        if start + n > len(self._pending):  # a model with longer hops than the first (set lists): room for its bursts
            self._pending = np.concatenate([self._pending, np.zeros(2 * n, dtype=np.float32)])
        self._pending[start : start + n] = out
        self._pending_n += n
        self._flush()
        self.stats.hops += 1
        if self.simulate_load_s:
            time.sleep(self.simulate_load_s)
        self.stats.producer_busy_s += time.perf_counter() - started
        return n

    def _flush(self) -> None:
        """Move what fits of the pending samples into the ring."""
        written = self.ring.write(self._pending[: self._pending_n])
        if written:
            left = self._pending_n - written
            self._pending[:left] = self._pending[written : self._pending_n]  # numpy handles the overlap
            self._pending_n = left

    def fill(self) -> None:
        """Produce until the ring holds the look-ahead. `producing` says so meanwhile, for control threads that
        defer to it."""
        self.producing = True
        try:
            self._fill()
        finally:
            self.producing = False

    def _fill(self) -> None:
        while self.ring.available < self.target_fill + self._extra_fill:
            if self.stats.underruns != self._underruns_seen:  # the callback ran dry: keep more ahead from now on
                self._underruns_seen = self.stats.underruns
                self.target_fill = min(self.target_fill + self.blocksize, self.max_fill)
            if self._pending_n:
                self._flush()
                if self.ring.available >= self.target_fill + self._extra_fill:
                    break
            self.produce_hop()

    @property
    def buffered_s(self) -> float:
        """Audio made and not yet played: the ring plus what waits for room in it."""
        return (self.ring.available + self._pending_n) / self.samplerate

    @property
    def latency_s(self) -> float:
        """How long a control change can take to leave the callback, the device's own buffer aside: it waits for
        the next hop (at most one), whose frame the phase stage holds for a hop more, then plays after the
        look-ahead, the resampler's delay and the largest burst it has held back so far (measured; 0 for steady
        resamplers)."""
        hop_out = self.generator.hop * self.samplerate / self.model_rate
        delay = self.resampler.delay if self.resampler is not None else 0
        burst = max(self._max_burst - hop_out, 0)
        held = hop_out * self.generator.phase_delay
        return (self.target_fill + self._extra_fill + hop_out + held + delay + burst) / self.samplerate

    @property
    def realtime(self) -> bool:
        """Whether the producer thread got real-time scheduling."""
        return self._worker.realtime

    def _run(self) -> None:
        poll_ms = max(1, round(self.blocksize / self.samplerate * 1000 / 2))
        wake = select.poll()
        wake.register(self._wake_r, select.POLLIN)
        failures = 0
        while not self._worker.stopping.is_set():
            if self.ring.available >= self.target_fill + self._extra_fill:
                wake.poll(poll_ms)  # the callback wakes us as soon as it has taken a block
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                continue
            try:
                self.fill()
                failures = 0
            except Exception as exc:  # never let the producer die on stage: count, restart from the song
                self.stats.producer_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                failures += 1
                try:
                    self.generator.prime(self.generator.position)
                except Exception as again:  # said in the summary's last error; the loop goes on trying
                    self.last_error += f"; restarting failed too: {type(again).__name__}: {again}"
                time.sleep(min(0.5, poll_ms / 1000 * failures))  # a persistent fault plays silence rather than spin

    def start(self) -> None:
        """Fill the look-ahead, then keep it filled from a producer thread."""
        self.fill()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # the callback must not wait 5 ms for the GIL
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        sys.setswitchinterval(self._switch_interval)

    # -- consumer: the audio callback ----------------------------------------------------------------

    def callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """sounddevice's callback: one block from the ring, gain-ramped, into every channel of `outdata`."""
        try:
            if status and status.output_underflow:  # PortAudio's own flag (priming and the like do not count)
                self.stats.device_xruns += 1
            block = self._block
            ready = frames == self.blocksize
            if self.replay_dry is not None and ready:  # a replay runs dry where the recorded set did
                ready = not self.replay_dry[min(self.stats.blocks, len(self.replay_dry) - 1)]
            if ready and self.ring.read_block(block):
                if self.replay_gains is None:
                    # The model playing's table (an attribute, not the property: this is the callback); a Python
                    # float, as numpy would buffer.
                    target = float(self.voice.params.snapshot[self._gain_index])
                else:
                    target = float(self.replay_gains[min(self.stats.blocks, len(self.replay_gains) - 1)])
                self._gain_target = target
                g0 = self._gain
                g1 = min(max(target, g0 - self._gain_step), g0 + self._gain_step)
                np.multiply(self._ramp, g1 - g0, out=self._gains)
                self._gains += g0
                block *= self._gains
                self._gain = g1
            else:  # underrun: fade out from where the sound was, fade back in when audio returns
                np.multiply(self._fade, self._last, out=block)
                self._gain = 0.0
                self.stats.underruns += 1
                ready = False
            # Last line of defence, and the output meter: |x| via the scratch buffer (max() would buffer).
            np.abs(block, out=self._gains)
            peak = float(self._gains[self._gains.argmax()])  # NaN wins argmax
            if not peak <= 1.0:
                self.stats.non_finite_blocks += 1
                block.fill(0.0)
                peak = 0.0
            self._last = float(block[-1])
            if peak > self.stats.peak:
                self.stats.peak = peak
            self.stats.energy += float(np.dot(block, block))
            np.copyto(self._scope_blocks[self.stats.blocks % SCOPE_BLOCKS], block)
            if self._tap is not None:
                self._tap.put(block, self._gain_target, self.stats.blocks, not ready)
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, WAKE)
                except OSError:  # full: the producer has wake-ups pending already
                    pass
            if frames == self.blocksize:
                np.copyto(outdata.T, block)  # every channel (a transposed view broadcasts without a buffer)
            else:
                outdata.fill(0.0)
            self.stats.blocks += 1
        except Exception:  # an exception would stop the stream: play silence and count it instead
            self.stats.callback_errors += 1
            outdata.fill(0.0)

    def attach_recorder(self, recorder) -> None:
        """Hand every block played and every new snapshot (with its hop) to `recorder`; before `start`."""
        self._snapshots = recorder.snapshots
        self._tap = recorder.tap

    def recent_output(self, n: int) -> np.ndarray:
        """The last `n` samples the callback played (a copy, oldest first).

        For meters and displays, from another thread: at most the scope minus two blocks, so the callback's next
        write cannot land in what is being copied."""
        bs = self.blocksize
        n = min(int(n), (SCOPE_BLOCKS - 2) * bs)
        end = (self.stats.blocks % SCOPE_BLOCKS) * bs
        if n <= end:
            return self._scope[end - n : end].copy()
        return np.concatenate([self._scope[end - n :], self._scope[:end]])

    # -- offline ---------------------------------------------------------------------------------------

    def render(self, seconds: float, channels: int = 1) -> np.ndarray:
        """As fast as possible: (n, channels) float32, exactly what the callback would have played."""
        n_blocks = math.ceil(seconds * self.samplerate / self.blocksize)
        out = np.empty((n_blocks * self.blocksize, channels), dtype=np.float32)
        for i in range(n_blocks):
            self.fill()
            self.callback(out[i * self.blocksize : (i + 1) * self.blocksize], self.blocksize, None, 0)
        return out[: round(seconds * self.samplerate)]

    def summary(self) -> dict:
        g = self.generator
        st = self.stats
        n = st.blocks * self.blocksize
        return {
            "played_s": round(self.played_s, 3),
            "lookahead_ms": round(self.target_fill / self.samplerate * 1000, 2),
            "underruns": st.underruns,
            "device_xruns": st.device_xruns,
            "resets": g.resets,
            "non_finite_hops": g.safety.non_finite_hops,
            "limited_hops": g.safety.limited_hops,
            "resampler_overs": st.resampler_overs,
            "producer_errors": st.producer_errors,
            "callback_errors": st.callback_errors,
            "producer_load": round(st.producer_busy_s / max(self.produced_s, 1e-9), 4),
            "switches": self.switches,
            "output_peak": float(st.peak),
            "output_rms_db": round(10 * math.log10(max(st.energy / max(n, 1), 1e-20)), 2),
            "non_finite_blocks": st.non_finite_blocks,
        }
