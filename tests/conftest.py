"""Shared fixtures: the real recordings in ../shared/audio, decoded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveshtr.audio import load_song
from liveshtr.config import AudioConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
SONG_FILES = sorted(p for p in SHARED_AUDIO.glob("*") if p.suffix in (".mp3", ".ogg", ".wav", ".flac"))


def shared_song(name: str) -> Path:
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.fail(f"real-music test material missing: {path} (clone with ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def song_files() -> list[Path]:
    if len(SONG_FILES) < 5:
        pytest.fail(f"expected the five recordings of {SHARED_AUDIO}, found {len(SONG_FILES)}")
    return SONG_FILES


@pytest.fixture(scope="session")
def songs(song_files):
    """Every shared recording decoded at the default AudioConfig."""
    return [load_song(p, AudioConfig()) for p in song_files]
