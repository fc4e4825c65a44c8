#!/usr/bin/env bash
# Run a command against a JACK dummy server (48 kHz, 256-frame periods: a real audio clock without a sound card),
# with the other core kept busy when BUSY=1 (the default). Its sounddevice output is device "system".
#   scripts/with_jack.sh COMMAND [ARGS...]
# JACK's log goes to $JACK_LOG (default: a temporary file); its xrun reports are counted at the end.
# Every process started here is stopped by its PID.
set -euo pipefail
bin=${BIN:-.venv/bin}
server="liveshtr-jack-$$"
jacklog=${JACK_LOG:-$(mktemp)}
export JACK_DEFAULT_SERVER="$server" JACK_NO_AUDIO_RESERVATION=1

jackd ${JACKD_FLAGS:---no-realtime} -n "$server" -d dummy -r 48000 -p 256 >"$jacklog" 2>&1 &
jack_pid=$!
busy_pid=""
if [ "${BUSY:-1}" = 1 ]; then
  "$bin/python" -c "while True: pass" &
  busy_pid=$!
fi
trap 'kill $busy_pid "$jack_pid" 2>/dev/null || true; wait "$jack_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done

"$@"
echo "JACK server xrun reports: $(grep -ci xrun "$jacklog" || true) (log: $jacklog)"
