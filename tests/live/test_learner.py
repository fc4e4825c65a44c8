"""Training beside the set, in-process around a stand-in trainer: the models it exports come in at the next bar only
when better, the performer's hold, back and stop, and a trainer that fails, is killed or exports a damaged model
leaves the set playing. (`tests/test_serve.py` drives `serve --learn` end to end with the real trainer.)"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from liveshtr.bundle import load_bundle
from liveshtr.live.engine import Engine
from liveshtr.live.generator import ON_BAR, Generator
from liveshtr.live.learner import Learner, LearnError, check_songs, learn_folder
from liveshtr.live.params import Params
from liveshtr.live.sched import engine_cores, keep_threads_on
from liveshtr.live.setlist import Model, SetList
from liveshtr.live.voice import Voice
from liveshtr.sound.tempo import BEATS_PER_BAR
from tests.helpers import shared_song

RATE, BLOCK = 48000, 256

# What `liveshtr train --snapshots --events FD` does, as far as serve can tell, paced by the test: each model a
# copy of a real bundle written in a hidden folder and renamed into stages/, then a "ready" line; "next" on stdin
# moves on, "stop" (or the end of stdin) saves the final model and exits 130 as an interrupted training does.
TRAINER = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    from pathlib import Path

    args = sys.argv[1:]
    out, fd = Path(args[args.index("-o") + 1]), int(args[args.index("--events") + 1])
    mode, source = os.environ["TRAINER_MODE"], Path(os.environ["TRAINER_BUNDLE"])
    events = os.fdopen(fd, "w", buffering=1)

    def emit(event, **fields):
        events.write(json.dumps({"event": event, **fields}) + "\\n")

    def export(folder, number, mse, final=False, damaged=False, keeps=True):
        partial = folder.parent / ("." + folder.name + ".partial")
        keep = shutil.ignore_patterns("scenes.json", "*.wav", "*.png", "checkpoint.pt", "ATTRIBUTION.md")
        shutil.copytree(source, partial, ignore=keep, dirs_exist_ok=True)
        if damaged:
            (partial / "model.onnx").write_bytes(b"half an export")
        if final:
            for p in partial.iterdir():
                os.replace(p, folder / p.name)
            partial.rmdir()
        else:
            os.replace(partial, folder)
        share = {"song": 0.8, "played": 0.75 if keeps else 0.45}
        partials = {"song": 0.7, "played": 0.7 if keeps else 0.45}
        emit("ready", path=str(folder.resolve()), number=number, final=final, epoch=number, val=mse, val_mse=mse,
             keeps_the_song=keeps, harmonic_share=share, partial_persistence=partials)

    def stage(number, mse, damaged=False, keeps=True):
        (out / "stages").mkdir(exist_ok=True)
        export(out / "stages" / f"{out.name}-{number:02d}", number, mse, damaged=damaged, keeps=keeps)

    def wait():
        line = sys.stdin.readline().strip()
        if line == "end":  # training done: the final model, which this mode's calibration may hear wash
            export(out, 0, 0.2, final=True, keeps=mode != "final wash")
            sys.exit(0)
        if line != "next":
            export(out, 0, 0.2, final=True)
            sys.exit(130)

    kept = os.environ.get("MALLOC_MMAP_MAX_") == "0" and int(os.environ.get("MALLOC_TRIM_THRESHOLD_", "0")) >= 1 << 30
    emit("stage", stage="reading", message=f"reading the song (malloc keeps its memory: {kept})")
    if mode == "crash":
        print("liveshtr train: error: song.wav: silent (nothing above -60 dBFS)", file=sys.stderr)
        sys.exit(2)
    if mode == "hang":
        time.sleep(600)
    emit("stage", stage="training", message="training 3 epochs")
    emit("progress", epoch=1, epochs=3, fraction=0.1, loss=0.5, eta_s=30.0)
    stage(1, 0.30, damaged=mode == "damaged")
    wait()
    emit("progress", epoch=2, epochs=3, fraction=0.6, loss=0.3, val=0.1, eta_s=10.0)
    stage(2, 0.35)  # worse than the one playing
    stage(3, 0.20, keeps=False)  # better on the held-out block, but its calibration heard a wash
    stage(4, 0.25)
    wait()
    """
)


class StandIn(Learner):
    """A Learner whose trainer is TRAINER."""

    script: Path

    def command(self, events_fd: int) -> list[str]:
        return [sys.executable, str(self.script), "-o", str(self.folder), "--events", str(events_fd)]


def voice(bundle, seed=0) -> Voice:
    return Voice(Generator(bundle, seed=seed), Params.for_bundle(bundle), RATE)


