"""Recording a set: the output exactly as played, and every control change at the hop that used it, so that
`render --replay` can make the same samples offline.

The audio callback hands each block it plays (and the gain it aimed at) to a `Tap`: preallocated blocks, a copy
and two counters, never a wait; a writer that falls behind loses blocks (counted) rather than stall the callback.
The producer hands each new parameter snapshot, with its hop number, to a deque. A writer thread drains both:
24-bit WAV takes and `controls.jsonl`. One session folder per `serve --record DIR` run:

    session.json     the model, seed, rates and settings, the controls at the start, and the takes
    controls.jsonl   {"hop": n, "name": ..., "value": ...} per change, from the first hop on,
                     {"hop": n, "model": i, "seconds": s} where a set list's crossfade to model i began (the
                     changes after it are model i's), {"hop": n, "beat": b} where a MIDI clock put the
                     model's clock b beats into its bar, {"block": k, "gain": g} where the callback's gain
                     target changed, {"block": k, "dry": true} where the callback ran dry (an underrun: it
                     played a fade instead of the model, and the model's audio one block later), and
                     {"block": k, "lost": n} where the writer fell behind and n blocks are silence in the take
    take-1.wav ...   what the callback played from `record start` to `record stop`
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liveshtr.atomic import atomic_path
from liveshtr.errors import LiveshtrError
from liveshtr.live.sched import Worker

TAP_SECONDS = 4.0  # audio the writer may fall behind by before blocks are lost
WRITE_EVERY_S = 0.05
SUBTYPE = "PCM_24"
SESSION_FORMAT = 2  # 2: blocks are numbered as the callback played them, with the dry and lost ones logged


class RecordError(LiveshtrError):
    """A recording that cannot be started, or a session that cannot be replayed."""


class Tap:
    """Single producer (the callback), single consumer (the writer): blocks, their gain targets, their numbers among
    all the blocks the callback played, and whether each ran dry (an underrun: the callback's fade, not the model)."""

    def __init__(self, blocksize: int, n_blocks: int):
        self.n = n_blocks
        self.data = np.zeros((n_blocks, blocksize), dtype=np.float32)
        self.blocks = [self.data[i] for i in range(n_blocks)]
        self.gains = np.zeros(n_blocks, dtype=np.float64)
        self.numbers = np.zeros(n_blocks, dtype=np.int64)
        self.dry = np.zeros(n_blocks, dtype=bool)
        self.written = 0  # blocks ever put (callback only)
        self.read = 0  # blocks ever taken (writer only)
        self.dropped = 0

    def put(self, block: np.ndarray, gain: float, number: int, dry: bool = False) -> None:
        k = self.written
        if k - self.read >= self.n:
            self.dropped += 1  # the writer fell behind: lose this block rather than wait
            return
        i = k % self.n
        np.copyto(self.blocks[i], block)
        self.gains[i] = gain
        self.numbers[i] = number
        self.dry[i] = dry
        self.written = k + 1  # publish after the copy

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Everything put since the last take, oldest first (copies): audio, gain targets, numbers, dry flags."""
        start, end = self.read, self.written
        index = np.arange(start, end) % self.n
        out = self.data[index].reshape(-1), self.gains[index], self.numbers[index], self.dry[index]
        self.read = end
        return out


class Recorder:
    """The session folder, the take being written and the writer thread. `engine.recorder = self` taps it."""

    def __init__(self, root: Path, engine, session: dict):
        self.engine = engine
        self.blocksize = engine.blocksize
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            folder = root / stamp
            n = 1
            while folder.exists():
                n += 1
                folder = root / f"{stamp}-{n}"
            folder.mkdir()
        except OSError as exc:
            raise RecordError(f"--record {root}: cannot make a session folder there ({exc.strerror or exc})") from None
        self.folder = folder
        self.session = dict(session, takes=[])
        self.tap = Tap(self.blocksize, max(2, int(TAP_SECONDS * engine.samplerate / self.blocksize)))
        self.snapshots: collections.deque = collections.deque()  # (hop, snapshot), from the producer
        self._params = engine.params  # the table of the model the snapshots belong to
        self._previous = {id(engine.params): engine.params.snapshot}  # per model: the snapshot last logged
        self.models: list | None = None  # a set list's models (live.setlist.Model), to name the one switched to
        self._gain: float | None = None
        self._next = 0  # the number of the block the writer looks at next
        self.lost = 0  # blocks the tap lost
        self._take = None  # (soundfile, path, first block) while recording
        self._requests: collections.deque = collections.deque()  # "start" / "stop" from control threads, in order
        self._active = False  # what was last asked: recording or not
        self._starts = 0
        self._lock = threading.Lock()
        self._worker = Worker("liveshtr-recorder", self._run)
        self.errors = 0
        self.last_error = ""
        self._controls = open(folder / "controls.jsonl", "w", buffering=1)  # noqa: SIM115  (closed in stop)
        self._write_session()

    # -- control threads ----------------------------------------------------------------------------
    def start_take(self) -> str:
        with self._lock:
            if self._active:
                raise RecordError("already recording; /liveshtr/record stop first")
            self._active = True
            self._starts += 1
            self._requests.append("start")
        return str(self.folder)

    def stop_take(self) -> None:
        with self._lock:
            if not self._active:
                raise RecordError("not recording")
            self._active = False
            self._requests.append("stop")

    @property
    def recording(self) -> bool:
        """As asked: the writer carries a start or a stop out within 50 ms, in the order they came."""
        return self._active

    @property
    def takes(self) -> int:
        """Takes begun, the one just asked for included."""
        return self._starts

    # -- the writer thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Write what is left, close the take and the session (the engine has stopped, or is stopping)."""
        self._worker.stop()
        self._drain(total=self.engine.stats.blocks)
        if self._take is not None:
            self._close_take()
        self._controls.close()
        self._write_session()

    def _run(self) -> None:
        while not self._worker.stopping.wait(WRITE_EVERY_S):
            try:
                self._drain()
            except Exception as exc:  # a full disk must not stop the music: count, say so, go on
                self.errors += 1
                self.last_error = f"recording: {type(exc).__name__}: {exc}"

    def _drain(self, total: int | None = None) -> None:
        while self.snapshots:
            entry = self.snapshots.popleft()
            if len(entry) == 3 and entry[1] == "beat":
                self._controls.write(json.dumps({"hop": entry[0], "beat": round(entry[2], 9)}) + "\n")
            elif len(entry) == 4:
                self._log_switch(*entry)
            else:
                self._log_controls(*entry)
        audio, first, end = self._blocks_since(total)
        with self._lock:
            requests = list(self._requests)
            self._requests.clear()
        written = False
        if self._take is not None and len(audio):
            self._take[0].write(audio)  # these blocks were played while the take ran
            written = True
        for request in requests:
            if request == "stop" and self._take is not None:
                self._close_take(end)
            elif request == "start" and self._take is None:
                if written or requests[0] == "stop":
                    self._open_take(end)  # a take just ended with these blocks: the next begins after them
                else:
                    self._open_take(first)  # from the blocks played since the last look, the request among them
                    if len(audio):
                        self._take[0].write(audio)
                    written = True

    def _blocks_since(self, total: int | None = None) -> tuple[np.ndarray, int, int]:
        """The audio of the blocks played since the last look, from block `first` to `end`, with their gains, dry
        blocks and lost blocks logged. Blocks the tap lost (the writer fell behind) are silence here, so a take keeps
        the set's timeline; `total`: the blocks the callback played in all (at the end, for blocks lost last)."""
        audio, gains, numbers, dry = self.tap.take()
        first = self._next
        end = int(numbers[-1]) + 1 if len(numbers) else first
        if total is not None:
            end = max(end, total)
        if end - first != len(numbers):
            dense = np.zeros((end - first, self.blocksize), dtype=np.float32)
            dense[numbers - first] = audio.reshape(-1, self.blocksize)
            audio = dense.reshape(-1)
            expected = first
            for k in [*numbers.tolist(), end]:
                if k > expected:
                    self._controls.write(json.dumps({"block": expected, "lost": k - expected}) + "\n")
                    self.lost += k - expected
                expected = k + 1
        for k, gain, ran_dry in zip(numbers.tolist(), gains.tolist(), dry.tolist(), strict=True):
            if gain != self._gain:
                self._gain = gain
                self._controls.write(json.dumps({"block": k, "gain": gain}) + "\n")
            if ran_dry:
                self._controls.write(json.dumps({"block": k, "dry": True}) + "\n")
        self._next = end
        return audio, first, end

    def _log_switch(self, hop: int, voice, seconds: float, at_bar: bool) -> None:
        """The crossfade to another model of the set: its index, and its controls as loaded the first time (and
        "bar" where it came in at a bar, primed where its song starts one)."""
        index = next(i for i, m in enumerate(self.models or []) if m.voice is voice)
        listed = self.session.setdefault("models", [])
        while len(listed) <= index:  # a model loaded during the set
            model = self.models[len(listed)]
            listed.append({"path": str(model.path.resolve()), "initial": model.params.values(model.voice.initial)})
            self._write_session()
        self._params = voice.params
        self._previous.setdefault(id(voice.params), voice.initial)
        entry = {"hop": hop, "model": index, "seconds": round(seconds, 6)} | ({"bar": True} if at_bar else {})
        self._controls.write(json.dumps(entry) + "\n")

    def _log_controls(self, hop: int, snap: np.ndarray) -> None:
        params = self._params
        changed = params.changed(self._previous[id(params)], snap)
        self._previous[id(params)] = snap
        for name, value in changed.items():
            line = {"hop": hop, "name": name}
            if not params.table[name].action:
                line["value"] = value
            self._controls.write(json.dumps(line) + "\n")

    def _open_take(self, first_block: int) -> None:
        import soundfile

        number = len(self.session["takes"]) + 1
        path = self.folder / f"take-{number}.wav"
        f = soundfile.SoundFile(path, "w", samplerate=self.engine.samplerate, channels=1, subtype=SUBTYPE)
        self._take = (f, path, first_block)
        self.session["takes"].append({"file": path.name, "first_block": first_block, "blocks": None})
        self._write_session()

    def _close_take(self, end_block: int | None = None) -> None:
        f, path, first = self._take
        f.close()
        self._take = None
        end = end_block if end_block is not None else self._next
        self.session["takes"][-1]["blocks"] = end - first
        self.session["dropped_blocks"] = self.lost
        self._write_session()

    def _write_session(self) -> None:
        self.session["underruns"] = self.engine.stats.underruns
        with atomic_path(self.folder / "session.json") as tmp:
            tmp.write_text(json.dumps(self.session, indent=1))

    def summary(self) -> dict:
        return {
            "folder": str(self.folder),
            "takes": len(self.session["takes"]),
            "dropped_blocks": self.tap.dropped,
            "errors": self.errors,
        }


@dataclass
class BlockLog:
    """What the callback did, by block number: gain targets where they changed, the blocks that ran dry, and the
    runs of blocks the recorder lost (first block, count)."""

    gains: dict[int, float] = field(default_factory=dict)
    dry: list[int] = field(default_factory=list)
    lost: list[tuple[int, int]] = field(default_factory=list)


def read_session(folder: Path) -> tuple[dict, list[dict], BlockLog]:
    """A recorded session: its settings, its control events ({"hop", "name", "value"}) and its blocks' log."""
    folder = Path(folder)
    try:
        session = json.loads((folder / "session.json").read_text())
        lines = (folder / "controls.jsonl").read_text().splitlines()
    except OSError as exc:
        raise RecordError(f"--replay {folder}: not a recorded session ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise RecordError(f"--replay {folder}: session.json is damaged ({exc})") from None
    events, blocks = [], BlockLog()
    for number, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except ValueError:
            if number == len(lines):
                break  # the last line of a session that ended in a crash
            raise RecordError(f"--replay {folder}/controls.jsonl:{number}: not JSON") from None
        if "gain" in obj:
            blocks.gains[int(obj["block"])] = float(obj["gain"])
        elif "dry" in obj:
            blocks.dry.append(int(obj["block"]))
        elif "lost" in obj:
            blocks.lost.append((int(obj["block"]), int(obj["lost"])))
        else:
            events.append(obj)
    return session, events, blocks
