"""`liveshtr train` end to end on a real song: a loadable bundle, resume, Ctrl-C, and clear refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from liveshtr.bundle import load_bundle
from liveshtr.config import PULSE_CLEAR
from liveshtr.sound.audio import load_song
from liveshtr.training.calibrate import FEATURE_NOISE
from tests.background import BACKGROUND, Job
from tests.helpers import GROOVE, QUICK, shared_song, train


def loop_of(name: str, start_s: float, seconds: float) -> np.ndarray:
    """A stretch of a shared recording as a performer would cut a loop from it."""
    with sf.SoundFile(shared_song(name)) as f:
        f.seek(int(start_s * f.samplerate))
        return f.read(int(seconds * f.samplerate)), f.samplerate


SHORT = ["sine 5 s", "2 s loop", "first 100 KB of an MP3, not as a loop"]
SMALL = ["--hidden", "64", "--layers", "1"]


@BACKGROUND.plan("trainings")
def training_jobs(root: Path) -> dict[str, Job]:
    """This module's longer trainings, in the background (tests/background.py): name -> Job."""
    brahms = shared_song("hungarian_dance_5_brahms_us_army_strings.ogg")
    sine, loop, cut, drums = root / "sine.wav", root / "loop.wav", root / "cut.mp3", root / "drums.wav"
    sf.write(sine, 0.5 * np.sin(2 * np.pi * 440 * np.arange(5 * 24000) / 24000), 24000)
    sf.write(loop, *loop_of("electronic_happy_song_maddirtmonkey.mp3", 30.0, 2.0))
    cut.write_bytes(shared_song("electronic_happy_song_maddirtmonkey.mp3").read_bytes()[:100_000])
    sf.write(drums, *loop_of(GROOVE, 10.0, 4.0))

    def copy_trained() -> None:  # resumed from the session's `trained` bundle, once it is there
        (first,) = BACKGROUND.wait("trained", timeout=3600).values()
        if first.result.returncode == 0:
            shutil.copytree(first.output, root / "resumed")

    short = ["--epochs", "2", "--hidden", "128", "--layers", "1"]
    jobs = {  # the longest first, so that the cores finish together
        SHORT[0]: [sine, *short],
        SHORT[1]: [loop, *short],
        SHORT[2]: [cut, *short, "--loop", "off"],
        "resumed": [shared_song(GROOVE), *QUICK[2:], "--epochs", "5", "--resume"],
        "again": [shared_song(GROOVE), *QUICK],
        "position": [brahms, "--position-harmonics", "4", "--epochs", "1", *SMALL],  # 42 s: one harmonic
        "drums": [drums, "--epochs", "1", *SMALL, "--loop", "off"],  # as a loop, it would be one
        "dct": [brahms, "--domain", "dct", "--epochs", "1", *SMALL],
    }
    return {
        name: Job(
            [[sys.executable, "-m", "liveshtr", "train", str(args[0]), "-o", str(root / name), *map(str, args[1:])]],
            root / name,
            copy_trained if name == "resumed" else None,
        )
        for name, args in jobs.items()
    }


@pytest.fixture(scope="module")
def trainings(trained, background) -> dict[str, tuple]:
    """name -> (bundle folder, the run's CompletedProcess). Each test asserts on its own run."""
    return {name: (job.output, job.result) for name, job in background.wait("trainings", timeout=1800).items()}


