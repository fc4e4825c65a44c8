"""Model bundles: a versioned folder `models/<name>/` with everything needed to run a trained model (no torch).

    model.onnx       the single-step graph (recurrent state and controls as named inputs/outputs)
    model.int8.onnx  the same graph with int8 weights (dynamic quantisation): the CPU engine's default
    model.json       format version, configs, normalisation and latent statistics, tensor names and shapes,
                     primes, file hashes and the training summary
    primes.npy       (n_primes, prime_frames, dim) float16 normalised frames taken from the song
    checkpoint.pt    training state for `liveshtr train --resume`
    loss.png, preview.wav, spectrogram.png   what the trainer shows a person

Loading checks the format version and that model.onnx and primes.npy are the very files model.json describes,
so a bundle left half-written by a crash is refused with a message rather than played.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveshtr.atomic import atomic_path
from liveshtr.config import AudioConfig, FrameConfig
from liveshtr.errors import LiveshtrError
from liveshtr.sound.frames import FrameStats
from liveshtr.sound.magnitude import MagnitudeLayout

FORMAT_VERSION = 3  # 3: the magnitude model alone; every prime's place in its own song; the pitch bins' step
# What older formats were, for the line that refuses them.
OLD_FORMATS = {1: "the coefficient model", 2: "the magnitude or the coefficient model, before format 3's fields"}
# model.json's fields that format 3 added to the sections format 2 had (a missing one is named when loading)
FORMAT_FIELDS = (("features", "pitch_step"), ("primes", "song_positions"), ("primes", "song_frames"))
MODEL_FILE, META_FILE, PRIMES_FILE = "model.onnx", "model.json", "primes.npy"
CHECKPOINT_FILE = "checkpoint.pt"
INT8_FILE = "model.int8.onnx"
HASHED_FILES = (MODEL_FILE, PRIMES_FILE)  # the files the engine runs; model.json records their sha256
OPTIONAL_HASHED = (INT8_FILE,)  # checked like the others when model.json lists them
BUNDLE_FILES = (
    MODEL_FILE,
    INT8_FILE,
    META_FILE,
    PRIMES_FILE,
    CHECKPOINT_FILE,
    "loss.png",
    "preview.wav",
    "spectrogram.png",
)
# May sit in a bundle: the demo's credits; serve --learn's log and the models it played as training went on.
EXTRA_FILES = ("ATTRIBUTION.md", "learn.log", "stages")


def folder_name(stem: str) -> str:
    """A bundle folder's name from a song's file name: lower-case letters, digits, '-' and '_'."""
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name or "model"


class BundleError(LiveshtrError):
    """A model bundle that cannot be used."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    meta: dict  # the parsed model.json
    audio: AudioConfig
    frames: FrameConfig
    stats: FrameStats
    latent_mean: np.ndarray  # (L,) float32
    latent_spread: np.ndarray  # (L,) float32
    primes: np.ndarray  # (n_primes, prime_frames, dim) float32, normalised
    output_gain: np.ndarray  # the output EQ: (n_bins,) on the magnitudes

    @property
    def layout(self) -> MagnitudeLayout:
        """The model's features: which bins and bands a frame's values are."""
        features = self.meta["features"]
        return MagnitudeLayout(
            self.frames.n_bins(self.audio.samplerate),
            self.frames.bin_hz(self.audio.samplerate),
            float(features["pitch_hz"]),
            int(features["bands"]),
            int(features["pitch_step"]),
        )

    @property
    def tempo(self) -> float | None:
        """The song's tempo in beats a minute, where the model has a clock input; else None."""
        clock = self.meta.get("clock")
        return float(clock["bpm"]) if clock else None

    @property
    def latent_scale(self) -> float:
        """The spread the latent is sampled with at temperature 1, relative to the prior's (from export)."""
        return float(self.meta.get("sampling", {}).get("latent_scale", 1.0))

    @property
    def latent_floor(self) -> float:
        """The latent's spread at temperature 0 (from export; 0 in bundles made before it: no sampling at all)."""
        return float(self.meta.get("sampling", {}).get("latent_floor", 0.0))

    @property
    def latent_growth(self) -> float:
        """Above temperature 1 the latent's spread grows as the temperature to this power (from export; 1 in bundles
        made before it)."""
        return float(self.meta.get("sampling", {}).get("latent_growth", 1.0))

    @property
    def noise_floor(self) -> float:
        """The share of the feature noise kept at temperature 0 (from export; 0 in bundles made before it)."""
        return float(self.meta.get("sampling", {}).get("noise_floor", 0.0))

    @property
    def contrast(self) -> float:
        """How much the output stage expands the partials against the valleys between them (1: as predicted;
        set by calibration, see `liveshtr.sound.tone`)."""
        return float(self.meta["calibration"].get("contrast", 1.0))

    @property
    def noise_scale(self) -> np.ndarray:
        """(dim,) the spread every feature's sampling noise gets at temperature 1, relative to the model's own
        (from export: pitch bins and bands each; ones while export has not yet calibrated it)."""
        scale = np.ones(self.dim, dtype=np.float32)
        if "noise" in self.meta["sampling"]:
            pitch, bands = self.meta["sampling"]["noise"]
            n = self.meta["features"]["pitch_bins"]
            scale[:n], scale[n:] = pitch, bands
        return scale

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def has_int8(self) -> bool:
        return INT8_FILE in self.meta["files"]

    def model_path(self, precision: str = "float32") -> Path:
        """The graph file for a precision; int8 needs a bundle exported with it."""
        if precision == "int8":
            if not self.has_int8:
                raise BundleError(
                    f"{self.path}: has no int8 graph (trained before int8 export); retrain it, "
                    "or use --precision float32"
                )
            return self.path / INT8_FILE
        return self.onnx_path

    @property
    def layers(self) -> int:
        return self.meta["model"]["layers"]

    @property
    def hidden(self) -> int:
        return self.meta["model"]["hidden"]

    @property
    def latent_dim(self) -> int:
        return self.meta["model"]["latent_dim"]

    @property
    def dim(self) -> int:
        """Values of one model frame: its features."""
        return self.meta["model"]["features"]

    @property
    def prime_beats(self) -> np.ndarray:
        """The beat count (modulo the bar) at each prime's first frame; zeros for a model without a clock."""
        beats = self.meta["primes"].get("beats") or [0.0] * len(self.meta["primes"]["positions"])
        return np.array(beats, dtype=np.float64)

    @property
    def prime_positions(self) -> np.ndarray:
        """Where each prime starts, as a fraction 0..1 of the training material."""
        return np.array(self.meta["primes"]["positions"], dtype=np.float64)

    def prime_song_place(self, index: int) -> tuple[float, float]:
        """Where prime `index` starts in its own song (0..1) and how far one frame moves on through that song."""
        primes = self.meta["primes"]
        return float(primes["song_positions"][index]), 1.0 / float(primes["song_frames"][index])


