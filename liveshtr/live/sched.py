"""Real-time scheduling for the threads that share the interpreter lock with the audio path.

The producer must never wait long for the GIL. When a thread holding it (the OSC server under a flood of messages,
the WebSocket loop, the feedback thread, Link's loop, the recorder's writer, the main thread) is preempted by some
other program, the producer waits a whole scheduler slice, several milliseconds, and with a look-ahead of 10 ms that
is an underrun: a real-time producer alone does not help. So where the system allows it (root, or an rtprio limit
from the audio group) every thread of ours that takes the GIL runs SCHED_FIFO: `serve` puts its main thread at
BACKGROUND_PRIORITY before it starts any other, so that every thread started after it (ours, and those of Link,
rtmidi and onnxruntime) inherits at least that; the control threads raise themselves above it, the producer above
them, and a paced sink's clock (which stands in for a sound card's audio thread) above the producer, all below the
audio server's own threads. Elsewhere they run as normal threads and the look-ahead has to cover the difference.
LIVESHTR_REALTIME=0 in the environment keeps every thread normal (for comparisons, or a machine where it
misbehaves).

`Worker` is the lifecycle every long-lived thread of ours shares (start at a priority, loop until asked to stop,
join), and `run_later` the one-off thread that loads a bundle during a set.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable

DEVICE_PRIORITY = 20  # a paced sink's clock: above the producer, as a sound card's audio thread is
PRODUCER_PRIORITY = 10  # JACK runs its threads around 70-80, so the audio callback stays above us
CONTROL_PRIORITY = 5  # OSC, WebSocket and feedback threads: above every normal process, below the producer
BACKGROUND_PRIORITY = 1  # every other thread that takes the GIL: above every normal process only


def usable_cores() -> int:
    """The cores this process may run on (a `taskset` or a container's CPU set), not all the machine's: more
    threads than cores make every parallel region wait on a thread that is not running."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has CPU affinity
        return max(1, os.cpu_count() or 1)


def engine_cores() -> tuple[set[int], set[int]]:
    """The cores this process may use, split: the first kept for the engine (and the audio server), the rest for
    work beside it; one core is shared."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return set(), set()
    return {cores[0]}, set(cores[1:] or cores)


def make_idle(pid: int, cores: set[int] | None = None) -> str:
    """Put process `pid` (one thread yet: just started; the threads it starts inherit this) below everything
    else: SCHED_IDLE where the system has it, nice 19, and on `cores` only; returns what it got, in words.

    The engine's threads preempt it as soon as it leaves the kernel, and the first core is left to them and the
    audio server; `keep_threads_on` keeps them there, and `without_huge_pages` stops the kernel's own work on the
    trainer's memory."""
    got = []
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        got.append("SCHED_IDLE")
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
        got.append("nice 19")
    except (AttributeError, OSError):
        pass
    if cores:
        try:
            os.sched_setaffinity(pid, cores)
            got.append(f"core(s) {','.join(map(str, sorted(cores)))}")
        except (AttributeError, OSError):
            pass
    return ", ".join(got) or "normal priority"


def keep_threads_on(cores: set[int]) -> set[int] | None:
    """Move every thread of this process onto `cores` (threads started later inherit it from the thread that
    starts them); returns the cores they had, to give back the same way, or None where the system cannot.

    For serve beside a training: a real-time thread is woken on the core it last ran on while that core runs a
    normal or idle task, and when that task is a trainer inside the kernel (freeing a few hundred megabytes, say),
    a kernel that does not preempt kernel code keeps the thread waiting there while its own core idles."""
    try:
        before = os.sched_getaffinity(0)
        tasks = os.listdir("/proc/self/task")
    except (AttributeError, OSError):
        return None
    for tid in tasks:
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that has just ended
            pass
    return before


PR_SET_THP_DISABLE = 41  # linux/prctl.h


def without_huge_pages() -> bool:
    """Keep this process, and every process it starts from now on, out of transparent huge pages (Linux's
    PR_SET_THP_DISABLE, inherited by children and kept across exec); returns whether the system allows it.

    For a training beside the engine: numpy asks huge pages for every array of 4 MB or more, and the kernel's
    khugepaged then merges the trainer's small pages into huge ones every ten seconds. On this project's 2-core VM
    each such pass stalled the engine on the other core for 14-24 ms (both cores busy, the audio server late too),
    and so did a process faulting in freed memory as huge pages: most of a training's underruns (the rest came
    from where the engine's threads woke: `keep_threads_on`; docs/notebook.md). serve's own memory is allocated up
    front and does not need them either."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def make_realtime(priority: int) -> bool:
    """Give the calling thread SCHED_FIFO at `priority` if allowed; returns whether it got it."""
    if os.environ.get("LIVESHTR_REALTIME", "1") == "0":
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


class Worker:
    """One daemon thread and its stop flag. `start()` runs `target` on the thread, at `priority` (SCHED_FIFO where
    allowed) when given; `target` loops until `stopping` is set (`stopping.wait(s)` sleeps and says when to end);
    `stop()` sets it, sets `wake` too for a thread that sleeps on an event of its own, and joins."""

    def __init__(self, name: str, target: Callable[[], None], priority: int | None = None, wake=None):
        self.name, self.target, self.priority, self.wake = name, target, priority, wake
        self.stopping = threading.Event()
        self.realtime = False  # whether the thread got real-time scheduling
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.priority is not None:
            self.realtime = make_realtime(self.priority)
        self.target()

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        if self.wake is not None:
            self.wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)


def run_later(work: Callable[[], list], deliver: Callable[[list], None]) -> None:
    """Run `work` (a bundle to load: a second or so) on a thread of its own and hand what it returns to `deliver`,
    so the control thread that asked answers its next message meanwhile."""
    threading.Thread(target=lambda: deliver(work()), name="liveshtr-loader", daemon=True).start()
