# One entry point: set-up, the demo, the tests, lint and benchmarks. The README's quick start is `make demo`
# and `make test`; both set up what they need (Debian packages, a virtualenv in .venv, torch first, then us).
# `make demo` serves the bundled demo model: on the sound card when there is one, else (--sink auto) in real time
# to out/serve.wav. DEMO_SECONDS= (empty) plays until Ctrl-C.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 is the CPU build on our machines; for an NVIDIA GPU see "CUDA" in the README.
TORCH ?= torch==2.13.0
# basic-pitch's note model (ONNX, inside the package) for the quality measures; --no-deps keeps TensorFlow out.
BASIC_PITCH ?= basic-pitch==0.4.0
# Debian packages: PortAudio for sounddevice; the tests add a JACK server, OSC tools, Pure Data, Chromium, and
# iproute2 (`ip`, to bring up loopback in the private network namespace oscdump runs in).
APT_RUN := libportaudio2
APT_TEST := $(APT_RUN) jackd2 liblo-tools puredata-core chromium iproute2

DEMO_SECONDS ?= 30

.PHONY: demo demo-model test setup setup-quality setup-dev lint format clean bench bench-train bench-learn soak latency patch-check quality-report

demo: setup
	$(BIN)/liveshtr serve --sink auto $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))

# Retrains the demo bundle as models/demo/ATTRIBUTION.md describes (then copy its files into models/demo).
demo-model: setup
	$(BIN)/liveshtr train ../shared/audio/hungarian_dance_5_brahms_us_army_strings.ogg -o out/demo-train --force

test: setup-dev
	$(BIN)/python -m pytest -q

lint: setup-dev
	$(BIN)/ruff check liveshtr tests scripts patches
	$(BIN)/ruff format --check liveshtr tests scripts patches

format: setup-dev
	$(BIN)/ruff format liveshtr tests scripts patches
	$(BIN)/ruff check --fix liveshtr tests scripts patches

# The seed's reference run (1 layer x 128, 5 epochs) on the 3:42 guitar recording, three times.
bench-train: setup
	for i in 1 2 3; do /usr/bin/time -f "wall %e s, peak RSS %M KB" $(BIN)/liveshtr train \
	  ../shared/audio/acoustic_guitar_arrangement_trow.mp3 --layers 1 --hidden 128 --epochs 5 \
	  -o out/bench-reference --force | grep -E "trained|val MSE"; done

# Engine speed of the demo, the reference (1x128) and the large (3x1024) model, side by side in one run.
bench: setup
	$(BIN)/liveshtr train ../shared/audio/acoustic_guitar_arrangement_trow.mp3 --layers 1 --hidden 128 --epochs 5 \
	  -o out/bench-reference --force >/dev/null
	test -f out/bench-big/model.json || $(BIN)/liveshtr train ../shared/audio/acoustic_guitar_arrangement_trow.mp3 \
	  --layers 3 --hidden 1024 --epochs 1 -o out/bench-big --force >/dev/null
	for m in models/demo out/bench-reference out/bench-big; do $(BIN)/liveshtr bench $$m; echo; done

# Ten minutes live through a JACK dummy server with the other core busy (SOAK_MODEL, SOAK_SECONDS).
SOAK_MODEL ?= models/demo
SOAK_SECONDS ?= 600
soak: setup-dev
	BIN=$(BIN) scripts/soak.sh $(SOAK_MODEL) $(SOAK_SECONDS)

# Control latency: OSC datagram -> first sample made with it leaving the audio callback, through a real-time JACK
# dummy server (48 kHz / 256), 30 s of probes at 20 Hz; then the same under a flood of 5,000 other messages a second;
# then both again with the probes sent as MIDI (a controller through JACK into serve --midi); then a set of two
# models switched every 4 s (2 s crossfades) under the flood: the underruns are what count there.
latency: setup-dev
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh \
	  $(BIN)/python scripts/control_latency.py --audio-device system --seconds 30
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh \
	  $(BIN)/python scripts/control_latency.py --audio-device system --seconds 30 --flood 5000
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh \
	  $(BIN)/python scripts/control_latency.py --audio-device system --seconds 30 --probe midi
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh \
	  $(BIN)/python scripts/control_latency.py --audio-device system --seconds 30 --probe midi --flood 5000
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh \
	  $(BIN)/python scripts/control_latency.py models/demo models/demo --audio-device system --seconds 30 \
	  --flood 5000 --switch-every 4