def test_bundle_is_complete_and_loadable(trained):
    out, result = trained
    names = {p.name for p in out.iterdir()}
    assert {
        "model.onnx",
        "model.int8.onnx",
        "model.json",
        "primes.npy",
        "checkpoint.pt",
        "loss.png",
        "preview.wav",
        "spectrogram.png",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    bundle = load_bundle(out)
    meta = bundle.meta
    assert meta["format_version"] == 3 and bundle.dim == meta["features"]["count"]
    assert meta["clock"]["bpm"] > 0 and len(meta["primes"]["beats"]) == bundle.primes.shape[0]
    assert set(meta["tensors"]) == set(meta["inputs"]) | set(meta["outputs"])
    assert meta["model"]["layers"] == 1 and meta["model"]["hidden"] == 64
    assert bundle.primes.shape[0] >= 8 and bundle.primes.shape[2] == bundle.dim
    assert "bundle" in result.stdout and "baselines" in result.stdout


def test_preview_is_finite_audible_and_unclipped(trained):
    out, _ = trained
    preview, rate = sf.read(out / "preview.wav", dtype="float32")
    assert rate == 24000 and len(preview) == 20 * 24000
    assert np.isfinite(preview).all()
    rms_db = 20 * np.log10(np.sqrt(np.mean(preview.astype(np.float64) ** 2)))
    assert rms_db > -45
    assert np.abs(preview).max() < 0.999


def test_sampling_plays_the_songs_events_from_the_latent(trained):
    """Export samples the pitch bins with a little noise, the bands with what makes them change from frame to frame
    as the song's do, and sets the latent's spread so that the model, as heard, plays as many events as its song
    unless that loses the song's harmonic share or its lasting partials (or leaves it at the end of its range that
    comes nearest)."""
    from liveshtr.analysis.tone import harmonic_share
    from liveshtr.live.generator import Controls, Generator
    from liveshtr.sound.frames import FrameCodec
    from liveshtr.training.calibrate import (
        BAND_NOISE_RANGE,
        LATENT_RANGE,
        NOISE_AT_ZERO,
        PARTIALS_KEPT,
        SAMPLING_FRAMES,
        SUSTAIN_MARGIN,
        frame_change,
        heard_events,
        lasting_partials,
        song_events,
        song_stretches,
    )

    out, result = trained
    bundle = load_bundle(out)
    sampling = bundle.meta["sampling"]
    pitch, bands = sampling["noise"]
    assert pitch == FEATURE_NOISE and BAND_NOISE_RANGE[0] <= bands <= BAND_NOISE_RANGE[1]
    assert bundle.noise_floor == NOISE_AT_ZERO
    assert np.allclose(bundle.noise_scale[: bundle.layout.pitch_bins], pitch)
    assert np.allclose(bundle.noise_scale[bundle.layout.pitch_bins :], bands)
    assert LATENT_RANGE[0] <= bundle.latent_scale <= LATENT_RANGE[1] and bundle.latent_floor == bundle.latent_scale
    assert f"sampling  latent at x{bundle.latent_scale:g} of its spread" in result.stdout, result.stdout

    codec = FrameCodec(bundle.frames, bundle.audio.samplerate)
    song = load_song(shared_song(GROOVE), bundle.audio)
    song_frames = [bundle.stats.normalise(bundle.layout.to_features(codec.magnitudes(codec.analyse(song.samples))))]
    reference, song_rate = song_events([song], bundle.audio.samplerate)
    assert sampling["events_per_s"] == {"song": round(song_rate, 2), "reference": round(reference, 4)}
    places = (0.2, 0.4, 0.6, 0.8)  # other seeds and primes than export's

    def players(spread: float) -> list[Generator]:
        """One generator per place, primed there, the latent at `spread`."""
        out = []
        for i, place in enumerate(places):
            generator = Generator(bundle, seed=11 + i)
            generator.latent_scale = generator.latent_floor = np.float32(spread)
            generator.prime(place)
            out.append(generator)
        return out

    primed, controls = len(bundle.primes[0]), Controls.for_bundle(bundle)

    def frames(spread: float) -> list[np.ndarray]:
        return [np.array([g.next_frame(controls).copy() for _ in range(700)][primed:]) for g in players(spread)]

    def heard(spread: float) -> tuple[float, float, float]:  # the engine's path: rendered, hop by hop, from the prime
        audio = [g.render(7.0, controls)[(primed + 1) * bundle.frames.hop :] for g in players(spread)]
        sr = bundle.audio.samplerate
        return heard_events(audio, sr, reference), harmonic_share(audio, sr), lasting_partials(audio, sr)

    # the bands change from frame to frame as the song's within a third, or their noise stopped at its range's end
    ratio = (
        frame_change(frames(1.0), bundle.layout.pitch_bins)[1] / frame_change(song_frames, bundle.layout.pitch_bins)[1]
    )
    assert abs(ratio - 1) < 1 / 3 or bands in BAND_NOISE_RANGE, (ratio, bands)

    # the events heard grow with the latent's spread and the harmonic share falls; the calibrated spread plays about
    # the song's events, fewer only where a wider one would lose what lasts of the song's sound, and never a wash
    share = sampling["harmonic_share"]
    stretches = song_stretches([song], SAMPLING_FRAMES * bundle.frames.hop / bundle.audio.samplerate)
    assert share["song"] == round(harmonic_share(stretches, bundle.audio.samplerate), 3)
    lost = share["song"] - SUSTAIN_MARGIN  # the least harmonic share the spread may leave
    partials = sampling["partial_persistence"]
    assert partials["song"] == round(lasting_partials(stretches, bundle.audio.samplerate), 3)
    least = PARTIALS_KEPT * partials["song"]  # the least partial persistence it may leave
    narrowest, widest = (heard(s) for s in LATENT_RANGE)
    assert narrowest[0] < widest[0] and narrowest[1] > widest[1], (narrowest, widest)
    assert narrowest[2] > widest[2], (narrowest, widest)
    scale = bundle.latent_scale
    played, kept, lasting = heard(scale)
    if scale > LATENT_RANGE[0]:
        assert played < 1.6 * song_rate and kept > lost - 0.1 and lasting > least - 0.1, (played, kept, lasting)
    if scale < LATENT_RANGE[1]:
        wider = heard(min(1.5 * scale, LATENT_RANGE[1]))
        assert played > 0.6 * song_rate or wider[1] < lost + 0.1 or wider[2] < least + 0.1, (played, wider, scale)


def test_renders_are_as_tonal_as_the_song(trained):
    """Export sets the EQ and the partials' contrast so that the model plays as tonal as its song: not a veil of
    noise over the notes, not a drum loop turned into tones."""
    from liveshtr.analysis.tone import NOISE_SHARE, median_flatness
    from liveshtr.config import AudioConfig
    from liveshtr.live.generator import Controls, Generator
    from liveshtr.sound.audio import load_song
    from liveshtr.training.calibrate import CONTRAST_RANGE

    out, result = trained
    bundle = load_bundle(out)
    sr = bundle.audio.samplerate
    song = median_flatness([load_song(shared_song(GROOVE), AudioConfig()).samples], sr)
    flatness = bundle.meta["calibration"]["flatness"]
    assert flatness["song"] == pytest.approx(song, rel=1e-3)
    # A drum groove is nearly as flat as noise with its spectrum: its renders aim more tonal than the song
    assert song > NOISE_SHARE * flatness["noise"] and flatness["noise"] > song
    target = NOISE_SHARE * flatness["noise"]
    played = median_flatness([Generator(bundle, seed=5).render(20.0, Controls.for_bundle(bundle))], sr)
    assert played < song, (played, song, bundle.contrast)  # not noise in the groove's colours
    # About at the aim, as far as the contrast's range allows: calibration stops at its ends, where even the least
    # contrast plays more tonal than the aim (a model that plays its own tones) or the most still flatter.
    low, high = CONTRAST_RANGE
    figures = (played, target, bundle.contrast)
    assert played < 2.0 * target or bundle.contrast == high, figures
    assert played > 0.5 * target or bundle.contrast == low, figures
    assert "contrast" in result.stdout


def test_validation_beats_both_baselines(trained):
    """The model's next-frame mean (z = prior mean) beats repeating the last frame and the mean frame, even a tiny
    one (1 x 64) after 3 epochs on the drum groove in its 2048-point frames (0.555 against 0.586); in the
    1024-point frames it did not (0.48 against 0.34)."""
    out, _ = trained
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["val_mse"] < training["baselines"]["repeat_last"]
    assert training["val_mse"] < training["baselines"]["mean_frame"]


def test_resume_continues_epochs_and_optimiser(trained, trainings):
    out, result = trainings["resumed"]  # a copy of `trained`, resumed from its third epoch to its fifth
    before = torch.load(trained[0] / "checkpoint.pt", weights_only=False)
    assert result.returncode == 0, result.stderr
    after = torch.load(out / "checkpoint.pt", weights_only=False)
    assert before["epochs_done"] == 3 and after["epochs_done"] == 5
    assert len(after["history"]["val"]) == 5 and after["history"]["val"][:3] == before["history"]["val"]
    steps_before = before["optimizer"]["state"][0]["step"]
    assert after["optimizer"]["state"][0]["step"] == steps_before * 5 / 3
    assert load_bundle(out).meta["training"]["epochs_done"] == 5


def test_same_seed_trains_the_same_model(trained, trainings):
    out, result = trainings["again"]  # on one core beside another training: the same model as `trained`'s
    assert result.returncode == 0, result.stderr
    first = torch.load(trained[0] / "checkpoint.pt", weights_only=False)["model"]
    second = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_ctrl_c_saves_checkpoint_and_exports_best_so_far(tmp_path):
    out = tmp_path / "interrupted"
    cmd = [
        sys.executable,
        "-m",
        "liveshtr",
        "train",
        str(shared_song(GROOVE)),
        "-o",
        str(out),
        "--epochs",
        "500",
        "--hidden",
        "64",
        "--layers",
        "1",
    ]
    # A shell that runs the suite in the background ignores SIGINT for its children; Ctrl-C must reach this one.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists(), "no epoch finished in time"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    bundle = load_bundle(out)
    assert bundle.meta["training"]["interrupted"] is True
    assert 1 <= torch.load(out / "checkpoint.pt", weights_only=False)["epochs_done"] < 500


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hop", "2048"], "must be shorter than frame"),
        (["--epochs", "0"], "epochs 0 must be at least 1"),
        (["--latent-dim", "0"], "latent-dim 0"),
        (["--layers", "4"], "layers 4"),
        (["--hidden", "32"], "hidden 32"),
        (["--seq-len", "1"], "seq-len 1"),
        (["--own-samples", "1.5"], "own-samples 1.5"),
        (["--clock-harmonics", "0"], "clock-harmonics : 1 to 64 different harmonics"),
        (["--clock-harmonics", "4,4"], "clock-harmonics 4,4: 1 to 64 different harmonics"),
        (["--position-harmonics", "2,17"], "position-harmonics 2,17: different harmonics, each in 1..16"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--lr", "0"], "cuda|lr"),
        (["--threads", "-1"], "threads -1 must lie in 1..1024"),
        (["--events", "99"], "--events 99: not an open file descriptor"),
    ],
)
def test_impossible_hyperparameters(tmp_path, flags, message):
    result = train(str(shared_song(GROOVE)), "-o", str(tmp_path / "m"), *flags)
    assert result.returncode == 2
    assert any(m in result.stderr for m in message.split("|")), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_a_clock_that_is_not_numbers_is_a_usage_error(tmp_path):
    result = train(str(shared_song(GROOVE)), "-o", str(tmp_path / "m"), "--clock-harmonics", "4,beat")
    assert result.returncode == 2
    assert "argument --clock-harmonics: '4,beat' is not a number or a list" in result.stderr
    assert not (tmp_path / "m").exists()
    retired = train(str(shared_song(GROOVE)), "-o", str(tmp_path / "m"), "--model", "coefficients")
    assert retired.returncode == 2 and "unrecognized arguments: --model coefficients" in retired.stderr
    assert not (tmp_path / "m").exists()


