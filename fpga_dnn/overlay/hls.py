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

So the HLS path reads any hls4ml Vivado/Vitis project (``io_parallel`` or ``io_stream``, one input,
one output) and generates a small top, ``<project>_fpga_dnn_axis``, that unpacks the beat layout
``fpga_dnn-lanes-v1`` (the RTL path's, :mod:`fpga_dnn.runtime.packing`) into the network's input
array, calls the network, and packs its result (``hls/fpga_dnn_axis.h``). The bundle's spec is
then the same kind as the RTL path's and the runtime needs no second layout.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fpga_dnn.errors import ConfigError
from fpga_dnn.runtime.packing import BEAT_LAYOUT
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.runtime.spec import Spec, SpecError, parse_format

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
    """What fpga_dnn needs to know about an hls4ml project (read by :func:`read_hls_project`)."""

    directory: Path
    name: str
    io_type: str
    input: HlsPort
    output: HlsPort
    clock_uncertainty: str
    max_size: int

    @property
    def top(self) -> str:
        """The AXI-Stream top function fpga_dnn generates around the network."""
        return f"{self.name}_fpga_dnn_axis"


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise ConfigError(f"hls4ml project {path.parent}: cannot read {what} {path.name}: {err.strerror}") from None


def _project_var(text: str, var: str) -> Optional[str]:
    m = re.search(rf'^\s*set\s+{var}\s+"?([^"\n]*?)"?\s*$', text, re.M)
    return m.group(1) if m else None


def _product(expr: str, where: str) -> int:
    if not re.fullmatch(r"\s*\d+(\s*\*\s*\d+)*\s*", expr):
        raise ConfigError(f"{where}: cannot evaluate the size {expr!r}")
    n = 1
    for f in expr.split("*"):
        n *= int(f)
    return n


def _format(type_text: str, where: str) -> FixedFormat:
    """The format of an ap_fixed/ap_ufixed/ap_int/ap_uint type; at most 32 bits (the widest lane)."""
    hint = "set that layer's result precision to an ap_fixed/ap_int type of at most 32 bits"
    try:
        fmt = parse_format(type_text)
    except SpecError:
        raise ConfigError(f"{where}: type {type_text!r} is not a fixed-point type fpga_dnn can stream; {hint}") from None
    if not 1 <= fmt.width <= 32:
        raise ConfigError(f"{where}: type {type_text!r} is {fmt.width} bits, wider than a 32-bit lane; {hint}")
    return fmt


def read_hls_project(directory) -> HlsProject:
    """Read an hls4ml project folder (as ``ModelGraph.write()`` leaves it).

    Uses ``project.tcl`` (name, clock uncertainty, array-partition limit), the top function's
    prototype in ``firmware/<name>.h`` (I/O type, argument names), the typedefs in
    ``firmware/defines.h`` (element formats) and ``<name>_bridge.cpp`` (element counts).
    ``directory`` may also be a ``ModelGraph`` (its output folder is used).
    """
    if hasattr(directory, "config") and hasattr(directory.config, "get_output_dir"):
        directory = directory.config.get_output_dir()
    d = Path(directory)
    if not (d / "project.tcl").is_file():
        raise ConfigError(f"{d} is not an hls4ml project folder (no project.tcl); write the project "
                          "first (ModelGraph.write() or the convert step)")
    ptcl = _read(d / "project.tcl", "project file")
    name = _project_var(ptcl, "project_name")
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"{d / 'project.tcl'}: no valid 'set project_name ...'")
    header = _read(d / "firmware" / f"{name}.h", "top header")
    m = re.search(rf"\bvoid\s+{name}\s*\((.*?)\)\s*;", header, re.S)
    if not m:
        raise ConfigError(f"{d / 'firmware' / (name + '.h')}: no prototype of the top function {name}()")
    args = [a.strip() for a in m.group(1).split(",") if a.strip()]
    parallel = [re.fullmatch(r"(?:const\s+)?(\w+)\s+(\w+)\s*\[\s*(\w+)\s*\]", a) for a in args]
    stream = [re.fullmatch(r"hls::stream\s*<\s*(\w+)\s*>\s*&\s*(\w+)", a) for a in args]
    if len(args) == 2 and all(parallel):
        io_type = "io_parallel"
        (t_in, a_in), (t_out, a_out) = [(p.group(1), p.group(2)) for p in parallel]
    elif len(args) == 2 and all(stream):
        io_type = "io_stream"
        (t_in, a_in), (t_out, a_out) = [(s.group(1), s.group(2)) for s in stream]
    else:
        raise ConfigError(f"hls4ml project {d}: top function {name}({', '.join(args)}) is not one input and "
                          "one output array or stream; fpga_dnn's HLS overlay supports single-input, "
                          "single-output models")

    defines = _read(d / "firmware" / "defines.h", "defines")
    typedefs = {n: t.strip() for t, n in re.findall(r"^\s*typedef\s+(.+?)\s+(\w+)\s*;", defines, re.M)}
    bridge = _read(d / f"{name}_bridge.cpp", "bridge")

    def port(type_name: str, arg: str, direction: str) -> HlsPort:
        where = f"hls4ml project {d}, {direction} {arg}"
        if type_name not in typedefs:
            raise ConfigError(f"{where}: no typedef of {type_name} in firmware/defines.h")
        text = typedefs[type_name]
        pat = (rf"convert_data\s*<\s*\w+\s*,\s*{type_name}\s*,\s*([\d\s*]+)>" if direction == "input"
               else rf"convert_data\s*<\s*{type_name}\s*,\s*\w+\s*,\s*([\d\s*]+)>")
        cm = re.search(pat, bridge)
        if not cm:
            raise ConfigError(f"{where}: no element count for {type_name} in {name}_bridge.cpp")
        count = _product(cm.group(1), where)
        if io_type == "io_stream":
            am = re.fullmatch(r"nnet::array\s*<\s*(.+)\s*,\s*([\d\s*]+)>", text)
            if not am:
                raise ConfigError(f"{where}: {type_name} is {text!r}, expected nnet::array<T, N>")
            fmt, pack = _format(am.group(1), where), _product(am.group(2), where)
            if count % pack:
                raise ConfigError(f"{where}: {count} elements do not fill whole {type_name} words of {pack}")
            return HlsPort(arg, type_name, f"{type_name}::value_type", fmt, count, pack)
        return HlsPort(arg, type_name, type_name, _format(text, where), count)

    inp, out = port(t_in, a_in, "input"), port(t_out, a_out, "output")
    uncertainty = _project_var(ptcl, "clock_uncertainty") or "12.5%"
    max_size = _project_var(ptcl, "maximum_size")
    return HlsProject(d, name, io_type, inp, out, uncertainty, int(max_size) if max_size and max_size.isdigit() else 4096)


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
    return f"""// Generated by fpga_dnn.overlay for hls4ml project '{project.name}' ({project.io_type}); do not edit.
// AXI-Stream top {project.top}: s_axis ({si.stream_bits} bits) -> {project.name}() -> m_axis ({so.stream_bits} bits),
// beat layout {BEAT_LAYOUT} (hls/fpga_dnn_axis.h; the same as the RTL path's shell).
// Input:  {si.elements} x {si.format} in {si.lane_bits}-bit lanes, {si.beats_per_sample} beat(s) per sample.
// Output: {so.elements} x {so.format} in {so.lane_bits}-bit lanes, {so.beats_per_sample} beat(s) per sample.
#include "{project.name}.h"
#include "fpga_dnn_axis.h"

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
