"""`liveshtr quality` end to end on the demo bundle: both tables, the five signals, the pictures."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from liveshtr.analysis.report import CONTROL_SETTINGS, RENDER_STREAMS, SIGNALS, SONG_PRIMES, render_many, stretch_at
from tests.helpers import REPO, SHARED_AUDIO, cli, one_line_error

FLOORS = ("beat", "persistence", "pitch classes", "onsets", "flatness", "harmonic", "copy", "replay")
FLOORS += ("T=0 onsets", "T=0 copy")

DEMO_SONG = SHARED_AUDIO / "hungarian_dance_5_brahms_us_army_strings.ogg"


def analysis(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "liveshtr", "quality", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_report_measures_song_noises_and_renders_side_by_side(tmp_path):
    result = analysis(
        str(REPO / "models" / "demo"), "--songs", str(DEMO_SONG), "--seconds", "12", "--pictures", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| hungarian")]
    assert len(rows) == 1 + len(SIGNALS) + 1  # the spectral row, one row per signal, then the floors' row
    *rows, floors = rows
    assert len(floors) == 12 and floors[2].count("/") == 1 and floors[7].count("/") == 1, floors  # song / render
    misses = floors[-1].strip()
    assert misses == "none" or set(misses.split(", ")) <= set(FLOORS), misses
    phase = float(rows[0][-1])  # the live phase stage on the song's own magnitudes
    assert -40 < phase < -10, phase  # random phase measures above -5 dB (tests/sound/test_phase.py)
    music = {cells[1].strip(): [c.strip() for c in cells[2:]] for cells in rows[1:]}
    assert list(music) == list(SIGNALS)
    for name, cells in music.items():
        beat, onsets, pitch, harmony, flat, harmonic, persistence, copy, replay = cells
        assert 0 <= float(beat) <= 1 and float(onsets) >= 0 and -1 <= float(pitch) <= 1, name
        assert harmony == "nan" or 0 <= float(harmony) <= 1, name  # NaN: too few notes to compare windows
        assert 0 <= float(flat) <= 1 and 0 <= float(harmonic) <= 1 and 0 <= float(persistence) <= 1, name
        assert (copy != "") == (replay != "") == name.startswith("render"), name  # copying: asked of renders only
        assert replay == "" or 0 < float(replay) <= 12.0, name  # at most the whole render
    assert float(music["song"][6]) > float(music["ltas noise"][6]) + 0.2  # the song's partials last, noise's not
    assert float(music["song"][2]) > 0.5  # a stretch of the song shares the whole song's pitch classes
    assert float(music["ltas noise"][0]) < 0.2  # stationary noise has no beat
    picture = tmp_path / "hungarian_dance_5_brahms_us_army_strings.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_refuses_a_missing_model_in_one_line(tmp_path):
    result = analysis(str(tmp_path / "nothing"), "--songs", str(DEMO_SONG))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such model folder" in result.stderr


def test_controls_table_sets_each_control_against_the_seed_spread():
    result = analysis(
        str(REPO / "models" / "demo"), "--songs", str(DEMO_SONG), "--seconds", "6", "--no-music", "--controls"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in result.stdout.splitlines()]
    table = {cells[1]: cells[2:] for cells in rows if len(cells) == 8 and cells[0].startswith("hungarian")}
    spread = table.pop("seed spread (3 seeds)")
    assert set(table) == {*CONTROL_SETTINGS, SONG_PRIMES} and all(float(v) >= 0 for v in spread[:5])
    for name, cells in table.items():
        # The cells are rounded to 0.01: a change within 3 x 0.005 + 0.005 of three spreads can go either way.
        margins = [abs(float(c)) - 3 * float(s) for c, s in zip(cells[:5], spread[:5], strict=True)]
        if max(margins) > 0.02:
            assert cells[5] == "yes", name
        elif max(margins) < -0.02:
            assert cells[5] == "no", name
    assert any(float(v) != 0 for v in table["temperature 0.5 / 1.5"][:5])  # the renders differ


def test_renders_together_are_what_the_engine_plays_of_each():
    """The report's renders, stepped by one model in turn and phased together, are sample for sample what a
    generator of their own plays hop by hop, for more renders than one phase stage takes at once."""
    from liveshtr.bundle import load_bundle
    from liveshtr.live.generator import Controls, Generator

    bundle = load_bundle(REPO / "models" / "demo")
    plays = [{"seed": s, "temperature": (0.0, 1.0, 1.5)[s % 3]} for s in range(RENDER_STREAMS + 1)]
    plays += [{"seed": 3, "prime": 0.25, "offset1": -2.0}, {"seed": 4, "target0": 2.0, "latent_mix": 1.0}]
    together = render_many(bundle, 1.5, plays)
    for play, audio in zip(plays, together, strict=True):
        generator = Generator(bundle, seed=play["seed"])
        controls = Controls.for_bundle(bundle, temperature=play.get("temperature", 1.0))
        controls.latent_mix = play.get("latent_mix", 0.0)
        controls.latent_offset[1] = play.get("offset1", 0.0)
        controls.z_user[0] = play.get("target0", 0.0)
        if "prime" in play:
            generator.prime(play["prime"])
        alone = generator.render(1.5, controls)
        assert len(audio) == len(alone) == int(1.5 * bundle.audio.samplerate) and np.array_equal(audio, alone), play
    assert not np.array_equal(together[0], together[1])


def test_the_songs_own_stretches_lie_inside_it():
    """The prime's yardstick: the song's stretches about 0.25 and 0.75, moved inside where they would run over."""
    x = np.arange(100.0)
    assert stretch_at(x, 1, 0.25, 30).tolist() == list(range(10, 40))
    assert stretch_at(x, 1, 0.05, 30).tolist() == list(range(30))
    assert stretch_at(x, 1, 0.95, 30).tolist() == list(range(70, 100))
    assert len(stretch_at(x, 1, 0.5, 300)) == 100


def test_without_the_quality_extra_the_music_measures_say_what_to_install_in_one_line(tmp_path):
    (tmp_path / "librosa.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    demo, song = str(REPO / "models" / "demo"), str(DEMO_SONG)
    one_line_error(cli("quality", demo, "--songs", song, env=env), 'pip install "liveshtr[quality]"', "--no-music")
    spectral = cli("quality", demo, "--songs", song, "--seconds", "10", "--no-music", env=env)  # needs no extra
    assert spectral.returncode == 0 and spectral.stdout.count("| hungarian") == 1, spectral.stderr
    one_line_error(cli("quality", demo, "--songs", str(tmp_path / "none.wav")), "none.wav")
    one_line_error(cli("quality", demo, "--songs", song, "--seconds", "3"), "--seconds 3")


@pytest.mark.parametrize("rate", ["EVENT_FRAME_RATE", "ONSET_FRAME_RATE"])
def test_events_are_counted_against_the_songs_largest_rise(rate):
    """Clicks on a steady tone are events, each once; a swell is none, and neither are clicks 90 dB under the tone
    or rises small against the song's largest: at the report's frame rate and at the calibration's."""
    from functools import partial

    from liveshtr.analysis import spectral

    frame_rate = getattr(spectral, rate)
    band_rise = partial(spectral.band_rise, frame_rate=frame_rate)
    event_rate = partial(spectral.event_rate, frame_rate=frame_rate)
    sr = 24000
    t = np.arange(10 * sr) / sr
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    clicks = tone.copy()
    for start in np.arange(0.25, 10, 0.5):  # two a second, each a 5 ms burst of noise
        i = int(start * sr)
        clicks[i : i + 120] += 0.5 * np.random.default_rng(i).standard_normal(120)
    loud = float(band_rise(clicks, sr).max())
    assert abs(event_rate(clicks, sr, loud) - 2.0) < 0.15
    assert event_rate(clicks, sr, 20 * loud) == 0.0
    assert event_rate(tone + 3e-5 * (clicks - tone), sr, loud) == 0.0
    swell = (0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * t)) * tone
    assert event_rate(swell, sr, loud) == 0.0