def test_song_shorter_than_a_sequence(tmp_path):
    song = tmp_path / "blip.wav"
    sf.write(song, 0.5 * np.sin(np.arange(4000) / 3.0), 24000)
    result = train(str(song), "-o", str(tmp_path / "m"))
    assert result.returncode == 2 and "shorter than one training sequence" in result.stderr


@pytest.mark.parametrize("material", SHORT)
def test_short_material_trains_and_beats_both_baselines(trainings, material):
    out, result = trainings[material]  # 2 epochs of 1 x 128; the MP3's first 100 KB with --loop off
    as_it_is = material == SHORT[2]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "short material:" in result.stdout and "beats both" in result.stdout, result.stdout
    bundle = load_bundle(out)
    assert np.isfinite(bundle.primes).all() and bundle.meta["training"]["epochs_done"] == 2
    looped = bundle.meta["training"]["songs"][0].get("loop", {}).get("repeated", 0)
    assert ("trains as a loop" in result.stdout) == (looped >= 2) == (not as_it_is), result.stdout
    fine_clock = bundle.meta["model"].get("clock_harmonics") == list(range(1, 17))
    assert fine_clock == ("clock     the bar's first 16 harmonics" in result.stdout), result.stdout
    if as_it_is:  # tonal material trains teacher-forced, its clock chosen by its pulse
        assert "material  " not in result.stdout and bundle.meta["training"]["config"]["own_samples"] == 0
        assert "frames    " not in result.stdout and bundle.frames.hop == 256
        assert fine_clock == (bundle.meta["clock"]["clarity"] >= PULSE_CLEAR), bundle.meta["clock"]
    else:  # a loop gets the beat's recipe
        assert "material  a loop: 0.3 of its inputs its own playing" in result.stdout, result.stdout
        assert fine_clock and bundle.meta["training"]["config"]["own_samples"] == 0.3


