"""Typed settings: how songs are read, cut into frames, modelled and trained.

The audio and frame configs travel inside every model bundle, so the engine rebuilds exactly the frames the model
was trained on. Defaults are chosen to sound good and to run live on a laptop CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from liveshtr.errors import ConfigError

DOMAINS = ("dct", "fft")


@dataclass(frozen=True)
class AudioConfig:
    """How a song file becomes the mono signal the model learns from."""

    samplerate: int = 24000  # model rate: 12 kHz of bandwidth, and an exact half of 48 kHz sound cards
    highpass_hz: float = 0.0  # 0 disables; SONGSHTR found songs high-passed above ~500 Hz gave livelier results
    peak_db: float = -1.0  # every file is peak-normalised to this level (files may decode above 1.0)
    trim_db: float = 20.0  # the song's quiet start and end (silence, the tail of a fade-out) are cut where they
    # lie more than this far below its median level; 0 keeps them. A model that learned a fade-out plays one.

    def __post_init__(self) -> None:
        if not 4000 <= self.samplerate <= 192000:
            raise ConfigError(f"samplerate {self.samplerate} Hz is outside 4000..192000 Hz")
        if self.highpass_hz < 0 or self.highpass_hz >= self.samplerate / 2:
            raise ConfigError(
                f"highpass {self.highpass_hz:g} Hz must be 0 (off) or below the Nyquist frequency "
                f"({self.samplerate / 2:g} Hz)"
            )
        if not -60.0 <= self.peak_db <= 0.0:
            raise ConfigError(f"peak level {self.peak_db:g} dBFS must lie in -60..0 dBFS")
        if not 0.0 <= self.trim_db <= 120.0:
            raise ConfigError(f"trim {self.trim_db:g} dB must lie in 0..120 dB (0 keeps quiet edges)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameConfig:
    """How the signal is cut into windowed frames and moved into the DCT or FFT domain."""

    domain: str = "fft"  # "fft": rfft, real and imaginary parts side by side (a hop is a near-local rotation
    # per bin, which the model's continuation path captures cheaply); "dct": orthonormal DCT-II, real
    frame: int = 1024  # samples per frame (43 ms at 24 kHz): enough frequency detail for pitch
    hop: int = 256  # samples between frames (10.7 ms at 24 kHz): the step of the model and of control latency
    max_hz: float = 0.0  # keep only coefficients below this frequency to shrink the model; 0 keeps all

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ConfigError(f"domain {self.domain!r} is not one of {', '.join(DOMAINS)}")
        if not 16 <= self.frame <= 65536:
            raise ConfigError(f"frame {self.frame} must lie in 16..65536 samples")
        if self.hop < 1:
            raise ConfigError(f"hop {self.hop} must be at least 1 sample")
        if self.hop >= self.frame:
            raise ConfigError(
                f"hop {self.hop} must be shorter than frame {self.frame}: frames must overlap for overlap-add"
            )
        if self.max_hz < 0:
            raise ConfigError(f"max-hz {self.max_hz:g} must be 0 (keep all) or positive")

    @property
    def channels(self) -> int:
        """Values per frequency bin: 1 for DCT, 2 (re, im) for FFT."""
        return 1 if self.domain == "dct" else 2

    def bin_hz(self, samplerate: int) -> float:
        """Spacing of the bins: DCT-II bin k sits at k * sr / (2 * frame), rfft bin k at k * sr / frame."""
        return samplerate / (2 * self.frame) if self.domain == "dct" else samplerate / self.frame

    def n_bins(self, samplerate: int) -> int:
        """Number of frequency bins kept: all of them, or those strictly below `max_hz`."""
        total = self.frame if self.domain == "dct" else self.frame // 2 + 1
        if self.max_hz <= 0:
            return total
        return max(1, min(total, math.ceil(self.max_hz / self.bin_hz(samplerate))))

    def dim(self, samplerate: int) -> int:
        """Length of one coefficient vector: the model's input and output size."""
        return self.channels * self.n_bins(samplerate)

    def to_dict(self) -> dict:
        return asdict(self)


def check_shape(layers: int, hidden: int, latent_dim: int) -> None:
    """The LSTM and latent sizes every model accepts."""
    if not 1 <= layers <= 3:
        raise ConfigError(f"layers {layers} must lie in 1..3")
    if not 64 <= hidden <= 1024:
        raise ConfigError(f"hidden {hidden} must lie in 64..1024")
    if not 1 <= latent_dim <= 256:
        raise ConfigError(f"latent-dim {latent_dim} must lie in 1..256")


MAX_POSITION_HARMONIC = 16  # a sixteenth of a song is a few bars: finer, the position tells the bar, as the clock does
# ... of those, the harmonics that turn no faster than once in this many seconds of the shortest song. Within a
# period the position tells a part of the song, not a bar: with quarters of 40-60 s songs (periods of 10-15 s) the
# jazz's renders came within 0.88 of replaying a stretch of it (copy; 0.36 without a position) and the Brahms lost
# pitch classes (0.45-0.63 against 0.72).
MIN_POSITION_PERIOD_S = 40.0


