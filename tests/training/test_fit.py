"""`fit` handing models over while it trains (serve --learn): when, which, what it says, and how it stops."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import soundfile as sf

from liveshtr.config import AudioConfig, FrameConfig, MagnitudeConfig, TrainConfig
from liveshtr.sound.audio import load_songs
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.magnitude import MagnitudeLayout
from liveshtr.training import fit as fitting
from liveshtr.training.dataset import prepare


def chords(path, seconds: float = 6.0, rate: int = 24000) -> None:
    """Two chords a second apart, over and over: something to learn in a few steps."""
    t = np.arange(int(seconds * rate)) / rate
    low = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    high = sum(np.sin(2 * np.pi * f * t) for f in (246.9, 311.1, 370.0))
    sf.write(path, 0.2 * np.where((t % 2.0) < 1.0, low, high), rate)


def chords_to_learn(tmp_path, monkeypatch, seconds: float = 6.0):
    """The chords as training data and a small model, with a hand-over after 2 steps and then after every epoch
    that plays the held-out block better."""
    chords(tmp_path / "chords.wav", seconds)
    audio, frames = AudioConfig(), FrameConfig()
    codec = FrameCodec(frames, audio.samplerate)
    layout = MagnitudeLayout.for_codec(codec)
    data = prepare(load_songs([tmp_path / "chords.wav"], audio), codec, layout.to_features, loops=[False])
    monkeypatch.setattr(fitting, "FIRST_STEPS", 2)
    monkeypatch.setattr(fitting, "SNAPSHOT_GAP_S", 0.0)
    monkeypatch.setattr(fitting, "SNAPSHOT_GROWTH", 1.0)
    return data, MagnitudeConfig(features=layout.n_features, layers=1, hidden=64)


def test_a_first_model_after_a_few_steps_then_only_better_ones_and_a_stop_ends_it_cleanly(tmp_path, monkeypatch):
    data, model_cfg = chords_to_learn(tmp_path, monkeypatch)
    cfg = TrainConfig(epochs=12, min_steps=4, seq_len=64, batch_size=4, threads=1)
    events = io.StringIO()
    handed, stop = [], threading.Event()

    def snapshot(result, seconds):
        handed.append((result.best_epoch, result.best_val_mse, seconds))
        if len(handed) == 2:
            stop.set()  # as `serve` asks over the trainer's stdin

    progress = fitting.Progress(cfg.epochs, stream=io.StringIO(), events=events)
    result = fitting.fit(
        data, model_cfg, cfg, tmp_path / "checkpoint.pt", {}, progress=progress, snapshot=snapshot, stop=stop
    )
    assert len(handed) == 2, (handed, result.history.val_mse)
    assert handed[0][0] == 0  # within the first epoch, after FIRST_STEPS steps
    (first, second) = handed
    assert second[1] < first[1] and second[0] > first[0]  # a later epoch that plays the held-out block better
    assert result.interrupted and result.epochs_done < cfg.epochs  # stopped at the step after the second
    said = [json.loads(line) for line in events.getvalue().splitlines()]
    assert {e["event"] for e in said} == {"progress"}
    ends = [e for e in said if "val" in e]  # one a finished epoch, with its held-out loss
    assert [e["epoch"] for e in ends] == list(range(1, result.epochs_done + 1))
    assert all(0 < e["fraction"] <= 1 and e["epochs"] == cfg.epochs for e in said)


def test_a_model_whose_calibration_heard_a_wash_does_not_keep_the_song():
    from liveshtr.training.calibrate import PARTIALS_KEPT, SUSTAIN_MARGIN, keeps_the_song

    def sampling(share: float, partials: float) -> dict:
        return {
            "harmonic_share": {"song": 0.8, "played": share},
            "partial_persistence": {"song": 0.7, "played": partials},
        }

    assert keeps_the_song(sampling(0.8 - SUSTAIN_MARGIN, PARTIALS_KEPT * 0.7))  # at the calibration's own bounds
    assert keeps_the_song(sampling(0.95, 0.9))  # more tonal than the song is no wash
    assert not keeps_the_song(sampling(0.46, 0.46))  # the trumpet loop's second model on the benchmark
    assert not keeps_the_song(sampling(0.8, 0.5))


def test_handing_models_over_leaves_the_training_as_the_seed_makes_it(tmp_path, monkeypatch):
    """The hand-overs fall by the clock; what is trained must not depend on where they fell (`--seed`)."""
    import torch

    data, model_cfg = chords_to_learn(tmp_path, monkeypatch, seconds=4.0)
    cfg = TrainConfig(epochs=3, min_steps=4, seq_len=64, batch_size=4, threads=1)
    handed = []

    def snapshot(result, seconds):  # as an export does: it builds models and draws random numbers
        handed.append(float(torch.randn(1000).sum()))

    def weights(folder, **kw):
        folder.mkdir()
        progress = fitting.Progress(cfg.epochs, stream=io.StringIO())
        result = fitting.fit(data, model_cfg, cfg, folder / "checkpoint.pt", {}, progress=progress, **kw)
        return result.history.val_mse, [p.detach().clone() for p in result.model.parameters()]

    plain = weights(tmp_path / "plain")
    shown = weights(tmp_path / "shown", snapshot=snapshot)
    assert handed  # models were handed over, and drew from the generator
    assert shown[0] == plain[0]  # the same held-out errors, epoch by epoch
    assert all(torch.equal(a, b) for a, b in zip(shown[1], plain[1], strict=True))
