"""Fixed-point conversion and AXI-Stream beat packing — the one definition of the beat layout.

Beat layout (``fpga_dnn-lanes-v1``)
-----------------------------------
This is the single statement of how samples travel over AXI-Stream between the host (DMA
buffers) and the RTL shell (``sim/axis_shell.v``); ``sim/README.md`` repeats it for hardware
readers. The spec (:mod:`fpga_dnn.runtime.spec`) records its parameters per port.

1. **Elements.** A sample is its tensor flattened in C order; element 0 is ``x.flat[0]``. Each
   element is a fixed-point integer ``q`` of the port's format (ap_fixed convention:
   ``value = q * 2**-(width - integer)``, ``width`` total bits, ``integer`` bits including the
   sign bit for signed formats).
2. **Lanes.** Each element occupies a *lane* of L = 8, 16 or 32 bits, the smallest that holds
   ``width``. ``q`` is sign-extended (signed format) or zero-extended (unsigned) to L bits.
3. **Bytes.** Lanes are little-endian and back to back: element ``i`` is bytes
   ``[i*L/8, (i+1)*L/8)`` of the sample.
4. **Beats.** With a stream of W bits (``tdata`` width; 32 or 64 for the boards' AXI DMA, wider
   in simulation), a sample is ``B = ceil(N*L / W)`` beats: its bytes are zero-padded to
   ``B*W/8``, so **every sample starts at a beat boundary**. Byte ``j`` of a beat is
   ``tdata[8j+7:8j]`` (AXI byte order, so a little-endian DMA buffer is the byte string
   itself).
5. **Frames.** A frame is one DMA transfer: one or more whole samples back to back. ``tlast``
   is high on the last beat of the frame. The shell keeps framing: the output sample of an
   input sample whose last beat carried ``tlast`` ends with ``tlast``, so an output transfer
   of the same sample count completes exactly.

What the receiver (the RTL shell) does with the slack: bits of a lane above ``width`` and
padding bytes are ignored; a ``tlast`` before a sample's last beat ends that sample early and
its missing beats read as zero, so the next transfer starts aligned again. The host never sends
partial samples; that rule only keeps one bad transfer from misaligning every later one.

Consequently, the DMA input buffer for a batch is ``pack(q)`` — the samples' padded byte strings
concatenated — and the output buffer unpacks with :func:`unpack`.

Only numpy and the standard library are imported here (the board runtime runs on Python 3.10
with numpy 1.21+). All functions are vectorised over the batch; see ``sim/README.md`` for a
speed check.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from fpga_dnn.errors import DataError

if TYPE_CHECKING:  # imported for type hints only: spec imports this module
    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.runtime.spec import PortSpec

#: Name recorded in the spec so a reader can refuse a layout it does not know.
BEAT_LAYOUT = "fpga_dnn-lanes-v1"

#: Lane sizes in bits, smallest first.
LANE_BITS = (8, 16, 32)

#: Out-of-range policies of :func:`to_fixed`.
OVERFLOW_POLICIES = ("raise", "saturate")

#: Rounding policies of :func:`to_fixed`. ``exact`` (default) refuses values off the grid.
#: ``nearest_even`` is ap_fixed's AP_RND_CONV, ``nearest_up`` its AP_RND (ties toward +inf),
#: ``floor`` its AP_TRN.
ROUNDING_POLICIES = ("exact", "nearest_even", "nearest_up", "floor")

_LANE_DTYPES = {
    (8, True): np.dtype("<i1"), (16, True): np.dtype("<i2"), (32, True): np.dtype("<i4"),
    (8, False): np.dtype("<u1"), (16, False): np.dtype("<u2"), (32, False): np.dtype("<u4"),
}


def lane_bits_for(width: int) -> int:
    """The lane size for an element of ``width`` bits: the smallest of 8, 16, 32 that holds it."""
    for lane in LANE_BITS:
        if width <= lane:
            return lane
    raise DataError(f"fixed-point width {width} exceeds the widest lane (32 bits)")


def beats_per_sample(elements: int, lane_bits: int, stream_bits: int) -> int:
    """``ceil(elements * lane_bits / stream_bits)``: beats one sample takes on the stream."""
    return -(-(elements * lane_bits) // stream_bits)


def int_range(fmt: "FixedFormat") -> tuple:
    """``(lowest, highest)`` integer ``q`` of ``fmt``: two's complement when signed."""
    if fmt.signed:
        return -(1 << (fmt.width - 1)), (1 << (fmt.width - 1)) - 1
    return 0, (1 << fmt.width) - 1


