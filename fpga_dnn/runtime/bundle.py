"""The bundle: what is copied to a board — a folder with the spec, the bitstream and its handoff.

Layout (the overlay step writes it; ``fpga-dnn sign`` signs it; ``fpga-dnn bundle`` checks it)::

    <bundle>/
      spec.json      the design contract (fpga_dnn.runtime.spec); its "checksums" cover the files below
      <stem>.bit     the bitstream (absent in a simulation-only bundle); <stem>.bin for a bootgen image
      <stem>.hwh     its hardware handoff, same stem (pynq finds it next to the .bit)
      golden.npz     golden vectors: inputs with their verified outputs, the open-time self-test
                     (fpga_dnn.runtime.golden; named in the spec's extra.golden and its checksums)
      bundle.sig     the signature over every file of the folder (fpga_dnn.runtime.signing)
      ...            anything else (reports, README) is ignored by the runtime but covered by the signature

The reader is strict, because a bundle may come from anywhere: the folder must be flat (regular
files only: no symbolic links, no sub-folders, no device files), file names are plain
(``[A-Za-z0-9_][A-Za-z0-9_.-]*``, no ``..``, no path separators, no absolute paths) in the folder
and in the spec, files and spec fields have size limits (:data:`LIMITS`), ``spec.json`` is plain
JSON (no NaN/Infinity, bounded nesting) whose unknown keys are refused, and nothing is ever
unpickled (the runtime reads JSON, XML and raw bytes only).

:class:`Bundle` reads one (checksums verified); :func:`stage_bundle` copies one into a private
folder (what :meth:`~fpga_dnn.runtime.accelerator.Accelerator.open` verifies and loads);
:func:`check_bundle` lists every problem it finds, for the CLI. Standard library and numpy only
(runs on a board without pynq imported; signatures need ``model-signing``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from fpga_dnn.errors import ConfigError
from fpga_dnn.runtime.golden import golden_file
from fpga_dnn.runtime.signing import SIGNATURE_FILENAME, SignatureError, trusted_key_list, verify_bundle
from fpga_dnn.runtime.spec import SPEC_FILENAME, Spec, SpecError, file_checksum

PathLike = Union[str, Path]

#: FPGA parts of the supported boards, as a ``.bit`` header records them.
BOARD_PARTS = {"7z020clg400": "pynq-z2", "xczu3eg-sbva484-1-e": "ultra96"}

#: Bitstream file suffixes a bundle may carry: a Vivado ``.bit`` or a bootgen ``.bin`` (an
#: encrypted/authenticated Zynq UltraScale+ image, see overlays/README.md); pynq loads both.
BITSTREAM_SUFFIXES = (".bit", ".bin")

#: The strict reader's limits. A PYNQ-Z2 .bit is about 4 MB, an Ultra96 one about 5.6 MB.
LIMITS = {
    "files": 64,                      # files in a bundle folder
    "file_bytes": 64 << 20,           # one file
    "bundle_bytes": 256 << 20,        # all files
    "spec_bytes": 256 << 10,          # spec.json
    "json_depth": 16,                 # nesting of objects/arrays in spec.json
    "json_items": 4096,               # entries of one object/array
    "json_string": 4096,              # characters of one string (keys included)
    "name": 128,                      # characters of a file name
}

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class BundleError(ConfigError):
    """A bundle folder is missing files or its files disagree; the message names them."""


def check_file_name(name: Any, where: str) -> str:
    """``name`` if it is a plain file name inside the bundle folder, else :class:`BundleError`."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: expected a file name, got {name!r}")
    if len(name) > LIMITS["name"] or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise BundleError(f"{where}: file name {name[:80]!r} is not a plain file name inside the bundle folder "
                          "(letters, digits, '_', '-', '.'; no '..', '/', '\\' or absolute paths)")
    return name


