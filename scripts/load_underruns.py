"""Underruns of `serve` on the null sink beside busy normal-priority processes: RUNS runs of SECONDS each.

    python scripts/load_underruns.py --busy 6 --runs 8 --seconds 8 [--link] [-- more serve flags]

Each busy process runs numpy's SVD in a loop at normal priority (as other programs on a performer's laptop would),
and a second loop starts short-lived interpreters beside them (as a training's jobs do). Prints each run's
underruns and how often the paced clock itself woke late (`sink_late`), then the underruns per run. The busy
processes are started and stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

BUSY = "import numpy as np\nwhile True: np.linalg.svd(np.random.rand(300, 300))"
PEER = textwrap.dedent(
    """
    import asyncio, sys, warnings
    warnings.simplefilter("ignore")
    from aalink import Link

    async def main():
        link = Link(97.0, asyncio.get_running_loop())
        link.enabled = True
        while True:
            await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--busy", type=int, default=6, help="busy processes at normal priority")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--link", action="store_true", help="serve --link, with a Link peer in another process")
    p.add_argument("serve", nargs="*", help="more flags for serve (after --)")
    args = p.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    stop = threading.Event()

    def starts() -> None:  # interpreters starting and ending beside the busy ones
        while not stop.is_set():
            subprocess.run([sys.executable, "-c", "import numpy, scipy.signal"], check=False)
            time.sleep(0.2)

    threading.Thread(target=starts, daemon=True).start()
    peer = subprocess.Popen([sys.executable, "-c", PEER], stderr=subprocess.DEVNULL) if args.link else None
    underruns = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            stats = Path(folder) / "stats.json"
            for run in range(args.runs):
                cmd = [sys.executable, "-m", "liveshtr", "serve", "--sink", "null", "--no-web", "--osc-port", "0"]
                cmd += ["--status-every", "0", "--stats-json", str(stats), "--seconds", str(args.seconds)]
                cmd += (["--link"] if args.link else []) + args.serve
                result = subprocess.run(cmd, capture_output=True, text=True)
                if result.returncode != 0:
                    print(f"run {run}: serve failed: {result.stderr.strip()[-300:]}")
                    continue
                s = json.loads(stats.read_text())
                underruns.append(s["underruns"])
                print(f"run {run}: underruns {s['underruns']}, clock late {s.get('sink_late')}", flush=True)
    finally:
        stop.set()
        for proc in busy + ([peer] if peer else []):
            proc.kill()  # by PID
            proc.wait()
    print(f"{args.busy} busy processes{', link' if args.link else ''}: underruns per run {underruns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