def lane_dtype(fmt: "FixedFormat") -> np.dtype:
    """The little-endian numpy integer type of one lane of ``fmt`` (signed iff ``fmt`` is)."""
    return _LANE_DTYPES[(lane_bits_for(fmt.width), bool(fmt.signed))]


# ---------------------------------------------------------------------------------------------
# float <-> fixed-point integers
# ---------------------------------------------------------------------------------------------

def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    idx = np.unravel_index(int(np.argmax(mask)), mask.shape) if mask.ndim else ()
    return f"{int(mask.sum())} value(s), first at index {tuple(int(i) for i in idx)}: {values[idx].item()!r}"


def to_fixed(x, fmt: "FixedFormat", overflow: str = "raise", rounding: str = "exact") -> np.ndarray:
    """Convert real values to ``fmt``'s integers ``q`` (``value = q * 2**-frac``), as int64.

    Policies (documented once here, used by the runtime's ``predict``):

    * ``rounding='exact'`` (default): every value must lie on the format's grid (a multiple of
      ``2**-frac``), else :class:`DataError`. Quantized models are fed quantized data, so an
      off-grid value is usually a preprocessing bug that rounding would hide. Ask for
      ``'nearest_even'``, ``'nearest_up'`` or ``'floor'`` to round instead.
    * ``overflow='raise'`` (default): a value outside ``[fmt.min_value, fmt.max_value]`` (after
      rounding) raises :class:`DataError`; ``'saturate'`` clips it to the nearest end.
      The hardware itself would silently wrap, which is never what a user wants.
    * NaN and infinities always raise.
    """
    if overflow not in OVERFLOW_POLICIES:
        raise DataError(f"unknown overflow policy {overflow!r}; known: {', '.join(OVERFLOW_POLICIES)}")
    if rounding not in ROUNDING_POLICIES:
        raise DataError(f"unknown rounding policy {rounding!r}; known: {', '.join(ROUNDING_POLICIES)}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise DataError(f"expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        raise DataError(f"non-finite input: {_first_bad(~finite, arr)}")
    scaled = arr * (2.0 ** fmt.frac)  # a power of two: exact in float64
    if rounding == "exact":
        q = np.floor(scaled)
        off = q != scaled
        if off.any():
            raise DataError(
                f"inputs not on the {fmt} grid (step {fmt.step!r}): {_first_bad(off, arr)}; "
                "quantize them or pass a rounding policy"
            )
    elif rounding == "nearest_even":
        q = np.rint(scaled)
    elif rounding == "nearest_up":
        q = np.floor(scaled + 0.5)
    else:
        q = np.floor(scaled)
    lo, hi = int_range(fmt)
    out_of_range = (q < lo) | (q > hi)
    if out_of_range.any():
        if overflow == "raise":
            raise DataError(
                f"inputs outside the range of {fmt} [{fmt.min_value!r}, {fmt.max_value!r}]: "
                f"{_first_bad(out_of_range, arr)}; pass overflow='saturate' to clip"
            )
        q = np.clip(q, lo, hi)
    return q.astype(np.int64)


def from_fixed(q, fmt: "FixedFormat") -> np.ndarray:
    """Real values (float64) of ``fmt``'s integers ``q``: ``q * 2**-frac``, exact for width <= 32."""
    return np.asarray(q).astype(np.float64) * (2.0 ** -fmt.frac)


# ---------------------------------------------------------------------------------------------
# integers <-> packed beats
# ---------------------------------------------------------------------------------------------

def _batch_2d(q: np.ndarray, port: "PortSpec") -> np.ndarray:
    n = port.elements
    if q.ndim >= 1 and q.shape[1:] in (tuple(port.shape), (n,)):
        return q.reshape(q.shape[0], n)
    raise DataError(
        f"expected a batch of shape (batch, {', '.join(map(str, port.shape))}) or (batch, {n}), "
        f"got {q.shape}"
    )


def _as_bytes(buf: np.ndarray) -> np.ndarray:
    if not isinstance(buf, np.ndarray) or buf.dtype.kind not in "ui" or not buf.flags.c_contiguous:
        raise DataError("buffer must be a C-contiguous numpy integer array (e.g. a DMA buffer)")
    return buf.reshape(-1).view(np.uint8)


def pack(q, port: "PortSpec", out: Optional[np.ndarray] = None) -> np.ndarray:
    """Pack a batch of integers into the beat layout; returns bytes shaped (batch, sample_bytes).

    ``q``: integers of ``port.format``, shape ``(batch, *port.shape)`` or ``(batch, elements)``.
    Values outside the format's integer range raise :class:`DataError` (the shell would
    silently drop the high bits). ``out``: an existing C-contiguous integer buffer of at least
    ``batch * port.sample_bytes`` bytes (e.g. a DMA buffer of uint32/uint64 words) to write into
    without allocating; the returned array is then a uint8 view of its start.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise DataError(f"pack expects integers (use to_fixed first), got dtype {q.dtype}")
    q2 = _batch_2d(q, port)
    batch = q2.shape[0]
    fmt = port.format
    fmt_lo, fmt_hi = int_range(fmt)
    if q2.size and not (q2.dtype == lane_dtype(fmt) and fmt.width == 8 * q2.dtype.itemsize):
        # (integers of the lane type as wide as the format are all in range: nothing to check)
        lo, hi = int(q2.min()), int(q2.max())
        if lo < fmt_lo or hi > fmt_hi:
            raise DataError(f"integers outside {fmt}'s range [{fmt_lo}, {fmt_hi}]: min {lo}, max {hi}")
    sample_bytes = port.sample_bytes
    data_bytes = port.elements * port.lane_bits // 8
    if out is None:
        flat = np.empty(batch * sample_bytes, dtype=np.uint8)
    else:
        flat = _as_bytes(out)
        if flat.size < batch * sample_bytes:
            raise DataError(f"output buffer holds {flat.size} bytes, {batch * sample_bytes} needed")
        flat = flat[: batch * sample_bytes]
    dst = flat.reshape(batch, sample_bytes)
    # ascontiguousarray, not astype: astype keeps a Fortran-ordered input's layout (fancy
    # indexing produces those), and a byte view needs C order
    lanes = np.ascontiguousarray(q2, dtype=lane_dtype(fmt))
    dst[:, :data_bytes] = lanes.view(np.uint8).reshape(batch, data_bytes)
    if data_bytes < sample_bytes:
        dst[:, data_bytes:] = 0
    return dst


def unpack(buf, port: "PortSpec", batch: Optional[int] = None) -> np.ndarray:
    """Integers (int64, shape ``(batch, *port.shape)``) from beat-layout bytes of ``port``.

    ``buf``: any C-contiguous integer array (uint8 bytes, uint32/uint64 DMA words, or the result
    of :func:`pack`). ``batch`` defaults to as many whole samples as ``buf`` holds. Only each
    lane's low ``width`` bits count (re-extended by the format's sign), like the RTL shell.
    """
    flat = _as_bytes(np.asarray(buf))
    sample_bytes = port.sample_bytes
    if batch is None:
        if flat.size % sample_bytes:
            raise DataError(f"buffer of {flat.size} bytes is not whole samples of {sample_bytes} bytes")
        batch = flat.size // sample_bytes
    elif flat.size < batch * sample_bytes:
        raise DataError(f"buffer of {flat.size} bytes holds fewer than {batch} samples")
    fmt = port.format
    dt = lane_dtype(fmt)
    n, lane_bytes = port.elements, dt.itemsize
    rows = flat[: batch * sample_bytes].reshape(batch, sample_bytes)
    if sample_bytes % lane_bytes == 0:  # C-contiguous view: works on numpy 1.21 too
        lanes = rows.view(dt)[:, :n]
    else:
        lanes = np.ascontiguousarray(rows[:, : n * lane_bytes]).view(dt)
    spare = 8 * lane_bytes - fmt.width
    if spare:
        if fmt.signed:  # arithmetic shifts re-extend the sign from bit width-1
            lanes = (lanes << dt.type(spare)) >> dt.type(spare)
        else:
            lanes = lanes & dt.type((1 << fmt.width) - 1)
    return lanes.astype(np.int64).reshape((batch,) + tuple(port.shape))


def encode(x, port: "PortSpec", overflow: str = "raise", rounding: str = "exact",
           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Real values → packed bytes: :func:`to_fixed` then :func:`pack` (policies as there)."""
    return pack(to_fixed(x, port.format, overflow=overflow, rounding=rounding), port, out=out)


