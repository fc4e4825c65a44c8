"""Training beside the set (`serve --learn SONG`): a model trained while the set plays, each better one crossfaded
in at the next bar.

The trainer is `liveshtr train SONG... -o FOLDER --snapshots --events FD --threads N` in a process of its own at
the lowest priority (`live.sched.make_idle`), so the engine's threads preempt it whenever they run. It exports a
first model within seconds and better ones as training goes on, each a bundle written in a hidden folder and
renamed into FOLDER/stages/ whole, and says so on a pipe, a JSON object a line (`training.fit.Progress`). Here a
thread reads those lines: it keeps the state that the page, OSC subscribers and the terminal show, loads each model
that measures better on the held-out block than the last one loaded into the set (a second, while the set plays
on) and crossfades to it at the next bar, unless the performer holds the model playing. The trainer stops on a line
"stop" on its stdin, or when its stdin ends (serve gone): it saves the best model so far as FOLDER's bundle and
exits. Whatever goes wrong with it (an error, a crash, memory, a kill) is one line, and the set plays on.

No torch here: the trainer is another process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liveshtr.bundle import folder_name
from liveshtr.errors import LiveshtrError
from liveshtr.live.sched import engine_cores, keep_threads_on, make_idle, without_huge_pages
from liveshtr.live.setlist import DEFAULT_FADE_S, SetError
from liveshtr.sound.audio import AUDIO_SUFFIXES

LOG_FILE = "learn.log"  # the trainer's own lines, in its bundle folder
STOP_WAIT_S = 240.0  # serve's end waits this long for the trainer to save the best model so far
# The trainer's malloc keeps what it frees instead of handing it back to the system and faulting it in again: a
# training's exports allocate arrays of 50-150 MB, which malloc would map and unmap each time. It trains faster
# that way (the Brahms, 2 epochs on one thread: 43-45 s against 46-48 s, docs/notebook.md); its footprint stays at
# its peak until it ends.
KEEP_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


class LearnError(LiveshtrError):
    """A training that cannot start (a song that is not there, one already running); nothing changed."""


@dataclass
class LearnState:
    """What the performer sees of a training: the page's bar, /liveshtr/learn/progress, the terminal."""

    songs: list[str]
    folder: str
    stage: str = "starting"  # starting | reading | training | exporting | done | stopped | failed
    epoch: int = 0
    epochs: int = 0
    fraction: float = 0.0  # of the whole training
    loss: float | None = None  # training loss of the epoch under way
    val: float | None = None  # held-out loss of the last epoch (lower is better)
    eta_s: float | None = None
    models: int = 0  # models the trainer made
    loaded: list[str] = field(default_factory=list)  # of them, those that came into the set, by name
    playing: str = ""  # the set's model playing
    held: bool = False  # the performer holds the model playing: better ones wait
    running: bool = True
    error: str | None = None
    elapsed_s: float = 0.0
    threads: int = 1
    priority: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def learn_folder(root: Path, songs: list[Path]) -> Path:
    """A folder under `root` for a training of `songs` that holds nothing yet: the first song's name, then -2,
    -3, ... (nothing already saved is touched)."""
    stem = folder_name(songs[0].stem)
    folder, n = root / stem, 1
    while folder.exists():
        n += 1
        folder = root / f"{stem}-{n}"
    return folder


def check_songs(songs: list) -> list[Path]:
    """The songs asked for, each an audio file or a folder that is there; else one line that says which is not."""
    if not songs:
        raise LearnError("learn: name a song (an audio file or a folder of them)")
    paths = []
    for song in songs:
        if not isinstance(song, str) or not song.strip():
            raise LearnError(f"learn: expected a song's path, got {song!r}")
        path = Path(song).expanduser()
        if not path.exists():
            raise LearnError(f"learn: {song}: no such file or folder")
        if path.is_file() and path.suffix.lower() not in AUDIO_SUFFIXES:
            raise LearnError(f"learn: {song}: not an audio file ({', '.join(AUDIO_SUFFIXES)})")
        paths.append(path)
    return paths


