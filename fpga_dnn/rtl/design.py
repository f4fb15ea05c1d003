"""The ``Design``: what a generator hands on, written once, read by every later step.

Both generators write one (the unrolled one through :func:`fpga_dnn.rtl.shell.write_axis_design`,
the streaming one in :func:`fpga_dnn.rtl.build.build_stream_rtl`) as ``design.json`` beside the
Verilog and the bundle spec (``spec.json``, the runtime's contract, which the Design holds and
does not repeat). Simulate, estimate and overlay take a :class:`Design` (or its folder,
:meth:`Design.load`) and read the facts they need from it: the top and its ports, the sources
in compile order, what each source holds (its modules, the memory files its parameters name by
default), the memory files, the interface kind, latency and interval, the per-layer modules and,
for an unrolled core, its register-chained stages (which the split synthesis cuts at). Nothing
downstream parses the generated Verilog or C++ back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from fpga_dnn.runtime.spec import SPEC_FILENAME, Spec

DESIGN_FILE = "design.json"
DESIGN_VERSION = 2  # 2: source_info

#: Interface kinds: a whole sample per beat group into a pipelined core (da4ml adder graphs), or
#: a pixel stream through folded units with valid/ready handshakes.
KINDS = ("unrolled", "streaming")


@dataclass(frozen=True)
class Module:
    """One per-layer (or, for an unrolled core, per-stage) module of a design."""

    name: str                  # instance / unit name
    module: str                # Verilog module name
    layer: str = ""            # the hls4ml layer it implements ("" when a stage spans layers)
    source: Optional[Path] = None
    #: the instance's Verilog parameters as the generator set them (a streaming design's library
    #: instances: the split synthesis builds each distinct (module, parameters) once from these)
    parameters: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceInfo:
    """What one Verilog source holds, as its generator wrote it (or, for a library file, as
    :mod:`fpga_dnn.rtl.library` declares it): the modules it defines, and the memory files its
    parameters name by default. A tool that reads the module opens those with ``$readmemh`` even
    when every instance sets its own (yosys stops on a missing one), so estimate puts an empty
    file of each name beside the sources. ``instantiates``: the library modules its own modules
    instantiate, so a tool synthesising one of them alone knows which sources it needs."""

    modules: tuple = ()
    memfile_defaults: tuple = ()
    instantiates: tuple = ()   # modules of other sources its modules instantiate (fd_mvu: fd_cast)

    def to_dict(self) -> dict:
        return {"modules": list(self.modules), "memfile_defaults": list(self.memfile_defaults),
                "instantiates": list(self.instantiates)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SourceInfo":
        return cls(tuple(d["modules"]), tuple(d["memfile_defaults"]), tuple(d.get("instantiates", ())))


def source_infos(pairs) -> dict:
    """``{str(path): SourceInfo}`` from ``(path, SourceInfo)`` pairs (the key form a Design uses)."""
    return {str(Path(p)): info for p, info in pairs}


@dataclass(frozen=True)
class Stage:
    """One combinational stage of an unrolled core, between two register banks."""

    module: str
    source: Path
    in_bits: int
    out_bits: int


@dataclass(frozen=True)
class Pipeline:
    """An unrolled core as the generator wrote it: ``stage{k}`` instances chained by registers
    (``stage0_inp <= model_inp; stage{k}_inp <= stage{k-1}_out; model_out <= stage{n}_out``)."""

    core: str                  # the core module
    source: Path               # its file
    stages: tuple              # Stage, in order
    clock: str = "clk"

    @property
    def in_bits(self) -> int:
        return self.stages[0].in_bits

    @property
    def out_bits(self) -> int:
        return self.stages[-1].out_bits


@dataclass(frozen=True)
class Design:
    """A complete design: a core inside the AXI-Stream shell, its spec and how it is built.

    ``sources`` are in compile order (shell, core files, top); ``data_files`` are the memory
    files the Verilog reads with ``$readmemh`` (copied beside the sources for every tool).
    ``ports`` are the top's ports, ``{name: (direction, bits)}``, as the generator wrote them.
    ``source_info`` says, per source (``str(path)``), which modules it defines and which memory
    files it names by default (:class:`SourceInfo`).
    ``interval`` is the cycles between consecutive samples at the top in steady state without
    stalls (the chooser's prediction for a streaming design); the latency is the spec's.
    """

    spec: Spec
    top: str
    sources: Sequence[Path]
    directory: Path
    core_parameters: Mapping[str, int] = field(default_factory=dict)
    data_files: Sequence[Path] = ()
    kind: str = "unrolled"
    core: str = ""
    ports: Mapping[str, tuple] = field(default_factory=dict)
    interval: int = 0
    modules: Sequence[Module] = ()
    pipeline: Optional[Pipeline] = None
    source_info: Mapping[str, SourceInfo] = field(default_factory=dict)

    @property
    def spec_path(self) -> Path:
        return Path(self.directory) / SPEC_FILENAME

    @property
    def path(self) -> Path:
        return Path(self.directory) / DESIGN_FILE

    @property
    def latency(self) -> int:
        """Cycles from a sample's last input beat to its first output beat, no stalls."""
        return self.spec.total_latency

    def to_dict(self) -> dict:
        p = self.pipeline
        return {
            "design_version": DESIGN_VERSION, "kind": self.kind, "top": self.top, "core": self.core,
            "spec": SPEC_FILENAME, "sources": [str(s) for s in self.sources],
            "data_files": [str(f) for f in self.data_files], "core_parameters": dict(self.core_parameters),
            "ports": {k: [d, int(w)] for k, (d, w) in self.ports.items()},
            "latency": self.latency, "interval": self.interval,
            "modules": [{"name": m.name, "module": m.module, "layer": m.layer,
                         "source": None if m.source is None else str(m.source),
                         "parameters": dict(m.parameters)} for m in self.modules],
            "pipeline": None if p is None else {
                "core": p.core, "source": str(p.source), "clock": p.clock,
                "stages": [[s.module, str(s.source), s.in_bits, s.out_bits] for s in p.stages]},
            "source_info": {k: v.to_dict() for k, v in self.source_info.items()},
        }

    def save(self) -> Path:
        """Write ``design.json`` (and ``spec.json``) into the design's folder."""
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        self.spec.save(self.spec_path)
        self.path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return self.path

    @classmethod
    def load(cls, path) -> "Design":
        """The design saved in ``path`` (its folder or its ``design.json``)."""
        from fpga_dnn.errors import ConfigError

        path = Path(path)
        if path.is_dir():
            path = path / DESIGN_FILE
        if not path.is_file():
            raise ConfigError(f"no {DESIGN_FILE} at {path}: not a design folder (the rtl step writes one)")
        d = json.loads(path.read_text())
        if d.get("design_version") != DESIGN_VERSION:
            raise ConfigError(f"{path}: design_version {d.get('design_version')!r}, this fpga_dnn reads "
                              f"{DESIGN_VERSION}; regenerate the design (fpga-dnn rtl)")
        directory = path.parent
        p = d["pipeline"]
        pipeline = None if p is None else Pipeline(
            p["core"], Path(p["source"]), tuple(Stage(m, Path(s), int(i), int(o)) for m, s, i, o in p["stages"]),
            p["clock"])
        return cls(spec=Spec.load(directory / d["spec"]), top=d["top"], sources=[Path(s) for s in d["sources"]],
                   directory=directory, core_parameters=dict(d["core_parameters"]),
                   data_files=[Path(f) for f in d["data_files"]], kind=d["kind"], core=d["core"],
                   ports={k: (v[0], int(v[1])) for k, v in d["ports"].items()}, interval=int(d["interval"]),
                   modules=tuple(Module(m["name"], m["module"], m["layer"], None if m["source"] is None
                                        else Path(m["source"]), dict(m.get("parameters", {})))
                                 for m in d["modules"]),
                   pipeline=pipeline,
                   source_info={k: SourceInfo.from_dict(v) for k, v in d["source_info"].items()})
