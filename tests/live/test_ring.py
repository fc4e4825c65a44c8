"""The ring between producer and audio callback: order preserved, whole blocks only, nothing allocated per read."""

from __future__ import annotations

import tracemalloc

import numpy as np

from liveshtr.live.ring import RingBuffer


def test_samples_come_out_in_order_in_whole_blocks():
    ring = RingBuffer(blocksize=64, n_blocks=4)
    source = np.arange(10_000, dtype=np.float32)
    out, got, written = np.empty(64, np.float32), [], 0
    while len(got) * 64 < 9_000:
        written += ring.write(source[written : written + 100])  # hops of another size than the block
        while ring.read_block(out):
            got.append(out.copy())
    np.testing.assert_array_equal(np.concatenate(got), source[: len(got) * 64])
    assert ring.available < 64 + 100 and ring.free == ring.capacity - ring.available


def test_a_short_ring_refuses_more_than_it_holds_and_reports_underrun():
    ring = RingBuffer(blocksize=32, n_blocks=2)
    assert ring.write(np.ones(100, np.float32)) == 64
    out = np.full(32, 7.0, np.float32)
    assert ring.read_block(out) and ring.read_block(out)
    assert not ring.read_block(out)  # underrun: nothing whole to read, and out is left as it was
    np.testing.assert_array_equal(out, 1.0)


def test_drop_skips_buffered_blocks_and_keeps_alignment():
    ring = RingBuffer(blocksize=16, n_blocks=8)
    ring.write(np.arange(40, dtype=np.float32))
    ring.drop()
    assert ring.available == 8
    ring.write(np.arange(40, 64, dtype=np.float32))
    out = np.empty(16, np.float32)
    assert ring.read_block(out)
    np.testing.assert_array_equal(out, np.arange(32, 48))


def test_reading_a_block_allocates_no_array():
    ring = RingBuffer(blocksize=256, n_blocks=8)
    out = np.empty(256, np.float32)
    ring.write(np.ones(2048, np.float32))
    ring.read_block(out)  # warm up
    tracemalloc.start()
    for _ in range(5000):
        ring.write(out)
        ring.read_block(out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 256 * 4  # less than one block: only transient index integers, never sample buffers
