"""Overlapped transfers, streams, the zero-copy path and the timed fake DMA (board environment).

The fake board's DMA here takes time in proportion to bytes (``bandwidth``) and reads an input
buffer only when its transfer completes, so a driver that packed into a buffer still in flight
would send corrupted frames: the equality tests below would see it (the last test shows the
fake does catch such a write).
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_dnn.errors import DataError, DmaError, DmaTimeoutError
from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.backends import StageTimes
from fpga_dnn.runtime.fake.models import FaultyModel, InstantModel, RecordingModel
from fpga_dnn.runtime.packing import to_fixed

#: c_sg_length_width 12: at most 4095 bytes per transfer = 63 input samples of 64 bytes
SMALL_DMA = 12
LIMIT = 4095 // 64


def open_sim(bundle, **kw):
    return Accelerator.open(bundle, backend="sim", allow_unsigned=True, **kw)   # generated test bundles


def sequential(acc, x):
    """The reference path: the whole batch converted first, then one transfer after another."""
    return acc._run(to_fixed(x, acc.spec.input.format), 0.0, decode=True)


@pytest.mark.parametrize("batch", [1, LIMIT, LIMIT + 1, 5 * LIMIT + 7])
def test_overlapped_predict_equals_sequential_bit_for_bit(digits_spec, make_bundle, reference, batch):
    bundle = make_bundle(digits_spec, sg_length_width=SMALL_DMA)
    rec_o, rec_s = RecordingModel(InstantModel(digits_spec)), RecordingModel(InstantModel(digits_spec))
    with open_sim(bundle, model=rec_o, bandwidth=200e6) as over, open_sim(bundle, model=rec_s) as seq:
        assert over.chunk_samples == over.samples_per_transfer == LIMIT
        x = over.random_inputs(batch, seed=batch)
        y = over.predict(x)
        y_seq = sequential(seq, x)
        assert y.dtype == np.float64 and y.shape == (batch, 10)
        assert y.tobytes() == y_seq.tobytes()
        np.testing.assert_array_equal(y, reference(digits_spec, x))
        # the same frames on the stream, in the same order
        assert rec_o.frames == rec_s.frames
        assert len(rec_o.frames) == -(-batch // LIMIT)
        q = over.predict_fixed(to_fixed(x, digits_spec.input.format))
        np.testing.assert_array_equal(q, to_fixed(y, digits_spec.output.format))
        assert not over.backend.fake.dma.violations


def test_stream_pieces_are_larger_by_default(digits_spec, make_bundle, reference):
    """A predict splits at 256 KiB, a stream at 1 MiB (both when chunk_bytes is not given; one
    given chunk_bytes sets both); a stream in 1 MiB pieces equals the reference."""
    from fpga_dnn.runtime.accelerator import CHUNK_BYTES, STREAM_CHUNK_BYTES

    rec = RecordingModel(InstantModel(digits_spec))
    bundle = make_bundle(digits_spec)
    with open_sim(bundle, model=rec) as acc:
        per = max(digits_spec.input.sample_bytes, digits_spec.output.sample_bytes)
        assert acc.chunk_samples == min(acc.samples_per_transfer, CHUNK_BYTES // per)
        assert acc.stream_chunk_samples == min(acc.samples_per_transfer, STREAM_CHUNK_BYTES // per) > acc.chunk_samples
        x = acc.random_inputs(acc.stream_chunk_samples + 5, seed=4)
        out = list(acc.predict_stream([x]))
        np.testing.assert_array_equal(out[0], reference(digits_spec, x))
        assert [len(f) // digits_spec.input.sample_bytes for f in rec.frames] == [acc.stream_chunk_samples, 5]
    with open_sim(bundle, chunk_bytes=64 * 100) as acc:
        assert acc.chunk_samples == acc.stream_chunk_samples == 100


def test_large_batches_overlap_below_the_dma_limit_too(digits_spec, make_bundle, reference):
    """A batch that fits one DMA transfer but exceeds chunk_bytes is still split and overlapped."""
    with open_sim(make_bundle(digits_spec), chunk_bytes=64 * 100) as acc:
        assert acc.chunk_samples == 100 < acc.samples_per_transfer
        x = acc.random_inputs(1234, seed=3)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        np.testing.assert_array_equal(acc.predict(x.astype(np.float32)), reference(digits_spec, x))
        dma = acc.backend.fake.dma
        assert len([t for t in dma.transfers if t.channel == "MM2S"]) == 2 * 13
        # both buffer slots carried transfers (alternating), none overlapped in flight
        assert len({t.address for t in dma.transfers if t.channel == "MM2S"}) == 2
        assert not dma.violations


def test_stream_yields_every_batch_in_order(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec, sg_length_width=SMALL_DMA), bandwidth=100e6) as acc:
        x = acc.random_inputs(500, seed=5)
        cuts = [0, 1, 1, 64, 200, 201, 500]   # sizes 1, 0, 63, 136, 1, 299
        batches = [x[a:b] for a, b in zip(cuts, cuts[1:])]
        out = list(acc.predict_stream(iter(batches)))
        assert [len(o) for o in out] == [len(b) for b in batches]
        np.testing.assert_array_equal(np.concatenate(out), reference(digits_spec, x))
        assert acc.samples == 500


def test_bad_batch_in_a_stream_raises_after_the_earlier_ones(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec, sg_length_width=SMALL_DMA)) as acc:
        x = acc.random_inputs(300, seed=6)
        bad = x[100:300].copy()
        bad[150, 7] = 0.5   # off the ufixed<5,5> grid, in the batch's third piece
        got = []
        with pytest.raises(DataError, match=r"first at index \(150, 7\)"):
            for y in acc.predict_stream([x[:100], bad, x[:5]]):
                got.append(y)
        assert len(got) == 1
        np.testing.assert_array_equal(got[0], reference(digits_spec, x[:100]))
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert not acc.backend.fake.dma.violations


@pytest.mark.parametrize("fault, error", [("stuck", DmaTimeoutError), ("short", DmaError)])
def test_dma_fault_mid_stream_raises_resets_and_the_next_call_works(digits_spec, make_bundle, reference,
                                                                     fault, error):
    model = FaultyModel(InstantModel(digits_spec), fault=fault, frames={3})
    with open_sim(make_bundle(digits_spec, sg_length_width=SMALL_DMA), model=model, timeout_s=0.2,
                  bandwidth=100e6) as acc:
        x = acc.random_inputs(LIMIT * 6, seed=7)
        got = []
        with pytest.raises(error):
            for y in acc.predict_stream([x[i * LIMIT:(i + 1) * LIMIT] for i in range(6)]):
                got.append(y)
        # frames 0-2 were whole batches and came back, in order; frame 3 failed; nothing after it
        assert len(got) == 3
        for i, y in enumerate(got):
            np.testing.assert_array_equal(y, reference(digits_spec, x[i * LIMIT:(i + 1) * LIMIT]))
        assert acc.backend.resets >= 1
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        np.testing.assert_array_equal(acc.predict(x[:2]), reference(digits_spec, x[:2]))


def test_a_stream_abandoned_early_leaves_no_transfer_in_flight(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec, sg_length_width=SMALL_DMA), bandwidth=50e6) as acc:
        x = acc.random_inputs(LIMIT * 4, seed=8)
        stream = acc.predict_stream([x[:LIMIT], x[LIMIT:2 * LIMIT], x[2 * LIMIT:]])
        next(stream)
        stream.close()   # a transfer of the second batch was in flight
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert not acc.backend.fake.dma.violations


def test_zero_copy_path(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec)) as acc:
        x = acc.random_inputs(777, seed=9)
        lanes = acc.input_buffer(777)
        assert lanes.shape == (777, 64) and lanes.dtype == np.uint8
        assert np.shares_memory(lanes, acc.backend.buffers(1, 1)[0])
        lanes[...] = to_fixed(x, digits_spec.input.format)
        np.testing.assert_array_equal(acc.run_buffer(777), reference(digits_spec, x))
        np.testing.assert_array_equal(acc.run_buffer(777, real=False),
                                      to_fixed(reference(digits_spec, x), digits_spec.output.format))
        with pytest.raises(DataError, match="zero-copy batches hold 1.."):
            acc.input_buffer(acc.samples_per_transfer + 1)


def test_encoder_refuses_what_to_fixed_refuses(digits_spec, make_bundle):
    """The block encoder's checks (cast, compare, range) against to_fixed's, value by value."""
    with open_sim(make_bundle(digits_spec), chunk_bytes=64 * 10) as acc:
        good = acc.random_inputs(40, seed=10)
        for bad_value, text in [(np.nan, "non-finite"), (np.inf, "non-finite"), (-np.inf, "non-finite"),
                                (32.0, "outside the range"), (-1.0, "outside the range"),
                                (255.0, "outside the range"), (256.0, "outside the range"),
                                (3.5, "not on the"), (1e30, "outside the range")]:
            for dtype in (np.float64, np.float32):
                x = good.astype(dtype)
                x[33, 5] = bad_value
                with pytest.raises(DataError, match=text):
                    acc.predict(x)
        x = good.copy()
        x[3, 3] = -0.0   # on the grid: accepted
        acc.predict(x)
        y = acc.predict(good + 0.25, rounding="floor")
        np.testing.assert_array_equal(y, acc.predict(good))
        y = acc.predict(np.clip(good * 3, 0, 40), overflow="saturate")
        np.testing.assert_array_equal(y, acc.predict(np.clip(good * 3, 0, 31)))


def test_the_timed_dma_takes_bytes_over_bandwidth(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec), bandwidth=20e6) as acc:
        x = acc.random_inputs(3000, seed=11)   # 192,000 input bytes: at least 9.6 ms at 20 MB/s
        acc.predict(x[:2])
        fake = acc.backend.fake
        t0 = fake.board_time()
        acc.predict(x)
        assert fake.board_time() - t0 >= 3000 * 64 / 20e6


def test_the_fake_catches_a_write_into_a_buffer_in_flight(digits_spec, make_bundle, reference):
    """The premise of the tests above: rewriting an input buffer during its transfer corrupts it."""
    with open_sim(make_bundle(digits_spec), bandwidth=10e6) as acc:
        be, n = acc.backend, 50
        isb, osb = digits_spec.input.sample_bytes, digits_spec.output.sample_bytes
        in_buf, out_buf = be.buffers(n * isb, n * osb, slot=1)
        x = acc.random_inputs(n, seed=12)
        in_buf[: n * isb] = to_fixed(x, digits_spec.input.format).astype(np.uint8).reshape(-1)
        start, finish = be.prepare_async(n * isb, n * osb, slot=1)
        t = start()
        in_buf[: n * isb] = 0                      # the host overwrites the buffer in flight
        be._slots[1][0][0].flush()                 # and flushes it to DRAM
        finish(t)
        got = acc._out_codec.decoder(out_buf[: n * osb].reshape(n, osb), n)()
        assert not np.array_equal(got, reference(digits_spec, x))
        np.testing.assert_array_equal(got, reference(digits_spec, np.zeros_like(x)))


def test_stage_times_are_accounted(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec), chunk_bytes=64 * 50) as acc:
        acc.times = StageTimes()
        acc.predict(acc.random_inputs(500))
        t = acc.times
        assert acc.calls == 1 and acc.samples == 500
        assert t.pack > 0 and t.transfer > 0 and t.unpack > 0


def test_fixed_point_stream(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec, sg_length_width=SMALL_DMA)) as acc:
        x = acc.random_inputs(400, seed=13)
        q = to_fixed(x, digits_spec.input.format).astype(np.uint8)
        out = list(acc.predict_stream([q[:150], q[150:]], fixed=True))
        assert [o.dtype for o in out] == [np.int64, np.int64]
        np.testing.assert_array_equal(np.concatenate(out), to_fixed(reference(digits_spec, x), digits_spec.output.format))
        with pytest.raises(DataError, match="outside ufixed<5,5>'s range"):
            list(acc.predict_stream([q[:10] + 40], fixed=True))
        with pytest.raises(DataError, match="takes integers"):
            list(acc.predict_stream([x[:10]], fixed=True))


def test_soak_short_run_loses_nothing_and_recovers_every_error():
    from fpga_dnn.runtime.soak import run_soak
    res = run_soak(samples=20_000, seed=3, error_rate=0.15, stall_rate=0.05, timeout_s=0.02)
    assert res["samples_received"] == 20_000 and res["mismatched_samples"] == 0
    assert res["errors_raised"] >= 5 and res["recovered"] == res["errors_raised"]
    assert res["dma_resets"] >= res["errors_raised"]
    assert res["samples_sent"] > 20_000   # retries resent what failed
    assert res["stream_calls"] > 0 and res["calls"] > res["stream_calls"]


def test_two_threads_convert_what_one_does(digits_spec, make_bundle, reference):
    """A stream's pieces converted by the caller and a worker thread (blocks shared) give the
    bytes one thread gives; a bad value in the first or the last block (either thread's) raises
    the documented error indexed in its batch; close() stops the worker."""
    rec1, rec2 = RecordingModel(InstantModel(digits_spec)), RecordingModel(InstantModel(digits_spec))
    bundle = make_bundle(digits_spec)
    with open_sim(bundle, model=rec1, threads=1) as one, open_sim(bundle, model=rec2, threads=2) as two:
        assert (one.threads, two.threads) == (1, 2)
        x = two.random_inputs(2 * two.stream_chunk_samples + 3, seed=14)
        batches = [x[:5000], x[5000:]]
        out1 = list(one.predict_stream(batches))
        out2 = list(two.predict_stream(batches))
        assert two._pool is not None and one._pool is None
        assert two._pool.calls[True] >= 1   # the first large piece is shared (then the faster way is kept)
        assert rec1.frames == rec2.frames
        for a, b in zip(out1, out2):
            assert a.tobytes() == b.tobytes()
        np.testing.assert_array_equal(np.concatenate(out2), reference(digits_spec, x))
        big = x[5000:]
        for where in (3, len(big) - 2):   # a block the caller takes first, and the last one
            bad = big.copy()
            bad[where, 9] = 40.0
            with pytest.raises(DataError, match=rf"first at index \({where}, 9\)"):
                list(two.predict_stream([x[:10], bad]))
        np.testing.assert_array_equal(two.predict(x), reference(digits_spec, x))   # the next call works
        workers = list(two._pool._pool._threads)
    assert workers and two._pool is None   # closed: the worker stopped
    assert not [t for t in workers if t.is_alive()]
    for bad in (0, 3, True, "2"):
        with pytest.raises(DataError, match="threads must be 1 .* or 2"):
            Accelerator(digits_spec, None, threads=bad)


def test_a_worker_that_does_not_run_does_not_hold_the_caller_up(digits_spec):
    """The caller takes every block the worker has not: with the worker busy elsewhere (as
    when the OS does not schedule it) encode still completes, and writes every byte."""
    import threading

    from fpga_dnn.runtime.packing import SPLIT_ELEMENTS, ConversionWorker, PortCodec, encoder, pack

    class AlwaysShare(ConversionWorker):
        def share(self) -> bool:
            return True

    codec = PortCodec(digits_spec.input)
    n = 2 * SPLIT_ELEMENTS // codec.elements
    x = np.random.default_rng(15).integers(0, 32, size=(n, 64)).astype(np.float64)
    rows = np.full((n, codec.sample_bytes), 0xA5, dtype=np.uint8)
    release = threading.Event()
    pool = AlwaysShare()
    blocker = pool.submit(release.wait, 60)   # the worker is busy until released
    encoder(codec, rows, n, pool=pool)(x)
    assert not blocker.done()   # encode returned while the worker was still held
    release.set()
    pool.shutdown()
    assert rows.tobytes() == pack(to_fixed(x, digits_spec.input.format), digits_spec.input).tobytes()


def test_the_worker_is_used_when_it_is_faster():
    """ConversionWorker measures both ways first, then keeps the faster and retries the other
    every RETRY calls."""
    from fpga_dnn.runtime.packing import ConversionWorker

    w = ConversionWorker()
    try:
        first, second = w.share(), w.share()
        assert (first, second) == (True, True)   # nothing measured yet: shared first
        w.record(True, 2.0, 1000)
        assert w.share() is False                 # then alone, to compare
        w.record(False, 1.0, 1000)                # alone is faster (a loaded machine)
        picks = [w.share() for _ in range(4 * w.RETRY)]
        assert picks.count(True) == 4 and picks.count(False) == 4 * w.RETRY - 4
        w.record(True, 0.1, 1000)                 # sharing got faster (the load went away)
        w.record(True, 0.1, 1000)
        w.record(True, 0.1, 1000)
        picks = [w.share() for _ in range(w.RETRY)]
        assert picks.count(True) == w.RETRY - 1
    finally:
        w.shutdown()