def test_the_floors_table_keeps_bundles_of_one_song_apart(capsys):
    """Bundles of the same song (one training stopped at several points) each get their own floors row."""
    from types import SimpleNamespace

    from liveshtr.analysis.report import floors_table

    def signal(**m):
        base = {"beat": 0.6, "persistence": 0.8, "pitch_corr": 0.9, "onsets_per_s": 4.0, "flatness": 0.001}
        return base | {"harmonic_share": 0.7, "harmony_change": 0.3, "copy": 0.5, "replay_s": 0.5} | m

    def measures(render):
        noise = signal(pitch_corr=0.1, flatness=0.02)
        return {"song": signal(), "ltas noise": noise, "envelope noise": noise, "render": render} | {
            "render T=0": signal()
        }

    bundle = SimpleNamespace(meta={"training": {"songs": [{"name": "one song"}]}}, tempo=120.0)
    floors_table([bundle, bundle], [measures(signal(beat=0.1)), measures(signal())])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| one song")]
    assert len(rows) == 2 and rows[0].endswith("| beat |") and rows[1].endswith("| none |")


def test_floor_misses_name_each_floor_a_render_misses():
    from liveshtr.analysis.report import floor_misses

    def signal(**m):
        base = {"beat": 0.6, "persistence": 0.8, "pitch_corr": 0.9, "onsets_per_s": 4.0, "flatness": 0.001}
        return base | {"harmonic_share": 0.7, "copy": 0.5, "replay_s": 0.5} | m

    measured = {
        "song": signal(),
        "ltas noise": signal(pitch_corr=0.1, flatness=0.02),
        "envelope noise": signal(pitch_corr=-0.2),
        "render": signal(beat=0.35),
        "render T=0": signal(),
    }
    assert floor_misses(measured, bar_s=2.0) == []
    cases = {
        "beat": {"beat": 0.29},
        "persistence": {"persistence": 0.67},
        "pitch classes": {"pitch_corr": 0.55},
        "onsets": {"onsets_per_s": 8.1},
        "flatness": {"flatness": 0.0026},
        "harmonic": {"harmonic_share": 0.86},
        "copy": {"copy": 0.85},
        "replay": {"replay_s": 2.0},
    }
    for floor, change in cases.items():
        assert floor_misses(measured | {"render": signal(**change)}, bar_s=2.0) == [floor], floor
    zero = measured | {"render T=0": signal(onsets_per_s=1.9, copy=0.9)}
    assert floor_misses(zero, bar_s=2.0) == ["T=0 onsets", "T=0 copy"]
    no_pulse = measured | {"song": signal(beat=0.35), "render": signal(beat=0.0)}
    assert floor_misses(no_pulse, bar_s=2.0) == []  # no beat floor under a song's 0.4