def make_set(bundle) -> SetList:
    first = voice(bundle)
    engine = Engine(first.generator, first.params, RATE, BLOCK, voice=first)
    return SetList(engine, [Model("demo", bundle.path, first)], load=lambda path: voice(load_bundle(path), seed=1))


class Heard:
    """What the learner tells, kept, with a wait for it."""

    def __init__(self):
        self.said: list[tuple[str, dict]] = []
        self.changed = threading.Condition()

    def __call__(self, kind: str, payload: dict) -> None:
        with self.changed:
            self.said.append((kind, payload))
            self.changed.notify_all()

    def lines(self) -> list[str]:
        return [p["text"] for k, p in self.said if k == "line"]

    def wait(self, what, timeout: float = 60.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: what(self), timeout), self.lines()


def start(bundle, tmp_path, monkeypatch, mode: str, silent: bool = False, cores: set[int] | None = None):
    monkeypatch.setenv("TRAINER_MODE", mode)
    monkeypatch.setenv("TRAINER_BUNDLE", str(bundle.path))
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    s, heard = make_set(bundle), Heard()
    learner = StandIn(
        s, [Path("song.wav")], tmp_path / "learn" / "song", 1, notify=heard, silent_start=silent, cores=cores
    )
    learner.script = script
    if silent:
        s.playing.params.set("gain", 0.0)
    learner.start()
    return s, learner, heard


def ready(heard: Heard) -> int:
    return sum(k == "ready" for k, _ in heard.said)


def play_until_switched(s: SetList, switches: int) -> None:
    for _ in range(1200):  # a crossfade under way (2 s), then a bar (under 2 s at the demo's tempo): 6.4 s
        if s.engine.switches >= switches:
            return
        s.engine.render(BLOCK / RATE)
    raise AssertionError(f"{switches} switch(es) expected, {s.engine.switches} made")


def next_stage(learner: Learner) -> None:
    learner._proc.stdin.write(b"next\n")
    learner._proc.stdin.flush()


def test_models_come_in_at_the_bar_when_better_and_the_performer_holds_goes_back_and_stops(
    bundle, tmp_path, monkeypatch
):
    engine, rest = engine_cores()
    had = os.sched_getaffinity(0)
    s, learner, heard = start(bundle, tmp_path, monkeypatch, "normal", silent=True, cores=rest)
    try:
        heard.wait(lambda h: ready(h) == 1)
        assert learner.state.priority  # the trainer was put below the engine (or says why not)
        if not engine & rest:  # two cores or more: serve's threads, and those they start, keep off the trainer's
            started = []
            thread = threading.Thread(target=lambda: started.append(os.sched_getaffinity(0)))
            thread.start()
            thread.join()
            assert os.sched_getaffinity(0) == engine and started == [engine]
        assert "reading the song (malloc keeps its memory: True)" in heard.lines()  # no pages handed back and forth
        assert [m.name for m in s.models] == ["demo", "song-01"]
        assert s.engine._switch is not None and s.engine._switch[2] is True  # asked for at the next bar
        # The set waited silent; the first model comes in at its own level, not the silence it follows.
        assert s.models[1].params.get("gain") == s.models[1].params.table["gain"].default
        play_until_switched(s, 1)
        assert s.playing.name == "song-01" and learner.state.stage == "training"

        learner.hold(True)
        next_stage(learner)  # model 2 is worse than model 1 (0.35 against 0.30), 3 a wash, 4 better (0.25)
        heard.wait(lambda h: ready(h) == 2)
        assert [m.name for m in s.models] == ["demo", "song-01", "song-04"]
        assert any("no better than" in line for line in heard.lines())
        assert any("model 3" in line and "plays a wash" in line for line in heard.lines())
        s.engine.render(2.5)
        assert s.playing.name == "song-01" and s.engine.switches == 1  # held
        learner.hold(False)
        play_until_switched(s, 2)
        assert s.playing.name == "song-04"
        progress = [p for k, p in heard.said if k == "progress"][-1]
        assert progress["epoch"] == 2 and progress["val"] == 0.1 and progress["loaded"] == ["song-01", "song-04"]

        assert learner.back() == "song-01" and learner.state.held
        play_until_switched(s, 3)
        assert s.playing.name == "song-01"

        learner.stop()  # the trainer saves its final model; the set plays on as it is
        assert learner.ended.wait(30)
        assert learner.state.stage == "stopped" and not learner.state.running
        assert load_bundle(learner.folder).path == learner.folder  # the final model, whole
        assert s.playing.name == "song-01" and len(s.models) == 3
        assert os.sched_getaffinity(0) == had  # the cores given back
    finally:
        learner.kill()
        keep_threads_on(had)  # whatever happened, the suite's threads get every core back


