"""The HLS path: an hls4ml project's network behind fpga_dnn's own AXI-Stream top.

hls4ml 1.3.0's VivadoAccelerator backend has a wrapper (``<project>_axi.cpp``) for PYNQ-Z2, but
it does not serve here (checked on its generated files):

* it moves **one element per beat** (``T_in`` rounded up to a multiple of 8 bits, or a 32-bit
  float), a layout the runtime would need a second packer for;
* with a fixed-point stream type it writes ``typedef fixed<16,6,TRN,WRAP,0> T_in;`` — not C++,
  so only ``float``/``double`` compile, and float outputs round results wider than 24 bits;
* its project tcl swaps the input and output stream widths (``bit_width_hls_input`` is the
  output's), and its ``{data, last}`` struct gets no TLAST from Vitis HLS (2020.2+), which the
  DMA needs to end a transfer;
* it knows no Ultra96.

So the HLS path takes any converted model (``io_parallel`` or ``io_stream``, one input, one
output) and generates a small top, ``<project>_fpga_dnn_axis``, that unpacks the beat layout
``fpga_dnn-lanes-v1`` (the RTL path's, :mod:`fpga_dnn.runtime.packing`) into the network's input
array, calls the network, and packs its result (``hls/fpga_dnn_axis.h``). The bundle's spec is
then the same kind as the RTL path's and the runtime needs no second layout.

What it needs of the network's top function (argument types, element formats, counts, stream
packing) and of the project's settings comes from the graph, as an
:class:`~fpga_dnn.hw.interface.HlsInterface` (read by :func:`fpga_dnn.hw.from_hls4ml.read_interface`,
saved by the convert step beside the project): nothing of hls4ml's generated C++ or tcl is parsed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fpga_dnn.errors import ConfigError
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.hw.interface import HlsInterface, IoPort
from fpga_dnn.runtime.packing import BEAT_LAYOUT
from fpga_dnn.runtime.spec import Spec

HLS_DIR = Path(__file__).resolve().parents[2] / "hls"
AXIS_HEADER = HLS_DIR / "fpga_dnn_axis.h"
HLS_SCRIPT = HLS_DIR / "hls_synth.tcl"
IO_TYPES = ("io_parallel", "io_stream")


@dataclass(frozen=True)
class HlsPort:
    """One side of the network's top function."""

    arg: str              # argument name in the top function
    type_name: str        # hls4ml typedef name (input_t, result_t)
    element: str          # C++ element type: 'input_t' (io_parallel) or 'input_t::value_type' (io_stream)
    format: FixedFormat   # the element's fixed-point format
    elements: int         # elements per sample
    pack: int = 1         # io_stream: elements per stream word (nnet::array size)


@dataclass(frozen=True)
class HlsProject:
    """What fpga_dnn needs to know about an hls4ml project (made by :func:`read_hls_project`)."""

    directory: Path
    name: str
    io_type: str
    input: HlsPort
    output: HlsPort
    clock_uncertainty: str
    max_size: int
    namespace: Optional[str] = None
    part: str = ""        # the part hls4ml was configured for (the HLS run here uses the board's)

    @property
    def top(self) -> str:
        """The AXI-Stream top function fpga_dnn generates around the network."""
        return f"{self.name}_fpga_dnn_axis"


def _port(p: IoPort, io_type: str, where: str) -> HlsPort:
    """The element format (at most 32 bits: the widest lane) and count of one top-function argument."""
    hint = "set that layer's result precision to an ap_fixed/ap_int type of at most 32 bits"
    if p.fixed is None:
        raise ConfigError(f"{where}: {p.reason or 'not a fixed-point type'}; fpga_dnn cannot stream it; {hint}")
    fmt = p.fixed.format
    if not 1 <= fmt.width <= 32:
        raise ConfigError(f"{where}: type {fmt} is {fmt.width} bits, wider than a 32-bit lane; {hint}")
    if io_type == "io_stream":
        if p.pack < 1 or p.elements % p.pack:
            raise ConfigError(f"{where}: {p.elements} elements do not fill whole {p.type_name} words of {p.pack}")
        return HlsPort(p.name, p.type_name, f"{p.type_name}::value_type", fmt, p.elements, p.pack)
    return HlsPort(p.name, p.type_name, p.type_name, fmt, p.elements)


