"""The design spec (``spec.json``): the one contract between hardware generation, overlay and runtime.

The RTL step writes it next to the Verilog; the overlay copies it into the bundle with the
checksums of the ``.bit``/``.hwh``; the runtime reads it to pack inputs and decode outputs. It
records, per stream port, the tensor shape, the fixed-point format and the beat layout
parameters (lane bits, stream width, beats per sample — see :mod:`fpga_dnn.runtime.packing`
for the layout itself), plus latency and clock.

Example ``spec.json``::

    {
      "spec_version": 1,
      "name": "digits_mlp",
      "beat_layout": "fpga_dnn-lanes-v1",
      "top_module": "digits_mlp_axis",
      "clock_mhz": 100.0,
      "input":  {"shape": [64], "elements": 64,
                 "format": {"signed": false, "width": 5, "integer": 5},
                 "lane_bits": 8, "stream_bits": 64, "beats_per_sample": 8},
      "output": {"shape": [10], "elements": 10,
                 "format": {"signed": true, "width": 16, "integer": 6},
                 "lane_bits": 16, "stream_bits": 64, "beats_per_sample": 3},
      "latency": {"core_cycles": 3, "total_cycles": 5},
      "checksums": {"digits_mlp.bit": "sha256:..."},
      "bundle_version": 3,
      "extra": {}
    }

``bundle_version`` (optional, an integer >= 1) is set by ``fpga-dnn sign``: it is covered by the
bundle's signature, so a board can refuse an older signed bundle (``Accelerator.open(...,
min_version=N)``, :mod:`fpga_dnn.runtime.signing`).

Derived fields (``elements``, ``lane_bits``, ``beats_per_sample``) are written for readers of
the file and checked on load, so a spec edited by hand cannot silently disagree with itself.
Unknown top-level keys are refused (a typo would otherwise be ignored); put free-form
information under ``extra``.

Imports only numpy and the standard library (plus the numpy-only :mod:`fpga_dnn.fixedpoint`,
whose ``FixedFormat`` is the project's one fixed-point format class): it runs on the boards'
Python 3.10.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from fpga_dnn.errors import ConfigError, DataError
from fpga_dnn.fixedpoint import FixedFormat  # the project's one format class (numpy only)
from fpga_dnn.runtime.packing import BEAT_LAYOUT, beats_per_sample, lane_bits_for, lane_dtype

SPEC_VERSION = 1
SPEC_FILENAME = "spec.json"

#: Stream widths of the boards' AXI DMA (PYNQ-Z2, Ultra96). Wider streams are for simulation.
BOARD_STREAM_BITS = (32, 64)

#: Cycles the AXI-Stream shell adds to the core's pipeline latency (sim/axis_shell.v): one to
#: register the assembled sample, one to write the output FIFO. Kept here, beside the spec,
#: because the spec records the total (definition in :class:`Spec`).
SHELL_OVERHEAD_CYCLES = 2

PathLike = Union[str, Path]


class SpecError(ConfigError):
    """A spec file is missing, malformed or inconsistent; the message names the field."""


def _need(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise SpecError(f"spec: {where}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _keys(d: Any, where: str, required: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> None:
    _need(isinstance(d, dict), where, f"expected an object, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    _need(not missing, where, f"missing {', '.join(missing)}")
    unknown = sorted(set(d) - set(required) - set(optional))
    _need(not unknown, where, f"unknown key(s) {', '.join(unknown)}")


def _check_format(fmt: Any, where: str) -> None:
    """The spec's limits on a format: lanes are at most 32 bits."""
    _need(isinstance(fmt, FixedFormat), where, f"expected a FixedFormat, got {type(fmt).__name__}")
    _need(isinstance(fmt.signed, bool), f"{where}.signed", f"expected true/false, got {fmt.signed!r}")
    _need(_is_int(fmt.width) and 1 <= fmt.width <= 32, f"{where}.width",
          f"expected an integer 1..32 (lanes are at most 32 bits), got {fmt.width!r}")
    _need(_is_int(fmt.integer), f"{where}.integer", f"expected an integer, got {fmt.integer!r}")


