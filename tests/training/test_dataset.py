"""Training data: how a loop is cut into training frames and held-out validation, and the clock beside them."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from liveshtr.config import LOOP_TRAIN_S, AudioConfig, FrameConfig
from liveshtr.sound.audio import load_songs
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.magnitude import MagnitudeLayout
from liveshtr.sound.tempo import find_loop_pulse
from liveshtr.training.dataset import prepare, training_spans
from tests.helpers import GROOVE, shared_song

RATE = 24000


def click_samples(bpm: float, beats: int, offset_s: float = 0.0) -> np.ndarray:
    """A drum loop of `beats` beats: a decaying noise burst on every beat, a quieter one on every off-beat, each
    burst its own noise."""
    period = 60.0 / bpm
    n = int(round(beats * period * RATE))
    rng = np.random.default_rng(0)
    y = 0.002 * rng.standard_normal(n)  # a quiet room, so that no two frames are the same
    decay = np.exp(-np.arange(1200) / 200)
    for k in range(2 * beats):
        at = int(round((offset_s + k * period / 2) * RATE)) + np.arange(1200)
        # what rings past the loop's end sounds at its start, as in a cut loop
        np.add.at(y, at % n, rng.standard_normal(1200) * decay * (0.5 if k % 2 == 0 else 0.15))
    return y


def clicks(path, bpm: float, beats: int, offset_s: float = 0.0) -> None:
    sf.write(path, click_samples(bpm, beats, offset_s), RATE)


def prepared(path, loops=None):
    audio, frames = AudioConfig(), FrameConfig()
    codec = FrameCodec(frames, audio.samplerate)
    features = MagnitudeLayout.for_codec(codec).to_features
    return prepare(load_songs([path], audio), codec, features, loops=loops), audio.samplerate / frames.hop


@pytest.mark.parametrize("n, held", [(613, [(300, 361)]), (1000, [(0, 100)]), (4000, [(500, 600), (1500, 1600)])])
def test_a_loop_trains_on_every_frame_but_the_held_out_ones_and_runs_past_its_end(n, held):
    spans = training_spans(n, held, loop=True)
    frames = np.concatenate(spans) % n
    out = set().union(*(range(lo, hi) for lo, hi in held))
    assert sorted(frames) == sorted(set(range(n)) - out)  # every other frame, once
    assert all(np.all(np.diff(s) == 1) for s in spans)  # each stretch plays on frame by frame ...
    assert spans[-1][-1] >= n or held[0][0] == 0  # ... and one of them runs over the loop's end into its start
    plain = training_spans(n, held, loop=False)
    assert max(map(max, plain)) < n and sorted(np.concatenate(plain)) == sorted(frames)


def test_a_loop_is_repeated_round_its_end_on_a_clock_of_whole_beats(tmp_path):
    path = tmp_path / "loop.wav"
    clicks(path, 100.0, 8, offset_s=0.1)  # 4.8 s
    data, frame_rate = prepared(path)
    n = len(data.songs[0])
    copies = data.loops[0]
    assert copies >= 2 and len(data.train) >= LOOP_TRAIN_S * frame_rate * 0.9
    beats = data.song_beats[0].astype(np.float64)
    per_frame = beats[1] - beats[0]
    assert per_frame * n == pytest.approx(8, abs=1e-3)  # a whole number of beats: the clock meets itself at the end
    assert n == 450 and data.pulse.bpm == pytest.approx(100.0, rel=1e-3)  # frames round the loop once, no edges
    on_beat = [int(round((0.1 + k * 0.6) * frame_rate)) for k in range(8)]
    phase = (beats[on_beat] + 0.5) % 1.0 - 0.5
    assert np.all(np.abs(phase) < 0.1), phase  # the clock's beats fall on the loop's hits
    steps = np.diff(data.train_beats.astype(np.float64))
    block = len(data.val[0][0]) - data.val[0][1]
    assert np.allclose(steps[np.abs(steps - per_frame) > 1e-4], (block + 1) * per_frame, rtol=1e-3)
    assert np.sum(np.abs(steps - per_frame) > 1e-4) == copies - 1  # the clock jumps only over the held-out block
    val_frames, ctx = data.val[0]
    scored = {tuple(f) for f in np.round(val_frames[ctx:], 4)}
    assert not scored & {tuple(f) for f in np.round(data.train, 4)}  # no held-out frame is trained on

    plain, _ = prepared(path, loops=[False])
    assert plain.loops == [0] and len(plain.train) == len(plain.songs[0]) - block  # the song once, as it is


def test_songs_are_not_loops_unless_told(tmp_path):
    path = tmp_path / "long.wav"
    clicks(path, 120.0, 40)  # 20 s
    data, _ = prepared(path)
    assert data.loops == [0]
    looped, _ = prepared(path, loops=[True])
    assert looped.loops == [2]  # told: still heard running into its start, at least once


def loop_pulse_of(samples: np.ndarray):
    audio, frames = AudioConfig(), FrameConfig()
    codec = FrameCodec(frames, audio.samplerate)
    mags = codec.magnitudes(codec.analyse(samples, loop=True))
    return find_loop_pulse(mags, audio.samplerate, frames.frame, frames.hop), len(mags)


@pytest.mark.parametrize(
    "name, start_s, seconds, beats, bpm",
    [
        (GROOVE, 10.0, 6.5, 8, 73.9),  # swung: three beats of its triplets fit as well as two of its beats
        ("electronic_happy_song_maddirtmonkey.mp3", 30.085, 7.384, 16, 130.0),  # the song's tracker hears 87
    ],
)
def test_a_loop_cut_on_the_beat_holds_its_beats(tmp_path, name, start_s, seconds, beats, bpm):
    with sf.SoundFile(shared_song(name)) as f:
        f.seek(int(start_s * f.samplerate))
        sf.write(tmp_path / "loop.wav", f.read(int(seconds * f.samplerate)), f.samplerate)
    song = load_songs([tmp_path / "loop.wav"], AudioConfig())[0]
    pulse, n = loop_pulse_of(song.samples)
    assert round(float(pulse.beats[1] - pulse.beats[0]) * n) == beats and pulse.bpm == pytest.approx(bpm, rel=0.01)
    assert pulse.clarity > 0.3


def test_a_loops_beats_fall_on_its_hits_wherever_it_starts():
    for offset_s in (0.0, 0.17, 0.45):
        y = click_samples(100.0, 8, offset_s)
        pulse, n = loop_pulse_of(y)
        assert pulse.bpm == pytest.approx(100.0, rel=1e-3)
        frame_rate = AudioConfig().samplerate / FrameConfig().hop
        on_beat = [int(round((offset_s + k * 0.6) * frame_rate)) % n for k in range(8)]
        phase = (pulse.beats[on_beat] + 0.5) % 1.0 - 0.5
        assert np.all(np.abs(phase) < 0.1), (offset_s, phase)
    silent, n = loop_pulse_of(np.zeros(RATE))  # no onsets: one beat at the preferred tempo, none clear
    assert silent.clarity == 0.0 and silent.bpm == pytest.approx(120.0, rel=0.2)
    blip, n = loop_pulse_of(click_samples(240.0, 1, 0.1))  # 0.25 s: too short for two beats, one round it
    assert round(float(blip.beats[1] - blip.beats[0]) * n) == 1 and blip.clarity == 0.0
