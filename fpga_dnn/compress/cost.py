"""Hardware cost of a model, for compression decisions and the Pareto report.

Two cost models, both from the RTL this project generates (hls4ml graph -> da4ml trace):

* ``da4ml`` (default, about 2 s for digits_mlp): da4ml's LUT estimate of the traced adder graph
  plus the pipeline depth. Zero weights and repeated constants already show here, because the
  adder graph drops zero terms and shares common sub-expressions. On the demo model it is within
  ~6% of yosys (27.4k vs 29.2k LUT).
* ``yosys``: the real ``synth_xilinx`` estimate of :mod:`fpga_dnn.estimate` (about a minute and
  more per model): use it for the final figures, not inside a search loop.

DSPs: the generated RTL is multiplier-free (constant multiplications become adder graphs), so
DSP use is 0 by construction on the da4ml path; yosys reports what it infers.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

COST_MODELS = ("da4ml", "yosys")


@dataclass
class HardwareCost:
    luts: float
    dsp: int
    latency_cycles: int
    register_bits: int
    ff: int | None = None          # yosys only
    cost_model: str = "da4ml"
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def hardware_cost(model, x: np.ndarray, cost_model: str = "da4ml", *, latency_cutoff: float = 5.0,
                  family: str = "xc7", work_dir=None, input_precision: str | None = None,
                  convert_options=None, softmax: str = "logits", clock_period: float | None = None) -> HardwareCost:
    """Convert ``model`` (QKeras or HGQ2) with calibration inputs ``x`` and estimate its hardware.

    ``input_precision``: the input format (e.g. ``"ufixed<5,1>"``); default inferred from ``x``.
    ``convert_options``, ``latency_cutoff``, ``softmax``, ``clock_period`` (ns), ``family``: the
    flow's own conversion, RTL options and target, so the price is that of the design it builds.
    """
    from dataclasses import replace

    from ..convert import ConvertOptions, convert
    from ..modelio import framework_of
    from ..rtl.trace import trace_model_graph

    if cost_model not in COST_MODELS:
        raise ConfigError(f"unknown cost model {cost_model!r}; known: {', '.join(COST_MODELS)}")
    t0 = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="fpga_dnn_cost_") if work_dir is None else None
    work = Path(tmp.name if tmp else work_dir)
    try:
        opts = ConvertOptions(input_precision=input_precision) if convert_options is None else replace(
            convert_options, input_precision=input_precision or convert_options.input_precision, trace=False)
        conv = convert(model, x, opts, output_dir=work / "hls", framework=framework_of(model),
                       write=cost_model == "yosys", quiet=True)
        traced = trace_model_graph(conv.hls_model, softmax=softmax)
        from da4ml.trace import to_pipeline

        pipe = to_pipeline(traced.comb, latency_cutoff, verbose=False)
        # Pipeline depth as the rtl step reports it: stages + the input register (register_depth).
        latency = len(pipe.solutions) + 1
        if cost_model == "da4ml":
            return HardwareCost(luts=float(traced.comb.cost), dsp=0, latency_cycles=latency,
                                register_bits=int(pipe.reg_bits), cost_model="da4ml",
                                seconds=round(time.perf_counter() - t0, 2))
        from ..estimate import synthesize
        from ..rtl.verilog import write_verilog

        design = write_verilog(traced, work / "rtl", name="cost_core", latency_cutoff=latency_cutoff,
                               **({"clock_period": clock_period} if clock_period else {}))
        rep = synthesize(design.sources, design.core, family, data_files=design.memfiles,
                         source_info=design.source_info)
        return HardwareCost(luts=float(rep.lut_total), dsp=rep.dsp, latency_cycles=design.register_depth,
                            register_bits=design.register_bits, ff=rep.ff, cost_model="yosys",
                            seconds=round(time.perf_counter() - t0, 2))
    finally:
        if tmp:
            tmp.cleanup()


def describe(cost: HardwareCost) -> str:
    return f"{cost.luts:,.0f} LUT ({cost.cost_model}), {cost.dsp} DSP, {cost.latency_cycles} cycles"
