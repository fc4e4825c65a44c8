"""Listening in numbers: what the quality tests and docs/quality.md measure.

`spectral` (numpy and scipy only) measures level, movement, repetition and the long-term spectrum; `music` (the
`quality` extra: librosa and basic-pitch) measures beat, onsets, notes, tonality and copying, and builds the two
noises every song's figures are compared with; `report` renders trained bundles and prints the table
(`liveshtr quality`, `make quality-report`). Nothing here is on the serving path.
"""

from liveshtr.analysis.spectral import (
    band_spectrogram,
    ltas_db,
    max_repeat_correlation,
    movement_db,
    signature_distance_db,
    third_octave_edges,
    window_rms_db,
)

__all__ = [
    "band_spectrogram",
    "ltas_db",
    "max_repeat_correlation",
    "movement_db",
    "signature_distance_db",
    "third_octave_edges",
    "window_rms_db",
]
