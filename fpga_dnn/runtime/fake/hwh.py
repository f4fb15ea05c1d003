"""A minimal but realistic hardware handoff (``.hwh``) and bitstream (``.bit``) for a DMA overlay.

The design is the one the overlay step builds (and the one hls4ml's VivadoAccelerator backend
builds): a processing system (Zynq-7000 ``processing_system7`` for PYNQ-Z2, Zynq UltraScale+
``zynq_ultra_ps_e`` for Ultra96), an AXI DMA 7.1 in simple (direct register) mode whose
AXI-Lite registers hang off the PS's general-purpose master port and whose memory masters reach
DDR through the PS's HP0 port, and the accelerator IP between the DMA's MM2S and S2MM streams::

    PS M_AXI_GP0 ──► axi_dma_0/S_AXI_LITE         (registers at the board's DMA base address)
    axi_dma_0/M_AXI_MM2S, M_AXI_S2MM ──► PS S_AXI_HP0  (DDR)
    axi_dma_0/M_AXIS_MM2S ──► accel/s_axis ; accel/m_axis ──► axi_dma_0/S_AXIS_S2MM
    PS FCLK_CLK0 / FCLK_RESET0_N ──► every clock / reset

pynq reads from it what the real board's handoff gives: the PS (and so the clock divisors that
``Overlay.download`` programs through ``pynq.ps.Clocks``), the DMA's address window and its
parameters — ``c_include_sg`` (0: simple mode), ``c_sg_length_width`` (the maximum transfer is
``2**c_sg_length_width - 1`` bytes), ``c_include_mm2s``/``c_include_s2mm``, the memory-map and
stream data widths, ``c_addr_width`` (64 means the ``*_MSB`` address registers are used),
``c_micro_dma`` and the DRE flags — and no interrupt connections (the DMA driver polls). Both of
pynq's parsers accept it: the ``pynqmetadata`` one that ``pynq.Overlay`` uses and the legacy
``pynq.pl_server.hwh_parser``. What is left out of a Vivado handoff (AXI interconnects, the
reset block, the PS's hundreds of unrelated parameters, DDR/FIXED_IO pins) is invisible to pynq.

Standard library only: usable from the toolchain environment (to write a simulated bundle) and
on a board.
"""

from __future__ import annotations

import hashlib
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from fpga_dnn.errors import ConfigError

PathLike = Union[str, Path]

#: A real handoff's DMA register block (PG021, simple mode): name -> (offset, access, fields);
#: fields are (name, bit offset, bit width, access).
DMA_REGISTERS: Dict[str, Tuple[int, str, Tuple[Tuple[str, int, int, str], ...]]] = {
    "MM2S_DMACR": (0x00, "read-write", (("RS", 0, 1, "read-write"), ("Reset", 2, 1, "read-write"),
                                        ("IOC_IrqEn", 12, 1, "read-write"), ("Err_IrqEn", 14, 1, "read-write"))),
    "MM2S_DMASR": (0x04, "read-write", (("Halted", 0, 1, "read-only"), ("Idle", 1, 1, "read-only"),
                                        ("SGIncld", 3, 1, "read-only"), ("DMAIntErr", 4, 1, "read-only"),
                                        ("DMASlvErr", 5, 1, "read-only"), ("DMADecErr", 6, 1, "read-only"),
                                        ("IOC_Irq", 12, 1, "read-write"), ("Err_Irq", 14, 1, "read-write"))),
    "MM2S_SA": (0x18, "read-write", (("Source_Address", 0, 32, "read-write"),)),
    "MM2S_SA_MSB": (0x1C, "read-write", (("Source_Address", 0, 32, "read-write"),)),
    "MM2S_LENGTH": (0x28, "read-write", (("Length", 0, 26, "read-write"),)),
    "S2MM_DMACR": (0x30, "read-write", (("RS", 0, 1, "read-write"), ("Reset", 2, 1, "read-write"),
                                        ("IOC_IrqEn", 12, 1, "read-write"), ("Err_IrqEn", 14, 1, "read-write"))),
    "S2MM_DMASR": (0x34, "read-write", (("Halted", 0, 1, "read-only"), ("Idle", 1, 1, "read-only"),
                                        ("SGIncld", 3, 1, "read-only"), ("DMAIntErr", 4, 1, "read-only"),
                                        ("DMASlvErr", 5, 1, "read-only"), ("DMADecErr", 6, 1, "read-only"),
                                        ("IOC_Irq", 12, 1, "read-write"), ("Err_Irq", 14, 1, "read-write"))),
    "S2MM_DA": (0x48, "read-write", (("Destination_Address", 0, 32, "read-write"),)),
    "S2MM_DA_MSB": (0x4C, "read-write", (("Destination_Address", 0, 32, "read-write"),)),
    "S2MM_LENGTH": (0x58, "read-write", (("Length", 0, 26, "read-write"),)),
}


