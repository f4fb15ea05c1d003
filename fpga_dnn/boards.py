"""Board definitions, read from ``overlays/boards/<name>.toml`` (one data file per board).

Everything board-specific lives in those files — part, Vivado board part, the processing
system's configuration and port names, DMA settings, resource budget, PYNQ image and Vivado
versions — so the overlay scripts are one set of templates for all boards and adding a board
means adding a file. The file is checked completely when loaded: a malformed file names the
file and the field (e.g. ``field 'ps.clock_pin' is missing or not a string``), before any
tool runs on it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, UnknownNameError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "overlays" / "boards"
BUDGET_KEYS = ("LUT", "FF", "DSP", "BRAM36")

_NUMBER = (int, float)
_STR = str
# Top-level fields: name -> type. Tables ([budget], [ps], [dma]) are checked by their own schemas.
REQUIRED = {
    "name": _STR, "part": _STR, "board_part": _STR, "board_files": _STR, "family": _STR,
    "yosys_family": _STR, "ps_ip": _STR, "hp_port": _STR, "pl_clock_mhz": _NUMBER,
    "pynq_image": _STR, "pynq_image_source": _STR, "vivado_version": _STR, "budget": dict, "ps": dict,
    "dma": dict,
}
PS_FIELDS = {
    "vlnv": _STR, "automation_rule": _STR, "automation_config": dict, "master_port": _STR,
    "master_clock_pin": _STR, "hp_clock_pin": _STR, "clock_pin": _STR, "reset_pin": _STR,
    "clock_freq_property": _STR, "clock_actual_property": _STR, "clock_config": dict, "config": dict,
}
DMA_FIELDS = {"vlnv": _STR, "pynq_vlnv": _STR, "sg_length_width": int, "addr_width": int, "burst_size": int}

# Vivado identifiers: VLNV prefixes (vendor:library:name), pin and property names.
_VLNV_PREFIX = re.compile(r"[A-Za-z0-9_.\-]+:[A-Za-z0-9_.\-]+:[A-Za-z0-9_.\-]+")
_VLNV_FULL = re.compile(_VLNV_PREFIX.pattern + r":[0-9][0-9.]*")
_BOARD_PART = re.compile(r"[A-Za-z0-9_.\-]+:[A-Za-z0-9_.\-]+:[A-Za-z0-9_.\-]+:[0-9A-Za-z.]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.,: \-]*")  # property values: no Tcl-special characters


@dataclass(frozen=True)
class PsConfig:
    """The processing system in the block design: IP, board-preset automation, ports and pins."""

    vlnv: str                      # vendor:library:name (no version: newest installed is used)
    automation_rule: str           # apply_bd_automation rule that applies the board preset
    automation_config: Mapping[str, str]
    master_port: str               # AXI master that reaches the DMA's AXI-Lite registers
    master_clock_pin: str
    hp_clock_pin: str              # clock pin of the high-performance slave port
    clock_pin: str                 # PL clock output
    reset_pin: str                 # PL reset output, active low
    clock_freq_property: str       # CONFIG property holding the PL clock in MHz
    clock_actual_property: str     # CONFIG property Vivado computes: the PL clock the divisors give
    clock_config: Mapping[str, str]  # CONFIG.<key> values set before the PL clock (clock source)
    config: Mapping[str, str]      # CONFIG.<key> values set after the preset


@dataclass(frozen=True)
class DmaConfig:
    """AXI DMA settings (simple mode). ``max_transfer_bytes`` is what one DMA transfer can move."""

    vlnv: str
    pynq_vlnv: str                 # the exact VLNV pynq.lib.dma.DMA binds to
    sg_length_width: int           # 8..26 bits of the length register
    addr_width: int                # 32..64
    burst_size: int                # 2..256, a power of two

    @property
    def max_transfer_bytes(self) -> int:
        return (1 << self.sg_length_width) - 1


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    ps_ip: str
    pl_clock_mhz: float
    budget: dict
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    board_part: str = ""
    board_files: str = ""
    description: str = ""
    family: str = ""
    yosys_family: str = ""
    hp_port: str = ""
    pynq_image: str = ""           # the PYNQ SD-card image the bundle is for
    pynq_image_source: str = ""    # who ships that image, and where
    vivado_version: str = ""       # the Vivado release that image's overlays are built with
    ps: PsConfig | None = None
    dma: DmaConfig | None = None
    path: Path | None = None


def board_files(folder: Path = BOARDS_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.toml"))}


def _type_name(typ) -> str:
    if typ is _NUMBER:
        return "number"
    return {str: "string", int: "integer", dict: "table"}.get(typ, getattr(typ, "__name__", str(typ)))


class _Checker:
    """Type and value checks that name the file and the dotted field path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, msg: str):
        raise ConfigError(f"board file {self.path}: field '{key}' {msg}")

    def fields(self, table: dict, schema: dict, prefix: str = "") -> None:
        for key, typ in schema.items():
            v = table.get(key)
            ok = isinstance(v, typ) and not isinstance(v, bool) and (not isinstance(v, str) or v.strip())
            if not ok:
                self.fail(prefix + key, f"is missing or not a {_type_name(typ)}")

    def match(self, key: str, value: str, pattern: re.Pattern, what: str) -> None:
        if not pattern.fullmatch(value):
            self.fail(key, f"must be {what}, got {value!r}")

    def str_table(self, key: str, table: dict) -> dict[str, str]:
        """A table of Vivado property names -> values, as strings (numbers accepted)."""
        out = {}
        for k, v in table.items():
            if not _IDENT.fullmatch(k):
                self.fail(f"{key}.{k}", "is not a Vivado property name")
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.fail(f"{key}.{k}", f"must be a string or number, got {v!r}")
            text = v if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
            if not _PLAIN_VALUE.fullmatch(text):
                self.fail(f"{key}.{k}", f"has characters Tcl would interpret: {text!r}")
            out[k] = text
        return out

    def int_range(self, key: str, value: int, lo: int, hi: int) -> None:
        if not lo <= value <= hi:
            self.fail(key, f"must be between {lo} and {hi}, got {value}")


