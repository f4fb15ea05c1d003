"""The ``pynq`` backend: a real (or fake) PYNQ device, its overlay and its AXI DMA in simple mode.

What pynq does here: ``pynq.Overlay`` loads the bitstream (clocks included) and parses the
handoff; it binds ``pynq.lib.dma.DMA`` to the ``axi_dma``, whose constructor reads the DMA's
parameters (``buffer_max_size = 2**c_sg_length_width - 1``) and starts both channels;
``pynq.allocate`` gives the contiguous buffers, whose ``flush``/``invalidate`` keep the CPU
cache and DRAM consistent.

What this module does itself: the transfer, on the driver's MMIO (PG021, direct register
mode). pynq's ``_SDMAChannel.wait()`` spins without a timeout and its ``start``/``stop`` loops
likewise; a runtime that must never hang drives the registers directly::

    flush(input)                                  # CPU cache -> DRAM
    S2MM_DA (0x48) [, S2MM_DA_MSB (0x4C)] = out address;  S2MM_LENGTH (0x58) = out bytes
    MM2S_SA (0x18) [, MM2S_SA_MSB (0x1C)] = in address;   MM2S_LENGTH (0x28) = in bytes
    poll MM2S_DMASR (0x04), then S2MM_DMASR (0x34): Idle (0x2) -> done; 0x70 error bits or
        Halted (0x1) -> error; past the deadline -> timeout
    S2MM_LENGTH read back = bytes received (must equal out bytes)
    invalidate(output)                            # DRAM -> CPU

S2MM is armed before MM2S starts so no output beat waits for a buffer. ``*_MSB`` registers
are written only when the DMA's ``c_addr_width`` is above 32. At open, and after an error or a
timeout, the DMA is reset (DMACR.Reset, bit 2 of MM2S_DMACR, resets both channels) and both
channels are started (DMACR.RS = 1 at 0x00 and 0x30), each step bounded in time; after an error
this happens before the error is raised, so the next call works.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import numpy as np

from fpga_dnn.errors import DeviceError, DmaError, DmaTimeoutError
from fpga_dnn.runtime.backends import Backend, StageTimes

MM2S, S2MM = 0x00, 0x30
_CR, _SR, _ADDR, _ADDR_MSB, _LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
_RS, _RESET = 0x1, 0x4
_HALTED, _IDLE, _ERRORS = 0x1, 0x2, 0x70
_NAMES = {MM2S: "MM2S", S2MM: "S2MM"}
_ERROR_TEXT = {
    0x10: "DMA internal error (length 0, or the accelerator sent more bytes than the buffer takes)",
    0x20: "DMA slave error (the memory port refused an access)",
    0x40: "DMA decode error (the buffer address decodes to no memory)",
}
DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"

#: Status polls spent spinning before the wait loop looks at the clock, and how long it keeps
#: spinning before it also sleeps: a transfer of a few hundred KiB (the overlapped path's
#: pieces: 256 KiB take 330 us at 800 MB/s) is caught the moment it ends, while a long wait (a
#: slow accelerator, a hang) does not burn a core. A sleep can last far longer than asked on a
#: busy machine, so short waits never sleep.
SPIN_POLLS = 200
SPIN_SECONDS = 2e-3
POLL_SLEEP_S = 50e-6
#: Bound on reset and channel start (the hardware needs a few clock cycles).
CONTROL_TIMEOUT_S = 0.5


def decode_status(status: int) -> str:
    """A DMASR value in words: ``'halted, idle, DMA decode error (...)'``."""
    words = [w for bit, w in ((_HALTED, "halted"), (_IDLE, "idle")) if status & bit]
    words += [text for bit, text in _ERROR_TEXT.items() if status & bit]
    return ", ".join(words) or "running, busy"


class PynqDmaBackend(Backend):
    """A pynq overlay with one AXI DMA (simple mode) in front of the accelerator.

    bitfile: the ``.bit`` (its ``.hwh`` beside it).
    device: the ``pynq.Device`` (``None``: pynq's active device — the board).
    dma: full path of the DMA in the overlay's ``ip_dict`` (e.g. ``'hier_0/axi_dma_0'``);
        ``None`` picks the only one.
    timeout_s: seconds a transfer may take before :class:`~fpga_dnn.errors.DmaTimeoutError`;
        ``None``: 1 s plus 10 ns per byte moved.
    download: program the bitstream (``False`` if it is already loaded).
    cacheable: allocate cached buffers (the default; the CPU packs and unpacks them at cache
        speed, and the transfer flushes/invalidates them). ``False`` gives pynq's default
        uncached memory, much slower for the CPU to read on the boards' ARM cores.
    """

    name = "pynq"

    def __init__(self, bitfile, device=None, dma: Optional[str] = None, timeout_s: Optional[float] = None,
                 download: bool = True, cacheable: bool = True):
        super().__init__()
        try:
            import pynq
            from pynq.lib.dma import DMA
        except ImportError as err:
            raise DeviceError(f"the 'pynq' backend needs the pynq package (PYNQ board image): {err}; "
                              "off the board use backend 'sim' (pynq installed) or 'emulate'") from None
        self._pynq = pynq
        self.timeout_s = timeout_s
        self.cacheable = bool(cacheable)
        try:
            self.overlay = pynq.Overlay(str(bitfile), download=download, device=device)
        except RuntimeError as err:
            raise DeviceError(f"cannot load overlay {bitfile}: {err}"
                              + (" (not on a PYNQ board? use backend 'sim')" if "No Devices" in str(err) else "")) from None
        self.device = self.overlay.device
        dmas = sorted(k for k, v in self.overlay.ip_dict.items() if str(v.get("type", "")).startswith(DMA_VLNV_PREFIX))
        if dma is None:
            if len(dmas) != 1:
                raise DeviceError(f"overlay {bitfile} has {len(dmas)} AXI DMAs ({', '.join(dmas) or 'none'}); "
                                  "name the one in front of the accelerator (dma=...)")
            dma = dmas[0]
        elif dma not in dmas:
            raise DeviceError(f"overlay {bitfile} has no AXI DMA {dma!r}; it has: {', '.join(dmas) or 'none'}")
        self.dma_path = dma
        params = self.overlay.ip_dict[dma]["parameters"]
        if int(params.get("c_include_sg", 0)):
            raise DeviceError(f"DMA {dma} is in scatter-gather mode; the runtime drives simple mode (c_include_sg=0)")
        desc = self.overlay.ip_dict[dma]
        self._regs = pynq.MMIO(desc["phys_addr"], desc["addr_range"], device=self.device).array
        self.resets = 0
        # reset and start both channels with a deadline first: the driver's constructor then finds
        # them running (its own start loop has no timeout and would spin on a dead DMA)
        self._reset_and_start()
        driver = self.overlay
        for part in dma.split("/"):
            driver = getattr(driver, part)  # binds pynq.lib.dma.DMA
        if not isinstance(driver, DMA):
            raise DeviceError(f"{dma} is bound to {type(driver).__name__}, not pynq.lib.dma.DMA")
        if driver.sendchannel is None or driver.recvchannel is None:
            raise DeviceError(f"DMA {dma} lacks its MM2S or S2MM channel (both are needed)")
        self.driver = driver
        self.max_transfer_bytes = int(driver.buffer_max_size)
        self.addr64 = int(params.get("c_addr_width", 32)) > 32
        # without the data realignment engine, buffer addresses must be aligned to the memory-map width
        self._align = max(int(params.get("c_m_axi_mm2s_data_width", 32)), int(params.get("c_m_axi_s2mm_data_width", 32))) // 8
        self._regs = driver.mmio.array
        self._prepared = self.bound_cache()   # (in bytes, out bytes) -> prepared run, for transfer()

    # -- buffers ------------------------------------------------------------------------------------
    def _allocate(self, nbytes: int):
        buf = self._pynq.allocate((nbytes,), np.uint8, target=self.device, cacheable=int(self.cacheable))
        if buf.physical_address % self._align:
            raise DeviceError(f"pynq.allocate returned address {buf.physical_address:#x}, not {self._align}-byte "
                              "aligned as the DMA needs")
        return buf, buf.view(np.ndarray)

    def _release(self, handle) -> None:
        handle.freebuffer()

    @staticmethod
    def _maintenance(buf, nbytes: int, op):
        """``(physical address, (op, args) or None)`` for the first ``nbytes`` of ``buf``.

        ``op(*args)`` is what ``PynqBuffer.flush``/``invalidate`` of the slice ``buf[:nbytes]``
        calls — ``device.flush(bo, offset, virtual address, nbytes)`` — with the arguments
        computed once per size instead of on every call (``virtual_address`` is costly in
        pynq); ``None`` for a coherent buffer (nothing to do).
        """
        view = buf[:nbytes]
        if view.coherent:
            return view.physical_address, None
        return view.physical_address, (op, (view.bo, view.offset, view.virtual_address, view.nbytes))

    # -- registers ----------------------------------------------------------------------------------
    def _read(self, offset: int) -> int:
        return int(self._regs[offset >> 2])

    def _write(self, offset: int, value: int) -> None:
        self._regs[offset >> 2] = value

    def _running(self, ch: int) -> bool:
        return not self._read(ch + _SR) & _HALTED

    def recover(self) -> None:
        """Reset the DMA and restart both channels (after an error or a timeout; counted in
        :attr:`resets`); :class:`DeviceError` if it does not respond in time."""
        self.resets += 1
        self._reset_and_start()

    def _reset_and_start(self) -> None:
        self._write(MM2S + _CR, _RESET)
        deadline = time.perf_counter() + CONTROL_TIMEOUT_S
        while self._read(MM2S + _CR) & _RESET or self._read(S2MM + _CR) & _RESET:
            if time.perf_counter() > deadline:
                raise DeviceError(f"DMA {self.dma_path} did not come out of reset within {CONTROL_TIMEOUT_S} s; "
                                  "reload the overlay (or reboot the board)")
        for ch in (MM2S, S2MM):
            self._write(ch + _CR, _RS)
        while not (self._running(MM2S) and self._running(S2MM)):
            if time.perf_counter() > deadline:
                raise DeviceError(f"DMA {self.dma_path} channels did not start after a reset "
                                  f"(MM2S {decode_status(self._read(MM2S + _SR))}, "
                                  f"S2MM {decode_status(self._read(S2MM + _SR))}); reload the overlay")

    # -- the transfer --------------------------------------------------------------------------------
    def transfer(self, in_bytes: int, out_bytes: int, times: StageTimes) -> None:
        t0 = time.perf_counter()
        run = self._prepared.get((in_bytes, out_bytes))
        if run is None:
            if len(self._prepared) >= 8:
                self._prepared.clear()
            run = self._prepared[in_bytes, out_bytes] = self.prepare(in_bytes, out_bytes)
        started = run()
        times.transfer += started - t0
        times.wait += time.perf_counter() - started

    def prepare(self, in_bytes: int, out_bytes: int):
        """The transfer of the module docstring, for these sizes and the current buffers, as a
        closure ``run() -> t_started``: addresses, register indices and cache-maintenance
        arguments computed here once, so a call is the flush, four register writes (six with
        64-bit addresses), the status reads and the invalidate. The fast path assumes the
        common case (each channel idle without error at its first status read) and hands
        anything else to :meth:`_wait`, which polls with the deadline and recovers."""
        program, flush, invalidate = self._plan(in_bytes, out_bytes, 0)
        regs, clock, wait, moved = self._regs, time.perf_counter, self._wait, in_bytes + out_bytes
        sr_mm2s, sr_s2mm, len_s2mm = (MM2S + _SR) >> 2, (S2MM + _SR) >> 2, (S2MM + _LENGTH) >> 2
        done_mask, done = _ERRORS | _HALTED | _IDLE, _IDLE
        fl_op, fl_args = flush or (None, None)
        inv_op, inv_args = invalidate or (None, None)
        short_frame = self._short_frame

        if len(program) == 4:   # 32-bit addresses: the writes unrolled
            (r0, v0), (r1, v1), (r2, v2), (r3, v3) = program

            def run() -> float:
                if fl_op is not None:
                    fl_op(*fl_args)
                regs[r0] = v0
                regs[r1] = v1
                regs[r2] = v2
                regs[r3] = v3
                t = clock()
                status = int(regs[sr_mm2s])
                if status & done_mask != done:
                    wait(MM2S, in_bytes, status, t, moved)
                status = int(regs[sr_s2mm])
                if status & done_mask != done:
                    wait(S2MM, out_bytes, status, t, moved)
                received = int(regs[len_s2mm])
                if received != out_bytes:
                    short_frame(received, out_bytes)
                if inv_op is not None:
                    inv_op(*inv_args)
                return t
        else:   # 64-bit addresses: the split transfer, joined (the unrolled path above is the hot one)
            start, finish = self.prepare_async(in_bytes, out_bytes, 0)

            def run() -> float:
                t = start()
                finish(t)
                return t

        return run

    def _plan(self, in_bytes: int, out_bytes: int, slot: int):
        """``(register program, flush, invalidate)`` for a transfer from/to ``slot``'s buffers:
        the (index, value) register writes in order (S2MM armed first) and the cache-maintenance
        calls of :meth:`_maintenance`."""
        if not (0 < in_bytes <= self.max_transfer_bytes and 0 < out_bytes <= self.max_transfer_bytes):
            raise DmaError(f"transfer of {in_bytes} in / {out_bytes} out bytes outside the DMA's "
                           f"1..{self.max_transfer_bytes}")
        inp, out = self._slots[slot]
        if self.closed or inp is None or out is None or inp[1].size < in_bytes or out[1].size < out_bytes:
            raise DmaError(f"no DMA buffers of {in_bytes} / {out_bytes} bytes (allocate them with buffers())")
        src, flush = self._maintenance(inp[0], in_bytes, self.device.flush)
        dst, invalidate = self._maintenance(out[0], out_bytes, self.device.invalidate)
        program = [((S2MM + _ADDR) >> 2, dst & 0xFFFFFFFF)]
        if self.addr64:
            program.append(((S2MM + _ADDR_MSB) >> 2, dst >> 32))
        program.append(((S2MM + _LENGTH) >> 2, out_bytes))
        program.append(((MM2S + _ADDR) >> 2, src & 0xFFFFFFFF))
        if self.addr64:
            program.append(((MM2S + _ADDR_MSB) >> 2, src >> 32))
        program.append(((MM2S + _LENGTH) >> 2, in_bytes))
        return tuple(program), flush, invalidate

    def prepare_async(self, in_bytes: int, out_bytes: int, slot: int):
        """The transfer of :meth:`prepare` split at the point where the DMA runs: ``start()``
        flushes and programs (returns the time), ``finish(t)`` polls both channels with the
        deadline counted from ``t``, checks the received length and invalidates."""
        program, flush, invalidate = self._plan(in_bytes, out_bytes, slot)
        regs, clock, wait, moved = self._regs, time.perf_counter, self._wait, in_bytes + out_bytes
        sr_mm2s, sr_s2mm, len_s2mm = (MM2S + _SR) >> 2, (S2MM + _SR) >> 2, (S2MM + _LENGTH) >> 2
        done_mask, done = _ERRORS | _HALTED | _IDLE, _IDLE
        fl_op, fl_args = flush or (None, None)
        inv_op, inv_args = invalidate or (None, None)
        short_frame = self._short_frame

        def start() -> float:
            if fl_op is not None:
                fl_op(*fl_args)
            for r, v in program:
                regs[r] = v
            return clock()

        def finish(t: float) -> None:
            status = int(regs[sr_mm2s])
            if status & done_mask != done:
                wait(MM2S, in_bytes, status, t, moved)
            status = int(regs[sr_s2mm])
            if status & done_mask != done:
                wait(S2MM, out_bytes, status, t, moved)
            received = int(regs[len_s2mm])
            if received != out_bytes:
                short_frame(received, out_bytes)
            if inv_op is not None:
                inv_op(*inv_args)

        return start, finish

    def _short_frame(self, received: int, out_bytes: int) -> None:
        self.recover()
        raise DmaError(f"S2MM received {received} bytes, {out_bytes} expected: the accelerator ended its "
                       "output frame early (tlast) — does the bitstream match spec.json? The DMA was reset.",
                       "S2MM", received)

    def _wait(self, ch: int, nbytes: int, status: int, started: float, moved: int) -> None:
        """Poll channel ``ch``'s status (``status``: the first read) until Idle; error bits or
        Halted raise :class:`DmaError`, no Idle by ``started`` + the timeout (``timeout_s``,
        default 1 s + 10 ns per byte ``moved``) raises :class:`DmaTimeoutError` — both after
        resetting the DMA."""
        reg = self._regs
        idx = (ch + _SR) >> 2
        timeout = self.timeout_s if self.timeout_s is not None else 1.0 + moved * 1e-8
        deadline = started + timeout
        spin_until = time.perf_counter() + SPIN_SECONDS
        polls = 0
        while True:
            if status & (_ERRORS | _HALTED):
                self.recover()
                raise DmaError(f"{_NAMES[ch]} transfer of {nbytes} bytes failed: {decode_status(status)} "
                               f"(DMASR {status:#06x}); the DMA was reset", _NAMES[ch], status)
            if status & _IDLE:
                return
            polls += 1
            if polls >= SPIN_POLLS:
                now = time.perf_counter()
                if now > deadline:
                    self.recover()
                    what = ("the accelerator did not accept its input" if ch == MM2S
                            else "the accelerator did not return its output")
                    raise DmaTimeoutError(
                        f"{_NAMES[ch]} transfer of {nbytes} bytes did not finish within {timeout:.3g} s: {what} "
                        f"(DMASR {status:#06x}: {decode_status(status)}); the DMA was reset", _NAMES[ch], status)
                if now > spin_until:
                    time.sleep(POLL_SLEEP_S)
            status = int(reg[idx])

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "dma": self.dma_path, "device": type(self.device).__name__,
                "addr_width": 64 if self.addr64 else 32, "bitfile": self.overlay.bitfile_name}