def format_to_dict(fmt: FixedFormat) -> Dict[str, Any]:
    return {"signed": fmt.signed, "width": fmt.width, "integer": fmt.integer}


def format_from_dict(d: Any, where: str = "format") -> FixedFormat:
    """A :class:`FixedFormat` from its spec.json object, validated (errors name ``where``)."""
    _keys(d, where, ("signed", "width", "integer"))
    fmt = FixedFormat(signed=d["signed"], width=d["width"], integer=d["integer"])
    _check_format(fmt, where)
    return fmt


def parse_format(text: Union[str, FixedFormat]) -> FixedFormat:
    """A format from ap_fixed notation: ``ap_fixed<8,3>``, ``fixed<8,3,RND,SAT>``,
    ``ufixed<6,0>``, ``ap_uint<4>``, ``int<8>`` (:meth:`FixedFormat.parse`); rounding/overflow
    modes are the core's concern and are dropped. A :class:`FixedFormat` passes through (bare)."""
    if isinstance(text, FixedFormat):
        return text.format
    try:
        return FixedFormat.parse(str(text)).format
    except DataError as err:
        raise SpecError(f"spec: format: cannot parse {text!r}: {err}") from None


@dataclass(frozen=True)
class PortSpec:
    """One stream direction: tensor shape, element format and stream width.

    The lane size and beats per sample follow from these by the beat layout. The derived
    values are computed once, at construction (the runtime reads them on every call), and are
    plain attributes:

    * ``elements``: elements per sample (the shape's product);
    * ``lane_bits``: bits per lane (8, 16 or 32), ``lane_dtype`` the lane's little-endian
      numpy integer type (signed iff the format is);
    * ``beats_per_sample``: stream beats per sample;
    * ``sample_bytes``: bytes per sample on the stream (and in a DMA buffer), padding included;
    * ``data_bits`` / ``data_bytes``: lanes per sample before padding (``elements * lane_bits``);
    * ``board_compatible``: the stream width is one the boards' AXI DMA offers (32 or 64 bits).
    """

    shape: Tuple[int, ...]
    format: FixedFormat
    stream_bits: int

    def __post_init__(self) -> None:
        shape = tuple(self.shape) if isinstance(self.shape, (list, tuple)) else self.shape
        _need(isinstance(shape, tuple) and len(shape) >= 1 and all(_is_int(s) and s >= 1 for s in shape),
              "shape", f"expected a non-empty list of positive integers, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        _check_format(self.format, "format")
        object.__setattr__(self, "format", self.format.format)  # the spec holds formats, not cast modes
        _need(_is_int(self.stream_bits) and self.stream_bits >= 8 and self.stream_bits % 8 == 0,
              "stream_bits", f"expected a positive multiple of 8, got {self.stream_bits!r}")
        elements = int(math.prod(shape))
        lane = lane_bits_for(self.format.width)
        beats = beats_per_sample(elements, lane, self.stream_bits)
        derived = {
            "elements": elements,
            "lane_bits": lane,
            "lane_dtype": lane_dtype(self.format),
            "beats_per_sample": beats,
            "sample_bytes": beats * self.stream_bits // 8,
            "data_bits": elements * lane,
            "data_bytes": elements * lane // 8,
            "board_compatible": self.stream_bits in BOARD_STREAM_BITS,
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "shape": list(self.shape),
            "elements": self.elements,
            "format": format_to_dict(self.format),
            "lane_bits": self.lane_bits,
            "stream_bits": self.stream_bits,
            "beats_per_sample": self.beats_per_sample,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "PortSpec":
        _keys(d, where, ("shape", "format", "stream_bits"), ("elements", "lane_bits", "beats_per_sample"))
        fmt = format_from_dict(d["format"], f"{where}.format")
        try:
            port = cls(shape=d["shape"], format=fmt, stream_bits=d["stream_bits"])
        except SpecError as err:
            raise SpecError(str(err).replace("spec: ", f"spec: {where}.", 1)) from None
        for key in ("elements", "lane_bits", "beats_per_sample"):
            if key in d:
                _need(d[key] == getattr(port, key), f"{where}.{key}",
                      f"file says {d[key]!r} but the shape/format/stream width give {getattr(port, key)}")
        return port


@dataclass(frozen=True)
class Spec:
    """A hardware design's contract. Build with :meth:`create`, read with :meth:`load`.

    Latency (cycles of the core clock): ``core_latency`` is the core's pipeline depth;
    ``total_latency`` is the shell's: when nothing stalls and a sample's last input beat is
    accepted at clock edge ``t``, its first output beat is accepted at edge
    ``t + total_latency`` (it is presented, tvalid high, in the cycle just before). For
    ``sim/axis_shell.v`` that is ``core_latency + SHELL_OVERHEAD_CYCLES``; the first input beat
    to the last output beat adds the beats on either side:
    ``(input beats - 1) + total_latency + (output beats - 1)``.
    """

    name: str
    input: PortSpec
    output: PortSpec
    core_latency: int
    total_latency: int
    clock_mhz: float
    top_module: Optional[str] = None
    checksums: Dict[str, str] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    beat_layout: str = BEAT_LAYOUT
    spec_version: int = SPEC_VERSION
    bundle_version: Optional[int] = None

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name) is not None,
              "name", f"expected an identifier (letters, digits, _), got {self.name!r}")
        _need(self.spec_version == SPEC_VERSION, "spec_version",
              f"this fpga_dnn reads version {SPEC_VERSION}, the file is version {self.spec_version!r}")
        _need(self.beat_layout == BEAT_LAYOUT, "beat_layout",
              f"unknown layout {self.beat_layout!r}; this fpga_dnn knows {BEAT_LAYOUT}")
        _need(isinstance(self.input, PortSpec), "input", "expected a PortSpec")
        _need(isinstance(self.output, PortSpec), "output", "expected a PortSpec")
        _need(_is_int(self.core_latency) and self.core_latency >= 0, "latency.core_cycles",
              f"expected an integer >= 0, got {self.core_latency!r}")
        _need(_is_int(self.total_latency) and self.total_latency >= self.core_latency, "latency.total_cycles",
              f"expected an integer >= core_cycles ({self.core_latency}), got {self.total_latency!r}")
        _need(isinstance(self.clock_mhz, (int, float)) and not isinstance(self.clock_mhz, bool)
              and 0 < self.clock_mhz < 2000, "clock_mhz", f"expected MHz in (0, 2000), got {self.clock_mhz!r}")
        _need(self.top_module is None or (isinstance(self.top_module, str)
              and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", self.top_module) is not None),
              "top_module", f"expected a Verilog module name, got {self.top_module!r}")
        _need(isinstance(self.checksums, dict) and all(
            isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", v)
            for k, v in self.checksums.items()), "checksums",
            "expected {file name: 'sha256:<64 hex digits>'}")
        _need(isinstance(self.extra, dict), "extra", "expected an object")
        _need(self.bundle_version is None or (_is_int(self.bundle_version) and 1 <= self.bundle_version < 2 ** 63),
              "bundle_version", f"expected an integer >= 1, got {self.bundle_version!r}")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, input_shape, input_format: Union[FixedFormat, str], output_shape,
               output_format: Union[FixedFormat, str], core_latency: int, stream_bits: int = 64,
               output_stream_bits: Optional[int] = None, clock_mhz: float = 100.0,
               top_module: Optional[str] = None, extra: Optional[dict] = None) -> "Spec":
        """A spec for a core behind ``sim/axis_shell.v``; the total latency is computed.

        Formats may be :class:`FixedFormat` or strings like ``'ap_fixed<8,3>'`` (:func:`parse_format`).
        ``output_stream_bits`` defaults to ``stream_bits``.
        """
        fmt = parse_format
        return cls(
            name=name,
            input=PortSpec(tuple(input_shape), fmt(input_format), stream_bits),
            output=PortSpec(tuple(output_shape), fmt(output_format), output_stream_bits or stream_bits),
            core_latency=core_latency,
            total_latency=core_latency + SHELL_OVERHEAD_CYCLES,
            clock_mhz=float(clock_mhz),
            top_module=top_module,
            extra=dict(extra or {}),
        )

    def replace(self, **changes) -> "Spec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- derived --------------------------------------------------------------------------------
    @property
    def interval_cycles(self) -> int:
        """Cycles per sample at full rate: the slower side's beats per sample."""
        return max(self.input.beats_per_sample, self.output.beats_per_sample)

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    # -- (de)serialisation ------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {
            "spec_version": self.spec_version,
            "name": self.name,
            "beat_layout": self.beat_layout,
            "top_module": self.top_module,
            "clock_mhz": self.clock_mhz,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "latency": {"core_cycles": self.core_latency, "total_cycles": self.total_latency},
            "checksums": dict(sorted(self.checksums.items())),
            **({} if self.bundle_version is None else {"bundle_version": self.bundle_version}),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Spec":
        _keys(d, "top level", ("spec_version", "name", "input", "output", "latency", "clock_mhz"),
              ("beat_layout", "top_module", "checksums", "extra", "bundle_version"))
        _need(d["spec_version"] == SPEC_VERSION, "spec_version",
              f"this fpga_dnn reads version {SPEC_VERSION}, the file is version {d['spec_version']!r}")
        _keys(d["latency"], "latency", ("core_cycles", "total_cycles"))
        return cls(
            name=d["name"],
            input=PortSpec.from_dict(d["input"], "input"),
            output=PortSpec.from_dict(d["output"], "output"),
            core_latency=d["latency"]["core_cycles"],
            total_latency=d["latency"]["total_cycles"],
            clock_mhz=d["clock_mhz"],
            top_module=d.get("top_module"),
            checksums=dict(d.get("checksums") or {}),
            extra=dict(d.get("extra") or {}),
            beat_layout=d.get("beat_layout", BEAT_LAYOUT),
            spec_version=d["spec_version"],
            bundle_version=d.get("bundle_version"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: PathLike) -> Path:
        """Write the spec; a directory argument means ``<dir>/spec.json``. Returns the file path."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)  # atomic: a reader never sees half a spec
        return path

    @classmethod
    def load(cls, path: PathLike) -> "Spec":
        """Read and validate a spec; a directory argument means ``<dir>/spec.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILENAME
        try:
            text = path.read_text()
        except OSError as err:
            raise SpecError(f"cannot read spec {path}: {err.strerror}") from None
        try:
            d = json.loads(text)
        except ValueError as err:
            raise SpecError(f"spec {path} is not valid JSON: {err}") from None
        try:
            return cls.from_dict(d)
        except SpecError as err:
            raise SpecError(f"{path}: {err}") from None

    # -- bundle checksums ---------------------------------------------------------------------------
    def with_checksums(self, directory: PathLike, files) -> "Spec":
        """A copy whose ``checksums`` also cover ``files`` (names relative to ``directory``)."""
        sums = dict(self.checksums)
        for name in files:
            sums[str(name)] = file_checksum(Path(directory) / name)
        return self.replace(checksums=sums)

    def verify_checksums(self, directory: PathLike) -> None:
        """Raise :class:`SpecError` naming the first file that is missing or differs."""
        for name, expected in sorted(self.checksums.items()):
            path = Path(directory) / name
            if not path.is_file():
                raise SpecError(f"bundle file {path} listed in the spec is missing")
            actual = file_checksum(path)
            if actual != expected:
                raise SpecError(f"bundle file {path} does not match its checksum in the spec "
                                f"(expected {expected[:19]}..., got {actual[:19]}...)")


def file_checksum(path: PathLike) -> str:
    """``'sha256:<hex>'`` of a file's contents, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as err:
        raise SpecError(f"cannot read {path}: {err.strerror}") from None
    return "sha256:" + h.hexdigest()