def check_trainer() -> None:
    """The trainer needs torch (the package's training extra), which serving does not: say so before starting."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise LearnError('learn: training needs torch, which this environment lacks (pip install "liveshtr[train]")')


class Learner:
    """One training beside the set: start() spawns the trainer, a thread follows it; hold, back and stop are the
    performer's. `notify(kind, payload)` hears of "progress" (the state), "ready" (a model that came into the set:
    index, name, val) and "line" (what the terminal prints)."""

    def __init__(
        self,
        setlist,
        songs: list[Path],
        folder: Path,
        threads: int,
        config: Path | None = None,
        notify: Callable[[str, dict], None] | None = None,
        silent_start: bool = False,
        cores: set[int] | None = None,
    ):
        self.setlist, self.songs, self.folder = setlist, songs, folder
        self.cores = cores  # where the trainer may run (None: anywhere, and serve's threads stay where they are)
        self._gave: set[int] | None = None  # the cores serve's threads had before the trainer started
        self.config = config
        self.notify = notify or (lambda kind, payload: None)
        self.silent_start = silent_start  # the set waits muted for the first model, which comes in at full level
        self.state = LearnState([str(s) for s in songs], str(folder), threads=threads)
        self._lock = threading.Lock()
        self._best = float("inf")  # held-out next-frame error of the last model loaded
        self._waiting: int | None = None  # a better model that came in while held
        self._before: int | None = None  # the model playing before the learner's last switch
        self._stopping = False
        self._played_any = False
        self._started = time.monotonic()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self.ended = threading.Event()

    # -- the trainer --------------------------------------------------------------------------------------------

    def command(self, events_fd: int) -> list[str]:
        cmd = [sys.executable, "-m", "liveshtr", "train", *map(str, self.songs), "-o", str(self.folder)]
        cmd += ["--force", "--snapshots", "--events", str(events_fd), "--threads", str(self.state.threads)]
        return cmd + (["--config", str(self.config)] if self.config is not None else [])

    def start(self) -> None:
        """Spawn the trainer at the lowest priority and follow it."""
        self.folder.mkdir(parents=True)
        read, write = os.pipe()
        huge = not without_huge_pages()  # before the fork: the trainer inherits it
        try:
            with open(self.folder / LOG_FILE, "wb") as log:
                self._proc = subprocess.Popen(
                    self.command(write),
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write,),
                    start_new_session=True,  # the terminal's Ctrl-C is serve's: it stops the trainer itself
                    env={**os.environ, "PYTHONUNBUFFERED": "1", **KEEP_MEMORY},
                )
        except OSError as exc:
            os.close(read)
            raise LearnError(f"learn: cannot start the trainer ({exc})") from None
        finally:
            os.close(write)
        self.state.priority = make_idle(self._proc.pid, self.cores) + ("" if huge else ", no huge pages")
        engine = engine_cores()[0]
        if self.cores and engine and not engine & self.cores:
            self._gave = keep_threads_on(engine)  # serve's threads stay off the trainer's cores while it runs
        self._thread = threading.Thread(target=self._follow, args=(read,), name="liveshtr-learn", daemon=True)
        self._thread.start()
        self._say(
            f"training {', '.join(s.name for s in self.songs)} into {self.folder} beside the set "
            f"({self.state.threads} thread(s), {self.state.priority}; log {self.folder / LOG_FILE})"
        )

    def _follow(self, fd: int) -> None:
        with os.fdopen(fd, "r", errors="replace") as lines:
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    try:
                        self._on(event)
                    except Exception as exc:  # whatever the trainer says, the set plays on
                        self._say(f"error: {type(exc).__name__}: {exc}")
        self._finished(self._proc.wait())

    def _on(self, event: dict) -> None:
        kind = event.get("event")
        s = self.state
        s.elapsed_s = round(time.monotonic() - self._started, 1)
        if kind == "stage":
            stage = str(event.get("stage", ""))
            if stage not in ("training", "exporting") or s.stage in ("starting", "reading"):
                self._say(str(event.get("message", stage)))
            s.stage = stage
        elif kind == "progress":
            s.epoch, s.epochs = int(event.get("epoch", 0)), int(event.get("epochs", 0))
            s.fraction, s.eta_s = float(event.get("fraction", 0.0)), event.get("eta_s")
            s.loss = event.get("loss")
            if event.get("val") is not None:
                s.val = float(event["val"])
        elif kind == "ready":
            s.models += 1
            self._arrive(event)
        self._progress()

    def _arrive(self, event: dict) -> None:
        """A model exported: into the set if it plays the held-out block better than the last one loaded (its
        next-frame error; the final model, the recipe's choice calibrated in full, whatever its error) and keeps
        the song's sustained sound as its calibration heard it (a final model that does not comes in only if
        nothing of this training has), and playing at the next bar unless held (or stopped)."""
        path, val = Path(str(event["path"])), float(event.get("val_mse", float("inf")))
        final = bool(event.get("final"))
        what = "the final model" if final else f"model {event.get('number')}"
        at = f"after {self.state.elapsed_s:.0f} s"
        if self._stopping:
            self._say(f"{what} saved {at}: {path}")
            return
        if not (final or val < self._best):
            self._say(f"{what} {at}: held-out error {val:.4f}, no better than {self._best:.4f}; not loaded")
            return
        if not event.get("keeps_the_song", True) and (not final or self.state.loaded):
            share, partials = event["harmonic_share"], event["partial_persistence"]
            on = f"; {self.setlist.playing.name} plays on (the model is in {path})" if final else ""
            self._say(
                f"{what} {at}: plays a wash (harmonic share {share['played']:.2f} against the song's "
                f"{share['song']:.2f}, lasting partials {partials['played']:.2f} against {partials['song']:.2f}); "
                f"not loaded{on}"
            )
            return
        try:
            index = self.setlist.add(path)
        except SetError as exc:
            self._say(f"error: {exc}; the set plays on")
            return
        self._best = val
        name = self.setlist.models[index].name
        self.state.loaded.append(name)
        self.notify("ready", {"index": index, "name": name, "val": val})
        with self._lock:
            if self.state.held:
                self._waiting = index
                self._say(f"{what} ready {at} (held-out error {val:.4f}): {name}, waiting while the model is held")
                return
        self._say(f"{what} ready {at} (held-out error {val:.4f}): {name}, crossfading in at the next bar")
        self._play(index)

    def _play(self, index: int) -> None:
        first, self._played_any = not self._played_any, True
        self._before = self.setlist.current
        model = self.setlist.switch(index, DEFAULT_FADE_S, at_bar=True)
        if first and self.silent_start:  # the set waited muted: the first model comes in at its own level
            model.params.set("gain", model.params.table["gain"].default)

    def _finished(self, code: int) -> None:
        s = self.state
        s.running, s.eta_s = False, None
        if code == 0 or (code == 130 and self._stopping):
            s.stage = "stopped" if self._stopping else "done"
            self._say(f"{s.stage} after {time.monotonic() - self._started:.0f} s: the best model is {self.folder}")
        else:
            s.stage = "failed"
            s.error = self._failure(code)
            silent = " (silent: it waited for this training; raise its gain to hear it)"
            playing = self.setlist.playing.name + (silent if self.silent_start and not self._played_any else "")
            self._say(f"error: {s.error}; the set plays on with {playing}")
        self._give_back_cores()
        self._progress()
        self.ended.set()

    def _give_back_cores(self) -> None:
        with self._lock:
            gave, self._gave = self._gave, None
        if gave is not None:
            keep_threads_on(gave)

    def _failure(self, code: int) -> str:
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the trainer was killed by {name}{why}"
        try:
            lines = (self.folder / LOG_FILE).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        said = [line for line in lines if "error:" in line] or [line for line in lines if line.strip()]
        return said[-1].strip() if said else f"the trainer ended with status {code}"

    # -- the performer's ----------------------------------------------------------------------------------------

    def hold(self, on: bool) -> None:
        """Hold the model playing (better models wait), or let go: the best one waiting comes in at the next bar."""
        with self._lock:
            self.state.held = bool(on)
            waiting, self._waiting = (None, self._waiting) if on else (self._waiting, None)
        if waiting is not None:
            self._say(f"let go: {self.setlist.models[waiting].name} crossfading in at the next bar")
            self._play(waiting)
        self._progress()

    def back(self) -> str:
        """Back to the model that played before the learner's last switch, and hold there; returns its name."""
        if self._before is None:
            raise LearnError("learn back: no model has come in from training yet")
        with self._lock:
            self.state.held = True
            target, self._before = self._before, self.setlist.current
        model = self.setlist.switch(target, DEFAULT_FADE_S, at_bar=True)
        self._say(f"back to {model.name}, held (/liveshtr/learn/hold 0 lets better models in)")
        self._progress()
        return model.name

    def stop(self) -> None:
        """End training: the trainer saves the best model so far as the folder's bundle and exits; the set plays
        on as it is."""
        if self._stopping or not self.state.running:
            return
        self._stopping = True
        self._say(f"stopping: the best model so far is saved in {self.folder}")
        try:
            self._proc.stdin.write(b"stop\n")
            self._proc.stdin.close()
        except OSError:
            pass

    def close(self, wait_s: float = STOP_WAIT_S) -> bool:
        """Stop and wait for the trainer; kill it after `wait_s` (the stages made stay). Returns whether it ended
        by itself."""
        if self._proc is None:
            return True
        self.stop()
        try:
            self._proc.wait(wait_s)
            ended = True
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.kill()
            ended = False
        if self._thread is not None:
            self._thread.join(5.0)
        self._give_back_cores()
        return ended

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # its session: the trainer and any helper it started
            except OSError:
                pass
            self._proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- telling ------------------------------------------------------------------------------------------------

    def _progress(self) -> None:
        self.state.playing = self.setlist.playing.name
        self.state.elapsed_s = round(time.monotonic() - self._started, 1)
        self.notify("progress", self.state.to_dict())

    def _say(self, text: str) -> None:
        self.notify("line", {"text": text})


