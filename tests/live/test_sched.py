"""The thread lifecycle every long-lived thread of serve shares, and the one-off loader thread."""

from __future__ import annotations

import os
import threading

from liveshtr.live.sched import Worker, run_later


def test_a_worker_runs_until_stopped_and_is_joined():
    laps = []

    def loop():
        while not worker.stopping.wait(0.001):
            laps.append(1)

    worker = Worker("liveshtr-test", loop)
    worker.start()
    while len(laps) < 3:
        threading.Event().wait(0.001)
    worker.stop()
    assert not any(t.name == "liveshtr-test" for t in threading.enumerate())
    done = len(laps)
    threading.Event().wait(0.02)
    assert len(laps) == done
    worker.stop()  # twice is harmless, and so is a worker that never started
    Worker("liveshtr-idle", loop).stop()


def test_a_worker_asleep_on_its_own_event_is_woken_to_stop():
    wake = threading.Event()
    worker = Worker("liveshtr-sleeper", lambda: wake.wait(), wake=wake)
    worker.start()
    worker.stop(timeout=5)
    assert not any(t.name == "liveshtr-sleeper" for t in threading.enumerate())


def test_run_later_delivers_what_the_work_returns_from_another_thread():
    got, done = [], threading.Event()
    caller = threading.current_thread()

    def deliver(replies):
        got.append((replies, threading.current_thread() is not caller))
        done.set()

    run_later(lambda: ["loaded"], deliver)
    assert done.wait(5) and got == [(["loaded"], True)]


def test_a_process_made_idle_runs_below_everything_and_off_the_engines_core():
    import subprocess
    import sys

    from liveshtr.live.sched import engine_cores, make_idle

    engine, rest = engine_cores()
    assert rest and (len(engine | rest) == 1 or not engine & rest)  # one core is shared, more are split
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        said = make_idle(child.pid, rest)
        assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE and "SCHED_IDLE" in said
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 19
        assert os.sched_getaffinity(child.pid) == rest
    finally:
        child.kill()  # by its PID
        child.wait()


def test_without_huge_pages_holds_for_the_process_and_what_it_starts_after():
    """A trainer started after `without_huge_pages` has no transparent huge pages (khugepaged's merging of a
    training's memory stalled the engine on the other core), even across exec."""
    import subprocess
    import sys

    code = (
        "import subprocess, sys\n"
        "from liveshtr.live.sched import without_huge_pages\n"
        "status = lambda: [l.split()[1] for l in open('/proc/self/status') if l.startswith('THP_enabled')]\n"
        "print(without_huge_pages(), status())\n"
        "sys.stdout.flush()\n"
        "subprocess.run(['grep', 'THP_enabled', '/proc/self/status'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    if not sys.platform.startswith("linux") or "THP_enabled" not in out:
        assert out.startswith("False") or "THP_enabled" not in out  # nothing to keep out of: says so
        return
    said, child = out.splitlines()
    assert said == "True ['0']", out
    assert child.split() == ["THP_enabled:", "0"]  # the child, an exec'd program, inherits it