def decode(buf, port: "PortSpec", batch: Optional[int] = None) -> np.ndarray:
    """Packed bytes → real values (float64): :func:`unpack` then :func:`from_fixed`."""
    return from_fixed(unpack(buf, port, batch), port.format)


# ---------------------------------------------------------------------------------------------
# precompiled per-port codec: the runtime's hot path
# ---------------------------------------------------------------------------------------------

#: Batches of at most this many elements keep their float64 scratch arrays between calls
#: (larger ones allocate them per call) and are compared as byte strings.
SMALL_BATCH_ELEMENTS = 1 << 14

_ROUNDING_UFUNC = {"exact": None, "nearest_even": np.rint, "floor": np.floor, "nearest_up": np.floor}


class PortCodec:
    """One port's format and beat layout, precomputed for the runtime's per-call path.

    Everything that depends only on the port — scale, integer bounds, lane type, sign
    extension, whether lanes can be viewed in place in a DMA buffer — is computed here once.
    :meth:`decoder` and :func:`prepared_call` bind it to views of one DMA buffer for one batch
    shape, so that a call is a handful of numpy operations on preallocated arrays. Semantics are
    those of :func:`to_fixed` + :func:`pack` and :func:`unpack` + :func:`from_fixed`.
    """

    def __init__(self, port: "PortSpec"):
        fmt = port.format
        self.port = port
        self.format = fmt
        self.shape = tuple(port.shape)
        self.elements = port.elements
        self.lane_dtype = np.dtype(port.lane_dtype)
        self.lane_bytes = self.lane_dtype.itemsize
        self.sample_bytes = port.sample_bytes
        self.data_bytes = port.data_bytes
        self.lo, self.hi = int_range(fmt)
        self.scale = 2.0 ** fmt.frac   # powers of two: exact in float64
        self.step = 2.0 ** -fmt.frac
        self.spare = 8 * self.lane_bytes - fmt.width
        #: lanes can be viewed in place in a (batch, sample_bytes) buffer
        self.direct = self.sample_bytes % self.lane_bytes == 0

    def lanes_view(self, rows: np.ndarray, shape: Optional[tuple] = None) -> Optional[np.ndarray]:
        """The lanes of ``rows`` (uint8, ``(batch, sample_bytes)``, C-contiguous) as a view of
        the lane type shaped ``shape`` (default ``(batch, elements)``); ``None`` when the layout
        does not allow a view (a sample size that is not whole lanes)."""
        if not self.direct:
            return None
        lanes = rows.view(self.lane_dtype)[:, : self.elements]
        if shape is not None:
            lanes = lanes.reshape(shape)   # splits the last axis: a view (checked, to be sure)
        return lanes if np.shares_memory(lanes, rows) else None

    # -- DMA buffer -> integers / real values ---------------------------------------------------------
    def decoder(self, rows: np.ndarray, batch: int, real: bool = True) -> Callable[[], np.ndarray]:
        """``decode()``: the samples in ``rows`` (uint8 ``(batch, sample_bytes)``) as a new array
        of shape ``(batch, *shape)``: real values (float64, :func:`unpack` + :func:`from_fixed`)
        or with ``real=False`` the integers (int64, :func:`unpack`). Only each lane's low
        ``width`` bits count (re-extended by the format's sign), as in the RTL shell."""
        port, fmt, shape = self.port, self.format, (batch,) + self.shape
        lanes = self.lanes_view(rows, shape)
        if lanes is None:
            if real:
                return lambda: from_fixed(unpack(rows, port, batch), fmt)
            return lambda: unpack(rows, port, batch)
        spare, dt, step = self.spare, self.lane_dtype, self.step
        mul, astype_int = np.multiply, np.int64
        if not spare:
            if real:
                return lambda: mul(lanes, step)
            return lambda: lanes.astype(astype_int)
        if fmt.signed:  # arithmetic shifts re-extend the sign from bit width-1
            sh = dt.type(spare)
            lsh, rsh = np.left_shift, np.right_shift

            def lanes_of():
                t = lsh(lanes, sh)
                return rsh(t, sh, out=t)
        else:
            mask, band = dt.type((1 << fmt.width) - 1), np.bitwise_and

            def lanes_of():
                return band(lanes, mask)
        if real:
            return lambda: mul(lanes_of(), step)
        return lambda: lanes_of().astype(astype_int)