class Learning:
    """serve's trainings: one at a time, started by --learn or by a surface during the set (`/liveshtr/learn`)."""

    def __init__(self, setlist, root: Path, threads: int = 0, config: Path | None = None):
        self.setlist, self.root, self.config = setlist, root, config
        self.cores = engine_cores()[1]  # the cores the engine leaves
        self.threads = threads or max(1, len(self.cores))
        self.listeners: list[Callable[[str, dict], None]] = []
        self.learner: Learner | None = None

    def start(self, songs: list, silent_start: bool = False) -> Learner:
        paths = check_songs(songs)
        check_trainer()
        if self.learner is not None and self.learner.state.stage in ("done", "stopped"):
            self.learner.ended.wait(10.0)  # said so, and exiting
        if self.learner is not None and self.learner.state.running:
            raise LearnError(
                f"learn: already training {', '.join(Path(s).name for s in self.learner.state.songs)}; "
                "/liveshtr/learn/stop first"
            )
        learner = Learner(
            self.setlist,
            paths,
            learn_folder(self.root, paths),
            self.threads,
            self.config,
            self._notify,
            silent_start,
            self.cores,
        )
        learner.start()
        self.learner = learner
        return learner

    def _notify(self, kind: str, payload: dict) -> None:
        for listener in self.listeners:
            listener(kind, payload)

    def current(self) -> Learner:
        if self.learner is None:
            raise LearnError("learn: nothing is training (/liveshtr/learn SONG starts)")
        return self.learner

    def state(self) -> dict | None:
        return self.learner.state.to_dict() if self.learner is not None else None

    def close(self, wait_s: float = STOP_WAIT_S) -> None:
        if self.learner is not None:
            self.learner.close(wait_s)