@pytest.mark.parametrize("mode", ["crash", "killed"])
def test_a_trainer_that_fails_or_is_killed_is_one_line_and_the_set_plays_on(bundle, tmp_path, monkeypatch, mode):
    silent = mode == "crash"  # serve --learn SONG alone: the set waits silent for the first model
    s, learner, heard = start(bundle, tmp_path, monkeypatch, "crash" if mode == "crash" else "hang", silent=silent)
    try:
        if mode == "killed":  # as the kernel's out-of-memory killer would
            heard.wait(lambda h: any("reading" in line for line in h.lines()))
            os.kill(learner.pid, signal.SIGKILL)
        assert learner.ended.wait(30)
        errors = [line for line in heard.lines() if line.startswith("error:")]
        assert len(errors) == 1, heard.lines()
        expected = "silent (nothing above -60 dBFS)" if mode == "crash" else "killed by SIGKILL"
        assert expected in errors[0] and "the set plays on with demo" in errors[0]
        assert ("raise its gain to hear it" in errors[0]) == silent  # it says why it is silent
        assert learner.state.stage == "failed" and expected in learner.state.error
        out = s.engine.render(0.5)
        assert s.playing.name == "demo" and (abs(out[len(out) // 2 :]).max() > 0) != silent  # past the gain ramp
    finally:
        learner.kill()


def test_a_damaged_export_is_never_played_and_the_next_one_comes_in(bundle, tmp_path, monkeypatch):
    s, learner, heard = start(bundle, tmp_path, monkeypatch, "damaged")
    try:
        heard.wait(lambda h: any("not loaded" in line for line in h.lines()))
        assert [m.name for m in s.models] == ["demo"] and s.engine._switch is None
        next_stage(learner)
        heard.wait(lambda h: ready(h) == 1)
        assert [m.name for m in s.models] == ["demo", "song-02"]  # the first better than nothing loaded
    finally:
        learner.close(wait_s=30)


def test_a_final_model_that_plays_a_wash_does_not_replace_the_one_playing(bundle, tmp_path, monkeypatch):
    s, learner, heard = start(bundle, tmp_path, monkeypatch, "final wash")
    try:
        heard.wait(lambda h: ready(h) == 1)
        play_until_switched(s, 1)
        learner._proc.stdin.write(b"end\n")
        learner._proc.stdin.flush()
        assert learner.ended.wait(30) and learner.state.stage == "done"
        (said,) = [line for line in heard.lines() if line.startswith("the final model")]
        assert "plays a wash" in said and "song-01 plays on" in said, said
        assert [m.name for m in s.models] == ["demo", "song-01"] and s.playing.name == "song-01"
        assert load_bundle(learner.folder).path == learner.folder  # the recipe's pick is still saved, whole
    finally:
        learner.kill()


def test_a_switch_at_the_bar_starts_where_the_bar_starts_from_a_prime_that_starts_one(bundle):
    first, second = voice(bundle), voice(bundle, seed=1)
    engine = Engine(first.generator, first.params, RATE, BLOCK, voice=first)
    s = SetList(engine, [Model("a", bundle.path, first), Model("b", bundle.path, second)])
    engine.render(0.3)
    g = first.generator
    step = g.beats_per_hop(first.controls)
    s.switch(1, 0.5, at_bar=True)
    beats = []
    started = time.monotonic()
    while engine.switches == 0 and time.monotonic() - started < 30:
        beats.append(g.beat)
        engine.render(BLOCK / RATE)
    assert engine.switches == 1
    # The hop that took the switch was the old model's last of its bar: its clock then stood within a hop of 4.
    assert beats[-1] + step >= BEATS_PER_BAR - 1e-9 or g.beat < beats[-1]
    new = second.generator.beat % BEATS_PER_BAR
    assert min(new, BEATS_PER_BAR - new) <= ON_BAR + 3 * step  # a bar's first beat, a few hops in


def test_songs_are_checked_and_a_training_never_writes_over_a_folder(tmp_path):
    with pytest.raises(LearnError, match="no such file"):
        check_songs([str(tmp_path / "nothing.wav")])
    (tmp_path / "notes.txt").write_text("la la")
    with pytest.raises(LearnError, match="not an audio file"):
        check_songs([str(tmp_path / "notes.txt")])
    with pytest.raises(LearnError, match="name a song"):
        check_songs([])
    song = shared_song("hungarian_dance_5_brahms_us_army_strings.ogg")
    assert check_songs([str(song)]) == [song]
    (tmp_path / "hungarian_dance_5_brahms_us_army_strings").mkdir()
    (tmp_path / "hungarian_dance_5_brahms_us_army_strings-2").mkdir()
    assert learn_folder(tmp_path, [song]).name == "hungarian_dance_5_brahms_us_army_strings-3"
