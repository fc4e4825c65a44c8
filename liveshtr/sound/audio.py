"""Audio in: song files -> mono float32 at the model's rate, resampled, optionally high-passed, without their
quiet start and end, peak-normalised.

soundfile (libsndfile) decodes WAV, FLAC, OGG/Vorbis and MP3; soxr resamples. Every way a file can be unusable
raises AudioError with one line that names the file and what is wrong with it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from liveshtr.atomic import atomic_path
from liveshtr.config import AudioConfig
from liveshtr.errors import AudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
SILENCE_DB = -60.0  # a file whose RMS level stays below this is treated as silent
TRIM_WINDOW_S = 0.1  # the level the trim compares is measured in windows this long
HIGHPASS_ORDER = 4  # Butterworth order of the optional high-pass, run forwards and backwards (zero phase)


@dataclass(frozen=True)
class Song:
    """One decoded song at the model's rate."""

    name: str  # file stem, used to name the bundle
    path: Path
    samples: np.ndarray  # (N,) float32 mono at AudioConfig.samplerate, peak at AudioConfig.peak_db
    samplerate: int
    source_samplerate: int
    source_channels: int
    source_peak: float  # peak of the decoded file before any processing (may exceed 1.0)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.samplerate


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given, and the audio files inside any folder given (sorted); missing paths are an error."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise AudioError(f"{path}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise AudioError(f"{path}: not a regular file or folder")
        else:
            raise AudioError(f"{path}: no such file or folder")
    if not files:
        raise AudioError("no audio files given")
    return files


@contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Hide what C decoders print on fd 2 (mpg123's "Note: Illegal Audio-MPEG-Header ..."): we report errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    try:
        with _c_stderr_silenced():
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except sf.LibsndfileError as exc:
        raise AudioError(
            f"{path}: not a readable audio file ({exc.error_string}); liveshtr reads WAV, FLAC, OGG/Vorbis and MP3"
        ) from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot be read ({exc})") from None
    return data, rate


def highpass(x: np.ndarray, cutoff_hz: float, samplerate: int) -> np.ndarray:
    """Zero-phase Butterworth high-pass of a whole signal (offline only)."""
    sos = signal.butter(HIGHPASS_ORDER, cutoff_hz, btype="highpass", fs=samplerate, output="sos")
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def quiet_edges(x: np.ndarray, samplerate: int, below_db: float) -> tuple[int, int]:
    """The span [start, end) of a signal without its quiet start and end: the first and last TRIM_WINDOW_S
    windows whose RMS level lies within `below_db` of the median window's, and everything between them (quiet
    passages inside the music stay)."""
    n = max(1, int(TRIM_WINDOW_S * samplerate))
    windows = len(x) // n
    if windows < 2 or below_db <= 0:
        return 0, len(x)
    power = np.mean(np.square(x[: windows * n], dtype=np.float64).reshape(windows, n), axis=1)
    level = 10 * np.log10(power + 1e-20)
    loud = np.flatnonzero(level >= np.median(level) - below_db)
    start, end = loud[0] * n, (loud[-1] + 1) * n
    return start, (len(x) if loud[-1] == windows - 1 else end)


def load_song(path: str | Path, cfg: AudioConfig, min_samples: int = 0) -> Song:
    """Decode one file into a Song; `min_samples` is the shortest usable length at the model's rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    data, source_rate = _decode(path)
    if data.size == 0:
        raise AudioError(f"{path}: file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: file holds non-finite samples (NaN or inf); re-export it")
    source_peak = float(np.abs(data).max())
    mono = data.mean(axis=1, dtype=np.float64)  # (N,)
    if source_rate != cfg.samplerate:
        mono = soxr.resample(mono, source_rate, cfg.samplerate, quality="HQ")
    silent = 10 ** (SILENCE_DB / 20)
    if np.sqrt(np.mean(mono**2)) <= silent:
        raise AudioError(f"{path}: file is silent throughout (RMS below {SILENCE_DB:g} dBFS)")
    # DC blocker: an offset is no sound, and left in, it would be the loudest "bin" the model learns.
    mono = mono - mono.mean()
    if cfg.highpass_hz > 0:
        mono = highpass(mono, cfg.highpass_hz, cfg.samplerate)
    if np.sqrt(np.mean(mono**2)) <= silent:
        what = f"the {cfg.highpass_hz:g} Hz high-pass" if cfg.highpass_hz > 0 else "removing its DC offset"
        raise AudioError(f"{path}: file is silent after {what} (RMS below {SILENCE_DB:g} dBFS)")
    start, end = quiet_edges(mono, cfg.samplerate, cfg.trim_db)
    if end - start >= min_samples:  # a loop too short to lose its edges keeps them
        mono = mono[start:end]
    peak = float(np.abs(mono).max())
    if len(mono) < min_samples:
        raise AudioError(
            f"{path}: {len(mono) / cfg.samplerate:.2f} s is shorter than one training sequence "
            f"({min_samples / cfg.samplerate:.2f} s)"
        )
    # Peak-normalise: brings quiet recordings up and files that decode above 1.0 down, without clipping.
    samples = (mono * (10 ** (cfg.peak_db / 20) / peak)).astype(np.float32)
    return Song(
        name=path.stem,
        path=path,
        samples=samples,
        samplerate=cfg.samplerate,
        source_samplerate=source_rate,
        source_channels=data.shape[1],
        source_peak=source_peak,
    )


def load_songs(paths: list[str | Path], cfg: AudioConfig, min_samples: int = 0) -> list[Song]:
    """Decode every file named (folders expanded), in order."""
    return [load_song(p, cfg, min_samples) for p in expand_paths(paths)]


def write_audio(path: str | Path, samples: np.ndarray, samplerate: int, exact: bool = False) -> None:
    """Write float samples atomically: 16-bit WAV, or FLAC / Ogg Vorbis by suffix. `exact` keeps every bit
    (24-bit WAV or FLAC: 144 dB, and byte-identical files for identical audio, unlike float WAV)."""
    path = Path(path)
    fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_24" if exact else "PCM_16"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            sf.write(str(tmp), np.clip(samples, -1.0, 1.0), samplerate, format=fmt, subtype=subtype)
    except (OSError, sf.LibsndfileError) as exc:
        raise AudioError(f"{path}: cannot write audio ({exc})") from None
