"""Training data: songs -> normalised frames, a held-out validation part, and char-rnn style batches.

Validation takes every tenth block of about four seconds (not the song's end, which is often a fade-out), so it
hears every part of the song. Training runs B parallel streams through the remaining frames, each cut into
sequences of `seq_len` frames whose LSTM state carries over from one sequence to the next (truncated BPTT), so
the model learns to run for minutes, as it must on stage, rather than only for one sequence from zero state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveshtr.sound.audio import Song
from liveshtr.sound.frames import FrameCodec, FrameStats

VAL_EVERY = 10  # one block in ten is held out
VAL_BLOCK_S = 4.0  # seconds per block
VAL_CONTEXT = 32  # frames before a validation block that warm the state up (inputs only, not scored)


@dataclass
class FrameData:
    """Normalised frames of the training songs, split for training and validation."""

    stats: FrameStats
    train: np.ndarray  # (T_train, dim) the training frames of all songs, concatenated
    val: list[tuple[np.ndarray, int]]  # (frames (n, dim), context) pairs; targets are frames[context + 1:]
    songs: list[np.ndarray]  # (T_i, dim) every song's whole frame sequence, for primes


def min_samples(codec: FrameCodec, seq_len: int) -> int:
    """Shortest song that still yields one training sequence plus a held-out block."""
    return (seq_len + 2) * codec.hop + codec.frame


def prepare(songs: list[Song], codec: FrameCodec, val_every: int = VAL_EVERY) -> FrameData:
    raw = [codec.analyse(s.samples) for s in songs]  # [(T_i, dim)]
    block = max(2, min(int(VAL_BLOCK_S * codec.samplerate / codec.hop), len(min(raw, key=len)) // val_every))
    train_parts, val_spans = [], []
    for frames in raw:
        n_blocks = len(frames) // block
        held = [i for i in range(n_blocks) if i % val_every == val_every // 2] or [n_blocks - 1]
        start = 0
        for i in held:
            train_parts.append(frames[start : i * block])
            val_spans.append((frames, i * block, (i + 1) * block))
            start = (i + 1) * block
        train_parts.append(frames[start:])
    train_raw = np.concatenate([p for p in train_parts if len(p)], axis=0)
    stats = FrameStats.fit(train_raw)
    val = []
    for frames, lo, hi in val_spans:
        ctx = min(VAL_CONTEXT, lo)
        val.append((stats.normalise(frames[lo - ctx : hi]), ctx))
    return FrameData(
        stats=stats,
        train=stats.normalise(train_raw),
        val=val,
        songs=[stats.normalise(f) for f in raw],
    )


def streams(train: np.ndarray, batch_size: int, seq_len: int, offset: int) -> np.ndarray:
    """Cut the training frames into `batch_size` parallel streams: (B, S, dim), S a multiple of seq_len plus 1.

    Sequence k of stream b is frames [k*seq_len, (k+1)*seq_len] (inputs and shifted targets overlap by one).
    """
    usable = len(train) - offset
    batch = max(1, min(batch_size, (usable - 1) // seq_len))
    n_seq = (usable // batch - 1) // seq_len
    length = n_seq * seq_len + 1
    out = np.stack([train[offset + b * (usable // batch) :][:length] for b in range(batch)])
    return out  # (B, n_seq * seq_len + 1, dim)


def baselines(data: FrameData) -> dict[str, float]:
    """Validation MSE of the two trivial predictors: repeat the last frame, and the mean frame (0 once normalised)."""
    err_repeat, err_mean, n = 0.0, 0.0, 0
    for frames, ctx in data.val:
        inputs, targets = frames[ctx:-1], frames[ctx + 1 :]
        err_repeat += float(np.sum((targets - inputs) ** 2))
        err_mean += float(np.sum(targets**2))
        n += targets.size
    return {"repeat_last": err_repeat / n, "mean_frame": err_mean / n}
