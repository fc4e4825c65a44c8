"""The music measures tell music from noise in the music's colours: each separates a synthetic piece (chords
struck on a beat) from the noises built from it, or from a signal made to fail it, so a measure that cannot fail
is caught."""

from __future__ import annotations

import numpy as np
import pytest

from liveshtr.analysis import music
from liveshtr.analysis.music import SR

BEAT_S = 0.5  # 120 beats a minute
CHORDS = ((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67))  # C F G C, a bar of four beats each


def struck_chords(seconds: float = 20.0, chords=CHORDS, seed: int = 0, beats_per_chord: int = 4) -> np.ndarray:
    """Harmonic tones struck together on every beat, decaying, a new chord every bar (every `beats_per_chord`)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(BEAT_S * SR)) / SR
    decay = np.exp(-t / 0.2) * (1 - np.exp(-t / 0.003))  # a fast attack, then a pluck's decay
    beats = []
    for beat in range(int(seconds / BEAT_S)):
        tone = np.zeros_like(t)
        for pitch in chords[(beat // beats_per_chord) % len(chords)]:
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            for k in range(1, 7):
                if k * f0 < SR / 2:
                    tone += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
        beats.append(tone * decay)
    y = np.concatenate(beats)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def piece():
    y = struck_chords()
    return {"piece": y, "ltas noise": music.ltas_noise(y), "envelope noise": music.envelope_noise(y)}


def test_noises_keep_the_song_level_and_spectrum(piece):
    y = piece["piece"]
    for name in ("ltas noise", "envelope noise"):
        noise = piece[name]
        assert len(noise) == len(y) and np.isfinite(noise).all()
        assert abs(10 * np.log10(np.mean(noise**2) / np.mean(y**2))) < 1.0, name
    # The ltas noise is stationary: its level hardly moves from one beat to the next; the envelope noise follows
    # the strikes.
    beat = int(BEAT_S * SR)

    def level_swing(x):  # dB between the loud first tenth of each beat and the rest
        frames = x[: len(x) // beat * beat].reshape(-1, beat)
        head, tail = np.mean(frames[:, : beat // 10] ** 2), np.mean(frames[:, beat // 2 :] ** 2)
        return 10 * np.log10(head / tail)

    assert level_swing(piece["ltas noise"]) < 1.0 < 6.0 < level_swing(piece["envelope noise"])


def test_beat_is_heard_in_the_piece_and_its_envelopes_not_in_stationary_noise(piece):
    beat = {name: music.beat_strength(y) for name, y in piece.items()}
    assert beat["piece"] > 0.5
    assert beat["ltas noise"] < 0.2
    assert beat["envelope noise"] > 0.5  # the envelope noise carries the rhythm by design: beat alone is not music
    assert music.beat_strength(np.zeros(SR * 5, dtype=np.float32)) == 0.0


def test_onsets_count_the_strikes(piece):
    assert 1.5 < music.onset_rate(piece["piece"]) < 2.6  # two strikes a second
    t = np.arange(10 * SR) / SR
    assert music.onset_rate((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)) < 0.3  # a held tone


def test_pitch_classes_are_the_chords_and_not_in_either_noise(piece):
    classes = {name: music.pitch_classes(y) for name, y in piece.items()}
    played = np.zeros(12)
    for chord in CHORDS:
        for pitch in chord:
            played[pitch % 12] += 1
    assert music.pitch_class_correlation(classes["piece"], played) > 0.8
    for name in ("ltas noise", "envelope noise"):
        assert music.pitch_class_correlation(classes[name], classes["piece"]) < 0.5, name
    # The same chords a tritone away are another key: the measure tells them apart.
    moved = music.pitch_classes(struck_chords(chords=tuple(tuple(p + 6 for p in c) for c in CHORDS)))
    assert music.pitch_class_correlation(moved, classes["piece"]) < 0.3
    assert music.pitch_class_correlation(np.zeros(12), classes["piece"]) == 0.0  # no notes at all


def test_harmony_change_follows_the_chords():
    """A new chord every 2 s moves the harmony, the same chord held does not; the measure needs notes."""
    moving = music.notes(struck_chords(seconds=16.0))  # a bar of 2 s each, C F G C
    held = music.notes(struck_chords(seconds=16.0, chords=CHORDS[:1]))
    assert music.harmony_change(moving, 16.0) > 0.4  # C-F shares one note of three, F-G none, G-C one
    assert music.harmony_change(held, 16.0) < 0.1
    slow = music.notes(struck_chords(seconds=16.0, beats_per_chord=16))  # a new chord every 8 s
    assert music.harmony_change(held, 16.0) < music.harmony_change(slow, 16.0) < music.harmony_change(moving, 16.0)
    assert np.isnan(music.harmony_change([], 16.0))
    assert music.harmony_change([(0.0, 3.0, 60, 1.0)], 4.0) == 0.0  # one note across two windows


def test_tone_flatness_and_harmonic_share(piece):
    flat = {name: music.flatness(y) for name, y in piece.items()}
    assert flat["piece"] * 4 < min(flat["ltas noise"], flat["envelope noise"])
    share = music.harmonic_share(piece["piece"])
    assert share > 0.7
    assert share - music.harmonic_share(piece["envelope noise"]) > 0.15
    clicks = np.zeros(10 * SR, dtype=np.float32)
    clicks[:: int(BEAT_S * SR)] = 0.9  # a click track is all percussion
    assert music.harmonic_share(clicks) < 0.3


def washed(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """`y` with every 23 ms frame's spectrum kept in level but drawn afresh in its fine structure, as a model that
    samples every feature on its own plays: the envelope and the colour stay, the partials do not."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    _, _, spectrum = signal.stft(y, fs=SR, nperseg=512)
    smooth = signal.convolve2d(np.abs(spectrum), np.ones((9, 1)) / 9, mode="same")  # 350 Hz of envelope
    drawn = smooth * rng.rayleigh(1.0, spectrum.shape) * np.exp(2j * np.pi * rng.random(spectrum.shape))
    return signal.istft(drawn, fs=SR, nperseg=512)[1][: len(y)].astype(np.float32)


