"""Quality of models trained on every song in ../shared/audio with the defaults, on a CI budget, rendered through ONNX.

Stated as what a performer listens for: it stays alive, it keeps moving, it does not loop, it sounds like its own
song and not another, and the controls audibly change it. The figures come from `liveshtr quality`, which also
prints them for docs/quality.md (`make quality-report`).

Each model is what `liveshtr train SONG` makes, the recipe chosen from the material (its pulse, percussive or not,
a loop, the position input for long songs without a pulse) and every flag at its default, but for the budget: 3
epochs of the default 20 (about 100 steps; 70-140 s a song on one core) and 30 s renders instead of 60. So the
tests fail when the defaults' code path regresses. The floors that the defaults reach only with their full budget
are stated per song as strict expected failures (BUDGET_GAPS): `make quality-report` measures the full defaults.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.background import BACKGROUND, Job
from tests.helpers import SHARED_AUDIO, SONG_FILES

CI_TRAINING = ["--epochs", "3"]
MOVING_DB = 1.0  # dB/s: above a frozen drone's 0.3-0.5 and a static texture of noise's 0.7-0.9
CI_QUALITY = ["--no-music", "--seconds", "30"]  # the spectral figures of 30 s renders
SONGS = [path.stem for path in SONG_FILES]
BRAHMS, GROOVE = "hungarian_dance_5_brahms_us_army_strings", "violent_groove_4_berklee_olpc"
JAZZ = "vibe_ace_kevin_macleod"
# (test, song) -> why the floor does not hold at the CI budget (measured 2026-12-07 on this budget; the default
# models' figures from docs/quality.md)
BUDGET_GAPS = {
    ("test_validation_beats_both_baselines", GROOVE): "the percussive recipe trains on its own playing, which beats "
    "the baselines with the default 20 epochs (0.295 against 0.586) but not after 3 (0.761)",
    ("test_controls_change_the_sound", BRAHMS, "offset_db"): "after 3 epochs the Brahms's renders at three seeds "
    "differ in spectral shape as much as the latent offset moves it (8.14 against 8.45 dB); the default model "
    "15.60 against 1.14",
    ("test_controls_change_the_sound", JAZZ, "temperature_events"): "after 3 epochs the jazz's events at "
    "temperature 1.5 against 0.3 move by 2.47 a second against three seeds' spread of 1.07; the default model 0.70 "
    "against 0.38",
}


@pytest.fixture(params=SONGS)
def report(request, reports):
    """One song's figures; a floor its CI-budget model is known to miss is a strict expected failure."""
    song = request.param
    figure = request.node.callspec.params.get("figure")
    gap = BUDGET_GAPS.get((request.node.originalname, song, *([figure] if figure else [])))
    if gap is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=gap))
    return song, reports[song]


@BACKGROUND.plan("reports")
def quality_jobs(root: Path) -> dict[str, Job]:
    """Per shared song, a bundle trained on the CI budget and its figures (`liveshtr quality --json`), in
    the background (tests/background.py): the slow part of the suite."""
    liveshtr = [sys.executable, "-m", "liveshtr"]
    jobs = {}
    for path in SONG_FILES:
        folder = root / path.stem
        report = [*liveshtr, "quality", str(folder), "--songs", str(SHARED_AUDIO), *CI_QUALITY]
        commands = [
            [*liveshtr, "train", str(path), "-o", str(folder), *CI_TRAINING],
            [*report, "--json", f"{folder}.json"],
        ]
        jobs[path.stem] = Job(commands, root / f"{path.stem}.json")
    return jobs


@pytest.fixture(scope="session")
def reports(song_files, background):
    """song name -> the figures of its bundle."""
    out = {}
    for job in background.wait("reports", timeout=3600).values():
        assert job.result.returncode == 0, job.result.stderr[-2000:]
        (row,) = json.loads(job.output.read_text())
        out[row["song"]] = row
    assert len(out) == len(song_files)
    return out


def test_validation_beats_both_baselines(report):
    name, r = report
    assert r["val_mse"] < r["baseline_mse"], (name, r["val_mse"], r["baseline_mse"])


def test_renders_stay_alive(report):
    name, r = report
    assert r["min_rms_db"] > -45, name  # every 5 s window; the render is finite or its level would be NaN
    assert r["peak"] < 1.0, name


def test_renders_keep_moving(report):
    # A frozen drone measures 0.3-0.5 dB/s and a static texture of noise about 0.7-0.9 dB/s; moving means above
    # both.
    name, r = report
    assert r["movement_db"] > MOVING_DB, (name, r["movement_db"])


def test_renders_do_not_loop(report):
    name, r = report
    assert r["repeat_corr"] < 0.95, name


def test_renders_carry_their_song_signature(report):
    name, r = report
    assert r["own_distance_db"] < r["nearest_other_db"], (name, r["own_distance_db"], r["nearest_other_db"])


@pytest.mark.parametrize(
    "figure, chance, least", [("temperature_events", "seed_events", 0.3), ("offset_db", "seed_db", 0.5)]
)
def test_controls_change_the_sound(report, figure, chance, least):
    # The temperature changes how many events the model plays (a second), the latent offset its spectrum (dB).
    # Each is measured at three seeds (the median), and the same measure's spread between those seeds at the
    # default controls is the yardstick of chance: a clear change is several times that.
    name, r = report
    assert r[figure] > least and r[figure] > 3 * r[chance], (name, r[figure], r[chance])


def test_temperature_0_still_plays(report):
    # Below temperature 1 the latent keeps its spread and only the feature noise falls: at 0 the model plays on,
    # calmer, neither a frozen drone nor a loop (without a latent spread there, the models froze).
    name, r = report
    assert r["t0_movement_db"] > MOVING_DB and r["t0_repeat_corr"] < 0.95, (
        name,
        r["t0_movement_db"],
        r["t0_repeat_corr"],
    )
