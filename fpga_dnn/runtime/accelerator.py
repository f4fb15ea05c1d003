"""``Accelerator``: run a bundle's network on a board (or a simulated one) from numpy.

::

    from fpga_dnn.runtime.accelerator import Accelerator
    with Accelerator.open("bundle/", backend="pynq") as acc:    # on the board
        y = acc.predict(x)                            # x: (batch, *input shape), real values
        print(acc.benchmark(n=10_000, batch=1000))

What ``predict`` does, on every backend:

1. **Validate** ``x``: shape ``(batch, *input shape)`` or ``(batch, input elements)`` (a single
   sample needs ``x[None]``); real dtype (float, int, bool); finite values.
2. **Convert** to the input's fixed-point integers with :func:`~fpga_dnn.runtime.packing.to_fixed`.
   The documented policy (chosen at open, overridable per call):

   * ``overflow='raise'`` (default): a value outside the format's range raises
     :class:`~fpga_dnn.errors.DataError` naming the first bad element; ``'saturate'`` clips it.
     (The hardware would silently wrap.)
   * ``rounding='exact'`` (default): a value off the format's grid raises; ``'nearest_even'``,
     ``'nearest_up'`` or ``'floor'`` round it (ap_fixed's RND_CONV, RND, TRN).
3. **Split** a batch larger than :attr:`Accelerator.chunk_samples` (``chunk_bytes`` per
   transfer, 256 KiB by default, never more than the DMA's limit ``2**c_sg_length_width - 1``
   bytes read from the handoff) into pieces and **overlap** them: two pairs of DMA buffers
   alternate, and while the DMA moves piece *i*, the host converts and packs piece *i+1* and
   decodes piece *i-1* (:meth:`Accelerator.predict_stream` does the same across a stream of
   batches). With ``threads=2`` (the default on two cores or more) a large piece's conversion
   is shared with a worker thread (:func:`~fpga_dnn.runtime.packing.encoder`).
4. **Pack** each piece into an input DMA buffer (beat layout ``fpga_dnn-lanes-v1``,
   :func:`~fpga_dnn.runtime.packing.pack`), **transfer** (the backend: flush, program the DMA,
   wait with a timeout, invalidate), **unpack** the output buffer. The buffers are allocated
   on the first call and reused; they grow only when a larger batch needs it.
5. **Return** real values, float64, shape ``(batch, *output shape)`` — a new array, never a
   view of a DMA buffer (:meth:`Accelerator.predict_fixed` returns the integers instead).

A batch that fits one transfer, with the policies chosen at open, takes a prepared path: per
input shape the buffers, their views, the codec constants and the backend's DMA register
sequence are bound once (:func:`~fpga_dnn.runtime.packing.prepared_call`,
:meth:`~fpga_dnn.runtime.backends.Backend.prepare`), so a call validates and converts straight
into the input buffer with a few numpy operations, runs the transfer and decodes — the same
checks, errors, layout and register sequence as the general path (policies passed per call,
batches split over several transfers), which converts the whole batch with ``to_fixed`` first.

Errors are :mod:`fpga_dnn.errors` classes: ``DataError`` (bad input), ``DmaError`` /
``DmaTimeoutError`` (the DMA failed or hung — it has been reset, the next call works),
``DeviceError`` (no board, overlay or DMA), ``SpecError``/``BundleError`` (bad bundle).

Imports numpy only; pynq is imported by the ``pynq`` and ``sim`` backends when opened.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Union

import numpy as np

from fpga_dnn.errors import DataError, DeviceError, UnknownNameError
from fpga_dnn.runtime.backends import Backend, EmulatedBackend, StageTimes
from fpga_dnn.runtime.bundle import Bundle, BundleError, open_bundle
from fpga_dnn.runtime.golden import check_golden_option, run_open_self_test, self_test as run_self_test
from fpga_dnn.runtime.packing import (OVERFLOW_POLICIES, ROUNDING_POLICIES, SPLIT_ELEMENTS, ConversionWorker, PortCodec,
                                      encoder, from_fixed, int_range, pack, prepared_call, to_fixed, unpack)
from fpga_dnn.runtime.spec import Spec

perf_counter, asarray = time.perf_counter, np.asarray

#: Backend names :meth:`Accelerator.open` knows.
BACKENDS = ("pynq", "sim", "emulate")

#: Bytes per transfer when a batch is split so that host work overlaps the DMA (see
#: :meth:`Accelerator.predict`): large enough that the per-transfer cost (cache flush, register
#: writes, a status poll; a few microseconds) is a few percent of the transfer's own time at a
#: PYNQ-Z2 HP port's 800 MB/s (256 KiB: 330 us), small enough that the first and last pieces,
#: which cannot overlap, are short.
CHUNK_BYTES = 1 << 18

#: Bytes per piece of a stream (:meth:`Accelerator.predict_stream`). A stream overlaps across its
#: batches, so its pieces need not be short: larger ones amortise the per-transfer host work
#: (flush, register program, status polls, one decode call), measured on the timed fake DMA at
#: 100,000 digits-sized samples: 1 MiB pieces took the per-transfer stage from 4.2 to 2.0 ms.
STREAM_CHUNK_BYTES = 1 << 20

PathLike = Union[str, Path]


class Accelerator:
    """A loaded design: validates, packs, moves batches through a backend, decodes.

    Build with :meth:`open`. ``spec``: the design spec; ``backend``: a
    :class:`~fpga_dnn.runtime.backends.Backend`; ``overflow`` / ``rounding``: the default
    input policies (see the module docstring).
    """

    def __init__(self, spec: Spec, backend: Backend, overflow: str = "raise", rounding: str = "exact",
                 bundle: Optional[Bundle] = None, chunk_bytes: Optional[int] = None,
                 threads: Optional[int] = None):
        if threads is not None and (isinstance(threads, bool) or threads not in (1, 2)):
            raise DataError(f"threads must be 1 (the caller's thread alone) or 2 (with a conversion worker), "
                            f"got {threads!r}")
        self.spec = spec
        self.backend = backend
        self.bundle = bundle
        self._overflow, self._rounding = self._policies(overflow, rounding)
        self.samples_per_transfer = min(backend.max_transfer_bytes // spec.input.sample_bytes,
                                        backend.max_transfer_bytes // spec.output.sample_bytes)
        if self.samples_per_transfer < 1:
            raise DeviceError(
                f"one sample ({spec.input.sample_bytes} bytes in, {spec.output.sample_bytes} out) exceeds the "
                f"DMA's {backend.max_transfer_bytes}-byte transfer limit; rebuild the overlay with a larger "
                "c_sg_length_width")
        self._in_shape = tuple(spec.input.shape)
        self._in_flat = (spec.input.elements,)
        self._in_sb, self._out_sb = spec.input.sample_bytes, spec.output.sample_bytes
        self._in_codec, self._out_codec = PortCodec(spec.input), PortCodec(spec.output)
        if chunk_bytes is not None and not chunk_bytes >= 1:
            raise DataError(f"chunk_bytes must be >= 1, got {chunk_bytes!r}")
        per_sample = max(self._in_sb, self._out_sb)
        #: Samples per transfer when a batch is split to overlap host work and DMA (module docstring).
        self.chunk_samples = max(1, min(self.samples_per_transfer, int(chunk_bytes or CHUNK_BYTES) // per_sample))
        #: Samples per piece of a stream (:data:`STREAM_CHUNK_BYTES` unless ``chunk_bytes`` is given).
        self.stream_chunk_samples = max(1, min(self.samples_per_transfer,
                                               int(chunk_bytes or STREAM_CHUNK_BYTES) // per_sample))
        #: Host threads converting a large piece (:func:`~fpga_dnn.runtime.packing.encoder` with a
        #: pool): the caller's and, with 2, one worker. Default 2 where the CPU has 2 cores or more.
        self.threads = int(threads) if threads is not None else (2 if (os.cpu_count() or 1) >= 2 else 1)
        self._pool = None   # the worker, started on the first piece that is split
        #: (slot, samples, overflow, rounding, real) -> the piece's encode/start/finish/decode,
        #: bound to the backend's current buffers (emptied when they change)
        self._pieces: Dict[tuple, Any] = backend.bound_cache()
        #: input shape (a batch of one transfer or less) -> its prepared call (see _plan); emptied
        #: by the backend whenever its buffers change
        self._plans: Dict[tuple, Any] = backend.bound_cache()
        self._plan_for = self._plans.get
        # accounting: prepared calls append their raw times to _log, folded into these on demand
        self._log: list = []
        self._times = StageTimes()
        self._last_times = StageTimes()
        self._calls = 0
        self._samples = 0
        #: the open-time known-answer test's result (:class:`~fpga_dnn.runtime.golden.SelfTestReport`),
        #: None when it was skipped
        self.self_test_report = None

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, bundle_dir: PathLike, backend: Union[str, Backend] = "pynq", *, trusted_keys=None,
             allow_unsigned: bool = False, min_version: Optional[int] = None, model=None,
             overflow: str = "raise", rounding: str = "exact", verify: bool = True,
             timeout_s: Optional[float] = None, device=None, dma: Optional[str] = None,
             board: Optional[str] = None, design=None, access: str = "mmap", poll_delay: int = 0,
             trace: bool = False, max_transfer_bytes: Optional[int] = None,
             bandwidth: Union[float, None, str] = "board", chunk_bytes: Optional[int] = None,
             threads: Optional[int] = None, self_test: Union[bool, str] = True) -> "Accelerator":
        """Open a bundle folder (``spec.json`` [+ ``.bit`` + ``.hwh``]) on a backend.

        bundle_dir: the bundle folder (see :mod:`fpga_dnn.runtime.bundle`). It is first copied
            into a private folder; the signature is verified over exactly those bytes and only
            then is anything (the ``.bit`` to ``pynq.Overlay`` included) read from the copy.
        trusted_keys: public key file(s) (PEM, from ``fpga-dnn keygen``) whose signature is accepted.
        allow_unsigned: run a bundle that has no signature (``bundle.sig``); refused otherwise.
        min_version: refuse a bundle whose signed ``bundle_version`` is lower (no rollback).
        backend: ``'pynq'`` (a PYNQ board), ``'sim'`` (pynq on a fake board, needs pynq),
            ``'emulate'`` (no pynq), or a ready :class:`~fpga_dnn.runtime.backends.Backend`.
        model: for ``sim``/``emulate``, the accelerator model: ``'instant'``/``None`` (the
            reference function, driver-only benchmarks), a ``model_fn(q_in) -> q_out`` on
            fixed-point integers (plug the RTL emulation in here), or a frame model
            (:mod:`fpga_dnn.runtime.fake.models`). Ignored by ``pynq``.
        overflow / rounding: default input policies (module docstring).
        verify: check the files' checksums listed in ``spec.json`` before loading.
        timeout_s: per-transfer timeout (``pynq``/``sim``); default 1 s + 10 ns/byte.
        device: ``pynq``: the ``pynq.Device`` (default: the board's active device).
        dma: ``pynq``/``sim``: the DMA's path in the overlay when it has several.
        board / design / access / poll_delay / trace: ``sim`` only, see
            :class:`~fpga_dnn.runtime.sim_backend.SimBackend`.
        max_transfer_bytes: ``emulate`` only: the DMA limit to split at (default: the bundle's
            handoff's, else the spec's ``extra.overlay.dma_max_transfer_bytes``, else 2**26 - 1).
        bandwidth: ``sim`` only: bytes/s per DMA channel of the fake board (``'board'``: a
            PYNQ-Z2 HP port, 800 MB/s; ``None``: transfers complete at once).
        chunk_bytes: bytes per transfer when a large batch is split to overlap host and DMA
            (default 256 KiB for a batch, 1 MiB per piece of a stream).
        threads: host threads that convert a large piece: 2 (the default on a CPU with 2 cores
            or more, as the PYNQ-Z2's Cortex-A9 pair) shares its blocks with a worker thread, 1
            keeps to the caller's thread.
        self_test: run the bundle's golden vectors through the board before returning (the
            known-answer test, :mod:`fpga_dnn.runtime.golden`) and refuse it with a
            :class:`~fpga_dnn.runtime.golden.SelfTestError` naming the first differing vector
            and element. A bundle without golden vectors logs a warning and runs;
            ``'required'`` refuses it; ``False`` skips the test. The result is kept in
            :attr:`self_test_report`.
        """
        check_golden_option(self_test)
        bundle = open_bundle(bundle_dir, trusted_keys=trusted_keys, allow_unsigned=allow_unsigned,
                             min_version=min_version, verify=verify)
        try:
            return cls._open_verified(bundle, backend, model=model, overflow=overflow, rounding=rounding,
                                      timeout_s=timeout_s, device=device, dma=dma, board=board, design=design,
                                      access=access, poll_delay=poll_delay, trace=trace,
                                      max_transfer_bytes=max_transfer_bytes, bandwidth=bandwidth,
                                      chunk_bytes=chunk_bytes, threads=threads, self_test=self_test)
        except BaseException:
            shutil.rmtree(bundle.directory, ignore_errors=True)
            raise

    @classmethod
    def _open_verified(cls, bundle: Bundle, backend, *, model, overflow, rounding, timeout_s, device, dma, board,
                       design, access, poll_delay, trace, max_transfer_bytes, bandwidth,
                       chunk_bytes, threads=None, self_test=False) -> "Accelerator":
        """:meth:`open` once the bundle's private copy is verified: the backend on its files."""
        spec = bundle.spec
        if isinstance(backend, Backend):
            be = backend
        elif backend == "pynq":
            if bundle.bitfile is None:
                raise BundleError(f"bundle {bundle.directory} has no bitstream: the 'pynq' backend needs the "
                                  ".bit/.hwh from the overlay step (or use backend 'sim'/'emulate')")
            from fpga_dnn.runtime.pynq_backend import PynqDmaBackend
            be = PynqDmaBackend(bundle.bitfile, device=device, dma=dma, timeout_s=timeout_s)
        elif backend == "sim":
            from fpga_dnn.runtime.sim_backend import SimBackend
            bw = {} if bandwidth == "board" else {"bandwidth": bandwidth}
            be = SimBackend(bundle, model=model, board=board, design=design, access=access,
                            poll_delay=poll_delay, trace=trace, timeout_s=timeout_s, dma=dma, **bw)
        elif backend == "emulate":
            from fpga_dnn.runtime.fake.models import make_model
            limit = max_transfer_bytes
            if limit is None and bundle.hwh is not None:
                from fpga_dnn.runtime.fake.hwh import read_dma_parameters
                dmas = read_dma_parameters(bundle.hwh)
                if len(dmas) == 1:
                    limit = (1 << int(dmas[0].get("c_sg_length_width", 26))) - 1
            overlay = spec.extra.get("overlay")
            if limit is None and isinstance(overlay, dict) and isinstance(overlay.get("dma_max_transfer_bytes"), int):
                limit = overlay["dma_max_transfer_bytes"]
            be = EmulatedBackend(make_model(spec, model), **({"max_transfer_bytes": limit} if limit else {}))
        else:
            raise UnknownNameError("backend", str(backend), BACKENDS)
        try:
            acc = cls(spec, be, overflow=overflow, rounding=rounding, bundle=bundle, chunk_bytes=chunk_bytes,
                      threads=threads)
        except Exception:
            be.close()
            raise
        if self_test:
            try:
                acc.self_test_report = run_open_self_test(acc, self_test)
            except BaseException:
                be.close()
                raise
            acc.times = StageTimes()   # the self-test's calls are not the user's
            acc._calls = acc._samples = 0
        return acc

    # -- policies (setting one drops the prepared calls built for the old one) ------------------------------
    @property
    def overflow(self) -> str:
        """The default out-of-range policy (``'raise'`` or ``'saturate'``)."""
        return self._overflow

    @overflow.setter
    def overflow(self, value: str) -> None:
        self._overflow = self._policies(value, "exact")[0]
        self._plans.clear()

    @property
    def rounding(self) -> str:
        """The default rounding policy (``'exact'``, ``'nearest_even'``, ``'nearest_up'``, ``'floor'``)."""
        return self._rounding

    @rounding.setter
    def rounding(self, value: str) -> None:
        self._rounding = self._policies("raise", value)[1]
        self._plans.clear()

    @staticmethod
    def _policies(overflow: str, rounding: str):
        if overflow not in OVERFLOW_POLICIES:
            raise DataError(f"unknown overflow policy {overflow!r}; known: {', '.join(OVERFLOW_POLICIES)}")
        if rounding not in ROUNDING_POLICIES:
            raise DataError(f"unknown rounding policy {rounding!r}; known: {', '.join(ROUNDING_POLICIES)}")
        return overflow, rounding

    # -- inference ------------------------------------------------------------------------------------
    def _check_batch(self, x: np.ndarray, what: str) -> None:
        if x.ndim < 1 or (x.shape[1:] != self._in_shape and x.shape[1:] != self._in_flat):
            raise DataError(
                f"{what}: expected a batch of shape (batch, {', '.join(map(str, self._in_shape))}) or "
                f"(batch, {self._in_flat[0]}), got {tuple(x.shape)}"
                + ("; for one sample use x[None]" if x.shape == self._in_shape else ""))

    def predict(self, x, overflow: Optional[str] = None, rounding: Optional[str] = None) -> np.ndarray:
        """Outputs (float64, ``(batch, *output shape)``) for a batch of real-valued inputs.

        x: array-like, ``(batch, *input shape)`` or ``(batch, input elements)``.
        overflow / rounding: override the policies chosen at :meth:`open` for this call.
        """
        t0 = perf_counter()
        x = asarray(x)
        if overflow is None and rounding is None:
            call = self._plan_for(x.shape)
            if call is not None:
                return call(x, t0)   # see _plan
        self._check_batch(x, "predict")
        if overflow is None and rounding is None and 0 < len(x) <= self.chunk_samples:
            return self._plan(x.shape)(x, t0)   # first call with this shape (or new buffers)
        ov, rd = (self._policies(overflow or self._overflow, rounding or self._rounding)
                  if overflow or rounding else (self._overflow, self._rounding))
        if len(x) > self.chunk_samples:
            return self._overlapped_call(x, ov, rd, True)
        q = to_fixed(x, self.spec.input.format, overflow=ov, rounding=rd)  # all of it before anything is sent
        return self._run(q, perf_counter() - t0, decode=True)

    def predict_stream(self, batches: Iterable, overflow: Optional[str] = None,
                       rounding: Optional[str] = None, fixed: bool = False) -> Iterator[np.ndarray]:
        """Outputs for a stream of batches, in order, one array per batch as :meth:`predict`
        returns it, with host work overlapping the DMA across batch boundaries (the next piece
        is converted and packed while the current one moves, the previous one decoded).

        batches: any iterable of input batches (each as :meth:`predict` takes it; sizes may
            vary, 0 included); it is consumed lazily, one piece ahead of the DMA.
        overflow / rounding: as for :meth:`predict`.
        fixed: the batches are the input format's integers and the results the output's (as
            :meth:`predict_fixed`): no float conversion on either side, the fastest stream.

        Errors keep :meth:`predict`'s guarantees: a bad batch raises :class:`DataError` when
        its turn comes, after every earlier batch's output has been yielded; a DMA error or
        timeout raises (the DMA has been reset) and the batch being moved is not returned.
        Either way nothing is reordered or returned twice, and a new call works.
        """
        step = self.stream_chunk_samples
        if fixed:
            return self._overlapped(batches, None, None, False, step=step)
        ov, rd = self._policies(overflow or self._overflow, rounding or self._rounding)
        return self._overlapped(batches, ov, rd, True, step=step)

    def predict_fixed(self, q) -> np.ndarray:
        """Output integers (int64) for a batch of input integers (the formats' ``q``, no scaling).

        q: integer array-like of the input format's range, shape as for :meth:`predict`.
        """
        t0 = perf_counter()
        q = asarray(q)
        self._check_batch(q, "predict_fixed")
        if q.dtype.kind not in "iu":
            raise DataError(f"predict_fixed takes integers (the fixed-point q), got dtype {q.dtype}")
        if len(q) > self.chunk_samples:
            return self._overlapped_call(q, None, None, False)
        return self._run(q, perf_counter() - t0, decode=False)

    def _plan(self, shape: tuple):
        """Prepare :meth:`predict` for inputs of ``shape`` (a batch that fits one transfer) with
        the default policies: the buffers sized (allocated or grown only if needed, as in
        :meth:`_run`) and, bound to them, a call that validates and converts straight into the
        input buffer, runs the backend's prepared transfer and decodes the output buffer
        (:func:`~fpga_dnn.runtime.packing.prepared_call`). Kept per shape while the backend's
        buffers stay the same (the backend empties the cache when they change)."""
        n = shape[0]
        in_bytes, out_bytes = n * self._in_sb, n * self._out_sb
        backend = self.backend
        in_buf, out_buf = backend.buffers(in_bytes, out_bytes)
        call = prepared_call(self._in_codec, self._out_codec, in_buf[:in_bytes].reshape(n, self._in_sb),
                             out_buf[:out_bytes].reshape(n, self._out_sb), shape,
                             backend.prepare(in_bytes, out_bytes), self._log, self._fold,
                             overflow=self._overflow, rounding=self._rounding)
        if len(self._plans) >= 16:   # many batch sizes: keep the latest ones only
            self._plans.clear()
        self._plans[shape] = call
        return call

    def _run(self, q: np.ndarray, prep_seconds: float, decode: bool) -> np.ndarray:
        """Split, pack, transfer, unpack (and with ``decode``, convert to real values)."""
        batch = q.shape[0]
        times = StageTimes(pack=prep_seconds)
        out_shape = (batch,) + tuple(self.spec.output.shape)
        out_dtype = np.float64 if decode else np.int64
        if batch == 0:
            self._account(times, 0)
            return np.zeros(out_shape, dtype=out_dtype)
        step = self.samples_per_transfer
        backend, in_port, out_port = self.backend, self.spec.input, self.spec.output
        out_fmt = out_port.format
        result = None if batch <= step else np.empty(out_shape, dtype=out_dtype)
        for start in range(0, batch, step):
            n = min(step, batch - start)
            t0 = time.perf_counter()
            in_buf, out_buf = backend.buffers(n * self._in_sb, n * self._out_sb)
            pack(q[start: start + n] if n != batch else q, in_port, out=in_buf)
            t1 = time.perf_counter()
            times.pack += t1 - t0
            backend.transfer(n * self._in_sb, n * self._out_sb, times)
            t2 = time.perf_counter()
            part = unpack(out_buf, out_port, batch=n)
            if decode:
                part = from_fixed(part, out_fmt)
            if result is None:
                result = part
            else:
                result[start: start + n] = part
            times.unpack += time.perf_counter() - t2
        self._account(times, batch)
        return result

    # -- zero copy ----------------------------------------------------------------------------------
    def input_buffer(self, n: int) -> np.ndarray:
        """The input DMA buffer's lanes for ``n`` samples, to fill with fixed-point integers
        (the input format's ``q``) in place — no conversion, no copy — then run with
        :meth:`run_buffer`. Shape ``(n, *input shape)``, the lane dtype (``spec.input.lane_dtype``);
        values outside the format's range are not checked (the hardware keeps each lane's low
        ``width`` bits). ``n`` at most :attr:`samples_per_transfer`. The view is valid until
        the next call with a larger ``n``, :meth:`predict` (which uses the same buffer) or
        :meth:`close`.
        """
        n = self._zero_copy_size(n)
        in_buf, _ = self.backend.buffers(n * self._in_sb, n * self._out_sb)
        lanes = self._in_codec.lanes_view(in_buf[: n * self._in_sb].reshape(n, self._in_sb), (n,) + self._in_shape)
        if lanes is None:
            raise DataError(f"the input layout ({self._in_sb}-byte samples of {self._in_codec.lane_bytes}-byte "
                            "lanes) cannot be viewed in place; use predict_fixed")
        self._plans.clear()   # predict's prepared calls would overwrite what the caller writes
        return lanes

    def run_buffer(self, n: int, real: bool = True) -> np.ndarray:
        """Run the ``n`` samples written into :meth:`input_buffer` and return their outputs
        (real values, or with ``real=False`` the integers) as a new array."""
        n = self._zero_copy_size(n)
        t0 = perf_counter()
        key = ("zero_copy", n, real)
        piece = self._pieces.get(key)
        if piece is None:
            in_buf, out_buf = self.backend.buffers(n * self._in_sb, n * self._out_sb)
            rows = out_buf[: n * self._out_sb].reshape(n, self._out_sb)
            piece = self._pieces[key] = (self.backend.prepare(n * self._in_sb, n * self._out_sb),
                                         self._out_codec.decoder(rows, n, real))
        run, decode = piece
        started = run()
        t2 = perf_counter()
        y = decode()
        self._account(StageTimes(0.0, started - t0, t2 - started, perf_counter() - t2), n)
        return y

    def _zero_copy_size(self, n) -> int:
        if not isinstance(n, (int, np.integer)) or not 1 <= n <= self.samples_per_transfer:
            raise DataError(f"zero-copy batches hold 1..{self.samples_per_transfer} samples (one transfer), got {n!r}")
        return int(n)

    # -- overlapped transfers -----------------------------------------------------------------------
    def _overlapped_call(self, x: np.ndarray, ov, rd, real: bool) -> np.ndarray:
        """One large batch through :meth:`_overlapped`."""
        for y in self._overlapped((x,), ov, rd, real, checked=True):
            return y
        raise AssertionError("the overlapped path returned no result")   # internal bug

    def _piece(self, slot: int, n: int, ov, rd, real: bool):
        """``(encode, start, finish, decode_into)`` for a piece of ``n`` samples in ``slot``'s
        buffers (``ov is None``: integer input, packed as it is), cached per buffers."""
        key = (slot, n, ov, rd, real)
        piece = self._pieces.get(key)
        if piece is not None:
            return piece
        backend, in_b, out_b = self.backend, n * self._in_sb, n * self._out_sb
        in_buf, out_buf = backend.buffers(in_b, out_b, slot)
        in_rows = in_buf[:in_b].reshape(n, self._in_sb)
        out_rows = out_buf[:out_b].reshape(n, self._out_sb)
        if ov is None:
            port = self.spec.input

            def encode(q) -> None:
                pack(q, port, out=in_rows)
        else:
            encode = encoder(self._in_codec, in_rows, n, overflow=ov, rounding=rd, pool=self._worker(n))
        start, finish = backend.prepare_async(in_b, out_b, slot)
        codec = self._out_codec
        lanes = codec.lanes_view(out_rows, (n,) + codec.shape) if not codec.spare else None
        if lanes is not None:
            step = codec.step

            def decode_into(dst) -> None:
                dst[...] = lanes   # a cast, then scaled in place: 0.87 against 1.48 ns/element for a
                if real:           # mixed-type multiply (int16 lanes, x86, numpy 1.26)
                    np.multiply(dst, step, out=dst)
        else:
            decode = codec.decoder(out_rows, n, real)

            def decode_into(dst) -> None:
                dst[...] = decode()
        piece = self._pieces[key] = (encode, start, finish, decode_into)
        if len(self._pieces) > 32:   # many sizes: keep it bounded (recreated on demand)
            self._pieces.clear()
            self._pieces[key] = piece
        return piece

    def _overlapped(self, batches: Iterable, ov, rd, real: bool, checked: bool = False,
                    step: Optional[int] = None) -> Iterator[np.ndarray]:
        """The overlapped pipeline over ``batches`` (see :meth:`predict_stream`): pieces of at
        most ``step`` samples (default :attr:`chunk_samples`) alternate between two buffer
        slots; one transfer is in flight at a time; outputs are decoded into each batch's result
        array and the batches yielded in order as they complete."""
        step = step or self.chunk_samples
        out_shape = tuple(self.spec.output.shape)
        out_dtype = np.float64 if real else np.int64
        pending: collections.deque = collections.deque()   # [result, pieces left, times], in order
        flight = None   # the transfer in flight: (finish, started, decode_into, dst, entry)
        slot = 1
        clock = perf_counter

        def ready():
            """The completed batches at the head of the queue, in order."""
            while pending and pending[0][1] == 0:
                result, _, times = pending.popleft()
                self._account(times, len(result))
                yield result

        def wait(f) -> None:
            t = clock()
            f[0](f[1])
            f[4][2].wait += clock() - t

        def decode(f) -> None:
            t = clock()
            f[2](f[3])
            f[4][1] -= 1
            f[4][2].unpack += clock() - t

        try:
            for x in batches:
                t0 = clock()
                x = asarray(x)
                if not checked:
                    self._check_batch(x, "predict_stream")
                    if ov is None and x.dtype.kind not in "iu":
                        raise DataError(f"predict_fixed takes integers (the fixed-point q), got dtype {x.dtype}")
                total = len(x)
                entry = [np.empty((total,) + out_shape, dtype=out_dtype), -(-total // step), StageTimes()]
                pending.append(entry)
                entry[2].pack += clock() - t0
                for a in range(0, total, step):
                    n = min(step, total - a)
                    slot ^= 1
                    t0 = clock()
                    try:   # host work while the previous piece moves
                        encode, start, finish, decode_into = self._piece(slot, n, ov, rd, real)
                        try:
                            encode(x[a: a + n])
                        except DataError:
                            if ov is not None:   # the same error, its index counted in the whole batch
                                to_fixed(x, self.spec.input.format, overflow=ov, rounding=rd)
                            raise
                    except BaseException:
                        pending.pop()   # this batch fails; the earlier ones are still delivered
                        if flight is not None:
                            wait(flight)
                            decode(flight)
                            flight = None
                        yield from ready()
                        raise
                    entry[2].pack += clock() - t0
                    previous, flight = flight, None
                    if previous is not None:
                        wait(previous)   # a DMA error raises here (reset done): this batch is not returned
                    t1 = clock()
                    started = start()
                    entry[2].transfer += started - t1
                    flight = (finish, started, decode_into, entry[0][a: a + n], entry)
                    if previous is not None:
                        decode(previous)   # while this piece moves
                        yield from ready()
                yield from ready()   # a batch of 0 samples completes at once
            if flight is not None:
                last, flight = flight, None
                wait(last)
                decode(last)
                yield from ready()
        finally:
            if flight is not None:   # the caller stopped early (or an error): never leave a transfer in flight
                try:
                    flight[0](flight[1])
                except Exception:   # noqa: BLE001 - already failing or abandoned; the DMA was reset
                    pass

    def _account(self, times: StageTimes, batch: int) -> None:
        self._fold()
        self._last_times = times
        self._times.add(times)
        self._calls += 1
        self._samples += batch

    def _fold(self) -> None:
        """Fold the prepared calls' raw times (``_log``) into the totals."""
        log = self._log
        if not log:
            return
        t0, t1, started, t2, t3, n = (sum(column) for column in zip(*log))   # C loops: cheap per entry
        self._times.add(StageTimes(t1 - t0, started - t1, t2 - started, t3 - t2))
        t0, t1, started, t2, t3, _ = log[-1]
        self._last_times = StageTimes(t1 - t0, started - t1, t2 - started, t3 - t2)
        self._calls += len(log)
        self._samples += n
        log.clear()

    @property
    def times(self) -> StageTimes:
        """Seconds per stage, accumulated over every call (assign a fresh
        :class:`~fpga_dnn.runtime.backends.StageTimes` to restart)."""
        self._fold()
        return self._times

    @times.setter
    def times(self, value: StageTimes) -> None:
        self._log.clear()
        self._times = value

    @property
    def last_times(self) -> StageTimes:
        """Seconds per stage of the last call."""
        self._fold()
        return self._last_times

    @property
    def calls(self) -> int:
        """``predict``/``predict_fixed`` calls so far."""
        self._fold()
        return self._calls

    @property
    def samples(self) -> int:
        """Samples run so far."""
        self._fold()
        return self._samples

    # -- measurement --------------------------------------------------------------------------------
    def random_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` random inputs on the input format's grid and within its range (real values)."""
        fmt = self.spec.input.format
        rng = np.random.default_rng(seed)
        lo, hi = int_range(fmt)
        q = rng.integers(lo, hi + 1, size=(n,) + self._in_shape, dtype=np.int64)
        return from_fixed(q, fmt)

    def benchmark(self, n: int = 1000, batch: int = 1, x=None, warmup: int = 3) -> Dict[str, Any]:
        """Latency and throughput of :meth:`predict` with a per-stage breakdown.

        n: samples to run (at least one call); batch: samples per :meth:`predict` call;
        x: inputs to cycle through (default: :meth:`random_inputs`); warmup: untimed calls
        first (buffers allocated, caches warm).

        Returns a dict: ``calls``, ``samples``, ``seconds``, ``samples_per_s``, ``latency_us``
        (per call: mean, median, p99, min, max), ``breakdown_us_per_call`` (pack, transfer,
        wait, unpack, other = call time not in a stage), ``accelerator_us_per_call`` (time
        inside a simulated accelerator, ``None`` on hardware) and ``host_us_per_call`` (call
        time minus that: the driver's own overhead; ``None`` on hardware, where the wait also
        holds the accelerator's time).
        """
        if batch < 1 or n < 1:
            raise DataError(f"benchmark needs n >= 1 and batch >= 1, got n={n}, batch={batch}")
        calls = max(1, math.ceil(n / batch))
        pool = np.asarray(x) if x is not None else self.random_inputs(batch + min(batch, 1024))
        if len(pool) == 0:
            raise DataError("benchmark: x is empty")
        if len(pool) < batch:
            pool = np.concatenate([pool] * math.ceil(batch / len(pool)))[:batch]
        span = len(pool) - batch + 1
        starts = [(i * batch) % span for i in range(calls)]
        for i in range(warmup):
            self.predict(pool[starts[i % calls]: starts[i % calls] + batch])
        acc0 = self.backend.accelerator_seconds()
        stage = StageTimes()
        lat = np.empty(calls)
        t_start = time.perf_counter()
        for i, s in enumerate(starts):
            t0 = time.perf_counter()
            self.predict(pool[s: s + batch])
            lat[i] = time.perf_counter() - t0
            stage.add(self.last_times)
        seconds = time.perf_counter() - t_start
        acc1 = self.backend.accelerator_seconds()
        us = 1e6 / calls
        breakdown = {k: v * us for k, v in stage.as_dict().items()}
        breakdown["other"] = max(0.0, lat.sum() * us - sum(breakdown.values()))
        accel = None if acc0 is None or acc1 is None else (acc1 - acc0) * us
        return {
            "backend": self.backend.name,
            "batch": batch,
            "calls": calls,
            "samples": calls * batch,
            "seconds": seconds,
            "samples_per_s": calls * batch / seconds,
            "latency_us": {"mean": float(lat.mean() * 1e6), "median": float(np.median(lat) * 1e6),
                           "p99": float(np.percentile(lat, 99) * 1e6), "min": float(lat.min() * 1e6),
                           "max": float(lat.max() * 1e6)},
            "breakdown_us_per_call": breakdown,
            "accelerator_us_per_call": accel,
            "host_us_per_call": None if accel is None else float(lat.mean() * 1e6 - accel),
            "transfers_per_call": math.ceil(batch / self.samples_per_transfer),
        }

    def self_test(self):
        """Run the bundle's golden vectors now (the ``fpga-dnn verify`` regression test after an
        image, driver or bitstream update); returns the
        :class:`~fpga_dnn.runtime.golden.SelfTestReport` (``status`` passed / failed / none)."""
        from fpga_dnn.runtime.golden import GoldenVectors

        golden = None if self.bundle is None or self.bundle.golden is None else \
            GoldenVectors.load(self.bundle.golden, self.spec)
        return run_self_test(self, golden)

    # -- lifetime --------------------------------------------------------------------------------------
    def info(self) -> Dict[str, Any]:
        """The design and backend, for reports."""
        return {"design": self.spec.name, "input": list(self.spec.input.shape),
                "input_format": str(self.spec.input.format), "output": list(self.spec.output.shape),
                "output_format": str(self.spec.output.format), "samples_per_transfer": self.samples_per_transfer,
                "overflow": self.overflow, "rounding": self.rounding, **self.backend.info()}

    def _worker(self, n: int):
        """The :class:`~fpga_dnn.runtime.packing.ConversionWorker` that may share the conversion
        of a piece of ``n`` samples, or ``None``
        (one thread, or a piece too small to split: :data:`~fpga_dnn.runtime.packing.SPLIT_ELEMENTS`)."""
        if self.threads < 2 or n * self.spec.input.elements < SPLIT_ELEMENTS:
            return None
        if self._pool is None:
            self._pool = ConversionWorker()
        return self._pool

    def close(self) -> None:
        """Free the DMA buffers and the backend, stop the conversion worker, remove the bundle's
        private copy. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        self.backend.close()
        if self.bundle is not None and self.bundle.source is not None:
            shutil.rmtree(self.bundle.directory, ignore_errors=True)

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Accelerator {self.spec.name} on {self.backend.name}>"
