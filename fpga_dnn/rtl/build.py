"""The ``rtl`` step: hls4ml ``ModelGraph`` -> traced core -> Verilog -> AXI-Stream design + spec.

Hands on one typed artifact, :class:`RtlBuild`: the pipelined core (:class:`RtlDesign`), the
design that wraps it in the AXI-Stream shell (:class:`~fpga_dnn.rtl.design.Design`, saved as ``design.json``) and
the bundle spec (``spec.json``), the contract the overlay and the runtime read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path


from ..errors import ConfigError
from ..log import progress
from .design import Design, Module
from .trace import TracedModel, trace_model_graph
from .verilog import RtlDesign, write_verilog


ARCHITECTURES = ("unrolled", "streaming", "auto")


@dataclass
class RtlOptions:
    """RTL generation options (the ``[rtl]`` table of a flow file)."""

    latency_cutoff: float = 5.0  # ns of estimated logic delay per pipeline stage: smaller = more stages
    stream_bits: int = 64        # AXI-Stream width (the boards' DMA: 32 or 64)
    softmax: str = "logits"      # a Softmax at the output becomes 'logits' or 'argmax'
    name: str | None = None      # core module name (default: derived from the model)
    # "unrolled" (da4ml adder graphs, a sample per clock), "streaming" (folded units, a pixel per
    # beat: fpga_dnn.rtl.stream) or "auto" (unrolled when the model fits the board, else streaming)
    architecture: str = "unrolled"
    target_inf_per_s: float | None = None  # streaming: the folding chooser's target (None: fastest that fits)
    folding: str | None = None   # streaming: a folding file ([layer] pe = .., simd = ..) instead of the chooser
    auto_max_weights: int = 4096  # auto: streaming above this many weights (the unrolled path's practical size)
    # unrolled: pipeline register bits triplicated with majority voters against upsets:
    # "none", "all", "msb:N" (N top bits of every element) or "stages:a,b" (fpga_dnn.rtl.registers.TmrPlan)
    tmr: str = "none"

    def check(self) -> "RtlOptions":
        if not self.latency_cutoff > 0:
            raise ConfigError(f"latency_cutoff must be > 0 ns, got {self.latency_cutoff!r}")
        if self.stream_bits not in (32, 64) and (self.stream_bits % 8 or self.stream_bits < 8):
            raise ConfigError(f"stream_bits must be 32 or 64 for a board (or a multiple of 8 for "
                              f"simulation), got {self.stream_bits!r}")
        if self.architecture not in ARCHITECTURES:
            from ..errors import UnknownNameError

            raise UnknownNameError("architecture", self.architecture, ARCHITECTURES)
        if self.target_inf_per_s is not None and not self.target_inf_per_s > 0:
            raise ConfigError(f"target_inf_per_s must be > 0, got {self.target_inf_per_s!r}")
        if self.softmax not in ("logits", "argmax"):
            raise ConfigError(f"softmax must be 'logits' or 'argmax', got {self.softmax!r}")
        from .registers import TmrPlan

        self.tmr = TmrPlan.parse(self.tmr).spec
        return self


@dataclass
class RtlBuild:
    traced: TracedModel
    design: RtlDesign
    axis: Design  # the design in the AXI-Stream shell (design.json)
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
              clock_mhz: float = 100.0, board: str = "pynq-z2") -> RtlBuild:
    """Trace ``hls_model`` and write the core, its AXI-Stream wrapper and ``spec.json``.

    ``opts.architecture`` 'streaming' (or 'auto' for a model too big to unroll) builds the
    folded streaming design instead (:func:`build_stream_rtl`)."""
    from ..runtime.spec import Spec
    from .shell import write_axis_design

    opts = (opts or RtlOptions()).check()
    from ..hw.from_hls4ml import read_model_graph

    layers = read_model_graph(hls_model)  # the one reading of hls4ml's objects, for either generator
    if choose_architecture(layers, opts) == "streaming":
        if opts.tmr != "none":
            raise ConfigError(f"[rtl] tmr = {opts.tmr!r} triplicates the unrolled core's pipeline registers; the "
                              "streaming architecture has no such option yet: set tmr = 'none' or architecture = "
                              "'unrolled'")
        return build_stream_rtl(layers, out_dir, opts=opts, name=name, clock_mhz=clock_mhz, board=board)
    out_dir = Path(out_dir)
    core = module_name(opts.name or f"{name}_core")
    progress(f"rtl: tracing the hls4ml graph with da4ml ({core})")
    traced = trace_model_graph(layers, softmax=opts.softmax)
    t0 = time.perf_counter()
    design = write_verilog(traced, out_dir / "core", name=core, latency_cutoff=opts.latency_cutoff,
                           clock_period=1000.0 / clock_mhz, tmr=opts.tmr)
    # An argmax output is a scalar per sample: one element on the stream.
    spec = Spec.create(module_name(name), design.input_shape, design.input_format, design.output_shape or (1,),
                       design.output_format, core_latency=design.register_depth, stream_bits=opts.stream_bits,
                       clock_mhz=clock_mhz, top_module=f"{module_name(name)}_axis",
                       extra={"softmax": traced.softmax})
    axis = write_axis_design(spec, design.top, design.sources, out_dir, data_files=design.memfiles,
                             modules=[Module(f"stage{k}", m, "", Path(f)) for k, (m, f, _, _) in enumerate(design.stages)],
                             pipeline=design.pipeline, source_info=design.source_info)
    write_s = time.perf_counter() - t0
    progress(f"rtl: {axis.top}: core latency {spec.core_latency} cycles, total {spec.total_latency}, "
             f"{design.n_inputs} x {design.input_format} in, {design.n_outputs} x {design.output_format} out, "
             f"~{design.estimated_luts:,.0f} LUT (da4ml estimate)")
    return RtlBuild(traced, design, axis, axis.spec, out_dir, traced.trace_seconds, write_s)


def choose_architecture(layers, opts: RtlOptions) -> str:
    """'unrolled' or 'streaming' for ``opts.architecture`` ('auto': by the number of weights of the
    :class:`~fpga_dnn.hw.layer_graph.LayerGraph` ``layers``)."""
    if opts.architecture != "auto":
        return opts.architecture
    n = layers.n_weights()
    return "unrolled" if n <= opts.auto_max_weights else "streaming"


@dataclass
class StreamBuild:
    """A streaming design: the hardware graph, the fold plan, the stitched design and its spec."""

    graph: object          # fpga_dnn.hw.graph.HwGraph (folds applied)
    plan: object           # fpga_dnn.hw.folding.Plan (predicted figures)
    design: object         # fpga_dnn.rtl.stream.stitch.StreamDesign
    axis: Design           # the design in the AXI-Stream shell (design.json)
    spec: object
    out_dir: Path
    trace_seconds: float
    write_seconds: float
    architecture: str = "streaming"

    def summary(self) -> dict:
        return {"top": self.axis.top, "core": self.design.core, "architecture": "streaming",
                "latency_core": self.spec.core_latency, "latency_total": self.spec.total_latency,
                "predicted_cycles_per_frame": self.plan.cycles_per_frame, "estimated_luts": None,
                "input_format": str(self.spec.input.format), "output_format": str(self.spec.output.format),
                "stream_bits": self.spec.input.stream_bits, "trace_s": round(self.trace_seconds, 2),
                "write_s": round(self.write_seconds, 2)}


def build_stream_rtl(hls_model, out_dir, *, opts: RtlOptions | None = None, name: str = "model",
                     clock_mhz: float = 100.0, board: str = "pynq-z2") -> StreamBuild:
    """Lower ``hls_model`` (a ``ModelGraph`` or the ``LayerGraph`` read from one), fold it (folding
    file, or the chooser at ``opts.target_inf_per_s``),
    stitch the streaming design inside the AXI-Stream shell and write ``spec.json``."""
    from ..boards import load_board
    from ..hw import folding
    from ..hw.from_hls4ml import read_model_graph
    from ..hw.lower import lower
    from .stream.stitch import write_stream_design

    opts = (opts or RtlOptions()).check()
    out_dir = Path(out_dir)
    top = module_name(opts.name or name)
    t0 = time.perf_counter()
    progress(f"rtl: lowering the hls4ml graph to streaming units ({top})")
    layers = read_model_graph(hls_model)
    graph = lower(layers, name=top, softmax=opts.softmax)
    brd = load_board(board)
    if opts.folding:
        folds = folding.read_folding(opts.folding, graph)
        plan = folding.plan_for(graph, folds, brd, clock_mhz)
    else:
        plan = folding.choose(graph, brd, opts.target_inf_per_s, clock_mhz)
    graph = graph.with_folds(plan.folds)
    out_dir.mkdir(parents=True, exist_ok=True)
    folding.write_folding(plan, out_dir / "folding.toml")
    lowered = time.perf_counter() - t0
    out_shape, in_shape = layers.output_shapes[0], layers.input_shapes[0]
    design = write_stream_design(graph, out_dir, name=top, stream_bits=opts.stream_bits, clock_mhz=clock_mhz,
                                 output_shape=out_shape, input_shape=in_shape)
    spec = design.spec
    axis = design.axis_design(plan.cycles_per_frame)
    write_s = time.perf_counter() - t0 - lowered
    progress(f"rtl: {design.top}: {len(graph)} streaming units, predicted {plan.cycles_per_frame:,} cycles/frame "
             f"({clock_mhz * 1e6 / max(1, plan.cycles_per_frame):,.0f} inf/s at {clock_mhz:g} MHz); folding in "
             f"{out_dir / 'folding.toml'}")
    return StreamBuild(graph, plan, design, axis, spec, out_dir, lowered, write_s)
