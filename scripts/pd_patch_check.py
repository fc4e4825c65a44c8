"""Measure the Pure Data patch live: its CPU while it plays a server, and how soon it finds a restarted server.

    python scripts/pd_patch_check.py [--seconds 30] [--restarts 5]

Runs `liveshtr serve --sink null` and headless Pure Data with patches/liveshtr.pd (and the tests' harness patch,
which prints what the patch hears). Reports Pd's CPU share while it plays (its latent polling and the 20 Hz
telemetry), then stops and restarts the server `--restarts` times on the same port and reports how long the patch
took each time to report `connected` again (it re-subscribes every 2 s while no telemetry arrives, and reports
`connected` on the first telemetry).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "liveshtr", "serve", "--sink", "null", "--no-web", "--status-every", "0"]
    proc = subprocess.Popen([*cmd, "--osc-port", str(port)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("controls"):
            return proc
    raise SystemExit("serve did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # by PID
    proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to measure Pd's CPU")
    ap.add_argument("--restarts", type=int, default=5, help="server restarts to time")
    args = ap.parse_args()

    port = free_udp_port()
    server = serve(port)
    patch, harness = ROOT / "patches" / "liveshtr.pd", ROOT / "tests" / "control" / "pd" / "listen.pd"
    sends = f"liveshtr-listen {free_udp_port()}; liveshtr-connect {port}"
    pd = subprocess.Popen(
        ["pd", "-nogui", "-noaudio", "-stderr", "-open", str(patch), "-open", str(harness), "-send", sends],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=lambda: [lines.put((time.monotonic(), x.strip())) for x in pd.stderr], daemon=True).start()

    def wait_for(text: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line == text:
                return at
        raise SystemExit(f"Pd did not print {text!r} within {timeout:.0f} s")

    try:
        wait_for("heard-status: symbol connected")
        while not lines.empty():
            lines.get()
        start_cpu, start = cpu_seconds(pd.pid), time.monotonic()
        telemetry = 0
        while time.monotonic() - start < args.seconds:
            try:
                telemetry += lines.get(timeout=0.1)[1].startswith("heard-telemetry")
            except queue.Empty:
                pass
        elapsed = time.monotonic() - start
        share = (cpu_seconds(pd.pid) - start_cpu) / elapsed
        rate = telemetry / elapsed
        print(f"pd cpu      {100 * share:.2f}% of one core over {elapsed:.0f} s ({rate:.1f} telemetry/s heard)")
        found = []
        for _ in range(args.restarts):
            stop(server)
            wait_for("heard-status: symbol waiting")
            time.sleep(random.uniform(0, 2))  # not in step with the patch's 2 s watchdog
            server = serve(port)
            started = time.monotonic()  # it prints `controls` once its OSC port is open
            found.append(wait_for("heard-status: symbol connected") - started)
        if found:
            print(
                f"reconnect   median {statistics.median(found):.2f} s, max {max(found):.2f} s after serve was up "
                f"({args.restarts} restarts)"
            )
    finally:
        stop(server)
        pd.send_signal(signal.SIGTERM)  # by PID
        pd.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
