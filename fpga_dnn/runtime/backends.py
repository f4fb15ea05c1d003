"""Backends: what moves packed bytes through the accelerator for :class:`~.accelerator.Accelerator`.

A backend owns the two DMA buffers (input and output bytes, allocated once, grown only when a
larger batch needs it) and one operation, :meth:`Backend.transfer`: send ``in_bytes`` from the
input buffer through the accelerator and receive ``out_bytes`` into the output buffer. The
accelerator class does everything else (validation, packing, splitting a batch to the DMA
limit, unpacking), so it is the same code on every backend.

Backends:

* ``pynq`` (:mod:`.pynq_backend`): a board — ``pynq.Overlay``, ``pynq.allocate``, the bound
  ``pynq.lib.dma.DMA`` and its MMIO.
* ``sim`` (:mod:`.sim_backend`): the same ``pynq`` backend code on a fake pynq device whose
  AXI DMA model feeds an accelerator model (e.g. the RTL emulation). Needs pynq (board env).
* ``emulate`` (:class:`EmulatedBackend`, here): no pynq; the packed bytes go straight through
  the accelerator model. The quick path to the same model, and the only one in the toolchain
  environment (pynq cannot load with numpy 2).

Imports numpy only.
"""

from __future__ import annotations

import abc
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from fpga_dnn.errors import DmaError, DmaTimeoutError

#: The AXI DMA's largest transfer, 2**26 - 1 bytes (c_sg_length_width = 26), used when no
#: handoff says otherwise.
DEFAULT_MAX_TRANSFER = (1 << 26) - 1


class StageTimes:
    """Seconds spent per stage (``perf_counter``), accumulated over calls.

    pack: input validation, fixed-point conversion and packing into the DMA buffer.
    transfer: cache flush and programming the DMA (both channels).
    wait: until both channels are idle, plus the output buffer's cache invalidate.
    unpack: decoding the output buffer (to integers, and to real values for ``predict``).
    """

    __slots__ = ("pack", "transfer", "wait", "unpack")
    STAGES = ("pack", "transfer", "wait", "unpack")

    def __init__(self, pack: float = 0.0, transfer: float = 0.0, wait: float = 0.0, unpack: float = 0.0):
        self.pack, self.transfer, self.wait, self.unpack = pack, transfer, wait, unpack

    def add(self, other: "StageTimes") -> None:
        self.pack += other.pack
        self.transfer += other.transfer
        self.wait += other.wait
        self.unpack += other.unpack

    @property
    def total(self) -> float:
        return self.pack + self.transfer + self.wait + self.unpack

    def as_dict(self) -> Dict[str, float]:
        return {k: getattr(self, k) for k in self.STAGES}

    def __repr__(self) -> str:
        return "StageTimes(" + ", ".join(f"{k}={getattr(self, k) * 1e6:.1f}us" for k in self.STAGES) + ")"