def read_hls_project(design) -> HlsProject:
    """What the HLS overlay needs of a converted model: ``design`` is an
    :class:`~fpga_dnn.hw.interface.HlsInterface`, the project folder the convert step wrote (its
    ``fpga_dnn_interface.json``) or an hls4ml ``ModelGraph`` (written: its ``firmware/`` is copied)."""
    if isinstance(design, (str, Path)):
        iface = HlsInterface.load(design)
    elif isinstance(design, HlsInterface):
        iface = design
    else:
        from fpga_dnn.hw.from_hls4ml import read_interface

        iface = read_interface(design)
    d = Path(iface.directory)
    if not (d / "firmware").is_dir():
        raise ConfigError(f"{d}: no firmware/ folder; write the hls4ml project first (ModelGraph.write() or "
                          "the convert step)")
    if iface.io_type not in IO_TYPES:
        raise ConfigError(f"hls4ml project {d}: io_type {iface.io_type!r}; the HLS overlay supports "
                          f"{' and '.join(IO_TYPES)}")
    args = [p.name for p in (*iface.inputs, *iface.outputs)] + list(iface.extra_args)
    if len(iface.inputs) != 1 or len(iface.outputs) != 1 or iface.extra_args:
        raise ConfigError(f"hls4ml project {d}: top function {iface.project}({', '.join(args)}) is not one input "
                          "and one output array or stream; fpga_dnn's HLS overlay supports single-input, "
                          "single-output models (weights in registers or ROM, not BRAM ports)")
    (inp,), (out,) = iface.inputs, iface.outputs
    where = f"hls4ml project {d}, {{}} {{}}"
    return HlsProject(d, iface.project, iface.io_type, _port(inp, iface.io_type, where.format("input", inp.name)),
                      _port(out, iface.io_type, where.format("output", out.name)), iface.clock_uncertainty,
                      iface.maximum_size, iface.namespace, iface.part)


# ---------------------------------------------------------------------------------------------
# The spec of the HLS design and the generated top
# ---------------------------------------------------------------------------------------------

def hls_spec(project: HlsProject, spec: Optional[Spec] = None, stream_bits: int = 64,
             clock_mhz: float = 100.0) -> Spec:
    """The spec of ``project`` behind the generated top.

    Formats and element counts are the project's. ``spec`` (e.g. the RTL step's spec of the same
    model) supplies the name, tensor shapes and stream widths; its formats must be the
    project's, or this raises (they would not be the same design). Without it the shapes are
    flat and both streams are ``stream_bits`` wide. The latency is not known before HLS
    synthesis: it is recorded as 0 and ``extra['latency']`` says where to read it.
    """
    if spec is not None:
        for side, port, hport in (("input", spec.input, project.input), ("output", spec.output, project.output)):
            if port.elements != hport.elements:
                raise ConfigError(f"spec {spec.name!r} has {port.elements} {side} elements, the hls4ml project "
                                  f"{project.name!r} has {hport.elements}")
            if port.format != hport.format:
                raise ConfigError(f"spec {spec.name!r} has {side} format {port.format}, the hls4ml project "
                                  f"{project.name!r} has {hport.format} ({hport.type_name}): not the same design")
        name, in_shape, out_shape = spec.name, spec.input.shape, spec.output.shape
        in_bits, out_bits = spec.input.stream_bits, spec.output.stream_bits
        extra = dict(spec.extra)
    else:
        name, in_shape, out_shape = project.name, (project.input.elements,), (project.output.elements,)
        in_bits = out_bits = stream_bits
        extra = {}
    extra["latency"] = ("unknown before HLS synthesis: see the C synthesis report "
                        f"(hls/{project.name}/{project.name}_fpga_dnn_prj/solution1/syn/report/)")
    extra["hls_project"] = project.name
    base = Spec.create(name, in_shape, project.input.format, out_shape, project.output.format, 0,
                       stream_bits=in_bits, output_stream_bits=out_bits, clock_mhz=clock_mhz,
                       top_module=project.top, extra=extra)
    return base.replace(total_latency=0)