# By default (`liveshtr train --position-harmonics auto`) a song this long or longer is told its length's first four
# harmonics (those the 40 s rule keeps): on the guitar (207 s) and the electronic song (164 s) the prime became a
# clear control and the guitar's pitch classes rose (0.70 against 0.55). Shorter songs are told nothing: with only
# the length's first harmonic (a 42 s and a 60 s song) the prime was no clearer and the renders came nearer to
# replaying the song (copy 0.58 and 0.63 against 0.49 and 0.36).
AUTO_POSITION = (1, 2, 3, 4)
MIN_AUTO_POSITION_S = 2 * MIN_POSITION_PERIOD_S


def position_harmonics_for(harmonics: tuple[int, ...], seconds: float) -> tuple[int, ...]:
    """The harmonics of a song of `seconds` that turn no faster than once in MIN_POSITION_PERIOD_S."""
    return tuple(k for k in harmonics if seconds / k >= MIN_POSITION_PERIOD_S)


DEFAULT_CLOCK = (4, 1, 8)  # the magnitude model's clock: the beat, the bar and the half beat (harmonics of the bar)


@dataclass(frozen=True)
class MagnitudeConfig:
    """Shape of the magnitude model (the FFT domain's): log-magnitude features, a clock, a recurrent latent."""

    features: int  # values per frame (set by the feature layout: pitch bins, then bands)
    layers: int = 2  # stacked LSTM layers (1..3)
    hidden: int = 384  # LSTM width (64..1024)
    latent_dim: int = 8  # the latent the performer steers
    input_size: int = 256  # width of the input projection in front of the LSTM
    pitch_hz: float = 3000.0  # bins below this are features of their own; above it, log-spaced bands
    bands: int = 64
    # the clock: sin and cos of these harmonics of the bar (4: the beat, 1: the bar, 8: the half beat; 1..16 can
    # hold any pattern on the sixteenth-note grid)
    clock_harmonics: tuple[int, ...] = DEFAULT_CLOCK
    # where in the song the frame is (0..1 through it): sin and cos of these harmonics of the song's length (1: the
    # whole song, 2: its halves ...); none, the model only knows the bar
    position_harmonics: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_shape(self.layers, self.hidden, self.latent_dim)
        for name in ("clock_harmonics", "position_harmonics"):  # JSON gives lists
            object.__setattr__(self, name, tuple(int(k) for k in getattr(self, name)))
        k = self.clock_harmonics
        if not 1 <= len(k) <= 64 or len(set(k)) != len(k) or not all(1 <= h <= 64 for h in k):
            raise ConfigError(f"clock-harmonics {','.join(map(str, k))}: 1 to 64 different harmonics, each in 1..64")
        k = self.position_harmonics
        if len(set(k)) != len(k) or not all(1 <= h <= MAX_POSITION_HARMONIC for h in k):
            raise ConfigError(
                f"position-harmonics {','.join(map(str, k))}: different harmonics, each in 1..{MAX_POSITION_HARMONIC}"
            )
        if self.features < 1 or self.input_size < 1:
            raise ConfigError(f"features {self.features} and input size {self.input_size} must be positive")
        if self.pitch_hz <= 0 or not 1 <= self.bands <= 512:
            raise ConfigError(f"pitch-hz {self.pitch_hz:g} must be positive and bands {self.bands} in 1..512")

    @property
    def dim(self) -> int:
        return self.features

    def to_dict(self) -> dict:
        """As model.json has it: the default clock and an empty position are left out (bundles from before these
        settings have them)."""
        d = asdict(self)
        if self.clock_harmonics == DEFAULT_CLOCK:
            del d["clock_harmonics"]
        else:
            d["clock_harmonics"] = list(self.clock_harmonics)
        if self.position_harmonics:
            d["position_harmonics"] = list(self.position_harmonics)
        else:
            del d["position_harmonics"]  # so is a model without a position input
        return d


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted. The defaults are the recipe `liveshtr train SONG` uses (docs/notebook.md has the
    runs that chose them)."""

    epochs: int = 20  # passes over the song, each of at least min_steps steps: about 700 steps, which a song's
    # notes and beat need
    seq_len: int = 256  # frames per truncated-BPTT sequence (2.7 s at the default frames: a bar and more at most
    # tempos); the state carries over from one to the next
    batch_size: int = 16  # parallel streams through the song
    lr: float = 1e-3  # Adam learning rate, cosine-decayed to a tenth
    beta: float = 1.0  # weight of the KL on the posterior's side, per frame against the features' likelihood
    prior_weight: float = 4.0  # weight of the same KL on the prior's side: the prior learns what comes next. The
    # two sum to 5, five times the evidence bound's: the latent keeps only what is worth more than 5 nats of a
    # frame (events) and the LSTM predicts the rest; at the bound's own weights (0.2, 0.8) the latent carried
    # 14 nats a frame, mostly detail the prior cannot predict, and sampling it played events off the beat
    kl_warmup: float = 0.3  # fraction of training over which beta ramps up from 0, so the latent is used
    input_noise: float = 0.3  # noise on teacher-forced inputs, so generation recovers from its own samples
    own_samples: float = 0.0  # share of the input frames replaced by the model's own playing (BEAT_RECIPE: 0.3
    # for loops and percussive material)
    min_steps: int = 35  # optimiser steps an epoch takes at least (short material is passed over several times)
    loop: str = "auto"  # on | off | auto: train each song as a loop, its end running into its start (auto: short ones)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch's threads on the CPU (0: every core this process may use)
    seed: int = 0

    @classmethod
    def given(cls, **given) -> TrainConfig:
        """The defaults with what was given (None: not given) on top."""
        return cls(**{k: v for k, v in given.items() if v is not None})

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs {self.epochs} must be at least 1")
        if not 2 <= self.seq_len <= 4096:
            raise ConfigError(f"seq-len {self.seq_len} must lie in 2..4096 frames")
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"batch-size {self.batch_size} must lie in 1..4096")
        if not 0 < self.lr <= 1:
            raise ConfigError(f"lr {self.lr:g} must lie in (0, 1]")
        if not 0 <= self.own_samples <= 1:
            raise ConfigError(f"own-samples {self.own_samples:g} must lie in 0..1")
        if not 0 <= self.input_noise <= 10:
            raise ConfigError(f"input-noise {self.input_noise:g} must lie in 0..10")
        if not 1 <= self.min_steps <= 100000:
            raise ConfigError(f"min-steps {self.min_steps} must lie in 1..100000")
        if not 0 <= self.beta <= 100:
            raise ConfigError(f"beta {self.beta:g} must lie in 0..100")
        if not 0 <= self.prior_weight <= 100:
            raise ConfigError(f"prior-weight {self.prior_weight:g} must lie in 0..100")
        if self.loop not in ("auto", "on", "off"):
            raise ConfigError(f"loop {self.loop!r} is not one of auto, on, off")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device {self.device!r} is not one of auto, cpu, cuda")
        if not 0 <= self.threads <= 1024:
            raise ConfigError(f"threads {self.threads} must lie in 1..1024 (0: every core)")

    def to_dict(self) -> dict:
        return asdict(self)


# A loop: material shorter than LOOP_MAX_S (four bars at 60 beats a minute) trains as a loop unless told otherwise,
# what is left of it after the held-out block repeated to LOOP_TRAIN_S of training frames (`training.dataset`).
LOOP_MAX_S = 16.0
LOOP_TRAIN_S = 24.0

# A song whose pulse is at least this clear (`sound.tempo.estimate_tempo`'s clarity: the onset envelope's
# normalised autocorrelation at its period) and every loop train with a clock of the bar's first 16 harmonics,
# which holds any pattern of sixteenths, and without a position input: with the plain clock (4, 1, 8) and the
# position a house track and a sung folk-pop song lost their beat (0.20 and 0.07 against the songs' 0.58 and 0.50),
# with these two changes alone they kept it (0.63 and 0.38), and the house render no longer came near replaying the
# song (copy 0.53 against 0.89). A song without a pulse (the Brahms, 0.006) keeps the plain clock and the position:
# the fine clock cost it its tone (harmonic share 0.38 against 0.60). The shared recordings' clarities: 0.25-0.47
# with a pulse, the trumpet loop 0.19, the Brahms 0.006 (docs/notebook.md).
PULSE_CLEAR = 0.15
# Loops and percussive material (`liveshtr.analysis.tone.noise_likeness`) also train on their own playing for 0.3
# of their input frames: only so did the drum groove's sampled renders keep a beat (0.41-0.50 against 0.16 with the
# plain defaults; the song's 0.72), and a 16-beat loop of the electronic song its beat (0.66-0.68 against 0.05-0.07;
# the loop's 0.74). It costs 1.3-1.7 times the training time, which tonal songs with a pulse do not spend.
BEAT_RECIPE = {"clock_harmonics": tuple(range(1, 17)), "own_samples": 0.3}
# Percussive material is also cut into frames twice as long, at twice the hop (85 and 21 ms at 24 kHz; --frame and
# --hop given choose for themselves). In the default frames the live phase stage lost a drum kit's pitched drums in
# the mix: the groove's own magnitudes, rebuilt, kept 0.31 of its pitch classes and came back at -14.4 dB of spectral
# convergence; in these 0.79 and -19.3 dB with its beat and onsets intact. Its model's renders (calibrated with the
# partials' bound, `training.calibrate`) went from pitch classes -0.03 to 0.54, from a harmonic share of 0.37 to 0.09
# (the song's 0.13) and from flatness 0.0302 to 0.0191 (the floor 0.027), its beat 0.70 (the song's 0.72). The
# cost: a control reaches the sound a hop later (21 ms), and the model makes half the steps a second.
PERCUSSIVE_FRAMES = {"frame": 2048, "hop": 512}