def scan_bundle(directory: PathLike) -> List[str]:
    """The file names of a bundle folder, checked: a flat folder of regular files, plain names,
    within :data:`LIMITS`. Raises :class:`BundleError` naming the first offending entry."""
    directory = Path(directory)
    try:
        st = os.lstat(directory)
    except OSError:
        raise BundleError(f"bundle folder {directory} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"bundle folder {directory} is a symbolic link; give the folder itself")
    if not stat.S_ISDIR(st.st_mode):
        raise BundleError(f"bundle folder {directory} is not a folder")
    names, total = [], 0
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    if len(entries) > LIMITS["files"]:
        raise BundleError(f"bundle {directory} has {len(entries)} entries; at most {LIMITS['files']} files are read")
    for entry in entries:
        where = f"bundle {directory}: {entry.name!r}"
        est = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(est.st_mode):
            raise BundleError(f"{where} is a symbolic link; a bundle holds regular files only")
        if stat.S_ISDIR(est.st_mode):
            raise BundleError(f"{where} is a folder; a bundle is one flat folder of regular files")
        if not stat.S_ISREG(est.st_mode):
            raise BundleError(f"{where} is not a regular file")
        check_file_name(entry.name, f"bundle {directory}")
        if est.st_size > LIMITS["file_bytes"]:
            raise BundleError(f"{where} is {est.st_size} bytes; files are limited to {LIMITS['file_bytes']} bytes")
        total += est.st_size
        names.append(entry.name)
    if total > LIMITS["bundle_bytes"]:
        raise BundleError(f"bundle {directory} holds {total} bytes; bundles are limited to {LIMITS['bundle_bytes']}")
    return names


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    if depth > LIMITS["json_depth"]:
        raise SpecError(f"spec: {where}: nested deeper than {LIMITS['json_depth']} levels")
    if isinstance(value, str):
        if len(value) > LIMITS["json_string"]:
            raise SpecError(f"spec: {where}: a string of {len(value)} characters (limit {LIMITS['json_string']})")
    elif isinstance(value, (list, dict)):
        if len(value) > LIMITS["json_items"]:
            raise SpecError(f"spec: {where}: {len(value)} entries (limit {LIMITS['json_items']})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(k, str):
                _check_json(k, f"{where} key", depth + 1)
            _check_json(v, f"{where}.{k}" if isinstance(value, dict) else f"{where}[{k}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"spec: {where}: {value} is not a finite number")


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def read_spec(path: PathLike) -> Spec:
    """Read ``spec.json`` strictly: size limit, plain JSON (no NaN/Infinity), bounded nesting and
    sizes, the spec's own validation (unknown keys refused), plain file names wherever the spec
    names a bundle file (``checksums``, ``extra.overlay.bitstream``/``hwh``)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise SpecError(f"cannot read spec {path}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(LIMITS["spec_bytes"] + 1)
    if len(data) > LIMITS["spec_bytes"]:
        raise SpecError(f"spec {path} is larger than {LIMITS['spec_bytes']} bytes")
    try:
        d = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise SpecError(f"spec {path} is not valid JSON: {str(err)[:200]}") from None
    try:
        _check_json(d, "top level")
        spec = Spec.from_dict(d)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
    for name in spec.checksums:
        check_file_name(name, f"{path}: checksums")
    overlay = spec.extra.get("overlay")
    if isinstance(overlay, dict):
        for key in ("bitstream", "hwh"):
            if key in overlay:
                check_file_name(overlay[key], f"{path}: extra.overlay.{key}")
    golden = golden_file(spec)
    if golden is not None:
        check_file_name(golden, f"{path}: extra.golden.file")
    return spec


def stage_bundle(directory: PathLike, into: Optional[PathLike] = None) -> Path:
    """Copy a bundle folder's files into a new private folder (mode 0700; under ``into`` or the
    system's temporary folder) and return it. The files are read without following links and
    checked as :func:`scan_bundle` does, so what is verified afterwards is exactly what is loaded:
    a later change to the original folder cannot reach the copy."""
    directory = Path(directory)
    names = scan_bundle(directory)
    private = Path(tempfile.mkdtemp(prefix="fpga_dnn_bundle_", dir=None if into is None else str(into)))
    try:
        for name in names:
            fd = os.open(directory / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as src:
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    raise BundleError(f"bundle {directory}: {name!r} is not a regular file")
                out = os.open(private / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(out, "wb") as dst:
                    copied = 0
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        copied += len(chunk)
                        if copied > LIMITS["file_bytes"]:
                            raise BundleError(f"bundle {directory}: {name!r} grew past {LIMITS['file_bytes']} bytes")
                        dst.write(chunk)
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    return private


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
    """A bundle folder, read: its spec and (when present) bitstream, handoff and golden vectors' paths."""

    directory: Path
    spec: Spec
    bitfile: Optional[Path]
    hwh: Optional[Path]
    source: Optional[Path] = None   # the original folder, when ``directory`` is a private copy of it
    golden: Optional[Path] = None   # the golden vectors (fpga_dnn.runtime.golden), when the spec names them

    @classmethod
    def load(cls, directory: PathLike, verify: bool = True) -> "Bundle":
        """Read ``directory`` strictly (module docstring); ``verify`` checks every file listed in the
        spec's checksums. The signature is not checked here: :func:`open_bundle` does that.

        Raises :class:`~fpga_dnn.runtime.spec.SpecError` (bad spec, checksum mismatch) or
        :class:`BundleError` (no folder, an unsafe entry or name, several bitstreams, a ``.bit``
        without its ``.hwh``, golden vectors missing or not covered by a checksum).
        """
        directory = Path(directory)
        names = scan_bundle(directory)
        if SPEC_FILENAME not in names:
            raise BundleError(f"bundle {directory} has no {SPEC_FILENAME}")
        spec = read_spec(directory / SPEC_FILENAME)
        if verify:
            spec.verify_checksums(directory)
        bitfile = find_bitfile(directory, spec)
        hwh = bitfile.with_suffix(".hwh") if bitfile else None
        if hwh is not None and not hwh.is_file():
            raise BundleError(f"bundle {directory}: {bitfile.name} has no hardware handoff {hwh.name} beside it "
                              "(pynq needs both, with the same name)")
        golden = golden_file(spec)
        if golden is not None:
            if golden not in spec.checksums:
                raise BundleError(f"bundle {directory}: the golden vectors {golden} are not covered by a checksum "
                                  "in spec.json (a self-test must not trust an unchecked file)")
            if not (directory / golden).is_file():
                raise BundleError(f"bundle {directory}: the spec names golden vectors {golden}, which are missing")
        return cls(directory, spec, bitfile, hwh, golden=None if golden is None else directory / golden)


def find_bitfile(directory: Path, spec: Spec) -> Optional[Path]:
    """The bundle's bitstream (``.bit``, or a bootgen ``.bin``): the one the spec's checksums name,
    else the only one in the folder."""
    listed = sorted(n for n in spec.checksums if n.endswith(BITSTREAM_SUFFIXES))
    if len(listed) > 1:
        raise BundleError(f"bundle {directory}: the spec lists several bitstreams: {', '.join(listed)}")
    if listed:
        return directory / check_file_name(listed[0], f"bundle {directory}: checksums")
    found = sorted(p for suffix in BITSTREAM_SUFFIXES for p in directory.glob("*" + suffix))
    if len(found) > 1:
        raise BundleError(f"bundle {directory}: several bitstreams ({', '.join(p.name for p in found)}); "
                          "list the one to use in spec.json's checksums")
    return found[0] if found else None


def open_bundle(directory: PathLike, trusted_keys=None, allow_unsigned: bool = False,
                min_version: Optional[int] = None, verify: bool = True) -> Bundle:
    """Copy a bundle into a private folder (:func:`stage_bundle`), check its signature over exactly
    those bytes, read it there and check its version; returns the :class:`Bundle` of the copy
    (delete ``bundle.directory`` when done). Nothing of the original folder is used afterwards.

    trusted_keys: public key file(s) (PEM) whose signatures are accepted.
    allow_unsigned: accept a bundle without ``bundle.sig`` (or, with no trusted key given, one
        whose signature cannot be checked). Without it an unsigned bundle is refused.
    min_version: refuse a bundle whose signed ``bundle_version`` is lower (rollback protection).
    verify: also check the spec's checksums (always on for a signed bundle's copy in practice:
        the signature covers the same bytes).

    Raises :class:`~fpga_dnn.runtime.signing.SignatureError`, :class:`BundleError` or
    :class:`~fpga_dnn.runtime.spec.SpecError`, each one line; the private copy is removed then.
    """
    keys = trusted_key_list(trusted_keys)
    if min_version is not None and (not isinstance(min_version, int) or isinstance(min_version, bool)
                                    or min_version < 1):
        raise BundleError(f"min_version must be an integer >= 1, got {min_version!r}")
    private = stage_bundle(directory)
    try:
        signed = (private / SIGNATURE_FILENAME).is_file()
        if signed and (keys or not allow_unsigned):
            verify_bundle(private, keys, label=directory)
        elif not signed and not allow_unsigned:
            raise SignatureError(f"bundle {directory} is not signed ({SIGNATURE_FILENAME} missing); sign it with "
                                 "'fpga-dnn sign BUNDLE --key KEY' or pass allow_unsigned=True to run it anyway")
        try:
            bundle = Bundle.load(private, verify=verify)
        except ConfigError as err:   # name the user's folder, not the private copy
            raise type(err)(str(err).replace(str(private), str(directory))) from None
        if min_version is not None:
            version = bundle.spec.bundle_version
            if version is None or version < min_version:
                raise SignatureError(f"bundle {directory} has version {version if version is not None else 'none'}, "
                                     f"older than the minimum {min_version} (a rollback is refused)")
        return dataclass_replace(bundle, source=Path(directory))
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise


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


def _check_golden(rep: BundleReport, directory: Path, spec: Spec) -> None:
    """The golden vectors: declared, covered by a checksum, readable, shaped like the ports."""
    from fpga_dnn.errors import DataError
    from fpga_dnn.runtime.golden import GoldenVectors

    name = golden_file(spec)
    if name is None:
        rep.facts["golden_vectors"] = "none"
        rep.warnings.append("no golden vectors: the runtime cannot self-test this bundle (rebuild it with the flow)")
        return
    if name not in spec.checksums:
        rep.problems.append(f"the golden vectors {name} are not covered by a checksum in spec.json")
    if not (directory / name).is_file():
        rep.problems.append(f"the spec names golden vectors {name}, which are missing")
        return
    try:
        rep.facts["golden_vectors"] = f"{len(GoldenVectors.load(directory / name, spec))} in {name}"
    except DataError as err:
        rep.problems.append(str(err))


def check_bundle(directory: PathLike, trusted_keys=None) -> BundleReport:
    """Check a bundle folder without loading anything on hardware; never raises for bad content.

    Checks: the folder is what the strict reader accepts (flat, regular files, plain names,
    sizes); the spec loads; with ``trusted_keys``, the signature verifies with one of them (else a
    signature's presence is reported, unchecked); every checksummed file exists and matches; the
    ``.bit`` has a valid header for a supported board (and the board the spec names in
    ``extra.board``, if any) and a ``.hwh`` beside it; the handoff has one AXI DMA, in simple mode,
    with both channels, whose stream widths equal the spec's and whose transfer limit holds at
    least one sample; the PL clock agrees with the spec's ``clock_mhz``. Facts gathered (part,
    board, limits, signature) are reported.
    """
    from fpga_dnn.runtime.fake.hwh import read_dma_parameters

    directory = Path(directory)
    rep = BundleReport(directory)
    try:
        names = scan_bundle(directory)
        spec = read_spec(directory / SPEC_FILENAME)
    except (BundleError, SpecError) as err:
        rep.problems.append(str(err))
        return rep
    keys = trusted_key_list(trusted_keys)
    if SIGNATURE_FILENAME in names:
        if keys:
            try:
                key = verify_bundle(directory, keys)
                rep.facts["signature"] = f"valid, by {key}"
            except SignatureError as err:
                rep.problems.append(str(err))
        else:
            rep.warnings.append(f"signed ({SIGNATURE_FILENAME}) but not checked: give the public key with "
                                "--trusted-key to verify it")
    else:
        rep.facts["signature"] = "none"
        (rep.problems if keys else rep.warnings).append(
            f"not signed ({SIGNATURE_FILENAME} missing): the runtime refuses it unless allow_unsigned=True; "
            "sign it with 'fpga-dnn sign BUNDLE --key KEY'")
    if spec.bundle_version is not None:
        rep.facts["bundle_version"] = spec.bundle_version
    rep.facts["design"] = spec.name
    rep.facts["input"] = f"{spec.input.shape} {spec.input.format}, {spec.input.stream_bits}-bit stream, " \
                         f"{spec.input.sample_bytes} bytes/sample"
    rep.facts["output"] = f"{spec.output.shape} {spec.output.format}, {spec.output.stream_bits}-bit stream, " \
                          f"{spec.output.sample_bytes} bytes/sample"
    _check_golden(rep, directory, spec)
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
    if bitfile.suffix == ".bin":
        rep.facts["bitstream_format"] = "bootgen image (.bin): no header to check"
    elif bitfile.is_file():
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
