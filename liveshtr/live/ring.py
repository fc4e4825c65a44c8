"""A preallocated single-producer/single-consumer float32 ring buffer between the producer thread and the
audio callback.

The producer writes any number of samples; the consumer (the callback) reads exactly one block at a time. The
capacity is a whole number of blocks, so every read starts on a block boundary and uses one of the views made
here up front: a read copies samples and moves an index, nothing more. Each index is written by one side only
and published after the data it covers, so no lock is needed (CPython makes the int store atomic).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, blocksize: int, n_blocks: int):
        if blocksize < 1 or n_blocks < 2:
            raise ValueError("a ring needs a positive blocksize and at least two blocks")
        self.blocksize = blocksize
        self.capacity = blocksize * n_blocks
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._blocks = [self._data[i * blocksize : (i + 1) * blocksize] for i in range(n_blocks)]
        self._written = 0  # total samples ever written (producer only)
        self._read = 0  # total samples ever read (consumer only)

    @property
    def available(self) -> int:
        """Samples written and not yet read."""
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - self.available

    def write(self, samples: np.ndarray) -> int:
        """Producer: append as many samples as fit; returns how many were written."""
        n = min(len(samples), self.free)
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: n - first] = samples[first:n]
        self._written += n  # publish after the copy
        return n

    def read_block(self, out: np.ndarray) -> bool:
        """Consumer: copy one block into `out` if a whole block is ready; False (and `out` untouched) otherwise."""
        if self._written - self._read < self.blocksize:
            return False
        out[:] = self._blocks[(self._read // self.blocksize) % len(self._blocks)]
        self._read += self.blocksize  # publish after the copy
        return True

    def drop(self) -> None:
        """Consumer: skip every whole block buffered (panic: stale audio must not play); reads stay aligned."""
        self._read += (self._written - self._read) // self.blocksize * self.blocksize