@dataclass(frozen=True)
class PsFamily:
    """What differs between the Zynq-7000 and Zynq UltraScale+ processing systems in a handoff.

    ``pll_mhz`` is the PLL that feeds the PL clocks (IO PLL) and ``pll_*`` how the fake device's
    clock registers reproduce it; ``dma_base`` is where Vivado's address editor puts the first
    AXI-Lite peripheral; ``ddr_high`` bounds the DDR window the HP port reaches.
    """

    modtype: str
    vlnv: str
    arch: str            # SYSTEMINFO ARCH
    cpu_arch: str        # platform.machine() of the board: what pynq.ps.Clocks keys on
    device: str
    package: str
    part: str            # as the .bit header records it
    gp_master: str
    hp_slave: str
    fclk: str
    fclk_reset: str
    dma_base: int
    ddr_high: int
    pll_mhz: float
    default_addr_width: int

    def clock_parameters(self, clock_mhz: float) -> Dict[str, str]:
        """The PS parameters that describe the four PL clocks, clock 0 at ``clock_mhz``."""
        d0, d1 = clock_divisors(self.pll_mhz, clock_mhz)
        actual = self.pll_mhz / (d0 * d1)
        params: Dict[str, str] = {}
        for i in range(4):
            on = i == 0
            a, b = (d0, d1) if on else (1, 1)
            if self.modtype == "processing_system7":
                params[f"PCW_FPGA_FCLK{i}_ENABLE"] = "1" if on else "0"
                params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = str(a)
                params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = str(b)
                params[f"PCW_FCLK{i}_PERIPHERAL_CLKSRC"] = "IO PLL"
                params[f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ"] = f"{clock_mhz:g}" if on else "50"
                params[f"PCW_ACT_FPGA{i}_PERIPHERAL_FREQMHZ"] = f"{actual:.6f}" if on else "10.000000"
            else:
                params[f"PSU__FPGA_PL{i}_ENABLE"] = "1" if on else "0"
                params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0"] = str(a)
                params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1"] = str(b)
                params[f"PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL"] = "IOPLL"
                params[f"PSU__CRL_APB__PL{i}_REF_CTRL__FREQMHZ"] = f"{clock_mhz:g}" if on else "100"
                params[f"PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ"] = f"{actual:.6f}" if on else "100.000000"
        return params


#: The two boards' processing systems (parts as in overlays/boards/*.toml).
PS_FAMILIES: Dict[str, PsFamily] = {
    "pynq-z2": PsFamily(
        modtype="processing_system7", vlnv="xilinx.com:ip:processing_system7:5.5", arch="zynq",
        cpu_arch="armv7l", device="7z020", package="clg400", part="7z020clg400",
        gp_master="M_AXI_GP0", hp_slave="S_AXI_HP0", fclk="FCLK_CLK0", fclk_reset="FCLK_RESET0_N",
        dma_base=0x40400000, ddr_high=0x1FFFFFFF, pll_mhz=1600.0, default_addr_width=32),
    "ultra96": PsFamily(
        modtype="zynq_ultra_ps_e", vlnv="xilinx.com:ip:zynq_ultra_ps_e:3.3", arch="zynquplus",
        cpu_arch="aarch64", device="xczu3eg", package="sbva484", part="xczu3eg-sbva484-1-e",
        gp_master="M_AXI_HPM0_FPD", hp_slave="S_AXI_HP0_FPD", fclk="pl_clk0", fclk_reset="pl_resetn0",
        dma_base=0xA0000000, ddr_high=0x7FFFFFFF, pll_mhz=1499.985, default_addr_width=32),
}


def clock_divisors(pll_mhz: float, clock_mhz: float) -> Tuple[int, int]:
    """The two 6-bit PL clock divisors closest to ``pll_mhz / clock_mhz`` (as Vivado picks them)."""
    if not 0 < clock_mhz <= 300:
        raise ConfigError(f"PL clock {clock_mhz!r} MHz is outside (0, 300]")
    best = min((abs(pll_mhz / (a * b) - clock_mhz), b, a) for a in range(1, 64) for b in range(1, 64))
    return best[2], best[1]


# ---------------------------------------------------------------------------------------------
# bus definitions: (logical name, driven by the master?, width; 0 = the data width, -8 = width/8)
# ---------------------------------------------------------------------------------------------
_AXI_LITE = (("AWADDR", True, 10), ("AWVALID", True, 1), ("AWREADY", False, 1), ("WDATA", True, 32),
             ("WVALID", True, 1), ("WREADY", False, 1), ("BRESP", False, 2), ("BVALID", False, 1),
             ("BREADY", True, 1), ("ARADDR", True, 10), ("ARVALID", True, 1), ("ARREADY", False, 1),
             ("RDATA", False, 32), ("RRESP", False, 2), ("RVALID", False, 1), ("RREADY", True, 1))
_AXI_READ = (("ARADDR", True, 32), ("ARLEN", True, 8), ("ARSIZE", True, 3), ("ARBURST", True, 2),
             ("ARVALID", True, 1), ("ARREADY", False, 1), ("RDATA", False, 0), ("RRESP", False, 2),
             ("RLAST", False, 1), ("RVALID", False, 1), ("RREADY", True, 1))
_AXI_WRITE = (("AWADDR", True, 32), ("AWLEN", True, 8), ("AWSIZE", True, 3), ("AWBURST", True, 2),
              ("AWVALID", True, 1), ("AWREADY", False, 1), ("WDATA", True, 0), ("WSTRB", True, -8),
              ("WLAST", True, 1), ("WVALID", True, 1), ("WREADY", False, 1), ("BRESP", False, 2),
              ("BVALID", False, 1), ("BREADY", True, 1))
_AXIS = (("TDATA", True, 0), ("TKEEP", True, -8), ("TLAST", True, 1), ("TVALID", True, 1),
         ("TREADY", False, 1))


def _width(w: int, data_bits: int) -> int:
    return data_bits if w == 0 else (data_bits // 8 if w == -8 else w)


class _Module:
    """One MODULE element under construction: ports, bus interfaces, parameters, memory map."""

    def __init__(self, instance: str, fullname: str, vlnv: str, modtype: str, ipty: str = "PERIPHERAL",
                 is_pl: bool = True):
        self.instance = instance
        self.el = ET.Element("MODULE", {
            "COREREVISION": "1", "FULLNAME": "/" + fullname, "HWVERSION": vlnv.rsplit(":", 1)[1],
            "INSTANCE": instance, "IPTYPE": ipty, "IS_ENABLE": "1", "MODCLASS": ipty, "MODTYPE": modtype,
            "VLNV": vlnv})
        if not is_pl:
            self.el.set("IS_PL", "FALSE")
            del self.el.attrib["MODCLASS"]
        self.docs = ET.SubElement(self.el, "DOCUMENTS")
        self.addressblocks: Optional[ET.Element] = None
        self.params = ET.SubElement(self.el, "PARAMETERS")
        self.ports = ET.SubElement(self.el, "PORTS")
        self.buses = ET.SubElement(self.el, "BUSINTERFACES")
        self.memmap: Optional[ET.Element] = None
        self._ports: Dict[str, ET.Element] = {}

    def param(self, name: str, value) -> None:
        ET.SubElement(self.params, "PARAMETER", {"NAME": name, "VALUE": str(value)})

    def port(self, name: str, out: bool, width: int = 1, sigis: Optional[str] = None,
             freq_hz: Optional[int] = None) -> ET.Element:
        attrs = {"DIR": "O" if out else "I", "NAME": name, "SIGIS": sigis or "undef", "SIGNAME": ""}
        if freq_hz:
            attrs["CLKFREQUENCY"] = str(freq_hz)
        if width > 1:
            attrs["LEFT"], attrs["RIGHT"] = str(width - 1), "0"
        el = ET.SubElement(self.ports, "PORT", attrs)
        ET.SubElement(el, "CONNECTIONS")
        self._ports[name] = el
        return el

    def bus(self, name: str, kind: str, master: bool, signals, prefix: str, data_bits: int,
            busname: str, params: Sequence[Tuple[str, str]] = ()) -> Dict[str, str]:
        """Add a bus interface and its physical ports; returns {logical: physical port name}."""
        vlnv = "xilinx.com:interface:axis:1.0" if kind == "axis" else "xilinx.com:interface:aximm:1.0"
        typ = ("INITIATOR" if master else "TARGET") if kind == "axis" else ("MASTER" if master else "SLAVE")
        attrs = {"BUSNAME": busname, "NAME": name, "TYPE": typ, "VLNV": vlnv}
        if kind != "axis":
            attrs["DATAWIDTH"] = str(data_bits)
        b = ET.SubElement(self.buses, "BUSINTERFACE", attrs)
        for k, v in params:
            ET.SubElement(b, "PARAMETER", {"NAME": k, "VALUE": v})
        pms = ET.SubElement(b, "PORTMAPS")
        names = {}
        for logical, by_master, w in signals:
            phys = prefix + logical.lower() if prefix.islower() else prefix + logical
            self.port(phys, out=(by_master == master), width=_width(w, data_bits))
            ET.SubElement(pms, "PORTMAP", {"LOGICAL": logical, "PHYSICAL": phys})
            names[logical] = phys
        return names

    def memrange(self, master_itf: str, target: "_Module", slave_itf: str, base: int, high: int,
                 memtype: str, block: str) -> None:
        if self.memmap is None:
            self.memmap = ET.SubElement(self.el, "MEMORYMAP")
        ET.SubElement(self.memmap, "MEMRANGE", {
            "ADDRESSBLOCK": block, "BASENAME": "C_BASEADDR", "BASEVALUE": f"0x{base:08X}",
            "HIGHNAME": "C_HIGHADDR", "HIGHVALUE": f"0x{high:08X}", "INSTANCE": target.instance,
            "IS_DATA": "TRUE", "IS_INSTRUCTION": "TRUE", "MASTERBUSINTERFACE": master_itf,
            "MEMTYPE": memtype, "SLAVEBUSINTERFACE": slave_itf})


def _connect(signame: str, driver: Tuple[_Module, str], *sinks: Tuple[_Module, str]) -> None:
    """Wire a net as Vivado does: the driver lists every sink, each sink lists the driver."""
    for (mod, port), others in [(driver, sinks)] + [(s, (driver,)) for s in sinks]:
        el = mod._ports[port]
        el.set("SIGNAME", signame)
        cons = el.find("CONNECTIONS")
        for other_mod, other_port in others:
            ET.SubElement(cons, "CONNECTION", {"INSTANCE": other_mod.instance, "PORT": other_port})


def _connect_bus(master: Tuple[_Module, Dict[str, str]], slave: Tuple[_Module, Dict[str, str]],
                 signals, netprefix: str) -> None:
    (mm, mnames), (sm, snames) = master, slave
    for logical, by_master, _ in signals:
        if logical not in mnames or logical not in snames:
            continue
        ends = ((mm, mnames[logical]), (sm, snames[logical]))
        drv, sink = ends if by_master else ends[::-1]
        _connect(f"{netprefix}_{logical}", drv, sink)


@dataclass(frozen=True)
class OverlayDesign:
    """Parameters of the generated block design; every field has a board-like default.

    board: ``'pynq-z2'`` (Zynq-7000 PS) or ``'ultra96'`` (Zynq UltraScale+ PS).
    in_stream_bits / out_stream_bits: MM2S / S2MM ``tdata`` widths (and the DMA's memory-map data
        widths, as hls4ml's design sets them): 32 or 64 on the boards; also wider, up to 1024.
    sg_length_width: ``c_sg_length_width`` (8..26); the DMA moves at most ``2**w - 1`` bytes per
        transfer. Small values force the runtime to split batches (tests use 8-12).
    addr_width: ``c_addr_width`` (32 or 64); ``None`` = 32, as the overlay step builds both
        boards (their DDR sits below 4 GB). With 64, the ``*_MSB`` address registers are used.
    clock_mhz: PL clock 0 (FCLK0 / pl_clk0), written as the PS's divisors.
    dma_name: the DMA instance name (hls4ml: ``axi_dma_0``).
    accel_name / accel_vlnv: the accelerator IP instance and its VLNV (hls4ml:
        ``myproject_axi_0`` / ``xilinx.com:hls:myproject_axi:1.0``).
    hierarchy: a block-design hierarchy holding the DMA and the accelerator (hls4ml: ``hier_0``,
        so its driver reaches ``overlay.hier_0.axi_dma_0``), or ``None`` for the top level.
    design_name: SYSTEMINFO NAME and the ``.bit`` header's design name.
    """

    board: str = "pynq-z2"
    in_stream_bits: int = 64
    out_stream_bits: int = 64
    sg_length_width: int = 26
    addr_width: Optional[int] = None
    clock_mhz: float = 100.0
    dma_name: str = "axi_dma_0"
    accel_name: str = "fpga_dnn_axis_0"
    accel_vlnv: str = "fpga-dnn.org:user:fpga_dnn_axis:1.0"
    hierarchy: Optional[str] = None
    design_name: str = "fpga_dnn_overlay"

    def __post_init__(self) -> None:
        if self.board not in PS_FAMILIES:
            raise ConfigError(f"unknown board {self.board!r} for the overlay design; known: "
                              f"{', '.join(sorted(PS_FAMILIES))}")
        for name in ("in_stream_bits", "out_stream_bits"):
            v = getattr(self, name)
            if not (isinstance(v, int) and 8 <= v <= 1024 and v & (v - 1) == 0):
                raise ConfigError(f"{name} must be a power of two in 8..1024 (the DMA's widths), got {v!r}")
        if not (isinstance(self.sg_length_width, int) and 8 <= self.sg_length_width <= 26):
            raise ConfigError(f"sg_length_width must be 8..26 (AXI DMA c_sg_length_width), got {self.sg_length_width!r}")
        if self.addr_width not in (None, 32, 64):
            raise ConfigError(f"addr_width must be 32 or 64, got {self.addr_width!r}")
        clock_divisors(self.family.pll_mhz, self.clock_mhz)  # validates the clock

    @property
    def family(self) -> PsFamily:
        return PS_FAMILIES[self.board]

    @property
    def dma_addr_width(self) -> int:
        return self.addr_width or self.family.default_addr_width

    @property
    def max_transfer_bytes(self) -> int:
        """``2**sg_length_width - 1``: what one DMA transfer can move (PG021)."""
        return (1 << self.sg_length_width) - 1

    @property
    def dma_path(self) -> str:
        """The DMA's full path in pynq's ``ip_dict`` (``hier_0/axi_dma_0`` or ``axi_dma_0``)."""
        return f"{self.hierarchy}/{self.dma_name}" if self.hierarchy else self.dma_name

    @classmethod
    def for_spec(cls, spec, board: Optional[str] = None, **overrides) -> "OverlayDesign":
        """The design for a :class:`~fpga_dnn.runtime.spec.Spec`: its stream widths and clock,
        and what the overlay step recorded under ``extra['overlay']`` (DMA and accelerator cell
        names, accelerator IP, transfer limit) and ``extra['board']``.

        board: overrides the spec's board (default ``extra['board']``, else PYNQ-Z2).
        overrides: any other field. Stream widths wider than 1024 bits are refused.
        """
        ov = spec.extra.get("overlay", {}) if isinstance(spec.extra.get("overlay"), dict) else {}
        top = spec.top_module or spec.name + "_axis"
        fields = {
            "board": board or spec.extra.get("board") or "pynq-z2",
            "in_stream_bits": spec.input.stream_bits, "out_stream_bits": spec.output.stream_bits,
            "clock_mhz": float(spec.clock_mhz), "design_name": f"{spec.name}_overlay",
            "dma_name": str(ov.get("dma", "axi_dma_0")).rsplit("/", 1)[-1],
            "accel_name": str(ov.get("accelerator", f"{top}_0")).rsplit("/", 1)[-1],
            "accel_vlnv": str(ov.get("accelerator_ip", f"fpga-dnn.org:user:{top}:1.0")),
        }
        if isinstance(ov.get("dma_max_transfer_bytes"), int):
            fields["sg_length_width"] = int(ov["dma_max_transfer_bytes"]).bit_length()
        fields.update(overrides)
        return cls(**fields)

    # -- the handoff ------------------------------------------------------------------------------
    def hwh_text(self) -> str:
        """The ``.hwh`` XML text."""
        fam = self.family
        freq_hz = int(round(self.clock_mhz * 1e6))
        root = ET.Element("EDKSYSTEM", {"EDWVERSION": "1.2", "TIMESTAMP": "Thu Jan  1 00:00:00 2026",
                                        "VIVADOVERSION": "2022.1"})
        ET.SubElement(root, "SYSTEMINFO", {"ARCH": fam.arch, "DEVICE": fam.device, "NAME": self.design_name,
                                           "PACKAGE": fam.package, "SPEEDGRADE": "-1"})
        ET.SubElement(root, "EXTERNALPORTS")
        ET.SubElement(root, "EXTERNALINTERFACES")
        modules = ET.SubElement(root, "MODULES")
        hier = f"{self.hierarchy}/" if self.hierarchy else ""

        # -- processing system
        ps_inst = "processing_system7_0" if fam.modtype == "processing_system7" else "zynq_ultra_ps_e_0"
        ps = _Module(ps_inst, ps_inst, fam.vlnv, fam.modtype, is_pl=False)
        for k, v in fam.clock_parameters(self.clock_mhz).items():
            ps.param(k, v)
        if fam.modtype == "processing_system7":
            ps.param("PCW_USE_M_AXI_GP0", 1)
            ps.param("PCW_USE_S_AXI_HP0", 1)
            ps.param("PCW_S_AXI_HP0_DATA_WIDTH", 64)
        else:
            ps.param("PSU__USE__M_AXI_GP0", 1)
            ps.param("PSU__USE__S_AXI_GP2", 1)
            ps.param("PSU__SAXIGP2__DATA_WIDTH", 128)
            ps.param("C_MAXIGP0_DATA_WIDTH", 32)
            ps.param("C_SAXIGP2_DATA_WIDTH", 128)
        ps.param("Component_Name", f"{self.design_name}_{ps_inst}_0")
        ps.param("EDK_IPTYPE", "PERIPHERAL")
        ps.port(fam.fclk, out=True, sigis="clk", freq_hz=freq_hz)
        ps.port(fam.fclk_reset, out=True, sigis="rst")
        gp_aclk = "M_AXI_GP0_ACLK" if fam.modtype == "processing_system7" else "maxihpm0_fpd_aclk"
        hp_aclk = "S_AXI_HP0_ACLK" if fam.modtype == "processing_system7" else "saxihp0_fpd_aclk"
        ps.port(gp_aclk, out=False, sigis="clk", freq_hz=freq_hz)
        ps.port(hp_aclk, out=False, sigis="clk", freq_hz=freq_hz)
        gp = ps.bus(fam.gp_master, "aximm", True, _AXI_LITE, fam.gp_master + "_", 32,
                    f"{ps_inst}_{fam.gp_master}", (("PROTOCOL", "AXI4LITE"), ("FREQ_HZ", str(freq_hz))))
        # one HP slave port takes both DMA masters (Vivado puts an interconnect between them)
        hp_signals = _AXI_READ + tuple(s for s in _AXI_WRITE if s[0] not in {n for n, _, _ in _AXI_READ})
        hp = ps.bus(fam.hp_slave, "aximm", False, hp_signals, fam.hp_slave + "_", 64,
                    f"{self.dma_name}_M_AXI", (("PROTOCOL", "AXI3"),))

        # -- AXI DMA (simple mode)
        dma = _Module(self.dma_name, hier + self.dma_name, "xilinx.com:ip:axi_dma:7.1", "axi_dma")
        self._dma_registers(dma)
        aw = self.dma_addr_width
        dma_params = {
            "C_S_AXI_LITE_ADDR_WIDTH": 10, "C_S_AXI_LITE_DATA_WIDTH": 32, "C_DLYTMR_RESOLUTION": 125,
            "C_PRMRY_IS_ACLK_ASYNC": 0, "C_ENABLE_MULTI_CHANNEL": 0, "C_NUM_MM2S_CHANNELS": 1,
            "C_NUM_S2MM_CHANNELS": 1, "C_INCLUDE_SG": 0, "C_SG_INCLUDE_STSCNTRL_STRM": 0,
            "C_SG_USE_STSAPP_LENGTH": 0, "C_SG_LENGTH_WIDTH": self.sg_length_width,
            "C_M_AXI_SG_ADDR_WIDTH": aw, "C_M_AXI_SG_DATA_WIDTH": 32, "C_MICRO_DMA": 0,
            "C_INCLUDE_MM2S": 1, "C_INCLUDE_MM2S_SF": 1, "C_MM2S_BURST_SIZE": 256,
            "C_M_AXI_MM2S_ADDR_WIDTH": aw, "C_M_AXI_MM2S_DATA_WIDTH": self.in_stream_bits,
            "C_M_AXIS_MM2S_TDATA_WIDTH": self.in_stream_bits, "C_INCLUDE_MM2S_DRE": 0,
            "C_INCLUDE_S2MM": 1, "C_INCLUDE_S2MM_SF": 1, "C_S2MM_BURST_SIZE": 256,
            "C_M_AXI_S2MM_ADDR_WIDTH": aw, "C_M_AXI_S2MM_DATA_WIDTH": self.out_stream_bits,
            "C_S_AXIS_S2MM_TDATA_WIDTH": self.out_stream_bits, "C_INCLUDE_S2MM_DRE": 0,
            "C_INCREASE_THROUGHPUT": 0,
        }
        for k, v in dma_params.items():
            dma.param(k, v)
        dma.param("C_FAMILY", "zynq" if fam.modtype == "processing_system7" else "zynquplus")
        dma.param("Component_Name", f"{self.design_name}_{self.dma_name}_0")
        # Vivado repeats the user-visible configuration in lower case; pynq's DMA driver reads these
        lower = ("C_INCLUDE_SG", "C_ENABLE_MULTI_CHANNEL", "C_NUM_MM2S_CHANNELS", "C_NUM_S2MM_CHANNELS",
                 "C_SG_LENGTH_WIDTH", "C_DLYTMR_RESOLUTION", "C_PRMRY_IS_ACLK_ASYNC",
                 "C_SG_INCLUDE_STSCNTRL_STRM", "C_MICRO_DMA", "C_INCLUDE_MM2S", "C_M_AXI_MM2S_DATA_WIDTH",
                 "C_M_AXIS_MM2S_TDATA_WIDTH", "C_INCLUDE_MM2S_DRE", "C_INCLUDE_MM2S_SF", "C_MM2S_BURST_SIZE",
                 "C_INCLUDE_S2MM", "C_SG_USE_STSAPP_LENGTH", "C_M_AXI_S2MM_DATA_WIDTH",
                 "C_S_AXIS_S2MM_TDATA_WIDTH", "C_INCLUDE_S2MM_DRE", "C_INCLUDE_S2MM_SF",
                 "C_S2MM_BURST_SIZE", "C_INCREASE_THROUGHPUT")
        for k in lower:
            dma.param(k.lower(), dma_params[k])
        dma.param("c_addr_width", aw)
        dma.param("c_single_interface", 0)
        dma.param("EDK_IPTYPE", "PERIPHERAL")
        dma.param("C_BASEADDR", f"0x{fam.dma_base:08X}")
        dma.param("C_HIGHADDR", f"0x{fam.dma_base + 0xFFFF:08X}")
        for clk in ("s_axi_lite_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk"):
            dma.port(clk, out=False, sigis="clk", freq_hz=freq_hz)
        dma.port("axi_resetn", out=False, sigis="rst")
        dma.port("mm2s_introut", out=True, sigis="INTERRUPT")
        dma.port("s2mm_introut", out=True, sigis="INTERRUPT")
        lite = dma.bus("S_AXI_LITE", "aximm", False, _AXI_LITE, "s_axi_lite_", 32,
                       f"{ps_inst}_{fam.gp_master}", (("PROTOCOL", "AXI4LITE"), ("ADDR_WIDTH", "10")))
        mm2s = dma.bus("M_AXI_MM2S", "aximm", True, _AXI_READ, "m_axi_mm2s_", self.in_stream_bits,
                       f"{self.dma_name}_M_AXI_MM2S", (("PROTOCOL", "AXI4"), ("READ_WRITE_MODE", "READ_ONLY"),
                                                       ("ADDR_WIDTH", str(aw))))
        s2mm = dma.bus("M_AXI_S2MM", "aximm", True, _AXI_WRITE, "m_axi_s2mm_", self.out_stream_bits,
                       f"{self.dma_name}_M_AXI_S2MM", (("PROTOCOL", "AXI4"), ("READ_WRITE_MODE", "WRITE_ONLY"),
                                                       ("ADDR_WIDTH", str(aw))))
        axis_out = dma.bus("M_AXIS_MM2S", "axis", True, _AXIS, "m_axis_mm2s_", self.in_stream_bits,
                           f"{self.dma_name}_M_AXIS_MM2S",
                           (("TDATA_NUM_BYTES", str(self.in_stream_bits // 8)), ("HAS_TLAST", "1"),
                            ("HAS_TKEEP", "1"), ("HAS_TREADY", "1")))
        axis_in = dma.bus("S_AXIS_S2MM", "axis", False, _AXIS, "s_axis_s2mm_", self.out_stream_bits,
                          f"{self.accel_name}_m_axis",
                          (("TDATA_NUM_BYTES", str(self.out_stream_bits // 8)), ("HAS_TLAST", "1"),
                           ("HAS_TKEEP", "1"), ("HAS_TREADY", "1")))
        ps.memrange(fam.gp_master, dma, "S_AXI_LITE", fam.dma_base, fam.dma_base + 0xFFFF, "REGISTER", "Reg")
        hp_block = "HP0_DDR_LOWOCM" if fam.modtype == "processing_system7" else "SAXIGP2_DDR_LOW"
        dma.memrange("M_AXI_MM2S", ps, fam.hp_slave, 0, fam.ddr_high, "MEMORY", hp_block)
        dma.memrange("M_AXI_S2MM", ps, fam.hp_slave, 0, fam.ddr_high, "MEMORY", hp_block)

        # -- the accelerator (the AXI-Stream shell around the core): streams, clock, reset
        acc_modtype = self.accel_vlnv.split(":")[2]
        acc = _Module(self.accel_name, hier + self.accel_name, self.accel_vlnv, acc_modtype)
        acc.param("Component_Name", f"{self.design_name}_{self.accel_name}")
        acc.param("S_AXIS_BITS", self.in_stream_bits)
        acc.param("M_AXIS_BITS", self.out_stream_bits)
        acc.param("EDK_IPTYPE", "PERIPHERAL")
        acc.port("clk", out=False, sigis="clk", freq_hz=freq_hz)
        acc.port("aresetn", out=False, sigis="rst")
        acc_in = acc.bus("s_axis", "axis", False, _AXIS, "s_axis_", self.in_stream_bits,
                         f"{self.dma_name}_M_AXIS_MM2S", (("TDATA_NUM_BYTES", str(self.in_stream_bits // 8)),
                                                          ("HAS_TLAST", "1"), ("HAS_TKEEP", "1")))
        acc_out = acc.bus("m_axis", "axis", True, _AXIS, "m_axis_", self.out_stream_bits,
                          f"{self.accel_name}_m_axis", (("TDATA_NUM_BYTES", str(self.out_stream_bits // 8)),
                                                        ("HAS_TLAST", "1"), ("HAS_TKEEP", "1")))

        # -- nets
        clk_net = f"{ps_inst}_{fam.fclk}"
        _connect(clk_net, (ps, fam.fclk), (ps, gp_aclk), (ps, hp_aclk), (dma, "s_axi_lite_aclk"),
                 (dma, "m_axi_mm2s_aclk"), (dma, "m_axi_s2mm_aclk"), (acc, "clk"))
        _connect(f"{ps_inst}_{fam.fclk_reset}", (ps, fam.fclk_reset), (dma, "axi_resetn"), (acc, "aresetn"))
        _connect_bus((ps, gp), (dma, lite), _AXI_LITE, f"{ps_inst}_{fam.gp_master}")
        _connect_bus((dma, mm2s), (ps, hp), _AXI_READ, f"{self.dma_name}_M_AXI_MM2S")
        _connect_bus((dma, s2mm), (ps, hp), _AXI_WRITE, f"{self.dma_name}_M_AXI_S2MM")
        _connect_bus((dma, axis_out), (acc, acc_in), _AXIS, f"{self.dma_name}_M_AXIS_MM2S")
        _connect_bus((acc, acc_out), (dma, axis_in), _AXIS, f"{self.accel_name}_m_axis")

        for m in sorted((dma, acc, ps), key=lambda m: m.instance):  # Vivado's order
            modules.append(m.el)
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n' + ET.tostring(
            root, encoding="unicode") + "\n"

    def _dma_registers(self, dma: _Module) -> None:
        blocks = ET.Element("ADDRESSBLOCKS")
        dma.el.insert(1, blocks)
        ab = ET.SubElement(blocks, "ADDRESSBLOCK", {"ACCESS": "read-write", "INTERFACE": "S_AXI_LITE",
                                                    "NAME": "Reg", "RANGE": "4096", "USAGE": "register"})
        regs = ET.SubElement(ab, "REGISTERS")
        for name, (offset, access, fields) in DMA_REGISTERS.items():
            if name.endswith("_MSB") and self.dma_addr_width == 32:
                continue
            r = ET.SubElement(regs, "REGISTER", {"NAME": name})
            for k, v in (("DESCRIPTION", name.replace("_", " ")), ("ADDRESS_OFFSET", f"0x{offset:X}"),
                         ("SIZE", "32"), ("ACCESS", access), ("IS_ENABLED", "true"), ("RESET_VALUE", "0x0")):
                ET.SubElement(r, "PROPERTY", {"NAME": k, "VALUE": v})
            fs = ET.SubElement(r, "FIELDS")
            for fname, bit, width, faccess in fields:
                f = ET.SubElement(fs, "FIELD", {"NAME": fname})
                for k, v in (("DESCRIPTION", fname), ("ADDRESS_OFFSET", str(bit)), ("ACCESS", faccess),
                             ("BIT_OFFSET", str(bit)), ("BIT_WIDTH", str(width))):
                    ET.SubElement(f, "PROPERTY", {"NAME": k, "VALUE": v})

    # -- the bitstream ----------------------------------------------------------------------------
    def bit_bytes(self, payload: bytes = b"") -> bytes:
        """A ``.bit`` file with a valid Xilinx header (design, part, date, time, data length).

        pynq's ``parse_bit_header``/``bit2bin`` accept it; the data is a sync word and a digest
        of the handoff and ``payload``, so different designs have different checksums.
        """
        digest = hashlib.sha256(self.hwh_text().encode() + payload).digest()
        data = b"\xff" * 32 + b"\x00\x00\x00\xbb\x11\x22\x00\x44" + b"\xaa\x99\x55\x66" + digest

        def field(key: bytes, text: str) -> bytes:
            raw = text.encode("ascii") + b"\x00"
            return key + struct.pack(">h", len(raw)) + raw

        header = struct.pack(">h", 9) + bytes.fromhex("0ff00ff00ff00ff000") + struct.pack(">h", 1)
        header += field(b"a", f"{self.design_name}_wrapper;UserID=0XFFFFFFFF;Version=2022.1")
        header += field(b"b", self.family.part)
        header += field(b"c", "2026/01/01")
        header += field(b"d", "00:00:00")
        return header + b"e" + struct.pack(">i", len(data)) + data

    def write(self, directory: PathLike, stem: Optional[str] = None, payload: bytes = b"") -> Tuple[Path, Path]:
        """Write ``<stem>.bit`` and ``<stem>.hwh`` (pynq needs the same stem); returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = stem or self.design_name
        bit, hwh = directory / f"{stem}.bit", directory / f"{stem}.hwh"
        hwh.write_text(self.hwh_text())
        bit.write_bytes(self.bit_bytes(payload))
        return bit, hwh


def read_dma_parameters(hwh_path: PathLike) -> List[Dict[str, str]]:
    """The lower-case parameters of every ``axi_dma`` in a handoff, with its ``fullpath``.

    A pynq-free reading of the facts the runtime needs (the transfer limit, widths, address
    width): used by the bundle checker and by the pynq-free backend.
    """
    try:
        root = ET.parse(str(hwh_path)).getroot()
    except (OSError, ET.ParseError) as err:
        raise ConfigError(f"cannot read hardware handoff {hwh_path}: {err}") from None
    found = []
    for mod in root.iter("MODULE"):
        if mod.get("MODTYPE") == "axi_dma":
            params = {p.get("NAME"): p.get("VALUE") for p in mod.iter("PARAMETER")
                      if p.get("NAME", "").islower() or p.get("NAME", "").startswith("c_")}
            params["fullpath"] = (mod.get("FULLNAME") or "").lstrip("/")
            params["vlnv"] = mod.get("VLNV") or ""
            found.append(params)
    return found


def write_sim_bundle(spec, directory: PathLike, board: Optional[str] = None, golden=None, golden_info=None,
                     **overrides) -> Path:
    """A bundle folder for the fake board: ``<name>.bit`` + ``<name>.hwh`` generated for ``spec``
    (see :meth:`OverlayDesign.for_spec`; ``overrides`` are design fields, e.g.
    ``sg_length_width=12``), the ``golden`` vectors (a
    :class:`~fpga_dnn.runtime.golden.GoldenVectors`, if given) and ``spec.json`` with their
    checksums. Returns the folder.

    What the overlay step's Vivado run would export, for testing and demos without Vivado; the
    ``.bit`` holds no configuration data (only the fake device accepts it).
    """
    directory = Path(directory)
    design = OverlayDesign.for_spec(spec, board=board, **overrides)
    design.write(directory, spec.name)
    extra = dict(spec.extra)
    extra.setdefault("board", design.board)
    extra["simulated_bitstream"] = True
    spec = spec.replace(extra=extra).with_checksums(directory, [f"{spec.name}.bit", f"{spec.name}.hwh"])
    if golden is not None:
        from fpga_dnn.runtime.golden import attach
        spec = attach(directory, spec, golden, golden_info)
    spec.save(directory)
    return directory