def _parse(raw: dict[str, Any], path: Path) -> Board:
    c = _Checker(path)
    c.fields(raw, REQUIRED)
    if raw["name"] != path.stem:
        c.fail("name", f"must equal the file name {path.stem!r}, got {raw['name']!r}")
    for key in BUDGET_KEYS:
        v = raw["budget"].get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            c.fail(f"budget.{key}", "must be a non-negative integer")
    if not 1 <= raw["pl_clock_mhz"] <= 1000:
        c.fail("pl_clock_mhz", f"must be a clock in MHz (1..1000), got {raw['pl_clock_mhz']!r}")
    c.match("board_part", raw["board_part"], _BOARD_PART, "vendor:board:component:version")
    c.match("part", raw["part"], re.compile(r"[a-z0-9\-]+"), "a Xilinx part name")
    c.match("hp_port", raw["hp_port"], _IDENT, "a port name")
    c.match("vivado_version", raw["vivado_version"], re.compile(r"20\d\d\.\d(\.\d)?"), "a Vivado release like 2024.1")

    ps_raw = raw["ps"]
    c.fields(ps_raw, PS_FIELDS, "ps.")
    c.match("ps.vlnv", ps_raw["vlnv"], _VLNV_PREFIX, "vendor:library:name (no version)")
    if ps_raw["vlnv"].rsplit(":", 1)[-1] != raw["ps_ip"]:
        c.fail("ps.vlnv", f"names {ps_raw['vlnv'].rsplit(':', 1)[-1]!r} but ps_ip is {raw['ps_ip']!r}")
    for key in ("master_port", "master_clock_pin", "hp_clock_pin", "clock_pin", "reset_pin", "clock_freq_property",
                "clock_actual_property"):
        c.match(f"ps.{key}", ps_raw[key], _IDENT, "a pin, port or property name")
    ps = PsConfig(
        vlnv=ps_raw["vlnv"], automation_rule=ps_raw["automation_rule"],
        automation_config=c.str_table("ps.automation_config", ps_raw["automation_config"]),
        master_port=ps_raw["master_port"], master_clock_pin=ps_raw["master_clock_pin"],
        hp_clock_pin=ps_raw["hp_clock_pin"], clock_pin=ps_raw["clock_pin"], reset_pin=ps_raw["reset_pin"],
        clock_freq_property=ps_raw["clock_freq_property"], clock_actual_property=ps_raw["clock_actual_property"],
        clock_config=c.str_table("ps.clock_config", ps_raw["clock_config"]),
        config=c.str_table("ps.config", ps_raw["config"]),
    )

    dma_raw = raw["dma"]
    c.fields(dma_raw, DMA_FIELDS, "dma.")
    c.match("dma.vlnv", dma_raw["vlnv"], _VLNV_PREFIX, "vendor:library:name (no version)")
    c.match("dma.pynq_vlnv", dma_raw["pynq_vlnv"], _VLNV_FULL, "vendor:library:name:version")
    c.int_range("dma.sg_length_width", dma_raw["sg_length_width"], 8, 26)
    c.int_range("dma.addr_width", dma_raw["addr_width"], 32, 64)
    c.int_range("dma.burst_size", dma_raw["burst_size"], 2, 256)
    if dma_raw["burst_size"] & (dma_raw["burst_size"] - 1):
        c.fail("dma.burst_size", f"must be a power of two, got {dma_raw['burst_size']}")
    dma = DmaConfig(dma_raw["vlnv"], dma_raw["pynq_vlnv"], dma_raw["sg_length_width"],
                    dma_raw["addr_width"], dma_raw["burst_size"])

    return Board(
        name=raw["name"], part=raw["part"], ps_ip=raw["ps_ip"], pl_clock_mhz=float(raw["pl_clock_mhz"]),
        budget=dict(raw["budget"]), raw=raw, board_part=raw["board_part"], board_files=raw["board_files"],
        description=str(raw.get("description", "")), family=raw["family"], yosys_family=raw["yosys_family"],
        hp_port=raw["hp_port"], pynq_image=raw["pynq_image"], pynq_image_source=raw["pynq_image_source"],
        vivado_version=raw["vivado_version"],
        ps=ps, dma=dma, path=path,
    )


