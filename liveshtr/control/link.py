"""Ableton Link (`serve --link`): the session's tempo and beat drive the model's clock, as a MIDI clock does.

Link is a peer-to-peer tempo and beat session on the local network (Ableton Live, Bitwig, many iOS apps, ...).
Through the aalink package (an optional dependency: `pip install "liveshtr[link]"`), a thread runs its own asyncio
loop with a Link peer; on every beat of the session it sets `tempo` (models with a clock) and tells the engine
where the session's bar is (a quantum of 4 beats), and the engine puts the model's clock on that beat for the hop
it plays next. Joining alone starts a session at the model's tempo that other peers can join.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from liveshtr.errors import LiveshtrError
from liveshtr.live.params import Params
from liveshtr.sound.tempo import BEATS_PER_BAR

TEMPO_STEP = 0.05  # beats a minute: smaller tempo changes are not sent to the table


class LinkError(LiveshtrError):
    """Link cannot start here (no aalink)."""


class LinkClock:
    def __init__(self, params: Callable[[], Params], sync_beat: Callable[[float, float, float], None], tempo: float):
        """`params()`: the table of the model playing; `sync_beat(beats, bpm, at)`: the engine's."""
        try:
            import aalink  # noqa: F401
        except ImportError:
            raise LinkError('--link needs the aalink package: pip install "liveshtr[link]"') from None
        self.params, self.sync_beat, self.start_tempo = params, sync_beat, float(tempo)
        self.peers = 0
        self.tempo = float(tempo)
        self.beats = 0  # session beats seen
        self.errors = 0
        self.last_error = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="liveshtr-link", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._task = self._loop.create_task(self._follow())
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    async def _follow(self) -> None:
        import warnings

        from aalink import Link

        with warnings.catch_warnings():  # aalink 0.2 wants the loop and warns that it will not
            warnings.simplefilter("ignore", DeprecationWarning)
            link = Link(self.start_tempo, asyncio.get_running_loop())
        link.quantum = float(BEATS_PER_BAR)
        link.enabled = True
        self._ready.set()
        try:
            while True:
                await link.sync(1)  # the session's next beat
                self.beats += 1
                try:
                    self.on_beat(link.beat % BEATS_PER_BAR, link.tempo, link.num_peers)
                except Exception as exc:  # a Link hiccup never stops the music
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            link.enabled = False

    def on_beat(self, beats: float, bpm: float, peers: int, at: float | None = None) -> None:
        """A beat of the session: `beats` into its bar at `at` (now), at `bpm`, with `peers` other peers."""
        at = time.monotonic() if at is None else at
        self.peers, self.tempo = peers, bpm
        params = self.params()
        if "tempo" in params.table and abs(params.get("tempo") - bpm) > TEMPO_STEP:
            params.set("tempo", bpm)
        self.sync_beat(round(beats) % BEATS_PER_BAR, bpm, at)

    def describe(self) -> str:
        return f"link      Ableton Link from {self.start_tempo:.1f} bpm: the session's tempo and beat drive the clock"

    def summary(self) -> dict:
        return {"peers": self.peers, "tempo": round(self.tempo, 3), "beats": self.beats, "errors": self.errors}