class Backend(abc.ABC):
    """Buffers and transfers for one accelerator; see the module docstring.

    Subclasses implement :meth:`_allocate`, :meth:`_release`, :meth:`transfer` and set
    :attr:`max_transfer_bytes`.
    """

    name = "backend"
    #: The most bytes one transfer may move (each direction).
    max_transfer_bytes: int = DEFAULT_MAX_TRANSFER

    #: Buffer pairs: slot 0 serves single transfers; slots 0 and 1 alternate when transfers
    #: overlap host work (:meth:`prepare_async`).
    SLOTS = 2

    def __init__(self) -> None:
        #: per slot: [input, output], each ``(handle, uint8 numpy view)`` or ``None``
        self._slots: list = [[None, None] for _ in range(self.SLOTS)]
        self.allocations = 0
        self.closed = False
        #: Changes whenever the buffers do (allocated, grown, freed): views into them and
        #: :meth:`prepare`'d transfers are valid only for the generation they were made in.
        self.generation = 0
        self._bound_caches: list = []

    # -- buffers ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _allocate(self, nbytes: int) -> Tuple[Any, np.ndarray]:
        """A new buffer of ``nbytes``: ``(handle, plain uint8 numpy view of its memory)``."""

    @abc.abstractmethod
    def _release(self, handle: Any) -> None:
        """Free a buffer from :meth:`_allocate`."""

    def buffers(self, in_bytes: int, out_bytes: int, slot: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """The input and output buffers (uint8 views) of ``slot``, each at least the size asked.

        Allocated on first use and reused; replaced by a larger one (the old one freed) only
        when a call needs more, with room to double so a growing batch reallocates rarely.
        """
        if self.closed:
            raise DmaError(f"backend {self.name!r} is closed")
        pair = self._slots[slot]
        pair[0] = self._fit(pair[0], in_bytes)
        pair[1] = self._fit(pair[1], out_bytes)
        return pair[0][1], pair[1][1]

    @property
    def _in(self):
        return self._slots[0][0]

    @property
    def _out(self):
        return self._slots[0][1]

    def _fit(self, current, nbytes: int):
        if current is not None and current[1].size >= nbytes:
            return current
        size = nbytes if current is None else min(max(nbytes, 2 * current[1].size), self.max_transfer_bytes)
        size = max(size, nbytes)
        if current is not None:
            handle = current[0]
            current = None
            self._release(handle)
        self.allocations += 1
        self._new_generation()
        return self._allocate(size)

    def _new_generation(self) -> None:
        self.generation += 1
        for cache in self._bound_caches:
            cache.clear()

    def bound_cache(self) -> dict:
        """A dict for things bound to the current buffers (views, :meth:`prepare`'d transfers):
        emptied, in place, whenever the buffers change (reallocation, :meth:`close`), so what
        it holds is always valid."""
        cache: dict = {}
        self._bound_caches.append(cache)
        return cache

    @property
    def buffer_bytes(self) -> Tuple[int, int]:
        """Current capacities of the input and output buffers (0 before the first call)."""
        return (self._in[1].size if self._in else 0, self._out[1].size if self._out else 0)

    # -- the transfer --------------------------------------------------------------------------------
    @abc.abstractmethod
    def transfer(self, in_bytes: int, out_bytes: int, times: StageTimes) -> None:
        """Send ``in_bytes`` from the input buffer through the accelerator; receive exactly
        ``out_bytes`` into the output buffer (visible to the CPU on return). Adds its time to
        ``times.transfer`` and ``times.wait``. On a DMA error or timeout: reset the DMA, then
        raise :class:`~fpga_dnn.errors.DmaError` / :class:`~fpga_dnn.errors.DmaTimeoutError`.
        """

    def prepare(self, in_bytes: int, out_bytes: int) -> Callable[[], float]:
        """A ready transfer of ``in_bytes`` / ``out_bytes`` from/to the current buffers:
        ``run() -> t_started`` does what :meth:`transfer` does (same checks, errors and
        recovery) and returns the ``perf_counter`` time at which the DMA was programmed (the
        end of the "transfer" stage, the start of "wait"). Valid while :attr:`generation` is
        unchanged (keep it in a :meth:`bound_cache`). Backends precompute what they can here;
        this default just calls :meth:`transfer`."""
        times = StageTimes()
        transfer, clock = self.transfer, time.perf_counter

        def run() -> float:
            times.transfer = times.wait = 0.0
            transfer(in_bytes, out_bytes, times)
            return clock() - times.wait

        return run

    def prepare_async(self, in_bytes: int, out_bytes: int, slot: int) -> Tuple[Callable[[], float], Callable[[float], None]]:
        """A transfer of ``in_bytes`` / ``out_bytes`` from/to ``slot``'s buffers split in two, so
        the host can work while the DMA moves data: ``start() -> t_started`` flushes the input
        and programs the DMA, then returns; ``finish(t_started)`` waits for both channels (same
        deadline, checks, errors and recovery as :meth:`transfer`) and invalidates the output.
        One transfer may be in flight at a time (the DMA's simple mode): ``finish`` it before
        the next ``start``. Valid while :attr:`generation` is unchanged. This default runs the
        whole transfer in ``start`` (no overlap); backends with a real DMA override it."""
        if slot:
            raise NotImplementedError(f"backend {self.name!r} has no overlapped transfers")
        run = self.prepare(in_bytes, out_bytes)
        return run, lambda started: None

    def accelerator_seconds(self) -> Optional[float]:
        """Seconds spent inside a simulated accelerator so far (``None`` on hardware)."""
        return None

    def info(self) -> Dict[str, Any]:
        """What the backend is, for reports."""
        return {"backend": self.name, "max_transfer_bytes": self.max_transfer_bytes}

    def close(self) -> None:
        """Free the buffers (and release the hardware). Idempotent."""
        for pair in self._slots:
            for i, cur in enumerate(pair):
                pair[i] = None
                if cur is not None:
                    self._release(cur[0])
        self.closed = True
        self._new_generation()


class EmulatedBackend(Backend):
    """The pynq-free path: packed input bytes → accelerator model → output bytes, in process.

    model: an accelerator model, ``frame (uint8) -> output frame (uint8) | None``
        (:mod:`fpga_dnn.runtime.fake.models`; ``None`` means it never answers, reported as a
        timeout at once).
    max_transfer_bytes: split batches as a DMA with this limit would (default 2**26 - 1).
    """

    name = "emulate"

    def __init__(self, model: Callable[[np.ndarray], Optional[np.ndarray]],
                 max_transfer_bytes: int = DEFAULT_MAX_TRANSFER):
        super().__init__()
        self.model = model
        self.max_transfer_bytes = int(max_transfer_bytes)
        self.transfers = 0
        self._model_seconds = 0.0

    def _allocate(self, nbytes: int):
        buf = np.zeros(nbytes, dtype=np.uint8)
        return buf, buf

    def _release(self, handle) -> None:
        pass

    def transfer(self, in_bytes: int, out_bytes: int, times: StageTimes, slot: int = 0) -> None:
        t0 = time.perf_counter()
        in_np, out_np = self._slots[slot][0][1], self._slots[slot][1][1]
        for n, what in ((in_bytes, "input"), (out_bytes, "output")):
            if not 0 < n <= self.max_transfer_bytes:
                raise DmaError(f"{what} transfer of {n} bytes outside 1..{self.max_transfer_bytes}")
        frame = in_np[:in_bytes].copy()
        t1 = time.perf_counter()
        out = self.model(frame)
        t2 = time.perf_counter()
        self._model_seconds += t2 - t1
        self.transfers += 1
        if out is None:
            raise DmaTimeoutError("the accelerator model never answered (emulated timeout)", "S2MM")
        out = np.asarray(out, dtype=np.uint8).reshape(-1)
        if out.size != out_bytes:
            raise DmaError(f"the accelerator returned {out.size} bytes, {out_bytes} expected "
                           f"(S2MM would {'end early' if out.size < out_bytes else 'overflow'})", "S2MM")
        out_np[:out_bytes] = out
        times.transfer += t1 - t0
        times.wait += time.perf_counter() - t1

    def prepare_async(self, in_bytes: int, out_bytes: int, slot: int):
        """The model runs in ``start`` (in process: nothing runs beside the host)."""
        times, transfer, clock = StageTimes(), self.transfer, time.perf_counter

        def start() -> float:
            transfer(in_bytes, out_bytes, times, slot)
            return clock()

        return start, lambda started: None

    def accelerator_seconds(self) -> Optional[float]:
        return self._model_seconds

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "model": type(self.model).__name__}