#: Elements converted per block by :func:`encoder`: large enough that the block's dozen numpy
#: calls (about 7 us of fixed cost) are small against its data, small enough that its scratch
#: arrays (the read-back values, the lanes, a bool mask: 10 bytes per element, 640 KiB) stay in
#: cache. Measured on the bench machine (x86, 100,000-sample float64 stream on the timed fake
#: DMA, medians of 3): 1 << 14: 0.49, 1 << 15: 0.49, 1 << 16: 0.54, 1 << 17: 0.56 of the DMA
#: bound; 1 << 16 keeps the working set nearer a Cortex-A9's 512 KiB L2.
BLOCK_ELEMENTS = 1 << 16


def f32_exact(codec: PortCodec) -> bool:
    """Whether float32 input can be scaled, rounded, clipped and checked in float32 with the
    float64 path's results: the scale is at least 1 (a power of two: the product is exact
    unless it overflows, and an overflow fails the check), and every integer of the format is
    below 2**22 — exactly representable, and ``v + 0.5`` (``'nearest_up'``) exact for every
    ``v`` of the range (at 2**23 float32 steps by 1 and would round the tie)."""
    return codec.scale >= 1.0 and max(-codec.lo, codec.hi) < (1 << 22)


class ConversionWorker:
    """One worker thread for :func:`encoder`, and the choice, call by call, whether to use it.

    Sharing a piece's blocks with a worker halves its conversion on a machine with a core to
    spare; on an oversubscribed one it is slower than one thread (measured on the bench host at
    a load average of 9 on 2 cores: 0.075 against 0.148 of the DMA bound), because a worker the
    OS preempts while it holds the GIL stalls the caller's next numpy call. So each shared-able
    call is timed (seconds per element, an average over recent calls) with and without the
    worker, the faster way is taken, and the other is tried again every :attr:`RETRY` calls.
    """

    #: Calls between two tries of the way not taken: a try of the slower way costs its
    #: difference once (measured on the bench host at load 2: 1.6 against 1.0 ns/element shared
    #: against alone, so every 8th call cost the float64 stream some 5%; every 32nd, about 1%).
    RETRY = 32
    #: Weight of the newest call in the averages.
    ALPHA = 0.3

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fpga_dnn-encode")
        self.submit = self._pool.submit
        #: average seconds per element: [alone, shared] (None until measured)
        self.per_element: list = [None, None]
        self.calls = [0, 0]
        self._n = 0

    def share(self) -> bool:
        """Whether the next call shares its blocks."""
        self._n += 1
        alone, shared = self.per_element
        if alone is None or shared is None:
            return shared is None   # measure both first: shared, then alone
        faster = shared < alone
        return faster != (self._n % self.RETRY == 0)

    def record(self, shared: bool, seconds: float, elements: int) -> None:
        per, old = seconds / max(1, elements), self.per_element[shared]
        self.per_element[shared] = per if old is None else old + self.ALPHA * (per - old)
        self.calls[shared] += 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


