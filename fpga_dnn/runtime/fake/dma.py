"""A register-level model of the Xilinx AXI DMA 7.1 in simple (direct register) mode (PG021).

Register map (byte offsets; MM2S channel at 0x00, S2MM at 0x30)::

    0x00 MM2S_DMACR   0x04 MM2S_DMASR   0x18 MM2S_SA   0x1C MM2S_SA_MSB   0x28 MM2S_LENGTH
    0x30 S2MM_DMACR   0x34 S2MM_DMASR   0x48 S2MM_DA   0x4C S2MM_DA_MSB   0x58 S2MM_LENGTH

Behaviour modelled (the parts a driver depends on):

* Reset state: DMACR = 0x00010000, DMASR = 0x00000001 (Halted). Writing DMACR.Reset (bit 2) on
  either channel resets the whole engine (both channels, all registers, the stream FIFOs); the
  reset completes at once (DMACR reads back without bit 2).
* DMACR.RS (bit 0) = 1 starts a channel: Halted clears; Idle stays 0 until a transfer completes
  ("Idle is 0 prior to the initial transfer in Direct Register Mode"). RS = 0 halts it and drops
  a transfer in flight. An error halts the channel and clears RS; only a reset clears the
  error bits, so a halted-on-error channel does not restart with RS = 1.
* Writing LENGTH starts a transfer from the address registers (``*_MSB`` used when
  ``addr_width`` > 32); the LENGTH field is ``length_width`` bits wide (larger values wrap, as
  in hardware); a write while halted or busy is ignored (recorded in :attr:`violations`).
  Length 0 → DMAIntErr (0x10). An address outside any live buffer → DMADecErr (0x40). An
  address not aligned to the memory-map width without DRE → DMAIntErr.
* MM2S reads the frame from DRAM (after the CPU's flush — see :mod:`.memory`) and pushes it,
  with ``tlast``, through the accelerator model; the model's output frame queues on the
  S2MM stream. S2MM writes one frame into its buffer: a frame shorter than LENGTH completes
  early and LENGTH then reads the bytes received; a frame longer than LENGTH sets DMAIntErr.
  A model returning ``None`` never answers: S2MM stays busy (until reset).
* Completion sets Idle (0x2) and IOC_Irq (0x1000); an error sets the error bit, Halted and
  Err_Irq (0x4000). IOC_Irq/Dly_Irq/Err_Irq are write-1-to-clear.
* ``poll_delay``: completion becomes visible only after that many reads of the channel's
  status register (a transfer that takes time); 0 = at once.
* ``bandwidth``: bytes per second each channel moves (``None``: transfers complete within the
  register write that starts them). With a bandwidth a transfer takes time in proportion to its
  bytes and runs **concurrently with the host**: MM2S completes ``length / bandwidth`` after it
  started, and reads its buffer from DRAM only then (so a host that rewrites an input buffer
  still in flight corrupts that frame, as on a board); the output frame is ready when both
  streams have moved, ``max(in, out) / bandwidth`` after MM2S started; S2MM completes when the
  frame is ready and written. Time is the ``clock`` given (the fake device passes board time:
  wall-clock time minus the time spent inside the fake itself, so the fake's own Python cost
  does not count as the DMA's).

:meth:`AxiDmaModel.inject_error` makes the next transfer(s) on a channel fail with given error
bits (e.g. 0x20, DMASlvErr). Everything the driver did is recorded: :attr:`writes` (offset,
value) when ``trace`` is on, :attr:`transfers` always.

Pure Python + numpy: the fake pynq device maps it into its MMIO window; tests can drive it
directly.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from fpga_dnn.runtime.fake.memory import FakeMemory

MM2S, S2MM = 0x00, 0x30
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28

CR_RS, CR_RESET = 0x1, 0x4
CR_RESET_VALUE = 0x0001_0000

SR_HALTED, SR_IDLE = 0x1, 0x2
SR_INT_ERR, SR_SLV_ERR, SR_DEC_ERR = 0x10, 0x20, 0x40
SR_ERRORS = SR_INT_ERR | SR_SLV_ERR | SR_DEC_ERR
SR_IOC_IRQ, SR_DLY_IRQ, SR_ERR_IRQ = 0x1000, 0x2000, 0x4000
SR_W1C = SR_IOC_IRQ | SR_DLY_IRQ | SR_ERR_IRQ

CHANNEL_NAMES = {MM2S: "MM2S", S2MM: "S2MM"}

#: The fake board's default DMA bandwidth per channel, 800 MB/s: a PYNQ-Z2 overlay's AXI DMA on a
#: 64-bit S_AXI_HP port clocked, like the DMA and the accelerator's stream, by the PL clock
#: FCLK_CLK0 at 100 MHz (the overlay step's and PYNQ's usual clock): 8 bytes x 100 MHz each way.
#: Source: Zynq-7000 TRM (UG585) ch. 5.3, "High-Performance AXI Ports": 32- or 64-bit ports with
#: separate read and write channels, clocked from the PL, so the peak per direction is the data
#: width times that clock. It is also the beat rate of a 64-bit AXI-Stream at 100 MHz, so a
#: design with 64-bit streams meets both limits at once; a 32-bit stream moves half of it
#: (``driver_bench.dma_bound`` takes the slowest). Both directions together (at most 1.6 GB/s)
#: stay below the board's 16-bit DDR3 at 1050 MT/s (2.1 GB/s peak).
HP_PORT_BYTES_PER_S = 8 * 100e6


@dataclass
class DmaTransfer:
    """One transfer the driver started: what, where, and how it ended."""

    channel: str          # 'MM2S' or 'S2MM'
    address: int
    length: int           # bytes asked for (LENGTH as written, after wrapping to the field width)
    target: str           # what the address hit: 'live buffer #3 (+0x0)', 'FREED buffer #2 ...', ...
    status: str = "busy"  # 'done', 'error 0x40', 'aborted'
    received: int = 0     # S2MM: bytes written


class _Channel:
    def __init__(self, base: int):
        self.base = base
        self.name = CHANNEL_NAMES[base]
        self.cr = CR_RESET_VALUE
        self.sr = SR_HALTED
        self.addr = 0
        self.addr_msb = 0
        self.length = 0
        self.busy: Optional[DmaTransfer] = None
        self.hidden_reads = 0     # status reads left before a completion shows (poll_delay)
        self.inject: List[int] = []

    @property
    def halted(self) -> bool:
        return bool(self.sr & SR_HALTED)


class AxiDmaModel:
    """A simple-mode AXI DMA between a :class:`~.memory.FakeMemory` and an accelerator model.

    memory: the DDR the DMA reads and writes.
    accelerator: ``model(frame: uint8 array) -> uint8 array | None`` (see :mod:`.models`).
    length_width: ``c_sg_length_width`` — the LENGTH field width; transfers of up to
        ``2**length_width - 1`` bytes.
    mm2s_bytes / s2mm_bytes: memory-map data widths in bytes (alignment without DRE).
    addr_width: ``c_addr_width`` (32 or 64).
    dre: data realignment engine present (unaligned addresses allowed).
    poll_delay: status reads before a completion becomes visible (see the module docstring).
    trace: record every register write in :attr:`writes` (and reads in :attr:`reads`).
    bandwidth: bytes per second per channel, ``None`` = instant (see the module docstring).
    clock: the time source for ``bandwidth`` (seconds, monotonic).
    """

    def __init__(self, memory: FakeMemory, accelerator: Callable, length_width: int = 26,
                 mm2s_bytes: int = 8, s2mm_bytes: int = 8, addr_width: int = 32, dre: bool = False,
                 poll_delay: int = 0, trace: bool = True, bandwidth: Optional[float] = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.memory = memory
        self.accelerator = accelerator
        self.length_width = int(length_width)
        self.mm2s_bytes, self.s2mm_bytes = int(mm2s_bytes), int(s2mm_bytes)
        self.addr_width = int(addr_width)
        self.dre = bool(dre)
        self.poll_delay = int(poll_delay)
        self.trace = bool(trace)
        self.writes: List[tuple] = []
        self.reads: List[tuple] = []
        self.transfers: List[DmaTransfer] = []
        self.violations: List[str] = []
        self.resets = 0
        self.model_seconds = 0.0
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s or None, got {bandwidth!r}")
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        self.clock = clock
        self._ch: Dict[int, _Channel] = {MM2S: _Channel(MM2S), S2MM: _Channel(S2MM)}
        #: output frames on the S2MM stream: (bytes, time they have fully arrived)
        self._stream: Deque[tuple] = collections.deque()
        #: MM2S in flight with a bandwidth: (transfer, started, due)
        self._mm2s_flight: Optional[tuple] = None

    @property
    def max_transfer_bytes(self) -> int:
        return (1 << self.length_width) - 1

    # -- control -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """The engine's soft reset: both channels back to the reset state, stream FIFOs emptied."""
        for ch in self._ch.values():
            if ch.busy is not None:
                ch.busy.status = "aborted"
            inject = ch.inject
            ch.__init__(ch.base)
            ch.inject = inject
        self._stream.clear()
        self._mm2s_flight = None
        self.resets += 1

    def inject_error(self, channel: str, bits: int = SR_SLV_ERR, count: int = 1) -> None:
        """Make the next ``count`` transfers on ``channel`` ('MM2S'/'S2MM') fail with ``bits``."""
        if bits & ~SR_ERRORS or not bits:
            raise ValueError(f"error bits must be a non-empty subset of {SR_ERRORS:#x}, got {bits:#x}")
        ch = self._ch[MM2S if channel.upper() == "MM2S" else S2MM]
        ch.inject.extend([bits] * count)

    def status(self, channel: str) -> int:
        """The channel's status register, without the side effects of a driver read."""
        return self._ch[MM2S if channel.upper() == "MM2S" else S2MM].sr

    # -- register access ----------------------------------------------------------------------------
    def read(self, offset: int) -> int:
        if self.bandwidth is not None:
            self._advance()
        ch = self._ch[S2MM if offset >= S2MM else MM2S]
        reg = offset - ch.base
        if offset >= 0x60 or offset < 0:
            value = 0
        elif reg == DMACR:
            value = ch.cr
        elif reg == DMASR:
            value = ch.sr
            if ch.hidden_reads:
                ch.hidden_reads -= 1
                value = (value & ~(SR_IDLE | SR_IOC_IRQ))
        elif reg == ADDR:
            value = ch.addr
        elif reg == ADDR_MSB:
            value = ch.addr_msb
        elif reg == LENGTH:
            value = ch.length
        else:
            value = 0
        if self.trace:
            self.reads.append((offset, value))
        return value

    def write(self, offset: int, value: int) -> None:
        value = int(value) & 0xFFFFFFFF
        if self.trace:
            self.writes.append((offset, value))
        if self.bandwidth is not None:
            self._advance()
        if offset >= 0x60 or offset < 0:
            return
        ch = self._ch[S2MM if offset >= S2MM else MM2S]
        reg = offset - ch.base
        if reg == DMACR:
            self._write_cr(ch, value)
        elif reg == DMASR:
            ch.sr &= ~(value & SR_W1C)
        elif reg == ADDR:
            ch.addr = value
        elif reg == ADDR_MSB:
            if self.addr_width > 32:
                ch.addr_msb = value
        elif reg == LENGTH:
            self._write_length(ch, value)

    def _write_cr(self, ch: _Channel, value: int) -> None:
        if value & CR_RESET:
            self.reset()
            return
        ch.cr = value
        if value & CR_RS:
            if ch.sr & SR_ERRORS:
                ch.cr &= ~CR_RS  # error bits only clear on reset: the channel stays halted
                self.violations.append(f"{ch.name}: RS=1 written while in error {ch.sr:#x} (needs a reset)")
            elif ch.halted:
                ch.sr &= ~(SR_HALTED | SR_IDLE)
        else:
            if ch.busy is not None:
                ch.busy.status = "aborted"
                ch.busy = None
                if ch.base == MM2S:
                    self._mm2s_flight = None
            ch.sr = (ch.sr | SR_HALTED) & ~SR_IDLE

    def _write_length(self, ch: _Channel, value: int) -> None:
        length = value & self.max_transfer_bytes
        if length != value:
            self.violations.append(f"{ch.name}: LENGTH {value} exceeds the {self.length_width}-bit field "
                                   f"(wrapped to {length})")
        ch.length = length
        if ch.halted:
            self.violations.append(f"{ch.name}: LENGTH written while halted (ignored)")
            return
        if ch.busy is not None:
            self.violations.append(f"{ch.name}: LENGTH written while a transfer is in flight (ignored)")
            return
        address = ch.addr | (ch.addr_msb << 32 if self.addr_width > 32 else 0)
        t = DmaTransfer(ch.name, address, length, self.memory.describe(address))
        self.transfers.append(t)
        ch.sr &= ~SR_IDLE
        ch.busy = t
        ch.hidden_reads = self.poll_delay
        if ch.inject:
            return self._fail(ch, ch.inject.pop(0), "injected")
        if length == 0:
            return self._fail(ch, SR_INT_ERR, "length 0")
        width = self.mm2s_bytes if ch.base == MM2S else self.s2mm_bytes
        if not self.dre and address % width:
            return self._fail(ch, SR_INT_ERR, f"address {address:#x} not {width}-byte aligned without DRE")
        if ch.base == MM2S:
            if self.bandwidth is not None:   # moves its bytes over time: read at completion
                now = self.clock()
                self._mm2s_flight = (t, now, now + length / self.bandwidth)
                return
            self._run_frame(ch, t, None)
        self._pump()

    def _run_frame(self, ch: _Channel, t: DmaTransfer, started: Optional[float]) -> None:
        """MM2S reads its frame from DRAM and pushes it through the accelerator model."""
        data = self.memory.dma_read(t.address, t.length)
        if data is None:
            return self._fail(ch, SR_DEC_ERR, f"no live buffer at {t.address:#x}: {t.target}")
        t0 = time.perf_counter()
        out = self.accelerator(data.copy())
        self.model_seconds += time.perf_counter() - t0
        if out is not None:
            frame = np.ascontiguousarray(out, dtype=np.uint8).reshape(-1)
            ready = 0.0 if started is None else started + max(t.length, frame.size) / self.bandwidth
            self._stream.append((frame, ready))
        self._done(ch, t.length)

    def _advance(self) -> None:
        """With a bandwidth: complete what has had time to move by now."""
        flight = self._mm2s_flight
        now = self.clock()
        if flight is not None and now >= flight[2]:
            self._mm2s_flight = None
            ch = self._ch[MM2S]
            if ch.busy is flight[0]:
                self._run_frame(ch, flight[0], flight[1])
        if self._stream and now >= self._stream[0][1]:
            self._pump()

    def _pump(self) -> None:
        """Deliver a queued output frame into an armed S2MM transfer."""
        ch = self._ch[S2MM]
        if ch.busy is None or not self._stream or ch.halted:
            return
        if self._stream[0][1] and self.clock() < self._stream[0][1]:
            return   # still arriving (bandwidth)
        frame = self._stream.popleft()[0]
        n = min(frame.size, ch.busy.length)
        if not self.memory.dma_write(ch.busy.address, frame[:n]):
            return self._fail(ch, SR_DEC_ERR, f"no live buffer at {ch.busy.address:#x}: {ch.busy.target}")
        ch.busy.received = n
        if frame.size > ch.busy.length:
            return self._fail(ch, SR_INT_ERR, f"frame of {frame.size} bytes longer than LENGTH {ch.busy.length}")
        ch.length = n
        self._done(ch, n)

    def _done(self, ch: _Channel, nbytes: int) -> None:
        ch.busy.status = "done"
        ch.busy = None
        ch.sr |= SR_IDLE | SR_IOC_IRQ

    def _fail(self, ch: _Channel, bits: int, why: str) -> None:
        if ch.busy is not None:
            ch.busy.status = f"error {bits:#x} ({why})"
            ch.busy = None
        ch.sr = (ch.sr | bits | SR_HALTED | SR_ERR_IRQ) & ~SR_IDLE
        ch.cr &= ~CR_RS
        self.violations.append(f"{ch.name}: error {bits:#x}: {why}")
