"""Training data: songs -> normalised frames, a held-out validation part, and char-rnn style batches.

Validation takes every tenth block of about four seconds (not the song's end, which is often a fade-out), so it
hears every part of the song. Training runs B parallel streams through the remaining frames, each cut into
sequences of `seq_len` frames whose LSTM state carries over from one sequence to the next (truncated BPTT), so
the model learns to run for minutes, as it must on stage, rather than only for one sequence from zero state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from liveshtr.config import LOOP_MAX_S, LOOP_TRAIN_S
from liveshtr.sound.audio import Song
from liveshtr.sound.frames import FrameCodec, FrameStats
from liveshtr.sound.tempo import Pulse, find_loop_pulse, find_pulse

VAL_EVERY = 10  # one block in ten is held out
VAL_BLOCK_S = 4.0  # seconds per block
VAL_CONTEXT = 32  # frames before a validation block that warm the state up (inputs only, not scored)
MIN_VAL_FRAMES = 8  # the shortest held-out block (85 ms at the default hop)
MIN_SEQ_LEN = 8  # the shortest truncated-BPTT sequence worth training on
MIN_STEPS_PER_EPOCH = 16  # a short loop is passed over several times an epoch, so it trains as long as a song


@dataclass
class FrameData:
    """Normalised frames of the training songs, split for training and validation."""

    stats: FrameStats
    train: np.ndarray  # (T_train, dim) the training frames of all songs, concatenated
    val: list[tuple[np.ndarray, int]]  # (frames (n, dim), context) pairs; targets are frames[context + 1:]
    songs: list[np.ndarray]  # (T_i, dim) every song's whole frame sequence, for primes
    train_beats: np.ndarray  # (T_train,) beat count of every training frame (the clock the model is given)
    val_beats: list[np.ndarray]  # (n,) beside each validation block
    song_beats: list[np.ndarray]  # (T_i,) beside each song
    train_positions: np.ndarray  # (T_train,) where every training frame lies in its song, 0..1
    val_positions: list[np.ndarray]  # (n,) beside each validation block
    pulse: Pulse  # of the longest song: the tempo the engine's clock starts at
    loops: list[int]  # beside each song: 0 for a song, else how many times its training frames were repeated


def min_samples(codec: FrameCodec) -> int:
    """Shortest song that still yields a held-out block and two of the shortest training sequences (0.3 s at
    the defaults): anything longer trains, with fewer and shorter streams (see `Plan`)."""
    frames = 2 * MIN_SEQ_LEN + MIN_VAL_FRAMES + 1
    return frames * codec.hop + codec.pad


@dataclass(frozen=True)
class Plan:
    """How an epoch walks the training frames: `batch` streams of sequences of `seq_len` frames, `passes` times.

    A song gets the configured streams and sequence length. Short material (a 2-8 s loop) gets shorter sequences
    (each stream needs a sequence after a random start offset of up to seq_len frames), fewer streams, and more
    passes, so that an epoch still takes MIN_STEPS_PER_EPOCH optimiser steps."""

    batch: int
    seq_len: int
    passes: int
    steps_per_pass: int  # at the largest start offset; a pass may take one step more

    @property
    def steps_per_epoch(self) -> int:
        return self.passes * self.steps_per_pass

    @classmethod
    def make(cls, n_frames: int, batch_size: int, seq_len: int, min_steps: int = MIN_STEPS_PER_EPOCH) -> Plan:
        seq = max(1, min(seq_len, n_frames // 2))
        batch = stream_count(n_frames - (seq - 1), batch_size, seq)
        steps = ((n_frames - (seq - 1)) // batch - 1) // seq
        return cls(batch, seq, max(1, -(-min_steps // steps)), steps)

    def describe(self, batch_size: int, seq_len: int) -> str | None:
        """One line when short material changed the plan, else None."""
        if (self.batch, self.seq_len) == (batch_size, seq_len):
            return None
        return (
            f"short material: {self.batch} stream(s) of {self.seq_len}-frame sequences "
            f"(asked {batch_size} of {seq_len}), {self.passes} pass(es) an epoch"
        )


def prepare(
    songs: list[Song],
    codec: FrameCodec,
    features: Callable[[np.ndarray], np.ndarray],
    val_every: int = VAL_EVERY,
    loops: list[bool] | None = None,
) -> FrameData:
    """Frames of every song, split and normalised. `features` turns the frames' magnitudes on the domain's grid
    (T, n_bins; `FrameCodec.magnitudes`) into what the model sees (`MagnitudeLayout.to_features`). `loops`: which
    songs train as loops (default: those shorter than LOOP_MAX_S)."""
    if loops is None:
        loops = [s.duration_s < LOOP_MAX_S for s in songs]
    frame_rate = codec.samplerate / codec.hop
    coeffs = [codec.analyse(s.samples, loop) for s, loop in zip(songs, loops, strict=True)]  # [(T_i, dim)]
    spectra = [codec.magnitudes(c) for c in coeffs]  # on the domain's grid of bins: the beat is found in them
    pulses = [
        (find_loop_pulse if loop else find_pulse)(m, codec.samplerate, codec.fft_size, codec.hop)
        for m, loop in zip(spectra, loops, strict=True)
    ]
    raw = [features(m) for m in spectra]
    del coeffs, spectra
    shortest = len(min(raw, key=len))
    block = max(MIN_VAL_FRAMES, min(int(VAL_BLOCK_S * frame_rate), shortest // val_every))
    train_parts, beat_parts, position_parts, val_spans, copies = [], [], [], [], []
    for frames, pulse, loop in zip(raw, pulses, loops, strict=True):
        n_blocks = len(frames) // block
        held = [i for i in range(n_blocks) if i % val_every == val_every // 2] or [n_blocks - 1]
        position = song_positions(len(frames))
        for i in held:
            val_spans.append((frames, pulse.beats, position, i * block, (i + 1) * block))
        spans = training_spans(len(frames), [(i * block, (i + 1) * block) for i in held], loop)
        repeats = loop_repeats(sum(map(len, spans)), frame_rate) if loop else 1
        copies.append(repeats if loop else 0)
        step = pulse.beats[1] - pulse.beats[0] if loop else 0.0  # a loop's beats come evenly: so many a frame
        for k in range(repeats):
            for span in spans:  # frames of a song, or loop time: k whole turns on, running past the loop's end
                t = span + k * len(frames)
                train_parts.append(frames[t % len(frames)])
                beat_parts.append(pulse.beats[0] + t * step if loop else pulse.beats[t])
                position_parts.append(position[t % len(frames)])
    train_raw = np.concatenate([p for p in train_parts if len(p)], axis=0)
    stats = FrameStats.fit(train_raw)
    val, val_beats, val_positions = [], [], []
    for frames, beats, position, lo, hi in val_spans:
        ctx = min(VAL_CONTEXT, lo)
        val.append((stats.normalise(frames[lo - ctx : hi]), ctx))
        val_beats.append(beats[lo - ctx : hi].astype(np.float32))
        val_positions.append(position[lo - ctx : hi])
    return FrameData(
        stats=stats,
        train=stats.normalise(train_raw),
        val=val,
        songs=[stats.normalise(f) for f in raw],
        train_beats=np.concatenate(beat_parts).astype(np.float32),
        val_beats=val_beats,
        song_beats=[p.beats.astype(np.float32) for p in pulses],
        train_positions=np.concatenate(position_parts),
        val_positions=val_positions,
        pulse=max(zip(raw, pulses, strict=True), key=lambda rp: len(rp[0]))[1],
        loops=copies,
    )


def training_spans(n_frames: int, held: list[tuple[int, int]], loop: bool) -> list[np.ndarray]:
    """Frame indices of the stretches between the held-out blocks; in a loop the stretch after the last block runs
    on past the loop's end into the one before the first (indices from n_frames up stand for the loop's start)."""
    edges = [0, *[e for block in held for e in block], n_frames]
    spans = [np.arange(lo, hi) for lo, hi in zip(edges[::2], edges[1::2], strict=True)]
    if loop and len(spans) > 1:
        spans = [*spans[1:-1], np.concatenate([spans[-1], spans[0] + n_frames])]
    return [s for s in spans if len(s)]


def loop_repeats(frames: int, frame_rate: float) -> int:
    """How often a loop's training frames are repeated: at least twice, and to LOOP_TRAIN_S."""
    return max(2, -(-int(LOOP_TRAIN_S * frame_rate) // max(1, frames)))


def song_positions(n_frames: int) -> np.ndarray:
    """Where each of a song's frames lies in it: (n_frames,) float32 from 0 up to (not reaching) 1."""
    return (np.arange(n_frames, dtype=np.float64) / n_frames).astype(np.float32)


def streams(train: np.ndarray, batch_size: int, seq_len: int, offset: int) -> np.ndarray:
    """Cut the training frames into `batch_size` parallel streams: (B, S, dim), S a multiple of seq_len plus 1.

    Sequence k of stream b is frames [k*seq_len, (k+1)*seq_len] (inputs and shifted targets overlap by one).
    """
    usable = len(train) - offset
    batch = stream_count(usable, batch_size, seq_len)
    n_seq = (usable // batch - 1) // seq_len
    length = n_seq * seq_len + 1
    out = np.stack([train[offset + b * (usable // batch) :][:length] for b in range(batch)])
    return out  # (B, n_seq * seq_len + 1, dim)


def stream_count(usable: int, batch_size: int, seq_len: int) -> int:
    """As many streams as asked for, but each must hold a whole sequence and its shifted target."""
    return max(1, min(batch_size, usable // (seq_len + 1)))


def baselines(data: FrameData) -> dict[str, float]:
    """Validation MSE of the two trivial predictors: repeat the last frame, and the mean frame (0 once normalised)."""
    err_repeat, err_mean, n = 0.0, 0.0, 0
    for frames, ctx in data.val:
        inputs, targets = frames[ctx:-1], frames[ctx + 1 :]
        err_repeat += float(np.sum((targets - inputs) ** 2))
        err_mean += float(np.sum(targets**2))
        n += targets.size
    return {"repeat_last": err_repeat / n, "mean_frame": err_mean / n}
