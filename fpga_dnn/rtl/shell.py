"""Plug a core into the AXI-Stream shell (``sim/axis_shell.v``): the generated top and its sources.

The shell module ``fpga_dnn_axis_shell`` is the same file for every design and does not
instantiate the core: it exposes the core's flat buses as ports. Per design, this module renders
a small top ``<name>_axis`` that instantiates the shell (parameters from the spec) and the core
module by name::

    module <name>_axis (clk, aresetn, s_axis_t{data,valid,ready,last,keep}, m_axis_t{data,valid,ready,last,keep});
        fpga_dnn_axis_shell #(...) shell (..., .core_inp(core_inp), .core_out(core_out));
        <core_module> #(<core_parameters>) core (.clk(clk), .model_inp(core_inp), .model_out(core_out));

The core must have da4ml's port shape: ``clk`` (absent when ``core_has_clk=False``, e.g. a
combinational da4ml core), ``model_inp[elements*width-1:0]`` and ``model_out[...]`` with element
``i`` at ``[(i+1)*width-1 : i*width]``, every element of one port in the spec's format for that
port, and a fixed pipeline latency equal to ``spec.core_latency``. da4ml's ``NAME_wrapper``
already pads every element to one common width (its "regular" layout), so the spec's formats
are that common format.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from fpga_dnn.runtime.packing import wide_stream_bits
from fpga_dnn.runtime.spec import FixedFormat, Spec

from .design import Design, Module, Pipeline, SourceInfo, source_infos

#: The project's Verilog and testbenches.
SIM_DIR = Path(__file__).resolve().parents[2] / "sim"
SHELL_SOURCE = SIM_DIR / "axis_shell.v"
SHELL_MODULE = "fpga_dnn_axis_shell"
DUMMY_CORE_SOURCE = SIM_DIR / "test_cores" / "dummy_core.v"
DUMMY_CORE_MODULE = "fpga_dnn_dummy_core"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


#: The design a core in the shell makes: :class:`fpga_dnn.rtl.design.Design` (its old name).
AxisDesign = Design


def axis_ports(spec: Spec) -> dict:
    """``{port: (direction, bits)}`` of every top in the AXI-Stream shell, unrolled or streaming:
    what :func:`axis_port_declarations` declares and the Design records for the overlay."""
    inp, out = spec.input.stream_bits, spec.output.stream_bits
    return {"clk": ("input", 1), "aresetn": ("input", 1),
            "s_axis_tdata": ("input", inp), "s_axis_tvalid": ("input", 1), "s_axis_tready": ("output", 1),
            "s_axis_tlast": ("input", 1), "s_axis_tkeep": ("input", inp // 8),
            "m_axis_tdata": ("output", out), "m_axis_tvalid": ("output", 1), "m_axis_tready": ("input", 1),
            "m_axis_tlast": ("output", 1), "m_axis_tkeep": ("output", out // 8)}


#: Why a port is there, where it is not obvious (a comment beside its declaration).
_PORT_NOTES = {"s_axis_tkeep": "accepted, ignored: whole beats only",
               "m_axis_tkeep": "all ones: every output beat is whole"}


def axis_port_declarations(ports: Mapping[str, tuple]) -> str:
    """The ANSI port list (the lines between ``module top (`` and ``);``) of ``ports``,
    ``{name: (direction, bits)}``: :func:`axis_ports`, plus any a generator adds (debug ports)."""
    lines = []
    for i, (name, (direction, bits)) in enumerate(ports.items()):
        if not _IDENT.fullmatch(name) or direction not in ("input", "output") or int(bits) < 1:
            raise ValueError(f"not a port: {name!r} ({direction}, {bits} bits)")
        width = f"[{int(bits) - 1}:0]" if (int(bits) > 1 or name.endswith("_tkeep")) else ""
        comma = "," if i < len(ports) - 1 else ""
        note = f"   // {_PORT_NOTES[name]}" if name in _PORT_NOTES else ""
        lines.append(f"    {direction:<6} wire {width:<8} {name}{comma}{note}")
    return "\n".join(lines)


def axis_shell_connections(spec: Spec) -> str:
    """The shell instance's connections of the top's AXI-Stream ports (same names on both sides)."""
    return ",\n        ".join(f".{name}({name})" for name in axis_ports(spec))


def render_axis_top(spec: Spec, core_module: str, core_parameters: Optional[Mapping[str, int]] = None,
                    core_has_clk: bool = True, top: Optional[str] = None) -> str:
    """Verilog text of the top that joins ``fpga_dnn_axis_shell`` and ``core_module``.

    All shell parameters come from ``spec`` (stream widths, element counts and widths, output
    signedness, core latency); ``core_parameters`` are passed to the core instance (the real
    da4ml core has none). ``top`` defaults to ``spec.top_module`` or ``<spec.name>_axis``.
    """
    top = top or spec.top_module or f"{spec.name}_axis"
    for ident in (top, core_module, *(core_parameters or {})):
        if not _IDENT.fullmatch(ident):
            raise ValueError(f"not a Verilog identifier: {ident!r}")
    inp, out = spec.input, spec.output
    shell_params = {
        "S_AXIS_BITS": inp.stream_bits, "M_AXIS_BITS": out.stream_bits,
        "IN_ELEMENTS": inp.elements, "IN_WIDTH": inp.format.width,
        "OUT_ELEMENTS": out.elements, "OUT_WIDTH": out.format.width,
        "OUT_SIGNED": int(out.format.signed), "CORE_LATENCY": spec.core_latency,
    }

    def plist(params: Mapping[str, int]) -> str:
        return ",\n        ".join(f".{k}({int(v)})" for k, v in params.items())

    core_params = f" #(\n        {plist(core_parameters)}\n    )" if core_parameters else ""
    clk_bind = "\n        .clk(clk)," if core_has_clk else ""
    return f"""// Generated by fpga_dnn.rtl.shell.render_axis_top for design {spec.name!r}; do not edit.
