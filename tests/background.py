"""The suite's slow trainings, started with the session and run at idle priority beside the other tests.

Most of the suite waits on real time (a JACK clock, servers, a browser) and leaves the cores idle, while a few
fixtures need trainings that take most of the suite's CPU time. Each job runs its commands in fresh interpreters,
pinned to one core (so a training sizes itself to one thread and sums in the same order every time: the same-seed
test compares two of them) under SCHED_IDLE, so it takes only the time the tests in front leave and never delays a
real-time test's audio. Jobs start in the order the collected tests first need their fixtures; a fixture waits for
its job. A test module declares its fixture's jobs with `@BACKGROUND.plan("fixture")`; conftest starts the plans
whose fixtures the collected tests use and stops what is left, by PID, when the session ends.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Job:
    commands: list[list[str]]
    output: Path | None = None  # what the job makes, for the fixture
    before: Callable[[], None] | None = None  # runs first, in the worker: waits on another job, copies a folder
    done: threading.Event = field(default_factory=threading.Event)
    result: subprocess.CompletedProcess | None = None  # the last command run: the first that failed, or the last
    error: str = ""
    seconds: float = 0.0  # how long its commands ran, from the first's start to the last's end


Plan = Callable[[Path], dict[str, Job]]


class Background:
    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.jobs: dict[str, dict[str, Job]] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._folder: Callable[[str], Path] | None = None

    def plan(self, fixture: str) -> Callable[[Plan], Plan]:
        """Declare the jobs `fixture` needs: the decorated function makes them under a fresh folder."""

        def register(make: Plan) -> Plan:
            self.plans[fixture] = make
            return make

        return register

    def start(self, fixtures: list[str], folder: Callable[[str], Path]) -> None:
        """Queue the jobs of these fixtures, in this order, and start one worker per core this process may use.
        `folder(fixture)` makes a fresh folder for a fixture's jobs."""
        self._folder = folder
        for name in fixtures:
            if name in self.plans and name not in self.jobs:
                self.jobs[name] = self.plans[name](folder(name))
                for job in self.jobs[name].values():
                    self._queue.put(job)
        if self.jobs and not self._threads:
            for cpu in sorted(os.sched_getaffinity(0)):
                thread = threading.Thread(target=self._work, args=(cpu,), name=f"background-{cpu}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def wait(self, fixture: str, timeout: float) -> dict[str, Job]:
        """The fixture's jobs, once all have finished (at most `timeout` seconds from now)."""
        if fixture not in self.jobs:  # asked for by no collected test (another fixture's dependency)
            self.start([fixture], self._folder)
        jobs = self.jobs[fixture]
        for name, job in jobs.items():
            if not job.done.wait(timeout):
                pytest.fail(f"background job {fixture}/{name} did not finish in {timeout:.0f} s")
            if job.error:
                pytest.fail(f"background job {fixture}/{name}: {job.error}")
        return jobs

    def timings(self) -> list[tuple[str, float]]:
        """(fixture/job, seconds) of every job that ran, the longest first: where the suite's time goes."""
        ran = [(f"{fixture}/{name}", job.seconds) for fixture, jobs in self.jobs.items() for name, job in jobs.items()]
        return sorted((t for t in ran if t[1] > 0), key=lambda t: -t[1])

    def stop(self) -> None:
        self._stopping = True
        for _ in self._threads:
            self._queue.put(None)
        with self._lock:
            for proc in self._running:
                proc.kill()  # by PID: our own children
        for thread in self._threads:
            thread.join(timeout=10)

    def _work(self, cpu: int) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if job.before is not None:
                    job.before()
                started = time.perf_counter()
                for cmd in job.commands:
                    job.result = self._run(cmd, cpu)
                    job.seconds = time.perf_counter() - started
                    if job.result.returncode != 0:
                        break
            except Exception as exc:  # the waiting fixture reports it
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.done.set()

    def _run(self, cmd: list[str], cpu: int) -> subprocess.CompletedProcess:
        # Pinned and idle before the interpreter starts: util-linux's taskset and chrt set the affinity and the
        # policy, then exec the next, so the command never runs a moment at normal priority beside the real-time
        # tests, and its thread pools size themselves from the affinity.
        pinned = ["taskset", "--cpu-list", str(cpu), "chrt", "--idle", "0", *cmd]
        for attempt in range(3):
            with self._lock:
                if self._stopping:
                    raise RuntimeError("the session ended first")
                try:
                    proc = subprocess.Popen(pinned, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                except OSError:  # seen once: EFAULT from the exec while the test thread started a process too
                    if attempt == 2:
                        raise
                    continue
                self._running.add(proc)
                break
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


BACKGROUND = Background()
