"""The magnitude model's generator (the demo bundle): its clock follows the tempo, its frames become spectra with
the song's partials, and a broken step never blasts."""

from __future__ import annotations

import numpy as np

from liveshtr.live.generator import FEATURE_LIMIT, Controls, Generator, play_together
from liveshtr.live.params import Params


def test_the_demo_has_a_tempo_control_at_its_songs_tempo(bundle):
    assert bundle.tempo is not None
    params = Params.for_bundle(bundle)
    assert params.get("tempo") == round(bundle.tempo, 2)
    assert params.set("tempo", 1000.0) == 300.0  # clamped to the table's range


def test_the_clock_advances_at_the_tempo_control_and_starts_in_the_primes_bar(bundle):
    g = Generator(bundle, seed=0)
    index = int(np.argmin(np.abs(bundle.prime_positions - 0.5)))
    start = float(bundle.prime_beats[index])
    hop_s = g.hop / g.samplerate
    for tempo in (90.0, 180.0):
        g.prime(0.5)
        controls = Controls.for_bundle(bundle, tempo=tempo)
        seen = []
        for _ in range(200):
            g.next_frame(controls)
            seen.append(float(g.model.feeds["beat"][0]))
        expected = (start + np.arange(1, 201) * tempo / 60 * hop_s) % 4.0
        assert np.allclose(seen, expected, atol=1e-3), tempo
    g.prime(0.5)
    default = Controls.for_bundle(bundle)  # tempo 0: the song's
    g.next_frame(default)
    assert abs(float(g.model.feeds["beat"][0]) - (start + bundle.tempo / 60 * hop_s) % 4.0) < 1e-4


def test_the_tempo_changes_what_the_model_plays(bundle):
    def play(tempo):
        g = Generator(bundle, seed=3)
        c = Controls.for_bundle(bundle, tempo=tempo)
        return np.stack([g.next_frame(c).copy() for _ in range(400)])

    slow, fast, again = play(60.0), play(240.0), play(60.0)
    assert np.array_equal(slow, again)  # deterministic for a seed
    assert np.abs(slow[100:] - fast[100:]).mean() > 0.05  # the clock reaches the sound


def test_spectra_carry_peaks_not_flat_noise(bundle):
    """The phase stage turns the magnitudes into a spectrum whose pitch region has clear peaks."""
    g = Generator(bundle, seed=0)
    audio = g.render(10.0, Controls.for_bundle(bundle))
    assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
    frames = np.lib.stride_tricks.sliding_window_view(audio, 2048)[::1024] * np.hanning(2048)
    spectra = np.abs(np.fft.rfft(frames, axis=1))[:, : 2048 * 3000 // g.samplerate]  # below 3 kHz
    loud = spectra[spectra.max(axis=1) > 1e-3]
    crest = np.median(loud.max(axis=1) / np.median(loud, axis=1))
    assert crest > 30, crest  # white noise in a band: about 5


def test_a_broken_step_restarts_from_the_song_in_silence(bundle):
    g = Generator(bundle, seed=0)
    c = Controls.for_bundle(bundle)
    for _ in range(100):
        g.next_hop(c)
    g.model.set_state(np.nan, np.nan)
    frame = g.next_frame(c)
    assert g.resets == 1 and np.all(frame == -FEATURE_LIMIT)
    hops = np.concatenate([g.next_hop(c).copy() for _ in range(200)])
    assert np.isfinite(hops).all() and np.abs(hops).max() < 1.0 and g.resets == 1


def test_a_block_of_frames_plays_exactly_as_frame_by_frame(bundle):
    """The output stage as export calibrates it (a block at once) and as the engine plays it (a frame a hop)."""
    frames_source = Generator(bundle, seed=2)
    controls = Controls.for_bundle(bundle)
    frames = np.array([frames_source.next_frame(controls).copy() for _ in range(300)])
    one, block = Generator(bundle, seed=5), Generator(bundle, seed=5)
    one.contrast = block.contrast = 1.7
    expected = np.concatenate([one.play_frame(f).copy() for f in frames])
    got = np.concatenate([block.play_frames(frames[:1]), block.play_frames(frames[1:])])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(block.magnitudes_many(frames[:4]), [one.magnitudes(f).copy() for f in frames[:4]])
    np.testing.assert_array_equal(block.play_frame(frames[9]), one.play_frame(frames[9]))


def test_players_played_together_each_play_what_they_would_alone(bundle):
    """Calibration plays its renders through one phase stage for all: each player's audio is what it plays on its
    own, with its own output stage (contrast and EQ)."""
    source = Generator(bundle, seed=2)
    controls = Controls.for_bundle(bundle)
    frames = np.array([source.next_frame(controls).copy() for _ in range(600)]).reshape(3, 200, -1)
    players, alone = ([Generator(bundle, seed=5 + i) for i in range(3)] for _ in range(2))
    for i, (a, b) in enumerate(zip(players, alone, strict=True)):
        a.contrast = b.contrast = 1.0 + 0.4 * i
        a.output_gain[:] = b.output_gain[:] = 0.5 + i
    got = play_together(players, list(frames))
    for audio, player, block in zip(got, alone, frames, strict=True):
        assert audio.shape == (200 * bundle.frames.hop,)
        np.testing.assert_allclose(audio, player.play_frames(block), rtol=1e-6, atol=1e-7)
    assert np.abs(got[2] - got[0]).max() > 0.01 and play_together([], []) == []


def test_the_temperature_scales_the_feature_noise_from_its_floor_and_widens_the_latent_above_1(bundle):
    """What the step is fed: the latent's noise at the bundle's spread from temperature 0 to 1 (a line from its
    floor there), growing as the temperature squared above 1; the feature noise from its floor's share at 0 through
    the bundle's at 1 and on in that line. A bundle without floors (made before them) is fed no noise at all at
    temperature 0 and both in proportion to the temperature."""

    def fed(temperature: float, floors: tuple[float, float, float] | None) -> tuple[np.ndarray, np.ndarray]:
        g = Generator(bundle, seed=4)
        if floors is not None:
            g.latent_floor, g.noise_floor = map(np.float32, floors[:2])
            g.latent_growth = floors[2]
        c = Controls.for_bundle(bundle)
        c.temperature = temperature
        g.next_frame(c)
        assert g.model.feeds["temperature"][0] == 1.0  # scaled here, not in the graph
        return g.model.feeds["eps"][0].copy(), g.model.feeds["noise"][0].copy()

    new = (bundle.latent_scale, 0.5, 2.0)
    eps1, noise1 = fed(1.0, new)
    for t, latent, noise in ((0.0, 1.0, 0.5), (0.5, 1.0, 0.75), (1.5, 2.25, 1.25), (2.0, 4.0, 1.5)):
        eps, feature = fed(t, new)
        np.testing.assert_allclose(eps, latent * eps1, rtol=1e-5, err_msg=str(t))
        np.testing.assert_allclose(feature, noise * noise1, rtol=1e-5, err_msg=str(t))
    old = (0.0, 0.0, 1.0)
    eps, feature = fed(0.0, old)
    assert not eps.any() and not feature.any()
    for t in (0.5, 2.0):
        eps, feature = fed(t, old)
        np.testing.assert_allclose(eps, t * eps1, rtol=1e-5)
        np.testing.assert_allclose(feature, t * noise1, rtol=1e-5)
