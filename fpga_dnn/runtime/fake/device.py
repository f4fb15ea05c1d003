"""A fake PYNQ board: a ``pynq.Device`` subclass that real pynq code runs against unchanged.

``pynq.Overlay(bitfile, device=FakeBoardDevice(...))`` parses the real ``.hwh`` with pynq's own
parser (the ``pynqmetadata`` path an ``EmbeddedDevice`` takes), binds ``pynq.lib.dma.DMA`` to
the ``axi_dma`` it finds, programs the PL clocks through ``pynq.ps.Clocks`` on ``download()``,
allocates buffers with ``pynq.allocate``, and drives the DMA through ``pynq.MMIO`` — every access
lands in the models behind this class:

* the DMA's register window → :class:`~.dma.AxiDmaModel` (PG021 simple mode) feeding the
  accelerator model (:mod:`.models`);
* the PS's clock registers (Zynq SLCR, or ZU+ CRL/CRF) → a register file initialised like the
  board's, so ``Clocks`` computes real frequencies (see :meth:`FakeBoardDevice.pl_clock_mhz`);
* ``allocate``/``flush``/``invalidate`` → :class:`~.memory.FakeMemory`, with a separate CPU
  view and DRAM copy per buffer (a missed flush or invalidate shows), addresses never reused
  (a DMA into a freed buffer shows).

Two register access styles, as pynq knows them: ``access='mmap'`` gives the board's capability
(``MEMORY_MAPPED``: ``MMIO`` indexes the array ``mmap()`` returns, here one whose element
accesses reach the DMA model), ``access='register'`` the ``REGISTER_RW`` one (``MMIO`` calls
``read_registers``/``write_registers``).

Needs pynq (the board environment: numpy < 2).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from fpga_dnn.runtime.fake.dma import HP_PORT_BYTES_PER_S, AxiDmaModel
from fpga_dnn.runtime.fake.hwh import PS_FAMILIES
from fpga_dnn.runtime.fake.memory import FakeMemory

DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
_clock = time.perf_counter


class _RegisterWindow(np.ndarray):
    """A ``uint32`` array whose element reads and writes are register accesses of a model."""

    def __new__(cls, device: "FakeBoardDevice", model: AxiDmaModel, offset: int, nwords: int):
        obj = np.zeros(nwords, dtype=np.uint32).view(cls)
        obj._device, obj._model, obj._offset = device, model, offset
        return obj

    def __array_finalize__(self, obj) -> None:
        self._device = getattr(obj, "_device", None)
        self._model = getattr(obj, "_model", None)
        self._offset = getattr(obj, "_offset", 0)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            t0 = _clock()
            value = np.uint32(self._model.read(self._offset + 4 * int(idx)))
            self._device.emulation_seconds += _clock() - t0
            return value
        raise TypeError("the fake DMA's registers are read one 32-bit word at a time")

    def __setitem__(self, idx, value) -> None:
        if isinstance(idx, (int, np.integer)):
            t0 = _clock()
            self._model.write(self._offset + 4 * int(idx), int(value))
            self._device.emulation_seconds += _clock() - t0
            return
        raise TypeError("the fake DMA's registers are written one 32-bit word at a time")


class FakeBoardDevice(Device):
    """A simulated PYNQ-Z2 or Ultra96 for ``pynq``: PS clocks, DDR with caches, AXI DMA(s).

    accelerator: the accelerator model behind every DMA (``frame bytes -> output bytes``, see
        :mod:`fpga_dnn.runtime.fake.models`); may also be set later via :attr:`accelerator`.
    board: ``'pynq-z2'`` or ``'ultra96'`` (the PS family, CPU architecture and bitstream part).
    access: ``'mmap'`` (MEMORY_MAPPED, as on a board) or ``'register'`` (REGISTER_RW).
    memory: the :class:`FakeMemory` to allocate from (default: a 128 MiB CMA window).
    poll_delay: status reads before a DMA completion shows (see :class:`AxiDmaModel`).
    trace: record every DMA register write/read (tests); turn off for long benchmarks.
    tag: pynq's device tag (default ``fake-<board>``).
    bandwidth: bytes per second each DMA channel moves, on :meth:`board_time` (default: a
        64-bit HP port at 100 MHz, 800 MB/s); ``None``: transfers complete at once (see
        :class:`AxiDmaModel`).

    After an overlay is loaded: :attr:`dmas` maps each DMA's full path to its model,
    :attr:`downloads` lists the bitstreams downloaded, :attr:`memory` has the cache statistics.
    """

    def __init__(self, accelerator: Optional[Callable] = None, board: str = "pynq-z2", access: str = "mmap",
                 memory: Optional[FakeMemory] = None, poll_delay: int = 0, trace: bool = True,
                 tag: Optional[str] = None, bandwidth: Optional[float] = HP_PORT_BYTES_PER_S):
        if board not in PS_FAMILIES:
            raise ValueError(f"unknown board {board!r}; known: {', '.join(sorted(PS_FAMILIES))}")
        if access not in ("mmap", "register"):
            raise ValueError(f"access must be 'mmap' or 'register', got {access!r}")
        super().__init__(tag or f"fake-{board}")
        self.board = board
        self.family = PS_FAMILIES[board]
        self.name = board
        self.arch = self.family.cpu_arch
        self.capabilities = {"MEMORY_MAPPED": True} if access == "mmap" else {"REGISTER_RW": True}
        self.memory = memory or FakeMemory(limit=self.family.ddr_high + 1)
        self._accelerator = accelerator
        self.poll_delay, self.trace = int(poll_delay), bool(trace)
        self.bandwidth = bandwidth
        self.dmas: Dict[str, AxiDmaModel] = {}
        self._windows: List[Tuple[int, int, AxiDmaModel]] = []
        self._regions: Dict[int, np.ndarray] = {}
        self.downloads: List[str] = []
        #: Seconds spent inside this fake (register and cache models, the accelerator model):
        #: subtract from a wall-clock time to get the driver's own time.
        self.emulation_seconds = 0.0
        self.timestamp = ""
        self.bitfile_name = None
        self._init_ps_registers()

    def board_time(self) -> float:
        """Seconds as the board would see them: wall-clock time minus the time spent inside this
        fake (its register, cache and accelerator models are the hardware's business), so a DMA
        with a bandwidth takes as long, seen from the driver, as it would on a board."""
        return _clock() - self.emulation_seconds

    # -- the accelerator -------------------------------------------------------------------------
    @property
    def accelerator(self) -> Optional[Callable]:
        return self._accelerator

    @accelerator.setter
    def accelerator(self, model: Callable) -> None:
        self._accelerator = model
        for dma in self.dmas.values():
            dma.accelerator = model

    @property
    def dma(self) -> AxiDmaModel:
        """The one DMA model (error if the overlay has none or several)."""
        if len(self.dmas) != 1:
            raise LookupError(f"the loaded overlay has {len(self.dmas)} DMAs: {sorted(self.dmas)}")
        return next(iter(self.dmas.values()))

    # -- bitstream and metadata (pynq calls these) --------------------------------------------------
    def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False):
        """Parse ``<bitfile>.hwh`` as a board's ``EmbeddedDevice`` does, and build the DMA models."""
        from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
        from pynq.pl_server.hwh_parser import HWH
        from pynqmetadata.frontends import Metadata

        hwh = os.path.splitext(bitfile_name)[0] + ".hwh"
        if not os.path.isfile(hwh):
            raise RuntimeError(f"Unable to find metadata for bitstream: {hwh} is missing")
        if partial:
            parser = HWH(hwh_data=Path(hwh).read_text())
        else:
            parser = RuntimeMetadataParser(Metadata(input=Path(hwh)))
        parser.bin_data = parser.xclbin_data = parser.dtbo_data = None
        self._build_peripherals(parser.ip_dict)
        self._forget_other_clocks()
        return parser

    def _build_peripherals(self, ip_dict: dict) -> None:
        self.dmas.clear()
        self._windows.clear()
        for path, desc in ip_dict.items():
            if not str(desc.get("type", "")).startswith(DMA_VLNV_PREFIX):
                continue
            p = desc["parameters"]
            model = AxiDmaModel(
                self.memory, self._accelerator if self._accelerator is not None else _no_accelerator,
                length_width=int(p.get("c_sg_length_width", 26)),
                mm2s_bytes=int(p.get("c_m_axi_mm2s_data_width", 32)) // 8,
                s2mm_bytes=int(p.get("c_m_axi_s2mm_data_width", 32)) // 8,
                addr_width=int(p.get("c_addr_width", 32)),
                dre=bool(int(p.get("c_include_mm2s_dre", 0))),
                poll_delay=self.poll_delay, trace=self.trace, bandwidth=self.bandwidth,
                clock=self.board_time)
            self.dmas[path] = model
            self._windows.append((int(desc["phys_addr"]), int(desc["addr_range"]), model))

    def _forget_other_clocks(self) -> None:
        """``pynq.ps.Clocks`` caches its register access for the first device it saw; make it
        use this one (a board has one device, a test process creates many)."""
        from pynq.ps import Clocks
        inst = Clocks.__dict__.get("_real_instance")
        if inst is not None:
            mmio = getattr(inst, "_slcr_mmio", None) or getattr(inst, "_crl_mmio", None)
            if mmio is None or mmio.device is not self:
                delattr(Clocks, "_real_instance")

    def download(self, bitstream, parser=None) -> None:
        """Program the PL: check the bitstream is for this board's part, reset the PL models."""
        path = bitstream.bitfile_name
        from fpga_dnn.runtime.bundle import read_bit_header
        header = read_bit_header(path)
        if header["part"] != self.family.part:
            raise RuntimeError(f"bitstream {path} is for part {header['part']}, this {self.board} is "
                               f"{self.family.part}")
        for dma in self.dmas.values():
            dma.reset()
            dma.resets = 0
        self.downloads.append(str(path))
        super().post_download(bitstream, parser, self.name)

    # -- register access ----------------------------------------------------------------------------
    def _window(self, address: int) -> Optional[Tuple[int, AxiDmaModel]]:
        for base, size, model in self._windows:
            if base <= address < base + size:
                return base, model
        return None

    def mmap(self, base_addr: int, length: int) -> np.ndarray:
        """A ``uint32`` array over ``[base_addr, base_addr + length)`` (MEMORY_MAPPED access)."""
        hit = self._window(base_addr)
        if hit is not None:
            base, model = hit
            return _RegisterWindow(self, model, base_addr - base, max(1, length // 4))
        return self._region(base_addr, length)

    def _region(self, base_addr: int, length: int) -> np.ndarray:
        for base, arr in self._regions.items():
            if base <= base_addr and base_addr + length <= base + arr.nbytes:
                off = (base_addr - base) // 4
                return arr[off: off + max(1, length // 4)]
        arr = np.zeros(max(1, length // 4), dtype=np.uint32)
        self._regions[base_addr] = arr
        return arr

    def read_registers(self, address: int, length: int) -> bytes:
        """REGISTER_RW access: ``length`` bytes from ``address``."""
        t0 = _clock()
        try:
            return self._read_registers(address, length)
        finally:
            self.emulation_seconds += _clock() - t0

    def _read_registers(self, address: int, length: int) -> bytes:
        hit = self._window(address)
        if hit is not None:
            base, model = hit
            words = [model.read(address - base + 4 * i) for i in range(max(1, length // 4))]
            return np.array(words, dtype=np.uint32).tobytes()[:length]
        return self._region(address, max(4, length)).tobytes()[:length]

    def write_registers(self, address: int, data: bytes) -> None:
        """REGISTER_RW access: store ``data`` (whole 32-bit words) at ``address``."""
        t0 = _clock()
        try:
            self._write_registers(address, data)
        finally:
            self.emulation_seconds += _clock() - t0

    def _write_registers(self, address: int, data: bytes) -> None:
        words = np.frombuffer(bytes(data), dtype=np.uint32)
        hit = self._window(address)
        if hit is not None:
            base, model = hit
            for i, w in enumerate(words):
                model.write(address - base + 4 * i, int(w))
            return
        self._region(address, 4 * len(words))[: len(words)] = words

    # -- memory (pynq.allocate, PynqBuffer.flush/invalidate) --------------------------------------------
    def allocate(self, shape, dtype, cacheable=0, **kwargs) -> PynqBuffer:
        """A contiguous buffer, as pynq's XRT allocator makes it: uncached memory by default
        (``cacheable=0``: the CPU's writes reach DRAM at once), cached with ``cacheable=1``
        (then only ``flush``/``invalidate`` move data between the CPU's view and DRAM). Either
        way the buffer is marked non-coherent, so pynq calls flush/invalidate (counted)."""
        dtype = np.dtype(dtype)
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        nbytes = int(math.prod(shape)) * dtype.itemsize
        alloc = self.memory.alloc(max(nbytes, 1))
        if not cacheable:
            alloc.dram = alloc.host  # uncached: the DMA sees what the CPU wrote, and vice versa
        buf = PynqBuffer(shape, dtype, buffer=alloc.host, device=self, device_address=alloc.address,
                         bo=alloc.id, coherent=False)
        # pynq's freebuffer() returns ``pointer`` to ``return_to`` when the last view dies (or on
        # an explicit freebuffer()); ``freed`` keeps it off its munmap path for board memory
        buf.memory, buf.pointer, buf.return_to, buf.freed = self, alloc.id, self, True
        return buf

    def return_pointer(self, pointer: int) -> None:
        self.memory.free(pointer)

    def flush(self, bo, offset, ptr, size) -> None:
        t0 = _clock()
        self.memory.flush(bo, offset, size)
        self.emulation_seconds += _clock() - t0

    def invalidate(self, bo, offset, ptr, size) -> None:
        t0 = _clock()
        self.memory.invalidate(bo, offset, size)
        self.emulation_seconds += _clock() - t0

    # -- the PS ---------------------------------------------------------------------------------------
    def _init_ps_registers(self) -> None:
        """The clock registers as the board's boot leaves them (PLLs running, CPU clock set)."""
        from pynq.ps import ZU_CRF_REGISTERS, ZU_CRL_REGISTERS, ZYNQ_SLCR_REGISTERS
        from pynq.registers import RegisterMap

        if self.family.modtype == "processing_system7":
            regs = RegisterMap.create_subclass("FakeSLCR", ZYNQ_SLCR_REGISTERS)(self._region(0xF8000000, 0x200))
            regs.ARM_PLL_CTRL.PLL_FDIV = 26    # 50 MHz x 26 = 1300 MHz
            regs.DDR_PLL_CTRL.PLL_FDIV = 21
            regs.IO_PLL_CTRL.PLL_FDIV = 32     # 1600 MHz: the PL clocks' source
            regs.ARM_CLK_CTRL.SRCSEL = 0
            regs.ARM_CLK_CTRL.DIVISOR = 2      # 650 MHz CPU
            for i in range(4):
                ctrl = getattr(regs, f"FPGA{i}_CLK_CTRL")
                ctrl.SRCSEL, ctrl.DIVISOR0, ctrl.DIVISOR1 = 0, 16, 1
        else:
            crl = RegisterMap.create_subclass("FakeCRL", ZU_CRL_REGISTERS)(self._region(0xFF5E0000, 0x100))
            crf = RegisterMap.create_subclass("FakeCRF", ZU_CRF_REGISTERS)(self._region(0xFD1A0000, 0x100))
            for pll, fbdiv in ((crl.IOPLL_CTRL, 90), (crl.RPLL_CTRL, 72), (crf.APLL_CTRL, 72),
                               (crf.DPLL_CTRL, 64), (crf.VPLL_CTRL, 90)):
                pll.PRE_SRC, pll.FBDIV, pll.DIV2 = 0, fbdiv, 1
            crf.ACPU_CTRL.SRCSEL, crf.ACPU_CTRL.DIVISOR0 = 0, 1
            for i in range(4):
                ctrl = getattr(crl, f"PL{i}_REF_CTRL")
                ctrl.SRCSEL, ctrl.DIVISOR0, ctrl.DIVISOR1 = 0, 15, 1

    def pl_clock_mhz(self, index: int = 0) -> float:
        """PL clock ``index`` as the PS registers now set it (what ``Overlay.download`` wrote)."""
        from pynq.ps import _ClocksUltrascale, _ClocksZynq
        cls = _ClocksZynq if self.family.modtype == "processing_system7" else _ClocksUltrascale
        return cls(device=self).get_pl_clk(index)


def _no_accelerator(frame: np.ndarray):
    raise RuntimeError("the fake board has no accelerator model: set FakeBoardDevice.accelerator")