# Training beside the set (serve --learn) through a real-time JACK dummy server, the whole training at the default
# look-ahead, with the control-latency probe: a song of ../shared/audio and the trumpet loop of ../shared/audio-check,
# then the same probe for as long without training; then training speed on 1 and 2 threads, side by side.
LEARN_SONG ?= ../shared/audio/hungarian_dance_5_brahms_us_army_strings.ogg
LEARN_LOOP ?= ../shared/audio-check/solo_trumpet_loop_sorohan.ogg
bench-learn: setup-dev
	mkdir -p out/bench-learn
	for s in $(LEARN_SONG) $(LEARN_LOOP); do n=$$(basename $$s | cut -d. -f1); rm -rf out/bench-learn/$$n*; \
	  JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh $(BIN)/python scripts/control_latency.py \
	  --audio-device system --learn $$s --learn-dir out/bench-learn --json out/bench-learn/$$n.json \
	  2> out/bench-learn/$$n.log | tail -3; done
	JACKD_FLAGS="--realtime -P 70" BUSY=0 BIN=$(BIN) scripts/with_jack.sh $(BIN)/python scripts/control_latency.py \
	  --audio-device system --seconds 300 --json out/bench-learn/without.json | tail -3
	for t in 1 2; do $(BIN)/liveshtr train $(LEARN_SONG) --epochs 2 --threads $$t -o out/bench-learn/threads-$$t --force \
	  | grep -E "device|trained"; done

# The Pure Data patch against serve: Pd's CPU while it plays, and how soon it finds a restarted server.
patch-check: setup-dev
	$(BIN)/python scripts/pd_patch_check.py --seconds 30 --restarts 10

# Trains every song of SONGS (default ../shared/audio) with the defaults and prints the quality figures
# docs/quality.md quotes: the spectral table, then beat, onsets, pitch classes, flatness, harmonic share, persistence
# and copying for each song, its two noises, the default render and the temperature-0 render; each song's
# spectrograms go to out/quality-pictures. DOMAIN=dct: the same with DCT frames, into out/quality-dct;
# SONGS=../shared/audio-check: the songs the defaults were not chosen on, into out/quality-audio-check.
DOMAIN ?= fft
SONGS ?= ../shared/audio
QUALITY_DIR := out/quality$(if $(filter dct,$(DOMAIN)),-dct)$(if $(filter-out ../shared/audio,$(SONGS)),-$(notdir $(SONGS)))
quality-report: setup-quality
	for f in $(SONGS)/*.mp3 $(SONGS)/*.ogg $(SONGS)/*.wav $(SONGS)/*.flac; do test -f "$$f" || continue; \
	  $(BIN)/liveshtr train "$$f" --domain $(DOMAIN) -o "$(QUALITY_DIR)/$$(basename "$${f%.*}")" --force >/dev/null \
	  || exit 1; done
	$(BIN)/liveshtr quality $(QUALITY_DIR)/* --songs $(SONGS) --pictures $(QUALITY_DIR)-pictures

setup: $(VENV)/.stamp-run
setup-quality: $(VENV)/.stamp-quality
setup-dev: $(VENV)/.stamp-dev

# Installs missing Debian packages when we can (root, or sudo); elsewhere names them and goes on.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ] || ! command -v dpkg >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "please install these Debian packages: $$missing"; exit 0; fi; \
	echo "installing Debian packages: $$missing"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-torch: | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	touch $@

$(VENV)/.stamp-run: pyproject.toml $(VENV)/.stamp-torch
	$(call apt_install,$(APT_RUN))
	$(BIN)/pip install -q --disable-pip-version-check -e ".[train]"
	touch $@

$(VENV)/.stamp-quality: pyproject.toml $(VENV)/.stamp-run
	$(BIN)/pip install -q --disable-pip-version-check -e ".[quality]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "$(BASIC_PITCH)"
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-quality
	$(call apt_install,$(APT_TEST))
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
