#!/usr/bin/env bash
# Live soak: serve MODEL through a JACK dummy server (48 kHz, 256-frame periods: a real audio clock without a sound
# card) for SECONDS while a busy loop keeps the other core loaded; prints serve's closing counters as JSON.
#   scripts/soak.sh MODEL [SECONDS]      e.g. scripts/soak.sh models/demo 600
set -euo pipefail
model=${1:?usage: scripts/soak.sh MODEL [SECONDS]}
seconds=${2:-600}
bin=${BIN:-.venv/bin}
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
run() {
  /usr/bin/time -f "wall %e s, peak RSS %M KB" "$bin/liveshtr" serve "$model" --audio-device system \
    --seconds "$seconds" --status-every 60 --stats-json "$stats" --osc-port 0 --web-port 0
  cat "$stats"; echo
}
export -f run; export model seconds bin stats
"$(dirname "$0")/with_jack.sh" bash -c run