def render_hls_top(project: HlsProject, spec: Spec) -> str:
    """C++ of ``<project>_fpga_dnn_axis``: AXI-Stream in, the network, AXI-Stream out."""
    i, o = project.input, project.output
    si, so = spec.input, spec.output
    elem_in, elem_out = i.element, o.element
    if project.io_type == "io_parallel":
        call = f"    {project.name}(x, y);"
    else:
        call = f"""    hls::stream<{i.type_name}> in_stream("fpga_dnn_in");
    hls::stream<{o.type_name}> out_stream("fpga_dnn_out");
#pragma HLS STREAM variable=in_stream depth={i.elements // i.pack}
#pragma HLS STREAM variable=out_stream depth={o.elements // o.pack}
to_network:
    for (int w = 0; w < {i.elements // i.pack}; w++) {{
        {i.type_name} word;
        for (int j = 0; j < {i.pack}; j++) {{
#pragma HLS UNROLL
            word[j] = x[w * {i.pack} + j];
        }}
        in_stream.write(word);
    }}
    {project.name}(in_stream, out_stream);
from_network:
    for (int w = 0; w < {o.elements // o.pack}; w++) {{
        {o.type_name} word = out_stream.read();
        for (int j = 0; j < {o.pack}; j++) {{
#pragma HLS UNROLL
            y[w * {o.pack} + j] = word[j];
        }}
    }}"""
    signed = "true" if o.format.signed else "false"
    # hls4ml's writer option Namespace puts the network and its typedefs in a namespace
    using = f"using namespace {project.namespace};\n" if project.namespace else ""
    return f"""// Generated by fpga_dnn.overlay for hls4ml project '{project.name}' ({project.io_type}); do not edit.
// AXI-Stream top {project.top}: s_axis ({si.stream_bits} bits) -> {project.name}() -> m_axis ({so.stream_bits} bits),
// beat layout {BEAT_LAYOUT} (hls/fpga_dnn_axis.h; the same as the RTL path's shell).
// Input:  {si.elements} x {si.format} in {si.lane_bits}-bit lanes, {si.beats_per_sample} beat(s) per sample.
// Output: {so.elements} x {so.format} in {so.lane_bits}-bit lanes, {so.beats_per_sample} beat(s) per sample.
#include "{project.name}.h"
#include "fpga_dnn_axis.h"
{using}
void {project.top}(hls::stream<fpga_dnn_beat<{si.stream_bits}>::type> &s_axis,
                   hls::stream<fpga_dnn_beat<{so.stream_bits}>::type> &m_axis) {{
#pragma HLS INTERFACE axis port=s_axis
#pragma HLS INTERFACE axis port=m_axis
#pragma HLS INTERFACE ap_ctrl_none port=return
    {elem_in} x[{i.elements}];
    {elem_out} y[{o.elements}];
    bool last = fpga_dnn_read_sample<{elem_in}, {i.elements}, {si.format.width}, {si.lane_bits}, {si.stream_bits}>(s_axis, x);
{call}
    fpga_dnn_write_sample<{elem_out}, {o.elements}, {so.format.width}, {so.lane_bits}, {so.stream_bits}, {signed}>(m_axis, y, last);
}}
"""


def copy_hls_project(project: HlsProject, spec: Spec, dest: Path) -> list[str]:
    """Copy the project's ``firmware/`` to ``dest/firmware`` and add the packing header and the
    generated top; returns the C++ sources to synthesise, relative to ``dest``."""
    fw = dest / "firmware"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(project.directory / "firmware", fw)
    shutil.copy2(AXIS_HEADER, fw / AXIS_HEADER.name)
    top_cpp = fw / f"{project.top}.cpp"
    top_cpp.write_text(render_hls_top(project, spec))
    return [f"firmware/{project.name}.cpp", f"firmware/{top_cpp.name}"]