#: Elements from which :func:`encoder` with a ``pool`` shares a batch's blocks with a worker
#: thread: below it the hand-over (a ``submit``, the worker waking up; tens of microseconds)
#: costs about what the worker's share would save.
SPLIT_ELEMENTS = 2 * BLOCK_ELEMENTS


def encoder(inp: PortCodec, rows: np.ndarray, batch: int, overflow: str = "raise",
            rounding: str = "exact", pool=None) -> Callable[[np.ndarray], None]:
    """``encode(x)``: validate and convert real values ``x`` (``(batch, *shape)`` or ``(batch,
    elements)``) straight into ``rows`` (the DMA buffer's first ``batch`` samples, uint8
    ``(batch, sample_bytes)``), block by block, with :func:`to_fixed` + :func:`pack`'s
    semantics and errors (the same policies; a bad value raises :class:`DataError` naming its
    index in ``x`` and leaves nothing half-valid unreported). The large-batch and streaming
    path of the runtime; scratch arrays are allocated once per encoder.

    ``pool``: a :class:`ConversionWorker`. A batch of at least :data:`SPLIT_ELEMENTS` then has
    its blocks shared when the worker says so (:meth:`ConversionWorker.share`): the caller and
    the worker (each with its own scratch arrays) take the next block from one iterator, under
    a lock, until none is left, so numpy, which releases the GIL inside its loops, converts on
    two cores. Taking blocks rather than fixed halves keeps a worker the OS does not schedule
    from holding the caller up: the caller converts what the worker has not taken and waits
    only for a block the worker holds. ``encode`` returns when every block is written; each
    element is converted on its own, so the bytes are the single-threaded ones.

    Per block: ``v = x * 2**frac`` (in float32 when ``x`` is float32 and :func:`f32_exact`
    holds, else float64; skipped when the scale is 1), rounded by the
    policy; with ``'saturate'`` clipped to the range; cast into the lanes; the lanes compared
    with ``v`` (one comparison catches off-grid, non-finite and out-of-lane values: the cast
    of any of them differs from ``v``) and, when the format is narrower than its lane, their
    min/max checked against the range. Any failure reruns :func:`to_fixed` on the whole
    batch, which raises the documented error (``-0.0`` compares equal to 0: no false alarm).
    """
    if overflow not in OVERFLOW_POLICIES:
        raise DataError(f"unknown overflow policy {overflow!r}; known: {', '.join(OVERFLOW_POLICIES)}")
    if rounding not in ROUNDING_POLICIES:
        raise DataError(f"unknown rounding policy {rounding!r}; known: {', '.join(ROUNDING_POLICIES)}")
    port, fmt = inp.port, inp.format
    n_el = inp.elements
    lanes = inp.lanes_view(rows[:batch])
    pad = rows[:batch, inp.data_bytes:] if inp.data_bytes < inp.sample_bytes else None
    if lanes is None:   # a sample size that is not whole lanes: the general path
        def encode_general(x) -> None:
            pack(to_fixed(x, fmt, overflow=overflow, rounding=rounding), port, out=rows[:batch])
        return encode_general
    per = max(1, BLOCK_ELEMENTS // max(1, n_el))    # samples per block
    starts = range(0, batch, per)
    shared = pool is not None and len(starts) >= 2 and batch * n_el >= SPLIT_ELEMENTS
    scale = inp.scale
    rnd = _ROUNDING_UFUNC[rounding]
    up = rounding == "nearest_up"
    narrow = inp.spare > 0
    lo, hi = inp.lo, inp.hi
    signed = bool(fmt.signed)
    in_f32 = f32_exact(inp)
    direct = scale == 1.0 and rnd is None and overflow == "raise"
    not_equal = np.not_equal

    def scratch_set() -> Callable[[object], np.ndarray]:
        """One thread's scratch arrays, made on first use: ``buf(key)``."""
        arrays = {"same": np.empty((per, n_el), dtype=bool)}

        def buf(key) -> np.ndarray:
            b = arrays.get(key)
            if b is None:
                b = arrays[key] = np.empty((per, n_el), dtype=key[-1] if isinstance(key, tuple) else key)
            return b
        return buf

    def convert(x2: np.ndarray, ftype, take: Callable[[], Optional[int]], buf, failed: list) -> None:
        """Convert the blocks ``take()`` hands out (their first sample; ``None``: no more) into
        the lanes; a block refused appends its start to ``failed`` (shared by both threads)."""
        same = buf("same")
        with np.errstate(invalid="ignore", over="ignore"):
            while True:
                a = take()
                if a is None:
                    return
                b = min(batch, a + per)
                xb, lb = x2[a:b], lanes[a:b]
                if direct:
                    v = xb
                else:
                    v = buf(ftype)[: b - a]
                    np.multiply(xb, scale, out=v, casting="unsafe")
                    if rnd is not None:
                        if up:
                            np.add(v, 0.5, out=v)
                        rnd(v, out=v)
                    if overflow == "saturate" and rnd is not None:
                        # (not with 'exact': clipping first would hide an off-grid value out of
                        # range, which to_fixed refuses; such a block fails the check and is
                        # left to to_fixed.) Clipping would also turn +-inf into the range's
                        # ends: a block whose sum is not finite (an inf, a NaN, or values so
                        # large that the sum overflows) is left to to_fixed too.
                        if not np.isfinite(v.sum()):
                            failed.append(a)
                            return
                        np.clip(v, lo, hi, out=v)
                lb[...] = v
                back = buf(("back", v.dtype))[: b - a]
                back[...] = lb   # read back into v's type: a same-type comparison (1.5 against
                #                  1.8 ns/element for comparing the lanes with v directly)
                if not_equal(back, v, out=same[: b - a]).any() or (
                        narrow and (lb.max() > hi or (signed and lb.min() < lo))):
                    failed.append(a)   # (an unsigned lane's min is >= 0 = lo by its type)
                    return

    mine = scratch_set()
    theirs = scratch_set() if shared else None
    submit = pool.submit if shared else None
    clock = time.perf_counter

    def encode(x) -> None:
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            to_fixed(x, fmt)   # raises: not real numbers
        x2 = x.reshape(batch, n_el)
        ftype = np.float32 if x.dtype == np.float32 and in_f32 else np.float64
        failed: list = []
        blocks = iter(starts)
        share = shared and pool.share()
        t0 = clock()
        if share:
            lock = threading.Lock()
            busy = [False]   # the worker holds a block it took (set and read under the lock)
            stop: list = []   # the caller is done: nothing more for the worker

            def take_mine() -> Optional[int]:
                with lock:
                    return None if failed else next(blocks, None)

            def take_theirs() -> Optional[int]:
                with lock:
                    a = None if failed or stop else next(blocks, None)
                    busy[0] = a is not None
                    return a

            job = submit(convert, x2, ftype, take_theirs, theirs, failed)
            try:
                convert(x2, ftype, take_mine, mine, failed)
            finally:
                with lock:
                    stop.append(True)   # (matters when the caller stopped early: an exception)
                    in_flight = busy[0]
                if in_flight:   # it is writing a block: wait (it runs, so this ends); a worker
                    job.result()   # that took nothing is not waited for (a job that starts
                    #                later finds nothing to take and touches nothing)
        else:
            convert(x2, ftype, lambda: next(blocks, None), mine, failed)
        if shared and not failed:
            pool.record(share, clock() - t0, batch * n_el)
        if failed:
            to_fixed(x, fmt, overflow=overflow, rounding=rounding)   # raises the documented error
            pack(to_fixed(x, fmt, overflow=overflow, rounding=rounding), port, out=rows[:batch])
        if pad is not None:
            pad[...] = 0

    return encode


def prepared_call(inp: PortCodec, out: PortCodec, in_rows: np.ndarray, out_rows: np.ndarray, shape: tuple,
                  transfer: Callable[[], float], log: list, fold: Callable[[], None], overflow: str = "raise",
                  rounding: str = "exact", log_limit: int = 256) -> Callable[[np.ndarray, float], np.ndarray]:
    """One ``predict`` for inputs of exactly ``shape`` on prepared buffers: ``call(x, t0) -> y``.

    inp / out: the input and output ports' codecs. in_rows / out_rows: the DMA buffers' first
    ``batch`` samples, uint8 ``(batch, sample_bytes)`` C-contiguous views. transfer: ``run()``
    from :meth:`~fpga_dnn.runtime.backends.Backend.prepare` (sends ``in_rows``, fills
    ``out_rows``, returns the time it had programmed the DMA). overflow / rounding: the input
    policies (:func:`to_fixed`).

    ``call(x, t0)`` validates and converts ``x`` (real values, shape ``shape``) straight into
    ``in_rows``, transfers, and returns the outputs as a new float64 array
    ``(batch, *out.shape)``; it appends ``(t0, packed, started, done, end, batch)``
    (``perf_counter`` times: the call's start as given, after packing, after programming the
    DMA, after the wait, at the end) to ``log`` and calls ``fold()`` once ``log`` holds
    ``log_limit`` entries.

    Validation without per-element checks (``overflow='raise'``): with ``v = x * 2**frac``
    (rounded by the rounding policy, if any), ``c = fmin(fmax(v, lo), hi)`` is finite and inside
    the format's integer range whatever ``v`` holds (``fmax``/``fmin`` drop NaN), so casting it
    into the lanes is exact and warning-free; the lanes read back as floats equal ``v`` — bit
    for bit — if and only if every ``v`` is an integer of the format's range: on the grid, in
    range, finite. On a mismatch (or its one false alarm, ``-0.0``) the conversion is redone by
    :func:`to_fixed`, which raises the documented error naming the first bad element (for
    ``-0.0``, returns the integers). ``overflow='saturate'`` and layouts whose lanes cannot be
    viewed in place run :func:`to_fixed` + :func:`pack` into the buffer.
    """
    if overflow not in OVERFLOW_POLICIES:
        raise DataError(f"unknown overflow policy {overflow!r}; known: {', '.join(OVERFLOW_POLICIES)}")
    if rounding not in ROUNDING_POLICIES:
        raise DataError(f"unknown rounding policy {rounding!r}; known: {', '.join(ROUNDING_POLICIES)}")
    n = shape[0]
    port, fmt = inp.port, inp.format
    clock, append = time.perf_counter, log.append
    mul = np.multiply
    decode = out.decoder(out_rows, n)
    # the common output case (lanes viewable, no bits above the width): decoded inline
    out_lanes = out.lanes_view(out_rows, (n,) + out.shape) if not out.spare else None

    def slow_encode(x) -> None:
        pack(to_fixed(x, fmt, overflow=overflow, rounding=rounding), port, out=in_rows)

    lanes = inp.lanes_view(in_rows, shape)
    if overflow != "raise" or lanes is None:
        def call(x, t0: float) -> np.ndarray:
            slow_encode(x)
            t1 = clock()
            started = transfer()
            t2 = clock()
            y = decode()
            append((t0, t1, started, t2, clock(), n))
            if len(log) >= log_limit:
                fold()
            return y

        return call

    pad = in_rows[:, inp.data_bytes:] if inp.data_bytes < inp.sample_bytes else None
    small = int(np.prod(shape)) <= SMALL_BATCH_ELEMENTS
    rnd = _ROUNDING_UFUNC[rounding]
    up = rounding == "nearest_up"
    f64 = np.dtype(np.float64)
    # frac = 0 and no rounding: float64 values are the integers themselves, no multiply
    unit = inp.scale == 1.0 and rnd is None
    # The fixed cost of a small batch is the number of numpy calls, so for one the constants
    # are arrays of the batch's shape, made once (a ufunc on two same-shape arrays skips
    # broadcasting and scalar handling: measured 0.58 against 0.85 us for a 0-d operand at 64
    # elements); a large batch gets 0-d constants and fresh scratch arrays per call. float32
    # input is checked in float32 when that is exact (f32_exact, small batches); any other
    # real input is cast into float64 scratch by assignment (0.3 us; exact for float16, bool
    # and integers below 2**53 — larger integers may round, but they are outside every
    # format's range and still fail the check) rather than by a mixed-type multiply (1.6 us);
    # the output is cast, then scaled in place.
    def consts(dtype, full: bool):
        return (np.empty(shape, dtype), np.empty(shape, dtype)) + tuple(
            np.full(shape, v, dtype=dtype) if full else np.array(v, dtype=dtype)
            for v in (inp.scale, inp.lo, inp.hi, 0.5))

    k64 = consts(np.float64, True) if small else None
    k32 = consts(np.float32, True) if small and f32_exact(inp) else None
    step = np.full((n,) + out.shape, out.step) if small else np.array(out.step, dtype=np.float64)
    add, fmax, fmin = np.add, np.fmax, np.fmin
    f32 = np.dtype(np.float32)

    def call(x, t0: float) -> np.ndarray:
        dt = x.dtype
        if dt is f64:
            s, c, scale, lo, hi, half = k64 or consts(f64, False)
            v = x if unit else mul(x, scale, out=s)
        elif dt is f32 and k32 is not None:
            s, c, scale, lo, hi, half = k32
            v = x if unit else mul(x, scale, out=s)
        elif dt.kind in "fiub":
            s, c, scale, lo, hi, half = k64 or consts(f64, False)
            s[...] = x          # an exact cast (see above)
            v = s
            if not unit:
                mul(s, scale, out=s)
        else:
            v = to_fixed(x, fmt)  # raises: not real numbers
        if rnd is not None:
            if up:
                add(s, half, out=s)
            rnd(s, out=s)
        fmax(v, lo, out=c)
        fmin(c, hi, out=c)
        lanes[...] = c      # in range and finite: an exact cast
        c[...] = lanes      # read back
        if (c.tobytes() != v.tobytes()) if small else not (c == v).all():
            slow_encode(x)  # raises the documented error (or handles -0.0)
        elif pad is not None:
            pad[...] = 0
        t1 = clock()
        started = transfer()
        t2 = clock()
        if out_lanes is not None:
            y = out_lanes.astype(f64)
            mul(y, step, out=y)
        else:
            y = decode()
        append((t0, t1, started, t2, clock(), n))
        if len(log) >= log_limit:
            fold()
        return y

    return call


def wide_stream_bits(elements: int, width: int) -> int:
    """The stream width that carries one whole sample per beat with no padding.

    Used in simulation and benches to run the shell at one sample per cycle; the boards' DMA
    offers only 32 or 64 bits.
    """
    return elements * lane_bits_for(width)