def test_partials_that_last_persist_and_a_wash_in_their_colours_does_not(piece):
    kept = {name: music.partial_persistence(y, SR) for name, y in piece.items()}
    kept["washed"] = music.partial_persistence(washed(piece["piece"]), SR)
    assert kept["piece"] > 0.8, kept
    assert max(kept["ltas noise"], kept["envelope noise"], kept["washed"]) < 0.5, kept
    t = np.arange(4 * SR) / SR
    noise = np.random.default_rng(1).standard_normal(len(t))
    assert music.partial_persistence(noise, SR) == pytest.approx(0.32, abs=0.04)
    assert music.partial_persistence(np.zeros(len(t)), SR) == 0.0 and music.partial_persistence(t[:100], SR) == 0.0


def test_copy_finds_a_replayed_stretch_and_nothing_in_noise(piece):
    y = piece["piece"]
    assert music.copy_similarity(y[int(5.3 * SR) : int(15.3 * SR)], y) > 0.95
    assert music.copy_similarity(piece["ltas noise"], y) < 0.3
    other = struck_chords(chords=((62, 65, 69), (64, 67, 71), (57, 60, 64), (62, 65, 69)), seed=1)
    assert music.copy_similarity(other, y) < 0.9  # new chords on the same beat are not a copy


def test_a_replay_runs_on_and_a_recombination_does_not():
    rng = np.random.default_rng(7)
    changes = [tuple(rng.choice(np.arange(48, 84), 3, replace=False)) for _ in range(40)]  # a chord every beat
    song = struck_chords(chords=changes, beats_per_chord=1)
    stretch = song[int(3.3 * SR) : int(9.3 * SR)]  # 6 s of it, as it was
    others = struck_chords(chords=changes[::-1], seed=3, beats_per_chord=1)  # its chords in another order
    spliced = np.concatenate([others[: 5 * SR], stretch, others[5 * SR : 10 * SR]])
    assert music.longest_replay_s(stretch, song) == pytest.approx(6.0, abs=0.3)
    assert music.longest_replay_s(spliced, song) == pytest.approx(6.0, abs=0.6)
    assert music.longest_replay_s(others, song) < 1.0  # the same chords recombined: at most a beat at a time
    for noise in (music.ltas_noise(song), music.envelope_noise(song)):
        assert music.longest_replay_s(noise, song) < 0.5
    held = np.tile(stretch[: SR // 2], 8)  # one beat over and over finds the same frames: no run
    assert music.longest_replay_s(held, song) < 1.0
