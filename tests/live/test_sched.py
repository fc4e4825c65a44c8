"""The thread lifecycle every long-lived thread of serve shares, and the one-off loader thread."""

from __future__ import annotations

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