def load_board(name: str, folder: Path = BOARDS_DIR) -> Board:
    """The board ``name`` from ``folder``; unknown names list the known boards."""
    files = board_files(folder)
    if name not in files:
        raise UnknownNameError("board", name, files)
    path = files[name]
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"board file {path}: not valid TOML: {err}") from None
    return _parse(raw, path)


# A Xilinx part name: device (at most two letters after its number: xc7a100t, xczu3eg), then package
# (3-4 letters and the pin count), speed grade, temperature range (xc7z020clg400-1,
# xczu3eg-sbva484-1-e; data sheets also write XC7Z020-1CLG400C, speed grade first). The device
# alone fixes the LUT/FF/DSP/BRAM counts.
_DEVICE = re.compile(r"(xc[a-z0-9]*?\d+[a-z]{0,2})(?:-\d+)?(?:-?[a-z]{3,4}\d{3,4}\S*)?")


def device_of(part: str) -> str:
    """The FPGA device of a Xilinx part name (``xc7z020clg484-1`` -> ``xc7z020``); a bare device
    name is returned as it is."""
    m = _DEVICE.fullmatch(part.strip().lower())
    if not m:
        raise ConfigError(f"{part!r} is not a Xilinx part name (e.g. xc7z020clg400-1, xczu3eg-sbva484-1-e)")
    return m.group(1)


def part_budget(part: str, folder: Path = BOARDS_DIR) -> dict:
    """The resource budget ({LUT, FF, DSP, BRAM36}) of ``part``'s device, from a board file with
    that device: boards built on one device in another package (the ZedBoard's xc7z020clg484 beside
    the PYNQ-Z2's xc7z020clg400) have the same budget, so they need no board file of their own."""
    device = device_of(part)
    by_device = {device_of(load_board(name, folder).part): name for name in board_files(folder)}
    if device not in by_device:
        raise UnknownNameError("FPGA device (no board file has it)", device, by_device)
    return dict(load_board(by_device[device], folder).budget)
