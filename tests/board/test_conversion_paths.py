"""The runtime's fast float -> fixed conversions equal the reference one bit for bit (board env).

The reference is :func:`~fpga_dnn.runtime.packing.to_fixed` + :func:`~fpga_dnn.runtime.packing.pack`
(float64, one array operation per rule). The fast paths — the prepared batch call of ``predict``
(small batches: float32 checked in float32 where :func:`f32_exact` allows, same-shape constants;
large batches) and the block encoder of the overlapped/stream path (alone, and with its blocks
shared with a worker thread) — must write the same bytes
into the DMA buffer when the reference accepts an input, and raise the reference's own error
(same message) when it refuses one. Inputs: random on-grid values, ties at half an LSB,
off-grid values, values just outside the range, huge values, NaN, +-inf and -0.0, in float64
and float32, for every rounding and overflow policy, on formats narrower than, as wide as and
(fixed<26,26>: float32 steps by 2 above 2**24) wider than float32 holds exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_dnn.errors import DataError
from fpga_dnn.runtime.packing import (BLOCK_ELEMENTS, OVERFLOW_POLICIES, ROUNDING_POLICIES, SPLIT_ELEMENTS,
                                      ConversionWorker, PortCodec, encoder, f32_exact, int_range, pack, prepared_call,
                                      to_fixed)
from fpga_dnn.runtime.spec import Spec

FORMATS = ["ufixed<5,5>", "fixed<8,3>", "ufixed<12,2>", "fixed<16,6>", "fixed<21,21>", "fixed<26,26>"]
KINDS = ["on_grid", "ties", "off_grid", "out_of_range", "huge", "nan", "inf", "neg_zero"]
N_EL = 20


def inputs(fmt, kind: str, batch: int, seed: int) -> np.ndarray:
    """``batch`` samples of ``N_EL`` values: on the grid, with a few of ``kind`` among them."""
    rng = np.random.default_rng(seed)
    lo, hi = int_range(fmt)
    step = 2.0 ** -fmt.frac
    q = rng.integers(lo, hi + 1, size=(batch, N_EL))
    if hi >= 1 << 22:   # where float32 stops holding every integer and every tie
        q[:, : N_EL // 2] = rng.integers((1 << 23) - 8, (1 << 23) + 8, size=(batch, N_EL // 2))
    x = q * step
    at = (rng.integers(0, batch, 3), rng.integers(0, N_EL, 3))
    if kind == "ties":
        x = (q + rng.choice([-0.5, 0.5], size=q.shape)) * step   # every element a tie
    elif kind == "off_grid":
        x[at] += step / 3
    elif kind == "out_of_range":
        x[at] = np.array([hi + 1, lo - 1, hi + 0.5]) * step
    elif kind == "huge":
        x[at] = [1e30, -1e30, 2.0 ** 40]
    elif kind == "nan":
        x[at] = np.nan
    elif kind == "inf":
        x[at] = [np.inf, -np.inf, np.inf]
    elif kind == "neg_zero":
        x[at] = -0.0
    return x


def reference(x, port, overflow, rounding):
    """``(bytes, None)`` or ``(None, error message)`` of to_fixed + pack."""
    try:
        return pack(to_fixed(x, port.format, overflow=overflow, rounding=rounding), port).tobytes(), None
    except DataError as err:
        return None, str(err)


class AlwaysShare(ConversionWorker):
    """A worker that shares every call (the real one picks the faster way as it runs)."""

    def share(self) -> bool:
        return True


POOL = AlwaysShare()


def run_path(path: str, x, port, overflow, rounding):
    """``(bytes, None)`` or ``(None, error message)`` of one fast path on a fresh buffer."""
    codec = PortCodec(port)
    batch = len(x)
    rows = np.full((batch, port.sample_bytes), 0xA5, dtype=np.uint8)   # junk: everything must be written
    try:
        if path == "encoder":
            encoder(codec, rows, batch, overflow=overflow, rounding=rounding)(x)
        elif path == "shared":   # blocks shared with a worker thread
            assert batch * N_EL >= SPLIT_ELEMENTS
            encoder(codec, rows, batch, overflow=overflow, rounding=rounding, pool=POOL)(x)
        else:
            out_rows = np.zeros((batch, port.sample_bytes), dtype=np.uint8)
            call = prepared_call(codec, codec, rows, out_rows, x.shape, lambda: 0.0, [], lambda: None,
                                 overflow=overflow, rounding=rounding)
            call(x, 0.0)
    except DataError as err:
        return None, str(err)
    return rows.tobytes(), None


@pytest.mark.parametrize("fmt_text", FORMATS)
def test_fast_conversions_equal_to_fixed_bit_for_bit(fmt_text):
    spec = Spec.create("conv", (N_EL,), fmt_text, (N_EL,), fmt_text, 1, stream_bits=64)
    port = spec.input
    checked = refused = 0
    # batches: one sample; a small prepared batch; a large prepared batch over two encoder blocks;
    # one whose encoder blocks are shared with a worker thread
    shared_batch = SPLIT_ELEMENTS // N_EL + 7
    for batch in (1, 700, BLOCK_ELEMENTS // N_EL + 7, shared_batch):
        paths = ("shared",) if batch == shared_batch else ("prepared", "encoder")
        for kind in KINDS:
            x64 = inputs(port.format, kind, batch, seed=batch + len(kind))
            for x in (x64, x64.astype(np.float32)):
                for overflow in OVERFLOW_POLICIES:
                    for rounding in ROUNDING_POLICIES:
                        want = reference(x, port, overflow, rounding)
                        for path in paths:
                            got = run_path(path, x, port, overflow, rounding)
                            assert got == want, (path, fmt_text, kind, x.dtype, overflow, rounding, batch)
                        checked += 1
                        refused += want[0] is None
    # the inputs exercise both outcomes: accepted conversions and refusals
    assert checked == 4 * len(KINDS) * 2 * len(OVERFLOW_POLICIES) * len(ROUNDING_POLICIES)
    assert 0 < refused < checked


def test_float32_path_is_taken_only_where_exact():
    """fixed<21,21> is checked in float32; fixed<26,26> not: there float32's ``v + 0.5`` rounds a
    tie to even (2**23 + 1.5 -> 2**23 + 2) where float64 keeps it, so nearest_up would differ."""
    def codec(fmt_text):
        return PortCodec(Spec.create("c", (4,), fmt_text, (4,), fmt_text, 1).input)

    assert f32_exact(codec("fixed<21,21>")) and f32_exact(codec("ufixed<5,5>"))
    assert not f32_exact(codec("fixed<26,26>")) and not f32_exact(codec("fixed<8,10>"))   # scale 1/4
    v = np.float32(2 ** 23 + 1)
    assert np.floor(v + np.float32(0.5)) != np.floor(np.float64(v) + 0.5)   # the hazard the guard avoids