def load_bundle(path: str | Path) -> Bundle:
    """Load and check a bundle folder (or its model.json); raises BundleError with what to do."""
    path = Path(path)
    if path.name == META_FILE:
        path = path.parent
    if not path.is_dir():
        raise BundleError(f"{path}: no such model folder (train one with `liveshtr train SONG`)")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a model bundle ({META_FILE} missing; an interrupted first training?)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path}: unreadable ({exc})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version in OLD_FORMATS:
        kind = f"{meta['kind']} model" if isinstance(meta.get("kind"), str) else OLD_FORMATS[version]
        raise BundleError(
            f"{path}: a format {version} bundle ({kind}); this liveshtr reads format {FORMAT_VERSION}: retrain it "
            "with `liveshtr train` from its song"
        )
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version!r} is not supported (this liveshtr reads version "
            f"{FORMAT_VERSION}); retrain it with this version"
        )
    listed = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    for name in HASHED_FILES + tuple(n for n in OPTIONAL_HASHED if n in listed):
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing; retrain or restore the bundle")
        if sha256(file) != meta["files"][name]:
            raise BundleError(
                f"{path}: {name} does not match {META_FILE} (interrupted export or a file from another model); "
                "retrain or restore the bundle"
            )
    try:
        audio = AudioConfig(**meta["audio"])
        frames = FrameConfig(**meta["frames"])
        stats = FrameStats.from_dict(meta["stats"])
        latent_mean = np.asarray(meta["latent"]["mean"], dtype=np.float32)
        latent_spread = np.asarray(meta["latent"]["spread"], dtype=np.float32)
        primes = np.load(path / PRIMES_FILE, allow_pickle=False).astype(np.float32)
        gain_db = np.asarray(meta["calibration"]["gain_db"], dtype=np.float32)  # (n_bins,)
        output_gain = (10 ** (gain_db / 20)).astype(np.float32)
        bundle = Bundle(path, meta, audio, frames, stats, latent_mean, latent_spread, primes, output_gain)
        dim, latent, features = bundle.dim, bundle.latent_dim, bundle.layout.n_features
        missing = [key for section, key in FORMAT_FIELDS if key not in meta[section]]
        if missing:
            raise KeyError(", ".join(missing))  # reported below as a malformed model.json, naming the fields
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: {META_FILE} is incomplete or malformed ({exc})") from None
    n_bins = frames.n_bins(audio.samplerate)
    checks = {
        "model dim": (dim, features),
        "normalisation stats": (stats.mean.shape, (dim,)),
        "latent mean": (latent_mean.shape, (latent,)),
        "latent spread": (latent_spread.shape, (latent,)),
        "primes": (primes.shape[2:], (dim,)),
        "calibration": (output_gain.shape, (n_bins,)),
    }
    for what, (got, expected) in checks.items():
        if got != expected:
            raise BundleError(f"{path}: {what} has shape {got}, expected {expected}; the bundle is inconsistent")
    return bundle


def write_bundle_core(
    path: Path, meta: dict, onnx_bytes: bytes, primes: np.ndarray, int8_bytes: bytes | None = None
) -> None:
    """Write the graphs and primes.npy, then model.json (with their hashes) last, each atomically."""
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / MODEL_FILE) as tmp:
        tmp.write_bytes(onnx_bytes)
    if int8_bytes is not None:
        with atomic_path(path / INT8_FILE) as tmp:
            tmp.write_bytes(int8_bytes)
    with atomic_path(path / PRIMES_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, primes.astype(np.float16))
    write_meta(path, meta, with_int8=int8_bytes is not None)


def write_meta(path: Path, meta: dict, with_int8: bool) -> None:
    """Write model.json atomically, with the hashes of the graphs and primes already in `path` (export rewrites it
    alone as its calibrations fill it in)."""
    hashed = HASHED_FILES + ((INT8_FILE,) if with_int8 else ())
    meta = dict(meta, format_version=FORMAT_VERSION, files={n: sha256(path / n) for n in hashed})
    with atomic_path(path / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def check_output_folder(path: Path) -> str:
    """What the trainer may do with `path`: 'new', 'bundle' (holds a bundle or a started one), or refuse."""
    if not path.exists():
        return "new"
    if not path.is_dir():
        raise BundleError(f"{path}: exists and is not a folder; choose another -o")
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    if not names:
        return "new"
    foreign = sorted(names - set(BUNDLE_FILES) - set(EXTRA_FILES))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise BundleError(f"{path}: holds files that are not part of a model bundle ({shown}); choose another -o")
    return "bundle"
