"""The bundle: what is copied to a board — a folder with the spec, the bitstream and its handoff.

Layout (the overlay step writes it; ``fpga-dnn bundle`` checks it)::

    <bundle>/
      spec.json      the design contract (fpga_dnn.runtime.spec); its "checksums" cover the files below
      <stem>.bit     the bitstream (absent in a simulation-only bundle)
      <stem>.hwh     its hardware handoff, same stem (pynq finds it next to the .bit)
      ...            anything else (reports, README) is ignored

:class:`Bundle` reads one (checksums verified); :func:`check_bundle` lists every problem it
finds, for the CLI. Standard library and numpy only (runs on a board without pynq imported).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from fpga_dnn.errors import ConfigError
from fpga_dnn.runtime.spec import SPEC_FILENAME, Spec, SpecError, file_checksum

PathLike = Union[str, Path]

#: FPGA parts of the supported boards, as a ``.bit`` header records them.
BOARD_PARTS = {"7z020clg400": "pynq-z2", "xczu3eg-sbva484-1-e": "ultra96"}


class BundleError(ConfigError):
    """A bundle folder is missing files or its files disagree; the message names them."""


def read_bit_header(path: PathLike) -> Dict[str, Any]:
    """The header of a Xilinx ``.bit`` file: design, version, part, date, time, data length.

    Raises :class:`BundleError` if the file is not a bitstream (the same fields pynq's
    ``parse_bit_header`` reads; ``.bin`` files have no header).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(f"cannot read bitstream {path}: {err.strerror}") from None
    try:
        offset = 2 + struct.unpack(">h", data[0:2])[0] + 2
        info: Dict[str, Any] = {}
        while True:
            key = data[offset]
            offset += 1
            if key == 0x65:
                length = struct.unpack(">i", data[offset: offset + 4])[0]
                offset += 4
                if offset + length != len(data):
                    raise ValueError("data length does not match the file size")
                info["length"] = length
                return info
            length = struct.unpack(">h", data[offset: offset + 2])[0]
            text = data[offset + 2: offset + 2 + length].decode("ascii").rstrip("\x00")
            offset += 2 + length
            if key == 0x61:
                parts = text.split(";")
                info["design"], info["version"] = parts[0], parts[-1]
            elif key == 0x62:
                info["part"] = text
            elif key == 0x63:
                info["date"] = text
            elif key == 0x64:
                info["time"] = text
            else:
                raise ValueError(f"unknown header field {key:#x}")
    except (IndexError, ValueError, struct.error, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is not a Xilinx bitstream (.bit header: {err})") from None


@dataclass(frozen=True)
class Bundle:
    """A bundle folder, read: its spec and (when present) bitstream and handoff paths."""

    directory: Path
    spec: Spec
    bitfile: Optional[Path]
    hwh: Optional[Path]

    @classmethod
    def load(cls, directory: PathLike, verify: bool = True) -> "Bundle":
        """Read ``directory``; ``verify`` checks every file listed in the spec's checksums.

        Raises :class:`~fpga_dnn.runtime.spec.SpecError` (bad spec, checksum mismatch) or
        :class:`BundleError` (no folder, several bitstreams, a ``.bit`` without its ``.hwh``).
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise BundleError(f"bundle folder {directory} does not exist")
        spec = Spec.load(directory / SPEC_FILENAME)
        if verify:
            spec.verify_checksums(directory)
        bitfile = find_bitfile(directory, spec)
        hwh = bitfile.with_suffix(".hwh") if bitfile else None
        if hwh is not None and not hwh.is_file():
            raise BundleError(f"bundle {directory}: {bitfile.name} has no hardware handoff {hwh.name} beside it "
                              "(pynq needs both, with the same name)")
        return cls(directory, spec, bitfile, hwh)


def find_bitfile(directory: Path, spec: Spec) -> Optional[Path]:
    """The bundle's ``.bit``: the one the spec's checksums name, else the only one in the folder."""
    listed = sorted(n for n in spec.checksums if n.endswith(".bit"))
    if len(listed) > 1:
        raise BundleError(f"bundle {directory}: the spec lists several bitstreams: {', '.join(listed)}")
    if listed:
        return directory / listed[0]
    found = sorted(directory.glob("*.bit"))
    if len(found) > 1:
        raise BundleError(f"bundle {directory}: several .bit files ({', '.join(p.name for p in found)}); "
                          "list the one to use in spec.json's checksums")
    return found[0] if found else None


@dataclass
class BundleReport:
    """What :func:`check_bundle` found: ``problems`` make the bundle unusable, ``warnings`` do not."""

    directory: Path
    problems: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    facts: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """A human-readable report (the CLI prints it)."""
        lines = [f"bundle {self.directory}: {'OK' if self.ok else 'NOT USABLE'}"]
        for k, v in self.facts.items():
            lines.append(f"  {k}: {v}")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _pl_clock_mhz(ps_params: Dict[str, str]) -> Optional[float]:
    for key in ("PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ", "PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"):
        if key in ps_params:
            try:
                return float(ps_params[key])
            except ValueError:
                return None
    return None


def check_bundle(directory: PathLike) -> BundleReport:
    """Check a bundle folder without loading anything on hardware; never raises for bad content.

    Checks: the spec loads; every checksummed file exists and matches; the ``.bit`` has a valid
    header for a supported board (and the board the spec names in ``extra.board``, if any) and
    a ``.hwh`` beside it; the handoff has one AXI DMA, in simple mode, with both channels, whose
    stream widths equal the spec's and whose transfer limit holds at least one sample; the PL
    clock agrees with the spec's ``clock_mhz``. Facts gathered (part, board, limits) are reported.
    """
    from fpga_dnn.runtime.fake.hwh import read_dma_parameters

    directory = Path(directory)
    rep = BundleReport(directory)
    if not directory.is_dir():
        rep.problems.append(f"{directory} is not a folder")
        return rep
    try:
        spec = Spec.load(directory / SPEC_FILENAME)
    except SpecError as err:
        rep.problems.append(str(err))
        return rep
    rep.facts["design"] = spec.name
    rep.facts["input"] = f"{spec.input.shape} {spec.input.format}, {spec.input.stream_bits}-bit stream, " \
                         f"{spec.input.sample_bytes} bytes/sample"
    rep.facts["output"] = f"{spec.output.shape} {spec.output.format}, {spec.output.stream_bits}-bit stream, " \
                          f"{spec.output.sample_bytes} bytes/sample"
    for name, expected in sorted(spec.checksums.items()):
        path = directory / name
        if not path.is_file():
            rep.problems.append(f"{name} is listed in spec.json's checksums but missing")
        elif file_checksum(path) != expected:
            rep.problems.append(f"{name} does not match its checksum in spec.json (corrupt or replaced)")
    for port_name, port in (("input", spec.input), ("output", spec.output)):
        if not port.board_compatible:
            rep.warnings.append(f"{port_name} stream is {port.stream_bits} bits: the boards' DMA streams are "
                                "32 or 64 bits (simulation only)")
    try:
        bitfile = find_bitfile(directory, spec)
    except BundleError as err:
        rep.problems.append(str(err))
        return rep
    if bitfile is None:
        rep.warnings.append("no .bit file: only the 'sim' and 'emulate' backends can run this bundle")
        return rep
    rep.facts["bitstream"] = bitfile.name
    if bitfile.name not in spec.checksums:
        rep.warnings.append(f"{bitfile.name} is not covered by a checksum in spec.json")
    if bitfile.is_file():
        try:
            header = read_bit_header(bitfile)
            part = header.get("part", "?")
            rep.facts["part"] = part
            board = BOARD_PARTS.get(part)
            rep.facts["board"] = board or "unknown"
            if board is None:
                rep.warnings.append(f"part {part} is not a supported board's ({', '.join(BOARD_PARTS)})")
            wanted = spec.extra.get("board")
            if wanted and board and wanted != board:
                rep.problems.append(f"spec.json says board {wanted!r} but the bitstream is for {board} ({part})")
        except BundleError as err:
            rep.problems.append(str(err))
    hwh = bitfile.with_suffix(".hwh")
    if not hwh.is_file():
        rep.problems.append(f"{hwh.name} is missing (pynq reads the design from the .hwh beside the .bit)")
        return rep
    if hwh.name not in spec.checksums:
        rep.warnings.append(f"{hwh.name} is not covered by a checksum in spec.json")
    try:
        dmas = read_dma_parameters(hwh)
    except ConfigError as err:
        rep.problems.append(str(err))
        return rep
    if len(dmas) != 1:
        rep.problems.append(f"{hwh.name} has {len(dmas)} AXI DMAs ({', '.join(d['fullpath'] for d in dmas)}); "
                            "the runtime drives exactly one")
        return rep
    p = dmas[0]
    rep.facts["dma"] = f"{p['fullpath']} ({p['vlnv']})"

    def num(key: str, default: int = 0) -> int:
        try:
            return int(p.get(key, default))
        except ValueError:
            return default

    if num("c_include_sg"):
        rep.problems.append("the DMA is in scatter-gather mode; the runtime drives simple mode (c_include_sg=0)")
    if num("c_micro_dma"):
        rep.problems.append("the DMA is a micro DMA (c_micro_dma=1); the runtime needs the full one")
    if not (num("c_include_mm2s", 1) and num("c_include_s2mm", 1)):
        rep.problems.append("the DMA lacks its MM2S or S2MM channel (both are needed)")
    for key, port, name in (("c_m_axis_mm2s_tdata_width", spec.input, "MM2S (input)"),
                            ("c_s_axis_s2mm_tdata_width", spec.output, "S2MM (output)")):
        width = num(key)
        if width and width != port.stream_bits:
            rep.problems.append(f"{name} stream is {width} bits in the handoff but {port.stream_bits} in spec.json")
    max_bytes = (1 << num("c_sg_length_width", 26)) - 1
    per = min(max_bytes // spec.input.sample_bytes, max_bytes // spec.output.sample_bytes)
    rep.facts["max_transfer_bytes"] = max_bytes
    rep.facts["samples_per_transfer"] = per
    if per < 1:
        rep.problems.append(f"one sample ({spec.input.sample_bytes} in / {spec.output.sample_bytes} out bytes) "
                            f"exceeds the DMA's {max_bytes}-byte transfer limit (c_sg_length_width)")
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(str(hwh)).getroot()
        for mod in root.iter("MODULE"):
            if mod.get("MODTYPE") in ("processing_system7", "zynq_ultra_ps_e"):
                mhz = _pl_clock_mhz({q.get("NAME"): q.get("VALUE") for q in mod.iter("PARAMETER")})
                if mhz is not None:
                    rep.facts["pl_clock_mhz"] = round(mhz, 3)
                    if abs(mhz - spec.clock_mhz) > 0.01 * spec.clock_mhz:
                        rep.warnings.append(f"PL clock 0 is {mhz:.3f} MHz in the handoff, spec.json says "
                                            f"{spec.clock_mhz} MHz")
    except ET.ParseError:
        pass  # read_dma_parameters already parsed it
    return rep
