"""Pipelined Verilog from a traced network.

:func:`write_verilog` cuts the ``CombLogic`` into register-separated stages with da4ml
(``latency_cutoff``: the largest estimated combinational delay per stage, in da4ml's adder
units) and writes da4ml's Verilog. da4ml's own top, ``<name>_wrapper``, pads every element to
the widest element's format; we rewrite it so that the input bus holds every element in
hls4ml's input type and the output bus in hls4ml's output type: one element format per port,
which is what the AXI-Stream shell and the runtime's packing code need.

Core ports (``RtlDesign``): ``clk``; ``model_inp[n_inputs*W_in-1:0]``; ``model_out[...]``.
Element ``j`` (C order of hls4ml's shape, channels_last) occupies bits ``[j*W+W-1 : j*W]``,
two's complement when signed. No valid/ready, no reset, no enable: the pipeline takes one
sample per clock. A sample on ``model_inp`` at rising edge ``t`` appears on ``model_out`` after
rising edge ``t + latency_cycles``.

Its Verilator model for bulk emulation is :mod:`fpga_dnn.simulate.emulator`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fpga_dnn.errors import ConfigError
from fpga_dnn.fixedpoint import FixedFormat

from .design import SourceInfo, source_infos
from .library import da4ml_static
from .precision import HlsType
from .trace import TracedModel

SPEC_FILE = "rtl_design.json"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

@dataclass
class RtlDesign:
    """A generated core: where its files are, its ports, formats and latency."""

    out_dir: Path
    top: str
    core: str
    input_format: FixedFormat
    output_format: FixedFormat
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    latency_cycles: int
    latency_cutoff: float
    clock_period_ns: float
    sources: list[Path]
    memfiles: list[Path] = field(default_factory=list)
    clock_port: str = "clk"
    input_port: str = "model_inp"
    output_port: str = "model_out"
    estimated_luts: float = 0.0
    register_bits: int = 0
    softmax: str | None = None
    notes: list[str] = field(default_factory=list)
    #: How C-sim converts float inputs (rounding/overflow of hls4ml's input type).
    input_type: str = ""
    output_type: str = ""
    write_seconds: float = 0.0
    #: The register-chained stages [module, file, in bits, out bits] (the Design's pipeline).
    stages: list = field(default_factory=list)
    #: The pipeline registers, element by element (:class:`fpga_dnn.rtl.registers.RegisterLayout`
    #: as a dict): what TMR and fault injection address.
    registers: dict | None = None
    #: Which register bits are triplicated (:class:`fpga_dnn.rtl.registers.TmrPlan` spec).
    tmr: str = "none"
    #: What each source holds, ``{str(path): SourceInfo}`` (the Design's ``source_info``).
    source_info: dict = field(default_factory=dict)

    @property
    def layout(self):
        """The register layout (:class:`fpga_dnn.rtl.registers.RegisterLayout`)."""
        from .registers import RegisterLayout

        if self.registers is None:
            raise AssertionError(f"design {self.top} was written without its register layout")
        return RegisterLayout.from_dict(self.registers)

    @property
    def pipeline(self):
        """The core's register-chained stages as the Design records them
        (:class:`fpga_dnn.rtl.design.Pipeline`; None without stages): what the split yosys
        estimate cuts the core along."""
        from .design import Pipeline, Stage

        if not self.stages:
            return None
        return Pipeline(self.core, Path(self.out_dir) / "src" / f"{self.core}.v",
                        tuple(Stage(m, Path(f), i, o) for m, f, i, o in self.stages))

    @property
    def register_depth(self) -> int:
        """Register stages from ``model_inp`` to ``model_out``: ``latency_cycles`` plus the input
        register. A value on ``model_inp`` in cycle c is on ``model_out`` after edge
        c + register_depth; the AXI-Stream shell's ``CORE_LATENCY`` counts this way (measured by
        the cocotb latency test)."""
        return self.latency_cycles + 1

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape)) if self.input_shape else 1

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.output_shape)) if self.output_shape else 1

    @property
    def input_width(self) -> int:
        """Bits of ``model_inp``."""
        return self.n_inputs * self.input_format.width

    @property
    def output_width(self) -> int:
        """Bits of ``model_out``."""
        return self.n_outputs * self.output_format.width

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["sources"] = [str(p) for p in self.sources]
        d["memfiles"] = [str(p) for p in self.memfiles]
        for key in ("input_format", "output_format"):
            fmt = getattr(self, key)
            d[key] = {"signed": fmt.signed, "width": fmt.width, "integer": fmt.integer}
        d["input_width"], d["output_width"] = self.input_width, self.output_width
        d["n_inputs"], d["n_outputs"] = self.n_inputs, self.n_outputs
        return d

    def save(self, path: Path | None = None) -> Path:
        path = Path(path or Path(self.out_dir) / SPEC_FILE)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "RtlDesign":
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        d = json.loads(path.read_text())
        for key in ("input_width", "output_width", "n_inputs", "n_outputs"):
            d.pop(key, None)
        d["out_dir"] = Path(d["out_dir"])
        d["sources"] = [Path(p) for p in d["sources"]]
        d["memfiles"] = [Path(p) for p in d["memfiles"]]
        d.setdefault("stages", [])
        d["source_info"] = {k: SourceInfo.from_dict(v) for k, v in d.get("source_info", {}).items()}
        d["input_format"] = FixedFormat(**d["input_format"])
        d["output_format"] = FixedFormat(**d["output_format"])
        d["input_shape"], d["output_shape"] = tuple(d["input_shape"]), tuple(d["output_shape"])
        return cls(**d)


def write_verilog(traced: TracedModel, out_dir, *, name: str = "fpga_dnn_core", latency_cutoff: float = 5.0,
                  clock_period: float = 5.0, part_name: str = "xc7z020clg400-1", tmr: str = "none") -> RtlDesign:
    """Write the pipelined Verilog of ``traced`` under ``out_dir``; returns its :class:`RtlDesign`.

    ``latency_cutoff`` (> 0) bounds each stage's estimated delay: smaller means more stages,
    more registers and a faster clock. ``clock_period`` (ns) and ``part_name`` go into da4ml's
    timing constraints and Vivado project script, not into the logic. ``tmr``: which register
    bits to triplicate with majority voters (:class:`fpga_dnn.rtl.registers.TmrPlan`).
    """
    from da4ml.codegen import VerilogModel

    from .registers import RegisterLayout, TmrPlan, register_module
    from da4ml.trace import to_pipeline

    if not _IDENT.match(name):
        raise ConfigError(f"RTL module name {name!r} is not a Verilog identifier")
    if not latency_cutoff > 0:
        raise ConfigError(f"latency_cutoff must be > 0 (a pipelined core), got {latency_cutoff}")
    plan = TmrPlan.parse(tmr)
    t0 = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = to_pipeline(traced.comb, latency_cutoff, verbose=False)
    model = VerilogModel(pipe, name, out_dir, latency_cutoff=latency_cutoff, clock_period=clock_period,
                         part_name=part_name)
    model.write(metadata={"fpga_dnn": {"input_type": str(traced.input_type),
                                       "output_type": str(traced.output_type)}})
    traced.comb.save(out_dir / "model" / "comb.json")
    meta = json.loads((out_dir / "metadata.json").read_text())
    # da4ml's metadata counts the clock edges from the edge that captures an input (into its
    # stage0_inp register) to the edge that presents the output. See RtlDesign.register_depth.
    latency = int(meta["latency"])
    top = f"{name}_wrapper"
    layout = RegisterLayout.from_pipeline(pipe, name)
    if plan.enabled:  # the register module with voters replaces da4ml's
        (out_dir / "src" / f"{name}.v").write_text(register_module(layout, plan))
    (out_dir / "src" / f"{top}.v").write_text(uniform_wrapper(layout, traced.input_type, traced.output_type))
    (out_dir / "sim" / f"{top}_binder.cc").write_text(
        _binder(top, traced.n_inputs, traced.n_outputs, traced.input_type.width, traced.output_type.width, latency)
    )
    src = out_dir / "src"
    # da4ml's pipeline_logic_gen: module ``{name}_stage{k}`` in ``src/{name}_stage{k}.v``, and its
    # register banks as wide as the stages' minimal input formats (the same sums as there).
    from da4ml.types import minimal_kif

    in_bits = [sum(map(sum, map(minimal_kif, sol.inp_qint))) for sol in pipe.solutions]
    out_bits = in_bits[1:] + [sum(map(sum, map(minimal_kif, pipe.out_qint)))]
    stages = [src / f"{name}_stage{k}.v" for k in range(len(pipe.solutions))]
    statics = sorted((src / "static").glob("*.v"))
    sources = statics + stages + [src / f"{name}.v", src / f"{top}.v"]
    # what each file holds: da4ml's library as declared, its pipeline_logic_gen's one module per
    # file (``{name}_stage{k}``, the register module ``{name}``), our wrapper
    info = source_infos([*((f, da4ml_static(f)) for f in statics),
                         *((f, SourceInfo((f.stem,))) for f in stages),
                         (src / f"{name}.v", SourceInfo((name,))), (src / f"{top}.v", SourceInfo((top,)))])
    design = RtlDesign(
        out_dir=out_dir,
        top=top,
        core=name,
        input_format=traced.input_format,
        output_format=traced.output_format,
        input_shape=traced.input_shape,
        output_shape=traced.output_shape,
        latency_cycles=latency,
        latency_cutoff=float(meta.get("latency_cutoff", latency_cutoff)),
        clock_period_ns=float(clock_period),
        sources=sources,
        memfiles=sorted((src / "memfiles").glob("*")),
        estimated_luts=float(meta.get("cost", 0.0)),
        register_bits=int(meta.get("reg_bits", 0)),
        softmax=traced.softmax,
        notes=list(traced.notes),
        input_type=str(traced.input_type),
        output_type=str(traced.output_type),
        write_seconds=time.perf_counter() - t0,
        stages=[[f"{name}_stage{k}", str(f), int(i), int(o)] for k, (f, i, o) in enumerate(zip(stages, in_bits, out_bits))]
        if getattr(model, "_register_layers", 1) == 1 else [],
        registers=layout.to_dict(),
        tmr=plan.spec,
        source_info=info,
    )
    design.save()
    return design


def uniform_wrapper(layout, in_type: HlsType, out_type: HlsType, fault_bits: int = 0) -> str:
    """``<core>_wrapper``: the core with every element of a port in one fixed-point format.

    The core packs each element in its own minimal format (da4ml's interval analysis; the first
    and last registers of ``layout``). Each input element takes the bits of its slot that its
    format needs; each output element is placed at its slot's binary point, zero-filled below and
    sign/zero-extended above. ``fault_bits`` > 0 adds the fault-injection input ``fi_mask``
    passed to the core (see :mod:`fpga_dnn.rtl.registers`).
    """
    core = layout.core
    in_kifs, out_kifs = layout.elements[0], layout.elements[-1]
    w_in, w_out = in_type.width, out_type.width
    lines_in, off = [], 0
    for j, (k, i, f) in enumerate(in_kifs):
        w = int(k) + i + f
        if w <= 0:
            continue
        lo = in_type.f - f
        if lo < 0 or lo + w > w_in:
            raise AssertionError(f"input element {j} ({k},{i},{f}) does not fit {in_type}")
        base = j * w_in
        lines_in.append(f"assign packed_inp[{off + w - 1}:{off}] = model_inp[{base + lo + w - 1}:{base + lo}];")
        off += w
    packed_in = off
    lines_out, off = [], 0
    for j, (k, i, f) in enumerate(out_kifs):
        w = int(k) + i + f
        base = j * w_out
        if w <= 0:
            lines_out.append(f"assign model_out[{base + w_out - 1}:{base}] = {w_out}'b0;")
            continue
        lo = out_type.f - f
        if lo < 0 or lo + w > w_out:
            raise AssertionError(f"output element {j} ({k},{i},{f}) does not fit {out_type}")
        if lo:
            lines_out.append(f"assign model_out[{base + lo - 1}:{base}] = {lo}'b0;")
        lines_out.append(f"assign model_out[{base + lo + w - 1}:{base + lo}] = packed_out[{off + w - 1}:{off}];")
        hi = w_out - lo - w
        if hi:
            fill = f"{{{hi}{{packed_out[{off + w - 1}]}}}}" if k else f"{hi}'b0"
            lines_out.append(f"assign model_out[{base + w_out - 1}:{base + lo + w}] = {fill};")
        off += w
    packed_out = off
    body_in = "\n    ".join(lines_in)
    body_out = "\n    ".join(lines_out)
    n_in, n_out = len(in_kifs), len(out_kifs)
    fi_port = f"\n    input [{fault_bits - 1}:0] fi_mask," if fault_bits else ""
    fi_conn = "\n        .fi_mask(fi_mask)," if fault_bits else ""
    return f"""`timescale 1 ns / 1 ps

// Generated by fpga_dnn.rtl: {core} with uniform ports.
// model_inp: {n_in} x {in_type.format} (element j at bits [j*{w_in}+{w_in - 1}:j*{w_in}])
// model_out: {n_out} x {out_type.format} (element j at bits [j*{w_out}+{w_out - 1}:j*{w_out}])
module {core}_wrapper (
    input clk,{fi_port}
    // verilator lint_off UNUSEDSIGNAL
    input [{n_in * w_in - 1}:0] model_inp,
    // verilator lint_on UNUSEDSIGNAL
    output [{n_out * w_out - 1}:0] model_out
);
    wire [{max(packed_in, 1) - 1}:0] packed_inp;
    // verilator lint_off UNUSEDSIGNAL
    wire [{max(packed_out, 1) - 1}:0] packed_out;
    // verilator lint_on UNUSEDSIGNAL

    {body_in}

    {core} op (
        .clk(clk),{fi_conn}
        .model_inp(packed_inp),
        .model_out(packed_out)
    );

    {body_out}

endmodule
"""


def _binder(top: str, n_in: int, n_out: int, w_in: int, w_out: int, latency: int) -> str:
    """da4ml's C++ binder (``binder_util.hh`` batch loop) for our uniform-width top."""
    return f"""#include <cstddef>
#include "binder_util.hh"
#include "V{top}.h"

struct {top}_config {{
    static const size_t N_inp = {n_in};
    static const size_t N_out = {n_out};
    static const size_t max_inp_bw = {w_in};
    static const size_t max_out_bw = {w_out};
    static const size_t II = 1;
    static const size_t latency = {latency};
    typedef V{top} dut_t;
}};

extern "C" {{
bool openmp_enabled() {{ return _openmp; }}

void inference(int32_t *c_inp, int32_t *c_out, size_t n_samples, size_t n_threads) {{
    batch_inference<{top}_config>(c_inp, c_out, n_samples, n_threads);
}}
}}
"""