// {core_module} (latency {spec.core_latency}) inside fpga_dnn_axis_shell (sim/axis_shell.v).
// Input: {inp.elements} x {inp.format} in {inp.lane_bits}-bit lanes, {inp.beats_per_sample} beat(s) of {inp.stream_bits} bits.
// Output: {out.elements} x {out.format} in {out.lane_bits}-bit lanes, {out.beats_per_sample} beat(s) of {out.stream_bits} bits.
// Latency (last input beat -> first output beat, no stalls): {spec.total_latency} cycles.
`timescale 1 ns / 1 ps

module {top} (
{axis_port_declarations(axis_ports(spec))}
);
    wire [{inp.elements * inp.format.width - 1}:0] core_inp;
    wire [{out.elements * out.format.width - 1}:0] core_out;

    {SHELL_MODULE} #(
        {plist(shell_params)}
    ) shell (
        {axis_shell_connections(spec)},
        .core_inp(core_inp), .core_out(core_out)
    );

    {core_module}{core_params} core ({clk_bind}
        .model_inp(core_inp),
        .model_out(core_out)
    );
endmodule
"""


def write_axis_design(spec: Spec, core_module: str, core_sources: Sequence[Path], directory: Path,
                      core_parameters: Optional[Mapping[str, int]] = None,
                      core_has_clk: bool = True, data_files: Sequence[Path] = (),
                      modules: Sequence[Module] = (), pipeline: Optional[Pipeline] = None,
                      source_info: Optional[Mapping[str, SourceInfo]] = None) -> Design:
    """Write ``<top>.v``, ``spec.json`` and ``design.json`` into ``directory``; return the design.

    ``spec.top_module`` is set to the top's name if it was empty. Sources are listed in compile
    order: the shell, the core's files, then the top. ``data_files``: memory files the core
    reads with ``$readmemh`` (e.g. da4ml's ``src/memfiles/*``). ``modules``/``pipeline``: the
    core's per-stage modules and register chain as its generator wrote them. ``source_info``: what
    each core source holds (:class:`~fpga_dnn.rtl.design.SourceInfo`, by ``str(path)``); the
    shell's and the top's are added here.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    top = spec.top_module or f"{spec.name}_axis"
    spec = spec.replace(top_module=top)
    top_path = directory / f"{top}.v"
    text = render_axis_top(spec, core_module, core_parameters, core_has_clk, top)
    if not top_path.exists() or top_path.read_text() != text:  # keep mtimes stable for caches
        top_path.write_text(text)
    sources = [SHELL_SOURCE, *map(Path, core_sources), top_path]
    # The core takes a sample per clock: the stream widths set the interval.
    interval = max(spec.input.beats_per_sample, spec.output.beats_per_sample)
    design = Design(spec=spec, top=top, sources=sources, directory=directory,
                    core_parameters=dict(core_parameters or {}), data_files=[Path(f) for f in data_files],
                    kind="unrolled", core=core_module, ports=axis_ports(spec), interval=interval,
                    modules=tuple(modules), pipeline=pipeline,
                    source_info={**dict(source_info or {}), **source_infos(
                        [(SHELL_SOURCE, SourceInfo((SHELL_MODULE,))), (top_path, SourceInfo((top,)))])})
    design.save()
    return design


# ---------------------------------------------------------------------------------------------
# The dummy core: a known function to test the shell before a real network exists
# ---------------------------------------------------------------------------------------------

def dummy_core_spec(name: str, input_shape, input_format: FixedFormat, output_shape,
                    output_format: FixedFormat, latency: int, stream_bits: Optional[int] = 64,
                    clock_mhz: float = 100.0) -> Spec:
    """A spec for ``fpga_dnn_dummy_core``; ``stream_bits=None`` means wide streams (a sample per beat)."""
    n_in, n_out = int(np.prod(input_shape)), int(np.prod(output_shape))
    s_bits = stream_bits or wide_stream_bits(n_in, input_format.width)
    m_bits = stream_bits or wide_stream_bits(n_out, output_format.width)
    return Spec.create(name, input_shape, input_format, output_shape, output_format, latency,
                       stream_bits=s_bits, output_stream_bits=m_bits, clock_mhz=clock_mhz,
                       extra={"core": DUMMY_CORE_MODULE})


def dummy_core_parameters(spec: Spec) -> dict:
    """Verilog parameters of ``fpga_dnn_dummy_core`` matching ``spec``."""
    return {
        "IN_ELEMENTS": spec.input.elements, "IN_WIDTH": spec.input.format.width,
        "IN_SIGNED": int(spec.input.format.signed), "OUT_ELEMENTS": spec.output.elements,
        "OUT_WIDTH": spec.output.format.width, "LATENCY": spec.core_latency,
    }


def write_dummy_design(spec: Spec, directory: Path) -> Design:
    """The dummy core in the shell, for ``spec`` (see :func:`dummy_core_spec`)."""
    return write_axis_design(spec, DUMMY_CORE_MODULE, [DUMMY_CORE_SOURCE], directory,
                             core_parameters=dummy_core_parameters(spec),
                             source_info=source_infos([(DUMMY_CORE_SOURCE, SourceInfo((DUMMY_CORE_MODULE,)))]))


def dummy_core_reference(q_in: np.ndarray, spec: Spec) -> np.ndarray:
    """What ``fpga_dnn_dummy_core`` computes, on integer batches: ``(batch, in...) -> (batch, out...)``.

    ``out_i = (in_{i mod N_in} * 3 + i) mod 2**W_out``, read as signed when the output format is.
    """
    q = np.asarray(q_in, dtype=np.int64).reshape(len(q_in), spec.input.elements)
    n_out, w_out = spec.output.elements, spec.output.format.width
    idx = np.arange(n_out)
    v = (q[:, idx % spec.input.elements] * 3 + idx) & ((1 << w_out) - 1)
    if spec.output.format.signed:
        v = np.where(v >= 1 << (w_out - 1), v - (1 << w_out), v)
    return v.reshape((len(q),) + spec.output.shape)
