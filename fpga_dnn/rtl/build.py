"""The ``rtl`` step: hls4ml ``ModelGraph`` -> traced core -> Verilog -> AXI-Stream design + spec.

Hands on one typed artifact, :class:`RtlBuild`: the pipelined core (:class:`RtlDesign`), the
design that wraps it in the AXI-Stream shell (:class:`~fpga_dnn.simulate.shell.AxisDesign`) and
the bundle spec (``spec.json``), the contract the overlay and the runtime read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..log import progress
from .trace import TracedModel, trace_model_graph
from .verilog import RtlDesign, write_verilog


@dataclass
class RtlOptions:
    """RTL generation options (the ``[rtl]`` table of a flow file)."""

    latency_cutoff: float = 5.0  # ns of estimated logic delay per pipeline stage: smaller = more stages
    stream_bits: int = 64        # AXI-Stream width (the boards' DMA: 32 or 64)
    softmax: str = "logits"      # a Softmax at the output becomes 'logits' or 'argmax'
    name: str | None = None      # core module name (default: derived from the model)

    def check(self) -> "RtlOptions":
        if not self.latency_cutoff > 0:
            raise ConfigError(f"latency_cutoff must be > 0 ns, got {self.latency_cutoff!r}")
        if self.stream_bits not in (32, 64) and (self.stream_bits % 8 or self.stream_bits < 8):
            raise ConfigError(f"stream_bits must be 32 or 64 for a board (or a multiple of 8 for "
                              f"simulation), got {self.stream_bits!r}")
        if self.softmax not in ("logits", "argmax"):
            raise ConfigError(f"softmax must be 'logits' or 'argmax', got {self.softmax!r}")
        return self


@dataclass
class RtlBuild:
    traced: TracedModel
    design: RtlDesign
    axis: object  # fpga_dnn.simulate.shell.AxisDesign
    spec: object  # fpga_dnn.runtime.spec.Spec
    out_dir: Path
    trace_seconds: float
    write_seconds: float

    def summary(self) -> dict:
        return {"top": self.axis.top, "core": self.design.top, "latency_core": self.spec.core_latency,
                "latency_total": self.spec.total_latency, "input_format": str(self.design.input_format),
                "output_format": str(self.design.output_format), "estimated_luts": self.design.estimated_luts,
                "register_bits": self.design.register_bits, "stream_bits": self.spec.input.stream_bits,
                "trace_s": round(self.trace_seconds, 2), "write_s": round(self.write_seconds, 2)}


def module_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "model"
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def build_rtl(hls_model, out_dir, *, opts: RtlOptions | None = None, name: str = "model",
              clock_mhz: float = 100.0) -> RtlBuild:
    """Trace ``hls_model`` and write the core, its AXI-Stream wrapper and ``spec.json``."""
    from ..runtime.spec import Spec
    from ..simulate.shell import write_axis_design

    opts = (opts or RtlOptions()).check()
    out_dir = Path(out_dir)
    core = module_name(opts.name or f"{name}_core")
    progress(f"rtl: tracing the hls4ml graph with da4ml ({core})")
    traced = trace_model_graph(hls_model, softmax=opts.softmax)
    t0 = time.perf_counter()
    design = write_verilog(traced, out_dir / "core", name=core, latency_cutoff=opts.latency_cutoff,
                           clock_period=1000.0 / clock_mhz)
    # An argmax output is a scalar per sample: one element on the stream.
    spec = Spec.create(module_name(name), design.input_shape, design.input_format, design.output_shape or (1,),
                       design.output_format, core_latency=design.register_depth, stream_bits=opts.stream_bits,
                       clock_mhz=clock_mhz, top_module=f"{module_name(name)}_axis",
                       extra={"softmax": traced.softmax})
    axis = write_axis_design(spec, design.top, design.sources, out_dir, data_files=design.memfiles)
    write_s = time.perf_counter() - t0
    progress(f"rtl: {axis.top}: core latency {spec.core_latency} cycles, total {spec.total_latency}, "
             f"{design.n_inputs} x {design.input_format} in, {design.n_outputs} x {design.output_format} out, "
             f"~{design.estimated_luts:,.0f} LUT (da4ml estimate)")
    return RtlBuild(traced, design, axis, axis.spec, out_dir, traced.trace_seconds, write_s)
