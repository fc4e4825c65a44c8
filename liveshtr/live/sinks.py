"""Where the engine's callback plays to: an audio device (sounddevice/PortAudio), a WAV file paced in real time,
or nothing (paced, for tests and machines without a sound card).

The file and null sinks call the very same `Engine.callback` from a clock thread, one block per period, so they
exercise the live path (ring, gain ramp, underruns) exactly as a sound card would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveshtr.errors import LiveshtrError
from liveshtr.live.sched import DEVICE_PRIORITY, Worker

FALLBACK_FILE = Path("out/serve.wav")
STALL_BLOCKS = 4  # a paced sink that falls this many blocks behind skips ahead, as a device would


class _Late:
    """The callback status a paced sink passes after its own clock stalled (PortAudio's flag, by name)."""

    output_underflow = True

    def __bool__(self) -> bool:
        return True


LATE = _Late()


class AudioDeviceError(LiveshtrError):
    """No usable audio output device, or settings it refuses."""


@dataclass(frozen=True)
class SinkSpec:
    kind: str  # device | file | null | auto
    path: Path | None = None


def parse_sink(text: str) -> SinkSpec:
    kind, _, rest = text.partition(":")
    if kind == "file":
        if not rest:
            raise LiveshtrError("--sink file:PATH needs a path, e.g. --sink file:out/set.wav")
        path = Path(rest)
        if path.suffix.lower() not in (".wav", ".flac"):
            raise LiveshtrError(f"--sink {text}: write a .wav or .flac file")
        if path.parent and not path.parent.is_dir():
            raise LiveshtrError(f"--sink {text}: folder {path.parent} does not exist")
        return SinkSpec("file", path)
    if kind in ("device", "null", "auto") and not rest:
        return SinkSpec(kind)
    raise LiveshtrError(f"--sink {text!r}: use device, auto, null or file:PATH")


def import_sounddevice():
    """sounddevice, or a one-line error when PortAudio itself is missing."""
    try:
        import sounddevice
    except OSError:
        raise AudioDeviceError(
            "PortAudio is not installed (Debian: apt install libportaudio2); use --sink file:PATH or --sink null"
        ) from None
    return sounddevice


def output_devices() -> list[dict]:
    """Every device with output channels: index, name, host API, channels, default rate, default flag."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_out = sd.default.device[1]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"PortAudio cannot list devices ({exc})") from None
    return [
        {
            "index": d["index"],
            "name": d["name"],
            "hostapi": hostapis[d["hostapi"]]["name"],
            "channels": d["max_output_channels"],
            "samplerate": int(d["default_samplerate"]),
            "default": d["index"] == default_out,
        }
        for d in devices
        if d["max_output_channels"] > 0
    ]


def find_output_device(name: str | None) -> dict:
    """The output device named (exact name, unique substring, or index), or the default output."""
    devices = output_devices()
    if not devices:
        raise AudioDeviceError(
            "no audio output device found (no sound card or audio server); "
            "use --sink file:PATH to write a real-time WAV, or --sink null"
        )
    if name is None:
        default = [d for d in devices if d["default"]]
        return default[0] if default else devices[0]
    if name.isdigit():
        found = [d for d in devices if d["index"] == int(name)]
    else:
        found = [d for d in devices if d["name"] == name] or [d for d in devices if name.lower() in d["name"].lower()]
    if len(found) != 1:
        known = "; ".join(f"{d['index']}: {d['name']}" for d in devices)
        what = "matches several outputs" if found else "is not an output device"
        raise AudioDeviceError(f"--audio-device {name!r} {what} (outputs: {known}); see `liveshtr devices`")
    return found[0]


class DeviceSink:
    """A PortAudio output stream calling the engine's callback."""

    def __init__(self, engine, device: dict, channels: int):
        sd = import_sounddevice()
        self.description = f"{device['name']} ({device['hostapi']})"
        try:
            sd.check_output_settings(device["index"], channels=channels, dtype="float32", samplerate=engine.samplerate)
            self.stream = sd.OutputStream(
                device=device["index"],
                samplerate=engine.samplerate,
                blocksize=engine.blocksize,
                channels=channels,
                dtype="float32",
                latency="low",
                callback=engine.callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(
                f"{self.description} refuses {engine.samplerate} Hz / block {engine.blocksize} / {channels} ch "
                f"({str(exc).splitlines()[0]})"
            ) from None
        self.latency_s = float(self.stream.latency)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()
        self.stream.close()


class PacedSink:
    """A clock thread that calls the callback once per block period; writes the blocks to a file, or drops them."""

    def __init__(self, engine, path: Path | None, channels: int = 1):
        self.engine = engine
        self.path = path
        self.channels = channels
        self.description = f"file {path} (real-time paced)" if path else "null (real-time paced, discarded)"
        self.latency_s = engine.blocksize / engine.samplerate
        # a sound card's audio thread is real-time; so is the clock standing in for it
        self._worker = Worker("liveshtr-clock", self._run, DEVICE_PRIORITY)
        self._file = None
        self.error = ""
        self.late = 0  # times this clock woke more than a block period late

    def start(self) -> None:
        if self.path is not None:
            import soundfile

            try:
                self._file = soundfile.SoundFile(
                    self.path,
                    "w",
                    samplerate=self.engine.samplerate,
                    channels=self.channels,
                    subtype="PCM_24",  # what render writes: the same audio gives the same file
                )
            except (OSError, RuntimeError) as exc:
                raise LiveshtrError(f"--sink file:{self.path}: cannot write it ({exc})") from None
        self._worker.start()

    def _run(self) -> None:
        engine, blocksize = self.engine, self.engine.blocksize
        period = blocksize / engine.samplerate
        block = np.zeros((blocksize, self.channels), dtype=np.float32)
        status = 0
        deadline = time.perf_counter()
        while not self._worker.stopping.is_set():
            engine.callback(block, blocksize, None, status)
            status = 0
            if self._file is not None:
                try:
                    self._file.write(block)
                except Exception as exc:  # a full disk: say so once, keep the clock going
                    if not self.error:
                        self.error = f"writing {self.path} failed: {exc}"
            deadline += period
            wait = deadline - time.perf_counter()
            if wait < -period:
                self.late += 1  # the next block follows at once, as a device refills its buffer after a stall
            if wait > 0:
                time.sleep(wait)
            elif wait < -STALL_BLOCKS * period:
                # This clock thread itself was held up: a sound card would have skipped, not played the lost
                # time back to back (which would drain the look-ahead at once). Resume from now and report it
                # as the device's underflow.
                deadline = time.perf_counter()
                status = LATE

    def stop(self) -> None:
        self._worker.stop()
        if self._file is not None:
            self._file.close()
