#!/usr/bin/env bash
# Live soak: serve MODEL through a JACK dummy server (48 kHz, 256-frame periods: a real audio clock without a sound
# card) for SECONDS while a busy loop keeps the other core loaded; prints serve's closing counters as JSON.
#   scripts/soak.sh MODEL [SECONDS]      e.g. scripts/soak.sh models/demo 600
# Every process started here is stopped by its PID.
set -euo pipefail
model=${1:?usage: scripts/soak.sh MODEL [SECONDS]}
seconds=${2:-600}
bin=${BIN:-.venv/bin}
server="liveshtr-soak-$$"
stats=$(mktemp)
jacklog=${JACK_LOG:-$(mktemp)}
export JACK_DEFAULT_SERVER="$server" JACK_NO_AUDIO_RESERVATION=1

jackd ${JACKD_FLAGS:---no-realtime} -n "$server" -d dummy -r 48000 -p 256 >"$jacklog" 2>&1 &
jack_pid=$!
"$bin/python" -c "while True: pass" &
busy_pid=$!
trap 'kill "$busy_pid" "$jack_pid" 2>/dev/null || true; wait "$jack_pid" 2>/dev/null || true; rm -f "$stats"' EXIT
for _ in $(seq 100); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done

/usr/bin/time -f "wall %e s, peak RSS %M KB" "$bin/liveshtr" serve "$model" --audio-device system \
  --seconds "$seconds" --status-every 60 --stats-json "$stats" --osc-port 0
cat "$stats"; echo
echo "JACK server xrun reports: $(grep -ci xrun "$jacklog" || true) (log: $jacklog)"
