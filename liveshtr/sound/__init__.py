"""Sound: audio files <-> signals <-> frames (numpy, scipy, soundfile, soxr).

Decoding and writing audio, the analysis/synthesis frame codec, and the resampler. Used by training and by the
live engine alike, so it imports nothing of ours but the leaf modules (`config`, `errors`, `atomic`), and never torch.
"""