def test_drums_train_on_their_own_playing_with_a_sixteenths_clock(trainings):
    """The beat's recipe end to end, chosen by how percussive the material is (a 4 s drum cut trained as it is, not
    as a loop): the clock and the share are recorded, the sampling calibrated, and it plays."""
    from liveshtr.live.generator import Controls, Generator

    out, result = trainings["drums"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "material  percussive" in result.stdout, result.stdout
    assert "frames    2048/512 for percussive material" in result.stdout, result.stdout
    bundle = load_bundle(out)
    assert (bundle.frames.frame, bundle.frames.hop) == (2048, 512)
    assert "loop" not in bundle.meta["training"]["songs"][0]
    assert bundle.meta["model"]["clock_harmonics"] == list(range(1, 17))
    assert bundle.meta["training"]["config"]["own_samples"] == 0.3
    assert bundle.meta["sampling"]["events_per_s"]["song"] > 0 and bundle.latent_scale > 0
    audio = Generator(bundle, seed=1).render(3.0, Controls.for_bundle(bundle))
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() < 1.0


def plays(bundle) -> None:
    """Three seconds through the ONNX graph: finite, audible, below full scale."""
    from liveshtr.live.generator import Controls, Generator

    audio = Generator(bundle, seed=1).render(3.0, Controls.for_bundle(bundle))
    assert np.isfinite(audio).all() and 1e-3 < np.abs(audio).max() < 1.0


def test_dct_frames_train_the_magnitude_model_on_their_own_grid(trainings):
    """The DCT domain's model is the magnitude model, on the DCT's grid of bins (11.7 Hz apart at 24 kHz / 1024:
    twice the FFT's), its pitch features the frame's own rfft bins (every other one of that grid), its phase made
    on stage and its DCT frames taken from that spectrum."""
    from liveshtr.live.generator import Controls, Generator

    out, result = trainings["dct"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DCT frames 1024/256, 192 features (128 bins, then bands)" in result.stdout, result.stdout
    assert "beats both" in result.stdout and "tempo     " in result.stdout, result.stdout
    bundle = load_bundle(out)
    assert bundle.frames.domain == "dct" and bundle.tempo
    features = bundle.meta["features"]
    assert features["pitch_bins"] == 128 and features["pitch_step"] == 2 and bundle.output_gain.shape == (1024,)
    plays(bundle)
    # the bins between the pitch features are interpolated the same way live (a frame a hop) and in export's blocks
    frames = np.array([Generator(bundle, seed=2).next_frame(Controls.for_bundle(bundle)).copy() for _ in range(3)])
    one, block = Generator(bundle, seed=5), Generator(bundle, seed=5)
    np.testing.assert_array_equal(block.magnitudes_many(frames), [one.magnitudes(f).copy() for f in frames])
    np.testing.assert_allclose(one.magnitudes(frames[0]), one.layout.to_magnitudes(one._features), rtol=1e-4)


def test_the_model_plays_on_through_the_song_from_where_it_was_primed(trainings):
    """The position input: the step has it; on stage it starts where the prime lies in the song, moves on one
    frame's worth of the song every hop and runs from the song's end into its start."""
    from liveshtr.live.generator import Controls, Generator

    out, result = trainings["position"]  # 42 s of the Brahms asked for four harmonics of its length
    assert result.returncode == 0, result.stderr[-2000:]
    assert "position  harmonics 1 of the song's length (finer ones turn faster than once in 40 s" in result.stdout
    bundle = load_bundle(out)
    assert bundle.meta["model"]["position_harmonics"] == [1] and "position" in bundle.meta["inputs"]
    assert bundle.meta["inputs"][-1] == "position" and bundle.meta["tensors"]["position"]["shape"] == [1]
    g = Generator(bundle, seed=1)
    controls = Controls.for_bundle(bundle)
    primes = bundle.meta["primes"]
    for target in (0.3, 1.0):  # the last prime lies at the song's end: the position runs around into its start
        g.prime(target)
        index = int(np.argmin(np.abs(bundle.prime_positions - target)))
        start, n_frames = primes["song_positions"][index], primes["song_frames"][index]
        seen = []
        for _ in range(150):
            g.next_frame(controls)
            seen.append(float(g.model.feeds["position"][0]))
        expected = (start + np.arange(1, 151) / n_frames) % 1.0
        assert np.allclose(seen, expected, atol=1e-5), target
    assert min(seen) < 0.01 and max(seen) > 0.99  # it went round
    audio = g.render(2.0, controls)
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() < 1.0


def test_position_harmonics_turn_no_faster_than_once_in_40_s(capsys, trained):
    from liveshtr.commands.train import _place_in_song
    from liveshtr.config import MagnitudeConfig

    asked = MagnitudeConfig(features=8, position_harmonics=(1, 2, 3, 4))
    for pulsed in (False, True):  # asked for: given, whatever the pulse
        assert _place_in_song(asked, 207.0, False, pulsed).position_harmonics == (1, 2, 3, 4)  # quarters: 52 s
    assert _place_in_song(asked, 60.0, False, False).position_harmonics == (1,)
    assert _place_in_song(asked, 37.0, False, False).position_harmonics == ()  # a loop: the bar is the clock's
    said = capsys.readouterr().out.splitlines()
    assert said[2].startswith("position  harmonics 1 of the song's length (finer ones turn faster than once in 40 s")
    assert said[3].startswith("position  none: every harmonic asked turns faster than once in 40 s of a 37 s song")
    assert _place_in_song(MagnitudeConfig(features=8), 37.0, False, False).position_harmonics == ()
    assert capsys.readouterr().out == ""  # none asked: nothing to say
    auto = MagnitudeConfig(features=8)  # the default: the first four for a song of 80 s and more without a pulse
    assert _place_in_song(auto, 207.0, True, False).position_harmonics == (1, 2, 3, 4)
    assert _place_in_song(auto, 100.0, True, False).position_harmonics == (1, 2)  # thirds of 100 s turn in 33 s
    assert _place_in_song(auto, 79.0, True, False).position_harmonics == ()
    capsys.readouterr()
    assert _place_in_song(auto, 207.0, True, True).position_harmonics == ()  # the bar's clock tells the time
    assert capsys.readouterr().out.startswith("position  none: the bar's clock tells a song with a pulse its time")
    assert "position" not in load_bundle(trained[0]).meta["inputs"]  # the default model has none


def test_primes_of_several_songs_know_where_they_lie_in_their_own_song():
    from liveshtr.training.export import pick_primes

    # frames that say which song and which frame they are: a short song, then one three times as long
    songs = [np.stack([np.full(n, i), np.arange(n)], axis=1).astype(np.float32) for i, n in enumerate((300, 900))]
    beats = [np.arange(300) * 0.1, np.arange(900) * 0.05]
    primes, places = pick_primes(songs, beats, n_primes=9, length=20)
    assert primes.shape == (9, 20, 2)
    for i, prime in enumerate(primes):
        song, start = int(prime[0, 0]), int(prime[0, 1])
        n = len(songs[song])
        assert places["song_frames"][i] == n  # the position moves on at its own song's pace ...
        assert places["song_positions"][i] == pytest.approx(start / n, abs=1e-6)  # ... from where the prime starts
        assert places["beats"][i] == pytest.approx(beats[song][start] % 4, abs=1e-3)
        assert places["positions"][i] == pytest.approx((start + song * 300) / 1200, abs=0.02)  # through all songs
    assert places["song_frames"].count(300) == 3  # the short song is a quarter of the material


@pytest.mark.parametrize("rate", [24000, 48000])  # at another rate the resampler's edges must not count as sound
def test_a_file_of_dc_only_is_refused_as_silent(tmp_path, rate):
    song = tmp_path / "dc.wav"
    sf.write(song, np.full(5 * rate, 0.5), rate)
    result = train(str(song), "-o", str(tmp_path / "m"))
    assert result.returncode == 2 and "silent after removing its DC offset" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()


def test_plans_hold_a_sequence_for_every_length_and_keep_songs_as_configured():
    from liveshtr.training.dataset import MIN_SEQ_LEN, MIN_STEPS_PER_EPOCH, Plan, streams

    frames = np.zeros((20000, 3), dtype=np.float32)
    for n in [2 * MIN_SEQ_LEN, 17, 40, 64, 65, 100, 170, 423, 1000, 5000, 20000]:
        plan = Plan.make(n, 16, 32)
        assert plan.steps_per_epoch >= MIN_STEPS_PER_EPOCH, n
        for offset in (0, plan.seq_len - 1):  # the smallest and largest random start
            cut = streams(frames[:n], plan.batch, plan.seq_len, offset)
            assert cut.shape[0] == plan.batch and (cut.shape[1] - 1) // plan.seq_len >= plan.steps_per_pass, n
    assert Plan.make(20000, 16, 32) == Plan(16, 32, 1, 38)  # a song trains exactly as configured
    assert Plan.make(20000, 16, 32).describe(16, 32) is None


def test_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "setlist.txt").write_text("keep me")
    result = train(str(shared_song(GROOVE)), "-o", str(tmp_path / "mine"), *QUICK)
    assert result.returncode == 2 and "not part of a model bundle" in result.stderr
    assert (tmp_path / "mine" / "setlist.txt").read_text() == "keep me"


def test_existing_bundle_is_not_overwritten_without_force(trained):
    out, _ = trained
    before = (out / "model.onnx").read_bytes()
    result = train(str(shared_song(GROOVE)), "-o", str(out), *QUICK)
    assert result.returncode == 2 and "--force" in result.stderr
    assert (out / "model.onnx").read_bytes() == before


def test_resume_with_other_settings_or_nothing_to_resume(trained, tmp_path):
    out = tmp_path / "groove"
    shutil.copytree(trained[0], out)
    result = train(str(shared_song(GROOVE)), "-o", str(out), *QUICK, "--hidden", "128", "--resume")
    assert result.returncode == 2 and "model settings" in result.stderr
    result = train(str(shared_song(GROOVE)), "-o", str(tmp_path / "fresh"), *QUICK, "--resume")
    assert result.returncode == 2 and "no checkpoint" in result.stderr


def test_falling_root_finds_the_crossing_in_a_few_steps_and_stops_at_the_ends():
    """How export sets the partials' contrast: each evaluation renders seconds of audio, so few of them."""
    from liveshtr.training.calibrate import falling_root

    calls = []

    def flatness_excess(x: float) -> float:  # log flatness over the target falls about linearly in log contrast
        calls.append(x)
        return 0.4 - 1.3 * x - 0.2 * x**3

    root = falling_root(flatness_excess, -0.7, 1.1, steps=8, tolerance=0.02)
    assert abs(flatness_excess(root)) < 0.02 and len(calls) <= 6, calls
    assert falling_root(lambda x: 1.0 - x, -0.7, 0.5, 8, 0.02) == 0.5  # still too flat at the most contrast
    assert falling_root(lambda x: -1.0 - x, -0.7, 0.5, 8, 0.02) == -0.7  # tonal enough at the least
    steep = falling_root(lambda x: np.tanh(8 * (0.3 - x)), -0.7, 1.1, 8, 0.001)  # a curve the secant overshoots
    assert abs(steep - 0.3) < 0.01


def test_percussive_material_gets_longer_frames_unless_they_are_given_or_too_long():
    """The frames the recipe chooses: PERCUSSIVE_FRAMES for percussive material long enough for them; the frames
    given (--frame, --hop) or the default ones otherwise."""
    from liveshtr.commands.train import _frames_for_material
    from liveshtr.config import PERCUSSIVE_FRAMES, FrameConfig
    from liveshtr.sound.frames import FrameCodec
    from liveshtr.training.dataset import min_samples

    default = FrameConfig()
    longer = FrameConfig(**PERCUSSIVE_FRAMES)
    need = min_samples(FrameCodec(longer, 24000))

    def songs(*lengths: int) -> list[SimpleNamespace]:  # what the choice reads of a Song
        return [SimpleNamespace(samples=np.zeros(n, dtype=np.float32), samplerate=24000) for n in lengths]

    assert _frames_for_material(default, songs(need), 0.73, given=False) == longer
    assert _frames_for_material(default, songs(need), None, given=False) == default  # tonal
    assert _frames_for_material(default, songs(need), 0.73, given=True) == default  # --frame/--hop chosen
    assert _frames_for_material(default, songs(need, need - 1), 0.73, given=False) == default  # one too short
    dct = FrameConfig(domain="dct")
    assert _frames_for_material(dct, songs(need), 0.73, given=False) == FrameConfig(domain="dct", **PERCUSSIVE_FRAMES)
