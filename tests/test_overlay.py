"""Overlay generation: board files, generated Vivado/HLS scripts, bundle export. No Vivado here.

Vivado cannot run on this machine, and these tests do not pretend it does. They check what can
be checked without it:

* every generated Tcl file is complete Tcl (``tclsh``: ``info complete``);
* the scripts *run* under ``tclsh`` against a recording test double of the Vivado/HLS commands
  (``STUB_TCL`` below: it records every call, returns plausible objects, and fakes the files
  Vivado would write — a bitstream, a .hwh at the release-dependent location, HLS Verilog). The
  recorded calls are then asserted: the board's part, board part and PS IP, the PS
  configuration, the DMA's stream widths against the spec and the accelerator's Verilog ports,
  the stream and memory wiring, the PL clock's source and read-back, TLAST/TKEEP, the timing
  gate, bitstream generation, and the .bit/.hwh export under one base name. The double also
  lets the scripts' own checks fail (wrong PL clock, hold / pulse-width / setup violations,
  unrouted nets, failed runs, missing TLAST or TKEEP, width mismatch, missing board files) to
  show they stop with a clear ERROR;
* ``run_vivado.sh`` end to end with fake ``vivado``/``vitis-run`` executables that run the same
  double, through ``generate_overlay(vivado=...)`` and in a copy of the overlay folder made
  elsewhere (both boards, both paths), so the bundle's checksums and recorded clock are real;
* the HLS path's AXI-Stream top, compiled with g++ and hls4ml's ap_types, packs and unpacks
  exactly like the runtime (``fpga_dnn.runtime.packing``) for io_parallel and io_stream.

What only Vivado can show (that Vivado accepts these commands and properties, timing closure,
a working board) is listed in overlays/README.md as the check to do on a Vivado machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.boards import load_board
from fpga_dnn.errors import ConfigError, ToolError, UnknownNameError
from fpga_dnn.hw.interface import HlsInterface, IoPort
from fpga_dnn.overlay import finalize_bundle, generate_overlay, read_hls_project
from fpga_dnn.runtime.packing import int_range, pack, unpack
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.runtime.spec import Spec, parse_format
from fpga_dnn.simulate.shell import dummy_core_reference, dummy_core_spec, write_dummy_design

BOARDS = ("pynq-z2", "ultra96")
TCLSH = shutil.which("tclsh")
GPP = shutil.which("g++")
REPO = Path(__file__).resolve().parents[1]
AP_TYPES = Path(__import__("hls4ml").__file__).parent / "templates" / "vivado" / "ap_types"
NNET_TYPES = AP_TYPES.parent / "nnet_utils" / "nnet_types.h"

# tclsh and g++ are required, not optional: tests/conftest.py provides tclsh or stops the run naming it.

# ---------------------------------------------------------------------------------------------
# A recording test double of Vivado / Vitis HLS, for tclsh
# ---------------------------------------------------------------------------------------------

STUB_TCL = r'''
# usage: tclsh stub.tcl SCRIPT [tclargs...]; settings in FD_STUB_* environment variables.
set ::stub_script [file normalize [lindex $argv 0]]
set argv [lrange $argv 1 end]
set argc [llength $argv]
proc setting {name default} {
    if {[info exists ::env(FD_STUB_$name)]} { return $::env(FD_STUB_$name) }
    return $default
}
set ::calls {}
set ::props [dict create]
proc json_str {s} {
    set map [list \\ \\\\ \" \\\" \n \\n \r \\r \t \\t]
    return "\"[string map $map $s]\""
}
proc flush_calls {} {
    set path [setting LOG [file join [file dirname $::stub_script] stub_calls.json]]
    set rows {}
    foreach c $::calls {
        set words {}
        foreach w $c { lappend words [json_str $w] }
        lappend rows "\[[join $words ,]\]"
    }
    set fh [open $path a]
    puts $fh "{\"script\": [json_str [file tail $::stub_script]], \"calls\": \[[join $rows ,\n]\]}"
    close $fh
}
rename exit _real_exit
proc exit {{code 0}} { flush_calls; _real_exit $code }
proc record {args} { lappend ::calls $args }

# Every Vivado/HLS command not stubbed below is recorded and returns "".
rename unknown _tcl_unknown
proc unknown {args} { record {*}$args; return "" }

proc fake_file {path text} {
    file mkdir [file dirname $path]
    set fh [open $path w]; puts -nonewline $fh $text; close $fh
}
proc version {args} { record version {*}$args; return [setting VERSION $::fd(vivado_version)] }
proc get_ipdefs {args} {
    record get_ipdefs {*}$args
    set prefix [string range [lindex $args end] 0 end-2]
    # -all also lists hidden / IP-catalog-only IP (here a newer version): only -filter on
    # DESIGN_TOOL_CONTEXTS =~ *IPI* leaves the IP integrator IP.
    set f [lsearch -exact $args -filter]
    set ipi [expr {$f >= 0 && [string match {*DESIGN_TOOL_CONTEXTS =~ \*IPI\**} [lindex $args [expr {$f + 1}]]]}]
    set hidden [expr {$ipi ? {} : [list $prefix:99.9]}]
    switch -glob -- $prefix {
        *:axi_dma { return [concat [list $prefix:7.0 $prefix:[setting DMA_VERSION 7.1]] $hidden] }
        *:smartconnect { return [concat [list $prefix:1.9 $prefix:1.10] $hidden] }
        default { return [concat [list $prefix:1.0] $hidden] }
    }
}
proc get_board_parts {args} {
    record get_board_parts {*}$args
    return [setting BOARD_PARTS $::fd(board_part)]
}
proc create_project {name dir args} {
    record create_project $name $dir {*}$args
    set ::proj_name $name; set ::proj_dir $dir
    set ::proj_files {}
    return $name
}
proc add_files {args} {
    record add_files {*}$args
    foreach f [lindex $args end] { lappend ::proj_files $f }
}
proc current_project {args} { return $::proj_name }
proc current_fileset {args} { return sources_1 }
proc create_bd_cell {args} {
    record create_bd_cell {*}$args
    return [lindex $args end]
}
proc get_bd_cells {args} { return [lindex $args end] }
proc get_bd_intf_pins {args} { return [lindex $args end] }
proc get_bd_pins {args} { return [lindex $args end] }
proc get_runs {args} { return [lindex $args end] }
proc get_files {args} { return [file join $::proj_dir [lindex $args end]] }
proc set_property {args} {
    record set_property {*}$args
    if {[lindex $args 0] eq "-dict"} {
        foreach {k v} [lindex $args 1] { dict set ::props [lindex $args 2] $k $v }
    } else {
        dict set ::props [lindex $args 2] [lindex $args 0] [lindex $args 1]
    }
}
proc get_property {name obj} {
    record get_property $name $obj
    if {[info exists ::fd(ps_clock_actual)] && $obj eq "ps" && $name eq "CONFIG.$::fd(ps_clock_actual)"} {
        # What Vivado computes from the PLL and divisors: close to, rarely exactly, the request.
        # The Ultra96-V2 preset's PSU__OVERRIDE__BASIC_CLOCK = 1 keeps its PL0 (IOPLL / 15) and
        # ignores the request unless the override is turned off.
        set override [expr {[dict exists $::props ps CONFIG.PSU__OVERRIDE__BASIC_CLOCK] ?
                            [dict get $::props ps CONFIG.PSU__OVERRIDE__BASIC_CLOCK] : 1}]
        set mhz [expr {[string match *zynq_ultra_ps_e $::fd(ps_vlnv)] && $override ne "0" ? 100 : $::fd(clock_mhz)}]
        return [setting ACT_MHZ [format %.6f [expr {$mhz * 0.99999}]]]
    }
    if {[dict exists $::props $obj $name]} { return [dict get $::props $obj $name] }
    set failed [expr {$obj eq [setting FAIL_RUN none]}]
    switch -- $name {
        NAME { return $obj }
        CONFIG.TDATA_NUM_BYTES { return [setting "BYTES_[string toupper [file tail $obj]]" 8] }
        CONFIG.HAS_TLAST { return [setting TLAST 1] }
        CONFIG.HAS_TKEEP { return [setting TKEEP 1] }
        PROGRESS { return [expr {$failed ? "40%" : "100%"}] }
        STATUS {
            if {$failed} { return [expr {$obj eq "synth_1" ? "synth_design ERROR" : "route_design ERROR"}] }
            return "[setting STATUS {write_bitstream Complete!}]"
        }
        STATS.WNS { return [setting WNS 0.512] }
        STATS.WHS { return [setting WHS 0.021] }
        STATS.TPWS { return [setting TPWS 0] }
        STATS.FAILED_NETS { return [setting FAILED_NETS 0] }
        DIRECTORY { return [file join $::proj_dir $::proj_name.runs $obj] }
    }
    return ""
}
# The summary of Vivado's report_route_status (its layout, the counts from the settings).
proc report_route_status {args} {
    record report_route_status {*}$args
    if {[lsearch -exact $args -return_string] < 0} { return "" }
    set unrouted [setting UNROUTED 0]
    set errors [expr {$unrouted + [setting CONFLICTS 0]}]
    return "Design Route Status\n   # of logical nets.......................... :       12345 :\n\
       # of routable nets..................... :        8889 :\n\
           # of fully routed nets............. :  [expr {8889 - $errors}] :\n\
       # of nets with routing errors.......... :  $errors :\n\
           # of unrouted nets................. :  $unrouted :\n\
           # of nets with resource conflicts.. :  [setting CONFLICTS 0] :\n"
}
proc make_wrapper {args} {
    record make_wrapper {*}$args
    return [file join $::proj_dir hdl $::fd(bd_name)_wrapper.v]
}
proc generate_target {args} {
    record generate_target {*}$args
    # Vivado 2020.2+ puts block-design products under <proj>.gen, older releases under <proj>.srcs.
    set srcdir [expr {[string compare [setting VERSION $::fd(vivado_version)] 2020.2] >= 0 ? "gen" : "srcs"}]
    fake_file [file join $::proj_dir $::proj_name.$srcdir sources_1 bd $::fd(bd_name) hw_handoff $::fd(bd_name).hwh] \
        "HWH $::fd(design) $::fd(board)"
}
proc wait_on_run {run args} {
    record wait_on_run $run {*}$args
    if {$run eq "impl_1"} {
        fake_file [file join $::proj_dir $::proj_name.runs impl_1 $::fd(bd_name)_wrapper.bit] \
            "BIT $::fd(design) $::fd(board)"
    }
}
namespace eval ipx {}
proc ipx::current_core {args} { return core }
# The packager imports the project's files into <ip>/src/; PACKAGER_DROPS_MEM=1 models one that
# leaves the memory files out of the synthesis file group.
proc ipx::package_project {args} {
    record ipx::package_project {*}$args
    set ::ip_files {}
    foreach f $::proj_files {
        if {[setting PACKAGER_DROPS_MEM 0] && [string match *.mem $f]} { continue }
        lappend ::ip_files src/[file tail $f]
    }
}
proc ipx::get_file_groups {name args} { record ipx::get_file_groups $name {*}$args; return $name }
proc ipx::get_files {args} { return $::ip_files }
proc ipx::add_file {path group} {
    record ipx::add_file $path $group
    lappend ::ip_files $path
    return $path
}
proc ipx::get_bus_interfaces {name args} {
    record ipx::get_bus_interfaces $name {*}$args
    if {[lsearch -exact [setting BUSIFS {s_axis m_axis clk aresetn}] $name] >= 0} { return $name }
    return ""
}
# HLS: C synthesis writes the top's Verilog, export_design the IP.
proc csynth_design {args} {
    record csynth_design {*}$args
    set last [expr {[setting TLAST 1] ? "input s_axis_TLAST;\noutput m_axis_TLAST;\n" : ""}]
    set in_msb [expr {[setting BYTES_S_AXIS 8] * 8 - 1}]
    set out_msb [expr {[setting BYTES_M_AXIS 8] * 8 - 1}]
    fake_file [file join $::fd(hls_prj) solution1 syn verilog $::fd(hls_top).v] \
        "module $::fd(hls_top) (\n);\ninput   \[$in_msb:0\] s_axis_TDATA;\n${last}output   \[$out_msb:0\] m_axis_TDATA;\nendmodule\n"
}
proc export_design {args} {
    record export_design {*}$args
    fake_file [file join $::fd(hls_prj) solution1 impl ip component.xml] "<component/>"
}

cd [file dirname $::stub_script]
if {[catch {uplevel #0 [list source $::stub_script]} err]} {
    record __error__ $err
    flush_calls
    _real_exit 1
}
flush_calls
_real_exit 0
'''

FAKE_TOOL = r'''#!/usr/bin/env bash
# Fake {tool}: runs the script it is given under tclsh with the recording double.
set -u
script=""; tclargs=(); log=""
while [ $# -gt 0 ]; do
    case "$1" in
        -source|-f|--tcl) script="$2"; shift 2 ;;
        -log) log="$2"; shift 2 ;;
        -tclargs) shift; tclargs=("$@"); break ;;
        *) shift ;;
    esac
done
echo "{tool} (fake) $script" >> "$FD_FAKE_TOOL_LOG"
if [ -n "$log" ]; then
    tclsh "$FD_STUB_TCL" "$script" ${{tclargs[@]+"${{tclargs[@]}}"}} > "$log" 2>&1; rc=$?; cat "$log"; exit $rc
fi
exec tclsh "$FD_STUB_TCL" "$script" ${{tclargs[@]+"${{tclargs[@]}}"}}
'''


@pytest.fixture(scope="module")
def stub_tcl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stub") / "vivado_stub.tcl"
    path.write_text(STUB_TCL)
    return path


def run_stub(stub: Path, script: Path, *tclargs, env_extra=None, **settings):
    """Run ``script`` under the double; returns (returncode, output, {script name: calls})."""
    log = script.parent / "stub_calls.json"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FD_STUB_") and k != "FPGA_DNN_BOARD_REPO"}
    env.update({f"FD_STUB_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(env_extra or {})
    proc = subprocess.run([TCLSH, str(stub), str(script), *tclargs], capture_output=True, text=True,
                          env=env, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, read_calls(log)


def read_calls(log: Path) -> dict:
    runs = {}
    if log.is_file():
        dec = json.JSONDecoder()
        text, i = log.read_text(), 0
        while i < len(text):
            if text[i].isspace():
                i += 1
                continue
            obj, i = dec.raw_decode(text, i)
            runs.setdefault(obj["script"], []).extend(obj["calls"])
    return runs


def calls_of(calls, name):
    return [c[1:] for c in calls if c[0] == name]


def dict_arg(words):
    """The -dict list of a recorded set_property call as a dict (Tcl list of plain words)."""
    return dict(zip(words[::2], words[1::2]))


def tcl_list(s: str) -> list:
    """Split a Tcl list of plain words and {braced words} (enough for what the scripts pass)."""
    return [a or b for a, b in re.findall(r"\{([^{}]*)\}|(\S+)", s)]


# Commands the scripts may call that the double does not implement: each must be a real
# Vivado / Vitis HLS command, so a typo in a template shows up here instead of on the Vivado
# machine.
VIVADO_COMMANDS = {
    "add_files", "apply_bd_automation", "assign_bd_address", "close_project", "connect_bd_intf_net",
    "connect_bd_net", "create_bd_design", "get_param", "launch_runs", "open_run", "report_timing_summary",
    "report_utilization", "save_bd_design", "set_param", "update_compile_order", "update_ip_catalog",
    "validate_bd_design", "ipx::infer_bus_interfaces", "ipx::get_bus_parameters",
    "ipx::add_bus_parameter", "ipx::associate_bus_interfaces", "ipx::create_xgui_files", "ipx::update_checksums",
    "ipx::check_integrity", "ipx::save_core",
    # stubbed, recorded
    "version", "get_ipdefs", "get_board_parts", "create_project", "create_bd_cell", "set_property",
    "get_property", "make_wrapper", "generate_target", "wait_on_run", "ipx::get_bus_interfaces",
    "report_route_status", "add_files", "ipx::package_project", "ipx::get_file_groups", "ipx::add_file",
}
HLS_COMMANDS = {"open_project", "set_top", "add_files", "open_solution", "config_array_partition", "config_compile",
                "set_part", "config_schedule", "create_clock", "set_clock_uncertainty", "csynth_design",
                "export_design"}


def _check_hls_commands(calls):
    """The HLS script's allow-list check: every command it ran is a known Vitis HLS command."""
    unknown = {c[0] for c in calls} - HLS_COMMANDS - {"version"}
    assert not unknown, f"commands that are neither stubbed nor known Vitis HLS commands: {unknown}"


# ---------------------------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------------------------

_PORT_DECL = re.compile(r"\b(input|output)\s+(?:wire\s+|reg\s+)?(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?(\w+)")


def verilog_ports(text: str, module: str) -> dict:
    """``{port: (direction, width)}`` of ``module``'s ANSI port list: the tests' own reading of the
    generated Verilog, to check that the Design records what the top declares (the overlay reads
    the Design, never the Verilog)."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    m = re.search(rf"\bmodule\s+{re.escape(module)}\b(.*?)\bendmodule\b", text, re.S)
    header = m.group(1).split(";", 1)[0] if m else ""
    return {name: (d, int(hi) - int(lo) + 1 if hi else 1) for d, hi, lo, name in _PORT_DECL.findall(header)}


def dummy_design(tmp_path: Path, name="dummy", in_bits=64, out_bits=32, latency=2):
    """A dummy core in the AXI-Stream shell (the real da4ml core generator is not needed here)."""
    spec = dummy_core_spec(name, (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), latency,
                           stream_bits=in_bits)
    spec = spec.replace(output=spec.output.__class__(spec.output.shape, spec.output.format, out_bits))
    return write_dummy_design(spec, tmp_path / f"design_{name}")


FAKE_HLS_NAME = "fakenet"


def fake_hls_project(tmp_path: Path, io_type="io_parallel", n_in=6, n_out=5, in_t="ap_fixed<8,3>",
                     out_t="ap_fixed<12,4>", in_pack=None, out_pack=None) -> Path:
    """A folder laid out like an hls4ml 1.3.0 project (files and declarations as hls4ml writes
    them), whose network computes the dummy core's function on the raw bits, so the AXI-Stream
    top can be checked against :func:`dummy_core_reference`."""
    d = tmp_path / f"hls_{io_type}"
    fw = d / "firmware"
    fi, fo = parse_format(in_t), parse_format(out_t)
    raw_int = f"ap_{'' if fi.signed else 'u'}int<{fi.width}>"     # the input element's bits, as an integer
    (fw / "nnet_utils").mkdir(parents=True)
    name = FAKE_HLS_NAME
    (d / "project.tcl").write_text(textwrap.dedent(f"""\
        variable project_name
        set project_name "{name}"
        variable backend
        set backend "vivado"
        variable part
        set part "xc7z020clg400-1"
        variable clock_period
        set clock_period 5
        variable clock_uncertainty
        set clock_uncertainty 12.5%
        variable maximum_size
        set maximum_size 4096
        """))
    if io_type == "io_parallel":
        typedefs = f"typedef {in_t} input_t;\ntypedef {out_t} result_t;\n"
        proto = f"void {name}(\n    input_t input_layer[{n_in}],\n    result_t layer2_out[{n_out}]\n)"
        body = f"""
    for (int i = 0; i < {n_out}; i++) {{
        {raw_int} bits = input_layer[i % {n_in}].range({fi.width - 1}, 0);
        ap_int<64> r = ap_int<64>(bits) * 3 + i;
        layer2_out[i].range({fo.width - 1}, 0) = r.range({fo.width - 1}, 0);
    }}"""
    else:
        shutil.copy2(NNET_TYPES, fw / "nnet_utils" / "nnet_types.h")
        typedefs = (f'#include "nnet_utils/nnet_types.h"\ntypedef nnet::array<{in_t}, {in_pack}*1> input_t;\n'
                    f"typedef nnet::array<{out_t}, {out_pack}*1> result_t;\n")
        proto = f"void {name}(\n    hls::stream<input_t> &input_layer,\n    hls::stream<result_t> &layer2_out\n)"
        body = f"""
    typedef input_t::value_type in_e;
    typedef result_t::value_type out_e;
    in_e x[{n_in}];
    for (int w = 0; w < {n_in // in_pack}; w++) {{ input_t p = input_layer.read(); for (int j = 0; j < {in_pack}; j++) x[w * {in_pack} + j] = p[j]; }}
    for (int w = 0; w < {n_out // out_pack}; w++) {{
        result_t p;
        for (int j = 0; j < {out_pack}; j++) {{
            int i = w * {out_pack} + j;
            {raw_int} bits = x[i % {n_in}].range({fi.width - 1}, 0);
            ap_int<64> r = ap_int<64>(bits) * 3 + i;
            p[j].range({fo.width - 1}, 0) = r.range({fo.width - 1}, 0);
        }}
        layer2_out.write(p);
    }}"""
    (fw / "defines.h").write_text(f'#ifndef DEFINES_H_\n#define DEFINES_H_\n#include "ap_fixed.h"\n#include "ap_int.h"\n'
                                  f'#include "hls_stream.h"\n// hls-fpga-machine-learning insert layer-precision\n'
                                  f"{typedefs}typedef ap_fixed<16,6> dense_weight_t;\n#endif\n")
    (fw / f"{name}.h").write_text(f'#ifndef FAKENET_H_\n#define FAKENET_H_\n#include "ap_fixed.h"\n#include "hls_stream.h"\n'
                                  f'#include "defines.h"\n\n// Prototype of top level function for C-synthesis\n'
                                  f"{proto};\n\n#endif\n")
    (fw / f"{name}.cpp").write_text(f'#include "{name}.h"\n\n{proto} {{{body}\n}}\n')
    (d / f"{name}_bridge.cpp").write_text(
        f"    nnet::convert_data<float, input_t, {n_in}>(input_layer, input_layer_ap);\n"
        f"    nnet::convert_data<result_t, float, {n_out}>(layer2_out_ap, layer2_out);\n")
    # what the convert step saves beside the project (fpga_dnn.hw.from_hls4ml.read_interface)
    HlsInterface(name, io_type, "Vivado", "xc7z020clg400-1", 5.0, "12.5%", 4096,
                 (IoPort("input_layer", "input_t", (n_in,), fi, in_pack or 1),),
                 (IoPort("layer2_out", "result_t", (n_out,), fo, out_pack or 1),)).save(d)
    return d


@pytest.fixture(autouse=True)
def no_vivado_env(monkeypatch):
    """No test may start a real Vivado because the developer's shell has one."""
    for var in ("FPGA_DNN_VIVADO", "XILINX_VIVADO"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(params=BOARDS)
def board(request):
    return request.param


@pytest.fixture
def rtl_overlay(tmp_path, board):
    design = dummy_design(tmp_path)
    return design, generate_overlay(design, board, tmp_path / f"overlay_{board}", path="rtl")


@pytest.fixture
def hls_overlay(tmp_path, board):
    proj = fake_hls_project(tmp_path)
    return proj, generate_overlay(proj, board, tmp_path / f"overlay_hls_{board}", path="hls", stream_bits=32)


# ---------------------------------------------------------------------------------------------
# Board files
# ---------------------------------------------------------------------------------------------

def test_board_files_describe_the_block_design(board):
    b = load_board(board)
    assert b.ps.vlnv.endswith(":" + b.ps_ip) and b.ps.vlnv.count(":") == 2
    assert b.board_part.split(":")[1] in ("pynq-z2", "ultra96v2")
    assert b.dma.max_transfer_bytes == 2 ** 26 - 1
    if board == "pynq-z2":
        # AMD's PYNQ 3.1 image for the PYNQ-Z2, built with Vivado 2024.1
        assert (b.pynq_image, b.vivado_version) == ("3.1", "2024.1") and "PYNQ-Z2" in b.pynq_image_source
        assert (b.ps.clock_pin, b.ps.reset_pin, b.hp_port) == ("FCLK_CLK0", "FCLK_RESET0_N", "S_AXI_HP0")
        assert b.ps.config["PCW_USE_S_AXI_HP0"] == "1"
        assert b.ps.clock_actual_property == "PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ"
        assert b.ps.clock_config == {"PCW_FCLK0_PERIPHERAL_CLKSRC": "IO PLL"}
    else:
        # no PYNQ 3.1 image for the Ultra96-V2: Avnet's latest is v3.0.1, built with Vivado 2022.1
        assert (b.pynq_image, b.vivado_version) == ("3.0.1", "2022.1") and "Avnet" in b.pynq_image_source
        assert (b.ps.clock_pin, b.ps.reset_pin, b.hp_port) == ("pl_clk0", "pl_resetn0", "S_AXI_HP0_FPD")
        assert b.ps.config["PSU__USE__S_AXI_GP2"] == "1"   # = S_AXI_HP0_FPD
        assert b.ps.config["PSU__USE__M_AXI_GP1"] == "0"   # only M_AXI_HPM0_FPD
        assert b.ps.clock_actual_property == "PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"
        # the board preset's clock override off, PL0 from the IOPLL: else FREQMHZ is ignored
        assert b.ps.clock_config == {"PSU__OVERRIDE__BASIC_CLOCK": "0", "PSU__CRL_APB__PL0_REF_CTRL__SRCSEL": "IOPLL"}


def _broken_board(tmp_path, edit) -> Path:
    folder = tmp_path / "boards"
    folder.mkdir(exist_ok=True)
    text = (REPO / "overlays" / "boards" / "pynq-z2.toml").read_text()
    (folder / "pynq-z2.toml").write_text(edit(text))
    return folder


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.replace('clock_pin = "FCLK_CLK0"', ""), "ps.clock_pin"),
    (lambda t: t.replace('clock_actual_property = "PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ"', ""), "ps.clock_actual_property"),
    (lambda t: t.replace('PCW_FCLK0_PERIPHERAL_CLKSRC = "IO PLL"', 'PCW_FCLK0_PERIPHERAL_CLKSRC = "[IO PLL]"'),
     "ps.clock_config.PCW_FCLK0_PERIPHERAL_CLKSRC"),
    (lambda t: t.replace('pynq_image_source = ', 'pynq_source = '), "pynq_image_source"),
    (lambda t: t.replace("sg_length_width = 26", 'sg_length_width = "26"'), "dma.sg_length_width"),
    (lambda t: t.replace("sg_length_width = 26", "sg_length_width = 32"), "dma.sg_length_width"),
    (lambda t: t.replace('vlnv = "xilinx.com:ip:processing_system7"', 'vlnv = "processing_system7"'), "ps.vlnv"),
    (lambda t: t.replace('board_part = "tul.com.tw:pynq-z2:part0:1.0"', 'board_part = "pynq-z2"'), "board_part"),
    (lambda t: t.replace('PCW_USE_S_AXI_HP0 = "1"', 'PCW_USE_S_AXI_HP0 = "[exec rm]"'), "ps.config.PCW_USE_S_AXI_HP0"),
    (lambda t: t.replace("LUT = 53200", "LUT = -1"), "budget.LUT"),
    (lambda t: t.replace('name = "pynq-z2"', 'name = "pynq"'), "name"),
])
def test_malformed_board_file_names_file_and_field(tmp_path, edit, field):
    folder = _broken_board(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_board("pynq-z2", folder)
    msg = str(err.value)
    assert str(folder / "pynq-z2.toml") in msg and f"field '{field}'" in msg, msg


def test_unknown_board_lists_boards(tmp_path):
    with pytest.raises(UnknownNameError, match=r"unknown board 'zedboard'; known: pynq-z2, ultra96"):
        generate_overlay(dummy_design(tmp_path), "zedboard", tmp_path / "o")


# ---------------------------------------------------------------------------------------------
# Generated files: complete Tcl, relocatable, the spec in the bundle
# ---------------------------------------------------------------------------------------------

def _tcl_files(out: Path):
    return sorted(out.rglob("*.tcl"))


@pytest.mark.parametrize("flow", ["rtl", "hls"])
def test_generated_tcl_is_complete_tcl(tmp_path, board, flow):
    if flow == "rtl":
        out = generate_overlay(dummy_design(tmp_path), board, tmp_path / "o").out_dir
    else:
        out = generate_overlay(fake_hls_project(tmp_path), board, tmp_path / "o", path="hls").out_dir
    files = _tcl_files(out)
    expected = {"config.tcl", "common.tcl", "build_overlay.tcl", "block_design.tcl", "build_bitstream.tcl",
                "export_bundle.tcl", "package_ip.tcl" if flow == "rtl" else "hls_synth.tcl"}
    assert expected <= {f.name for f in files}
    driver = "foreach f $argv { set fh [open $f]; set t [read $fh]; close $fh; " \
             "if {![info complete $t]} { puts \"INCOMPLETE $f\"; exit 1 } }"
    proc = subprocess.run([TCLSH], input=driver.replace("$argv", "{" + " ".join(map(str, files)) + "}"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "INCOMPLETE" not in proc.stdout, proc.stdout + proc.stderr
    # relocatable: no absolute path of this machine in any script (test_copied_overlay_folder_... runs a copy)
    for f in [*files, out / "run_vivado.sh"]:
        text = f.read_text()
        assert str(tmp_path) not in text and str(REPO) not in text, f
    assert os.access(out / "run_vivado.sh", os.X_OK)
    assert "@@" not in (out / "run_vivado.sh").read_text()
    subprocess.run(["bash", "-n", str(out / "run_vivado.sh")], check=True)


def test_bundle_spec_records_board_and_dma(rtl_overlay, board):
    design, scripts = rtl_overlay
    spec = Spec.load(scripts.spec_path)
    b = load_board(board)
    ov = spec.extra["overlay"]
    assert (ov["board"], ov["flow"], ov["dma"], ov["dma_max_transfer_bytes"]) == (board, "rtl", "axi_dma_0", 2 ** 26 - 1)
    assert spec.extra["board"] == board   # what fpga-dnn bundle compares with the bitstream's part
    assert (ov["bitstream"], ov["hwh"]) == ("dummy.bit", "dummy.hwh")
    assert (ov["vivado"], ov["pynq_image"], ov["pynq_image_source"]) == (b.vivado_version, b.pynq_image,
                                                                      b.pynq_image_source)
    # before Vivado the clock is the requested one; finalize_bundle records the real one
    assert ov["clock_mhz"] == ov["clock_mhz_requested"] == b.pl_clock_mhz
    assert spec.input == design.spec.input and spec.output == design.spec.output
    assert spec.top_module == design.top and spec.clock_mhz == b.pl_clock_mhz and spec.checksums == {}
    assert scripts.bundle_dir == scripts.out_dir / "bundle"


def test_no_vivado_gives_one_line_with_the_command(rtl_overlay, board):
    _, scripts = rtl_overlay
    assert not scripts.ran
    line = scripts.next_step()
    assert "\n" not in line and scripts.command in line and f"Vivado {load_board(board).vivado_version}" in line
    assert str(scripts.built_dir) in line
    assert scripts.command == f"bash {scripts.out_dir.resolve() / 'run_vivado.sh'}"


def test_rejects_streams_the_dma_cannot_take(tmp_path):
    with pytest.raises(ConfigError, match="32 or 64 bits"):
        generate_overlay(dummy_design(tmp_path, in_bits=128, out_bits=128), "pynq-z2", tmp_path / "o")


def test_rtl_top_ports_are_checked_against_the_spec(tmp_path):
    design = dummy_design(tmp_path)
    top = design.directory / f"{design.top}.v"
    # the Design records the ports the top declares
    assert verilog_ports(top.read_text(), design.top) == dict(design.ports)
    assert design.ports["s_axis_tdata"] == ("input", 64)
    wrong = dataclasses.replace(design, ports={**design.ports, "s_axis_tdata": ("input", 32)})
    with pytest.raises(ConfigError, match=r"s_axis_tdata should be input \[64 bits\].*is input \[32 bits\]"):
        generate_overlay(wrong, "pynq-z2", tmp_path / "o")
    # the rtl step's folder works as well as the Design it holds
    assert generate_overlay(design.directory, "pynq-z2", tmp_path / "o2").design == design.spec.name


def test_explicit_vivado_path_must_exist(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="Vivado not found at"):
        generate_overlay(dummy_design(tmp_path), "pynq-z2", tmp_path / "o", vivado=tmp_path / "nope")
    monkeypatch.setenv("XILINX_VIVADO", str(tmp_path))
    with pytest.raises(ConfigError, match=r"\$XILINX_VIVADO=.* does not contain a vivado binary"):
        generate_overlay(dummy_design(tmp_path), "pynq-z2", tmp_path / "o")


# ---------------------------------------------------------------------------------------------
# The scripts run against the recording double
# ---------------------------------------------------------------------------------------------

def _accel_bytes(spec: Spec) -> dict:
    return {"bytes_s_axis": spec.input.stream_bits // 8, "bytes_m_axis": spec.output.stream_bits // 8}


def _check_block_design(calls, board: str, spec: Spec, accel_vlnv: str, accel_clk: str, accel_rst: str):
    b = load_board(board)
    unknown = {c[0] for c in calls} - VIVADO_COMMANDS
    assert not unknown, f"commands that are neither stubbed nor known Vivado commands: {unknown}"
    # project: the board's part and board part
    project = calls_of(calls, "create_project")[-1]
    assert project[project.index("-part") + 1] == b.part
    assert ["board_part", b.board_part, project[0]] in calls_of(calls, "set_property")
    # cells: PS (the board's IP), DMA, accelerator, each at the newest version of its VLNV
    cells = {c[-1]: c[c.index("-vlnv") + 1] for c in calls_of(calls, "create_bd_cell")}
    assert cells["ps"] == f"xilinx.com:ip:{b.ps_ip}:1.0"
    assert cells["axi_dma_0"] == "xilinx.com:ip:axi_dma:7.1"
    assert cells["accel"] == f"{accel_vlnv}:1.0"
    assert cells["ctrl_interconnect"] == cells["mem_interconnect"] == "xilinx.com:ip:smartconnect:1.10"
    auto = calls_of(calls, "apply_bd_automation")[0]
    assert auto[auto.index("-rule") + 1] == b.ps.automation_rule and auto[-1] == "ps"
    # IP integrator IP only: get_ipdefs -all lists hidden IP too (the double's 99.9 versions)
    assert all("-filter" in c and "DESIGN_TOOL_CONTEXTS =~ *IPI*" in c for c in calls_of(calls, "get_ipdefs"))
    # PS configuration: the board file's clock source first (Ultra96: the preset's override off),
    # then its ports and the PL clock
    props, ps_dicts = {}, []
    for c in calls_of(calls, "set_property"):
        if c[0] == "-dict":
            props.setdefault(c[2], {}).update(dict_arg(tcl_list(c[1])))
            if c[2] == "ps":
                ps_dicts.append(dict_arg(tcl_list(c[1])))
    ps_cfg = {f"CONFIG.{k}": v for k, v in b.ps.config.items()}
    ps_cfg[f"CONFIG.{b.ps.clock_freq_property}"] = f"{b.pl_clock_mhz:g}"
    assert ps_cfg.items() <= props["ps"].items()
    assert ps_dicts[0] == {f"CONFIG.{k}": v for k, v in b.ps.clock_config.items()}
    assert f"CONFIG.{b.ps.clock_freq_property}" in ps_dicts[1]
    if board == "ultra96":
        assert ps_dicts[0] == {"CONFIG.PSU__OVERRIDE__BASIC_CLOCK": "0", "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__SRCSEL": "IOPLL"}
    # the PL clock is read back after validation
    reads = calls_of(calls, "get_property")
    readback = reads.index([f"CONFIG.{b.ps.clock_actual_property}", "ps"])
    assert calls.index(["validate_bd_design"]) < calls.index(["get_property", *reads[readback]])
    # DMA: simple mode, the board's length register, the spec's stream widths
    dma = props["axi_dma_0"]
    assert dma["CONFIG.c_include_sg"] == "0" and dma["CONFIG.c_sg_length_width"] == str(b.dma.sg_length_width)
    assert dma["CONFIG.c_m_axis_mm2s_tdata_width"] == str(spec.input.stream_bits)
    assert dma["CONFIG.c_s_axis_s2mm_tdata_width"] == str(spec.output.stream_bits)
    assert dma["CONFIG.c_m_axis_mm2s_tdata_width.VALUE_SRC"] == "USER"
    # wiring: streams DMA -> accel -> DMA, control from the PS master, memory to the HP port
    intf = calls_of(calls, "connect_bd_intf_net")
    assert ["axi_dma_0/M_AXIS_MM2S", "accel/s_axis"] in intf
    assert ["accel/m_axis", "axi_dma_0/S_AXIS_S2MM"] in intf
    assert [f"ps/{b.ps.master_port}", "ctrl_interconnect/S00_AXI"] in intf
    assert ["ctrl_interconnect/M00_AXI", "axi_dma_0/S_AXI_LITE"] in intf
    assert ["mem_interconnect/M00_AXI", f"ps/{b.hp_port}"] in intf
    assert {"axi_dma_0/M_AXI_MM2S", "axi_dma_0/M_AXI_S2MM"} == {a for a, z in intf if z.startswith("mem_interconnect/S")}
    nets = calls_of(calls, "connect_bd_net")
    clock = next(n for n in nets if n[0] == f"ps/{b.ps.clock_pin}")
    assert {f"ps/{b.ps.master_clock_pin}", f"ps/{b.ps.hp_clock_pin}", f"accel/{accel_clk}",
            "axi_dma_0/m_axi_mm2s_aclk", "axi_dma_0/m_axi_s2mm_aclk", "rst_pl/slowest_sync_clk"} <= set(clock)
    assert [f"ps/{b.ps.reset_pin}", "rst_pl/ext_reset_in"] in nets
    assert any(n[0] == "rst_pl/peripheral_aresetn" and f"accel/{accel_rst}" in n for n in nets)
    # the scripts read back the widths and TLAST of the accelerator's ports (and found them equal)
    assert ["CONFIG.TDATA_NUM_BYTES", "accel/s_axis"] in calls_of(calls, "get_property")
    assert ["CONFIG.HAS_TLAST", "accel/m_axis"] in calls_of(calls, "get_property")
    assert ["CONFIG.HAS_TKEEP", "accel/m_axis"] in calls_of(calls, "get_property")
    assert ["CONFIG.HAS_TKEEP", "accel/s_axis"] in calls_of(calls, "get_property")
    # then synthesis, implementation and the bitstream
    assert ["impl_1", "-to_step", "write_bitstream", "-jobs", "2"] in calls_of(calls, "launch_runs")
    # and the full timing gate on the routed design
    for stat in ("WNS", "WHS", "TPWS"):
        assert [f"STATS.{stat}", "impl_1"] in calls_of(calls, "get_property")
    assert ["-return_string"] in calls_of(calls, "report_route_status")


def _check_bundle(scripts):
    bit, hwh = scripts.bit_path, scripts.hwh_path
    assert bit.stem == hwh.stem == scripts.design and bit.parent == hwh.parent == scripts.bundle_dir
    assert bit.read_text() == f"BIT {scripts.design} {scripts.board}"
    assert hwh.read_text() == f"HWH {scripts.design} {scripts.board}"


def test_rtl_scripts_build_the_block_design(rtl_overlay, board, stub_tcl):
    design, scripts = rtl_overlay
    ports = verilog_ports((design.directory / f"{design.top}.v").read_text(), design.top)
    # the double reports the accelerator's interface widths as its Verilog declares them
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"],
                             bytes_s_axis=ports["s_axis_tdata"][1] // 8, bytes_m_axis=ports["m_axis_tdata"][1] // 8)
    assert rc == 0, out
    calls = runs["build_overlay.tcl"]
    _check_block_design(calls, board, design.spec, f"fpga-dnn.org:user:{design.top}", "clk", "aresetn")
    # IP packaging of the copied Verilog, in compile order
    files = calls_of(calls, "add_files")[0]
    assert files[0] == "-norecurse"
    assert [Path(f).name for f in tcl_list(files[1])] == [Path(s).name for s in design.sources]
    assert all(Path(f).is_file() and scripts.out_dir in Path(f).parents for f in tcl_list(files[1]))
    pkg = calls_of(calls, "ipx::package_project")[0]
    assert pkg[pkg.index("-vendor") + 1] == "fpga-dnn.org" and "-import_files" in pkg
    assert ["-busif", "s_axis", "-clock", "clk", "core"] in calls_of(calls, "ipx::associate_bus_interfaces")
    assert ["value", "ACTIVE_LOW", ""] in calls_of(calls, "set_property")
    assert ["top", design.top, "sources_1"] in calls_of(calls, "set_property")
    _check_bundle(scripts)
    assert "WARNING" not in out


def test_hls_scripts_synthesise_for_the_board_part(hls_overlay, board, stub_tcl):
    proj, scripts = hls_overlay
    spec = Spec.load(scripts.spec_path)
    rc, out, runs = run_stub(stub_tcl, scripts.files["hls_synth"], **_accel_bytes(spec))
    assert rc == 0, out
    hls = runs["hls_synth.tcl"]
    _check_hls_commands(hls)
    assert calls_of(hls, "set_part") == [[load_board(board).part]]   # the Ultra96 part for the Ultra96
    assert calls_of(hls, "set_top") == [[f"{FAKE_HLS_NAME}_fpga_dnn_axis"]]
    assert calls_of(hls, "create_clock") == [["-period", "10", "-name", "default"]]
    srcs = [c[0] for c in calls_of(hls, "add_files")]
    assert srcs == [f"firmware/{FAKE_HLS_NAME}.cpp", f"firmware/{FAKE_HLS_NAME}_fpga_dnn_axis.cpp"]
    export = calls_of(hls, "export_design")[0]
    assert export[export.index("-vendor") + 1] == "fpga-dnn.org" and export[export.index("-library") + 1] == "hls"

    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], **_accel_bytes(spec))
    assert rc == 0, out
    calls = runs["build_overlay.tcl"]
    _check_block_design(calls, board, spec, f"fpga-dnn.org:hls:{FAKE_HLS_NAME}_fpga_dnn_axis", "ap_clk", "ap_rst_n")
    repo = calls_of(calls, "set_property")
    ip_repo = next(c[1] for c in repo if c[0] == "ip_repo_paths")
    assert ip_repo.endswith(f"{FAKE_HLS_NAME}_fpga_dnn_prj/solution1/impl/ip")
    assert not calls_of(calls, "ipx::package_project")
    _check_bundle(scripts)


def test_hls_needs_the_ip_before_vivado(hls_overlay, stub_tcl):
    _, scripts = hls_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"])
    assert rc == 1 and "ERROR: [fpga_dnn] no HLS IP in" in out


def test_hls_stream_without_tlast_stops(hls_overlay, stub_tcl):
    _, scripts = hls_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["hls_synth"], tlast=0, bytes_s_axis=4, bytes_m_axis=4)
    assert rc == 1 and re.search(r"ERROR: \[fpga_dnn\] the HLS top's stream s_axis has no TLAST", out), out


def test_hls_stream_width_mismatch_stops(hls_overlay, stub_tcl):
    _, scripts = hls_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["hls_synth"], bytes_s_axis=8, bytes_m_axis=4)
    assert rc == 1 and "s_axis_TDATA is 64 bits; the spec says 32" in out, out


def test_accelerator_width_mismatch_stops(rtl_overlay, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_s_axis=8, bytes_m_axis=8)
    assert rc == 1 and "accelerator output m_axis TDATA is 64 bits; the spec says 32" in out, out
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_s_axis=8, bytes_m_axis=4, tlast=0)
    assert rc == 1 and "has no TLAST" in out


def test_missing_board_files_stop_with_where_to_get_them(rtl_overlay, board, stub_tcl):
    _, scripts = rtl_overlay
    b = load_board(board)
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], board_parts="xilinx.com:zcu104:part0:1.1",
                             bytes_m_axis=4)
    assert rc == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("ERROR: [fpga_dnn]"))
    assert b.board_part in line and "XilinxBoardStore" in line and "FPGA_DNN_BOARD_REPO" in line
    assert not calls_of(runs["build_overlay.tcl"], "create_bd_design")
    # another file version of the same board is used, with a warning
    other = b.board_part.rsplit(":", 1)[0] + ":9.9"
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], board_parts=other, bytes_m_axis=4)
    assert rc == 0 and f"board part {b.board_part} is not installed; using {other}" in out
    project = calls_of(runs["build_overlay.tcl"], "create_project")[-1][0]
    assert ["board_part", other, project] in calls_of(runs["build_overlay.tcl"], "set_property")


def test_other_vivado_release_warns_and_finds_the_old_hwh(rtl_overlay, board, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], version="2019.2", bytes_m_axis=4)
    assert rc == 0, out
    assert f"WARNING: [fpga_dnn] these scripts target Vivado {load_board(board).vivado_version}" in out
    assert "this is Vivado 2019.2" in out
    assert ".srcs/sources_1/bd/fpga_dnn_bd/hw_handoff/fpga_dnn_bd.hwh" in out   # the pre-2020.2 location
    _check_bundle(scripts)


def test_dma_version_pynq_cannot_bind_warns(rtl_overlay, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], dma_version="7.2", bytes_m_axis=4)
    assert rc == 0 and "pynq's DMA driver binds to xilinx.com:ip:axi_dma:7.1" in out


def test_timing_violation_stops_unless_allowed(rtl_overlay, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], wns=-0.25, bytes_m_axis=4)
    assert rc == 1 and "timing not met at 100 MHz: worst negative slack -0.25 ns" in out
    assert not scripts.bit_path.exists()
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], "--allow-timing-violation", wns=-0.25,
                          bytes_m_axis=4)
    assert rc == 0 and scripts.bit_path.exists()


def test_bd_only_stops_before_synthesis(rtl_overlay, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], "--bd-only", bytes_m_axis=4)
    assert rc == 0 and "stopped after the block design" in out
    calls = runs["build_overlay.tcl"]
    assert calls_of(calls, "make_wrapper") and not calls_of(calls, "launch_runs")


def test_pl_clock_is_read_back_and_a_wrong_one_stops(rtl_overlay, board, stub_tcl):
    """Vivado's actual PL clock (after validate_bd_design) must be within 1% of the board file's."""
    _, scripts = rtl_overlay
    b = load_board(board)
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], act_mhz="49.999500", bytes_m_axis=4)
    assert rc == 1, out
    assert (f"ERROR: [fpga_dnn] the PL clock is 49.999500 MHz ({b.ps.clock_actual_property}); the board file asks "
            f"for 100 MHz") in out
    assert not calls_of(runs["build_overlay.tcl"], "launch_runs") and not scripts.bit_path.exists()
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], act_mhz="98.9", bytes_m_axis=4)
    assert rc == 1 and "more than 1% off" in out
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], act_mhz="99.2", bytes_m_axis=4)
    assert rc == 0 and "PL clock 99.2 MHz (asked for 100 MHz)" in out, out
    # the clock Vivado set is what the export step hands to finalize_bundle.py
    assert (scripts.out_dir / "reports" / "pl_clock_mhz.txt").read_text().strip() == "99.2"


@pytest.mark.parametrize("clock_config", ["board file", "none"])
def test_ultra96_clock_needs_the_override_off(tmp_path, stub_tcl, clock_config):
    """A 150 MHz Ultra96 overlay: with the board file's clock source (override off, IOPLL) the
    double's read-back gives 149.9985 MHz and the build goes on; without it the preset keeps its
    100 MHz, which the read-back catches before synthesis."""
    folder = tmp_path / "boards"
    folder.mkdir()
    text = (REPO / "overlays" / "boards" / "ultra96.toml").read_text().replace("pl_clock_mhz = 100.0",
                                                                              "pl_clock_mhz = 150.0")
    if clock_config == "none":
        text = re.sub(r"(\[ps\.clock_config\]\n)(?:[^\[\n][^\n]*\n)+", r"\1", text)
    (folder / "ultra96.toml").write_text(text)
    board = load_board("ultra96", folder)
    assert board.pl_clock_mhz == 150.0 and (board.ps.clock_config == {}) == (clock_config == "none")
    scripts = generate_overlay(dummy_design(tmp_path), board, tmp_path / "o")
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)
    if clock_config == "none":
        assert rc == 1 and "the PL clock is 99.999000 MHz" in out and "asks for 150 MHz" in out, out
        assert not calls_of(runs["build_overlay.tcl"], "launch_runs")
    else:
        assert rc == 0 and "PL clock 149.998500 MHz (asked for 150 MHz)" in out, out


@pytest.mark.parametrize("settings,message", [
    ({"whs": -0.031}, "hold timing not met: worst hold slack -0.031 ns"),
    ({"tpws": -0.4}, "pulse width not met: total pulse width negative slack -0.4 ns"),
    ({"unrouted": 3}, "3 net(s) not routed"),
    ({"conflicts": 2}, "2 net(s) not routed"),
    ({"fail_run": "synth_1"}, "synthesis failed (run synth_1: synth_design ERROR, 40%)"),
    ({"fail_run": "impl_1"}, "implementation and bitstream failed (run impl_1: route_design ERROR, 40%)"),
])
def test_timing_gate_and_run_status_stop_the_run(rtl_overlay, stub_tcl, settings, message):
    """Hold, pulse width, unrouted nets and failed runs stop the build, even with
    --allow-timing-violation (which only lets a setup violation through), and export nothing."""
    _, scripts = rtl_overlay
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], "--allow-timing-violation", bytes_m_axis=4,
                             **settings)
    assert rc == 1 and f"ERROR: [fpga_dnn] {message}" in out, out
    assert not scripts.bit_path.exists() and not scripts.hwh_path.exists()
    assert not (scripts.out_dir / "reports" / "pl_clock_mhz.txt").exists()
    if settings.get("fail_run") == "synth_1":
        assert not [c for c in calls_of(runs["build_overlay.tcl"], "launch_runs") if c[0] == "impl_1"]


def test_accelerator_stream_without_tkeep_stops(rtl_overlay, stub_tcl):
    _, scripts = rtl_overlay
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], tkeep=0, bytes_m_axis=4)
    assert rc == 1 and "accelerator stream accel/s_axis has no TKEEP" in out, out


def test_generated_top_drives_tkeep(tmp_path):
    """m_axis_tkeep all ones, s_axis_tkeep accepted, at the streams' byte widths; a top without
    them is refused before any script is written."""
    design = dummy_design(tmp_path, in_bits=64, out_bits=32)
    top = (design.directory / f"{design.top}.v").read_text()
    ports = verilog_ports(top, design.top)
    assert ports["s_axis_tkeep"] == ("input", 8) and ports["m_axis_tkeep"] == ("output", 4)
    assert ".m_axis_tkeep(m_axis_tkeep)" in top and ".s_axis_tkeep(s_axis_tkeep)" in top
    shell = Path(design.sources[0]).read_text()
    assert "output wire [M_AXIS_BITS/8-1:0]           m_axis_tkeep" in shell
    assert "assign m_axis_tkeep  = {(M_AXIS_BITS/8){1'b1}};" in shell
    assert verilog_ports(top, design.top) == dict(design.ports)
    no_keep = dataclasses.replace(design, ports={k: v for k, v in design.ports.items() if k != "m_axis_tkeep"})
    with pytest.raises(ConfigError, match=r"port m_axis_tkeep should be output \[4 bits\].*is missing"):
        generate_overlay(no_keep, "pynq-z2", tmp_path / "o")


def test_board_repo_is_set_before_the_project(rtl_overlay, tmp_path, stub_tcl):
    _, scripts = rtl_overlay
    repo = tmp_path / "my boards"
    repo.mkdir()
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4,
                             env_extra={"FPGA_DNN_BOARD_REPO": str(repo)})
    assert rc == 0, out
    calls = runs["build_overlay.tcl"]
    set_param = next(i for i, c in enumerate(calls) if c[:2] == ["set_param", "board.repoPaths"])
    assert calls[set_param][2].endswith("{" + str(repo) + "}")
    create = max(i for i, c in enumerate(calls) if c[0] == "create_project")   # the block design's project
    repo_paths = calls.index(["set_property", "BOARD_PART_REPO_PATHS", "{" + str(repo) + "}", calls[create][1]])
    board_part = next(i for i, c in enumerate(calls) if c[:2] == ["set_property", "board_part"])
    assert set_param < create < repo_paths < board_part
    rc, out, _ = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4,
                          env_extra={"FPGA_DNN_BOARD_REPO": str(tmp_path / "nope")})
    assert rc == 1 and "FPGA_DNN_BOARD_REPO=" in out and "is not a folder" in out


LUT_CORE = """`timescale 1 ns / 1 ps
// A core whose outputs come from a $readmemh table (da4ml's lookup_table), for the packaging test.
module table_core (input wire clk, input wire [47:0] model_inp, output reg [59:0] model_out);
    wire [7:0] t0;
    lookup_table #(.BW_IN(8), .BW_OUT(8), .MEM_FILE("table_core_t0.mem")) lut0 (.in(model_inp[7:0]), .out(t0));
    always @(posedge clk) model_out <= {52'd0, t0};
endmodule
"""


@pytest.mark.parametrize("packager_drops_mem", [0, 1])
def test_readmemh_tables_reach_the_packaged_ip(tmp_path, stub_tcl, packager_drops_mem):
    """A design reading a $readmemh table through da4ml's lookup_table.v, up to the IP's packaged
    synthesis file list: the table is copied beside the Verilog, added to the packaging project
    as a memory file used in synthesis, and listed in the IP's synthesis file group (added there by
    the script when the packager leaves it out)."""
    import da4ml
    from fpga_dnn.simulate.shell import write_axis_design
    lut_v = Path(da4ml.__file__).parent / "codegen" / "rtl" / "verilog" / "source" / "lookup_table.v"
    src = tmp_path / "table_src"
    src.mkdir()
    (src / "table_core.v").write_text(LUT_CORE)
    mem = src / "table_core_t0.mem"
    mem.write_text("\n".join(f"{(3 * i + 1) & 0xFF:02x}" for i in range(256)) + "\n")
    spec = dummy_core_spec("tables", (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), 1)
    design = write_axis_design(spec, "table_core", [lut_v, src / "table_core.v"], tmp_path / "design",
                               data_files=[mem])
    scripts = generate_overlay(design, "pynq-z2", tmp_path / "o")
    copied = scripts.out_dir / "rtl" / mem.name
    assert copied.read_text() == mem.read_text()
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], packager_drops_mem=packager_drops_mem)
    assert rc == 0, out
    calls = runs["build_overlay.tcl"]
    added = calls_of(calls, "add_files")
    assert [Path(f).name for f in tcl_list(added[1][1])] == [mem.name]   # second add_files: the tables
    assert ["used_in_synthesis", "true", str(copied.resolve())] in calls_of(calls, "set_property")
    synth_group = calls_of(calls, "ipx::add_file")
    if packager_drops_mem:
        assert synth_group == [["src/table_core_t0.mem", "xilinx_anylanguagesynthesis"]]
        assert ["type", "mem", "src/table_core_t0.mem"] in calls_of(calls, "set_property")
        ip_src = scripts.out_dir / "ip_repo" / design.top / "src" / mem.name
        assert ip_src.read_text() == mem.read_text()
        assert "added the table table_core_t0.mem to the synthesis files" in out
    else:
        assert synth_group == []
    assert f"IP synthesis files include the 1 $readmemh table(s): {mem.name}" in out


# ---------------------------------------------------------------------------------------------
# run_vivado.sh end to end (fake tools), checksums, failures
# ---------------------------------------------------------------------------------------------

def _fake_tools(tmp_path, stub_tcl, monkeypatch, fail=False, **settings) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    for tool in ("vivado", "vitis-run"):
        text = FAKE_TOOL.format(tool=tool)
        if fail and tool == "vivado":
            text = '#!/usr/bin/env bash\necho "ERROR: [Synth 8-439] module \'nope\' not found"\nexit 1\n'
        (bindir / tool).write_text(text)
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FD_STUB_TCL", str(stub_tcl))
    monkeypatch.setenv("FD_FAKE_TOOL_LOG", str(tmp_path / "tools.log"))
    for k, v in settings.items():
        monkeypatch.setenv(f"FD_STUB_{k.upper()}", str(v))
    return bindir / "vivado"


@pytest.mark.parametrize("flow", ["rtl", "hls"])
def test_run_vivado_sh_builds_a_checked_bundle(tmp_path, stub_tcl, monkeypatch, flow):
    if flow == "rtl":
        design, kwargs = dummy_design(tmp_path), {}
        spec = design.spec
    else:
        design, kwargs = fake_hls_project(tmp_path), {"path": "hls", "stream_bits": 32}
        spec = dummy_core_spec("x", (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), 0, stream_bits=32)
    vivado = _fake_tools(tmp_path, stub_tcl, monkeypatch, **_accel_bytes(spec))
    bundle = tmp_path / "overlays" / "pynq-z2" / "model"      # a bundle folder outside the script folder
    scripts = generate_overlay(design, "ultra96", tmp_path / "o", bundle_dir=bundle, vivado=vivado, **kwargs)
    assert scripts.ran and scripts.bundle_dir == bundle and scripts.log.is_file()
    tools = (tmp_path / "tools.log").read_text()
    assert ("vitis-run (fake) hls_synth.tcl" in tools) == (flow == "hls") and "vivado (fake) build_overlay.tcl" in tools
    loaded = Spec.load(bundle)                                # the copy delivered to bundle_dir
    assert loaded == Spec.load(scripts.spec_path) and loaded.clock_mhz == 99.999
    assert set(loaded.checksums) == {f"{scripts.design}.bit", f"{scripts.design}.hwh"}
    loaded.verify_checksums(bundle)
    (bundle / f"{scripts.design}.hwh").write_text("tampered")
    with pytest.raises(ConfigError, match="does not match its checksum"):
        loaded.verify_checksums(bundle)


def _text_files(folder: Path):
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            try:
                yield f, f.read_text()
            except UnicodeDecodeError:
                continue


@pytest.mark.parametrize("flow", ["rtl", "hls"])
def test_copied_overlay_folder_builds_a_checked_bundle_elsewhere(tmp_path, stub_tcl, monkeypatch, board, flow):
    """The documented workflow: generate here (bundle_dir outside the folder, as the flow does),
    copy the overlay folder to another place, remove the original, run run_vivado.sh in the
    copy with the stand-in tools: the bundle comes out complete and checked, inside the copy."""
    if flow == "rtl":
        design, kwargs = dummy_design(tmp_path / "gen"), {}
        spec = design.spec
    else:
        design, kwargs = fake_hls_project(tmp_path / "gen"), {"path": "hls", "stream_bits": 32}
        spec = dummy_core_spec("x", (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), 0, stream_bits=32)
    here = tmp_path / "gen" / "overlay"
    scripts = generate_overlay(design, board, here, bundle_dir=tmp_path / "gen" / "bundle" / board, vivado=False,
                               **kwargs)
    # no path of the generating machine in any file of the folder
    for f, text in _text_files(here):
        assert str(tmp_path) not in text and str(REPO) not in text, f"{f} names a path of this machine"
    there = tmp_path / "vivado machine" / "overlay"
    shutil.copytree(here, there)
    shutil.rmtree(tmp_path / "gen")           # nothing may refer back to the generating machine
    _fake_tools(tmp_path, stub_tcl, monkeypatch, **_accel_bytes(spec))
    proc = subprocess.run(["bash", "run_vivado.sh"], cwd=there, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (there / "logs" / "vivado.stdout").read_text()
    bundle = there / "bundle"
    assert f"bundle ready: {bundle}" in proc.stdout
    built = Spec.load(bundle)
    assert set(built.checksums) == {f"{scripts.design}.bit", f"{scripts.design}.hwh"}
    built.verify_checksums(bundle)
    assert (bundle / f"{scripts.design}.bit").read_text() == f"BIT {scripts.design} {board}"
    # the clock Vivado set (the double: 99.999 MHz for 100) is the spec's, the request kept beside it
    assert built.clock_mhz == 99.999 and built.extra["overlay"]["clock_mhz"] == 99.999
    assert built.extra["overlay"]["clock_mhz_requested"] == 100.0
    assert not (tmp_path / "gen").exists()


def test_missing_spec_stops_before_vivado(tmp_path, stub_tcl, monkeypatch, rtl_overlay):
    _, scripts = rtl_overlay
    _fake_tools(tmp_path, stub_tcl, monkeypatch, bytes_m_axis=4)
    scripts.spec_path.unlink()
    proc = subprocess.run(["bash", "run_vivado.sh"], cwd=scripts.out_dir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no bundle/spec.json in" in proc.stderr
    assert not (tmp_path / "tools.log").exists()            # Vivado never started
    rc, out, runs = run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)  # Vivado by hand: same check
    assert rc == 1 and "spec.json: the bundle folder must be the one fpga_dnn wrote" in out
    assert not calls_of(runs["build_overlay.tcl"], "create_project")


def test_vivado_failure_names_the_error_and_the_log(tmp_path, stub_tcl, monkeypatch):
    vivado = _fake_tools(tmp_path, stub_tcl, monkeypatch, fail=True)
    with pytest.raises(ToolError) as err:
        generate_overlay(dummy_design(tmp_path), "pynq-z2", tmp_path / "o", vivado=vivado)
    msg = str(err.value)
    assert "Vivado overlay build failed (exit 1): ERROR: [Synth 8-439] module 'nope' not found" in msg
    assert str(tmp_path / "o" / "logs" / "run.log") in msg


def test_finalize_scripts_agree(tmp_path, rtl_overlay):
    _, scripts = rtl_overlay
    for f in (scripts.bit_path, scripts.hwh_path):
        f.write_bytes(os.urandom(1000))
    clock = tmp_path / "pl_clock_mhz.txt"
    clock.write_text("99.999001\n")
    proc = subprocess.run(["python3", str(scripts.files["finalize_bundle"]), str(scripts.bundle_dir),
                           "--pl-clock", str(clock)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    by_script = Spec.load(scripts.spec_path)
    assert by_script == finalize_bundle(scripts.bundle_dir, pl_clock_file=clock)
    assert by_script.clock_mhz == 99.999001 and by_script.extra["overlay"]["clock_mhz_requested"] == 100.0
    by_script.verify_checksums(scripts.bundle_dir)
    clock.write_text("fast")
    proc = subprocess.run(["python3", str(scripts.files["finalize_bundle"]), str(scripts.bundle_dir),
                           "--pl-clock", str(clock)], capture_output=True, text=True)
    assert proc.returncode == 1 and "should hold the PL clock in MHz" in proc.stderr
    with pytest.raises(ConfigError, match="should hold the PL clock in MHz"):
        finalize_bundle(scripts.bundle_dir, pl_clock_file=clock)
    scripts.hwh_path.unlink()
    with pytest.raises(ConfigError, match=r"dummy\.hwh is missing"):
        finalize_bundle(scripts.bundle_dir)


def test_regenerating_keeps_a_build_of_the_same_inputs_only(tmp_path):
    design = dummy_design(tmp_path)
    scripts = generate_overlay(design, "pynq-z2", tmp_path / "o")
    for f in (scripts.bit_path, scripts.hwh_path):
        f.write_text("built")
    (tmp_path / "clock.txt").write_text("99.999")
    finalize_bundle(scripts.bundle_dir, pl_clock_file=tmp_path / "clock.txt")
    generate_overlay(design, "pynq-z2", tmp_path / "o")                      # same inputs: kept
    assert scripts.bit_path.exists() and Spec.load(scripts.spec_path).checksums
    assert Spec.load(scripts.spec_path).clock_mhz == 99.999                  # with the clock Vivado set
    (design.directory / f"{design.top}.v").write_text(
        (design.directory / f"{design.top}.v").read_text() + "\n// changed\n")
    generate_overlay(design, "pynq-z2", tmp_path / "o")                      # changed Verilog: stale build removed
    assert not scripts.bit_path.exists() and not Spec.load(scripts.spec_path).checksums


# ---------------------------------------------------------------------------------------------
# The HLS path's AXI-Stream top: reading hls4ml projects, and bit-exact packing (g++)
# ---------------------------------------------------------------------------------------------

def test_reads_a_real_hls4ml_project(tmp_path):
    """The parser against files hls4ml 1.3.0 itself writes (io_parallel and io_stream)."""
    import hls4ml
    import keras
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(3, name="dense")(inp))
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vivado")
    cfg["LayerName"]["dense"]["Precision"]["result"] = "fixed<12,4>"
    for io_type in ("io_parallel", "io_stream"):
        out = tmp_path / io_type
        hm = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(out), backend="Vivado",
                                                        io_type=io_type, project_name="tinynet", part="xc7z020clg400-1")
        hm.write()
        p = read_hls_project(hm)
        assert (p.name, p.io_type, p.input.elements, p.output.elements) == ("tinynet", io_type, 6, 3)
        assert p.output.format == FixedFormat(True, 12, 4) and p.input.format == FixedFormat(True, 16, 6)
        assert p.input.pack == (6 if io_type == "io_stream" else 1)
        scripts = generate_overlay(hm, "ultra96", tmp_path / f"o_{io_type}", path="hls")
        fw = scripts.files["hls_top"].parent
        subprocess.run([GPP, "-std=c++14", "-fsyntax-only", "-DFPGA_DNN_STANDALONE", f"-I{fw}", f"-I{AP_TYPES}",
                        str(scripts.files["hls_top"])], check=True, timeout=120)


def test_hls_project_with_wide_result_is_refused(tmp_path):
    proj = fake_hls_project(tmp_path, out_t="ap_fixed<36,16>")
    with pytest.raises(ConfigError, match=r"output layer2_out: type fixed<36,16> is 36 bits, wider than a 32-bit lane"):
        generate_overlay(proj, "pynq-z2", tmp_path / "o", path="hls")


def test_hls_spec_must_match_the_project(tmp_path):
    proj = fake_hls_project(tmp_path)
    other = dummy_core_spec("m", (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 16, 4), 1)
    with pytest.raises(ConfigError, match=r"output format fixed<16,4>.*fixed<12,4> \(result_t\)"):
        generate_overlay(proj, "pynq-z2", tmp_path / "o", path="hls", spec=other)
    good = dummy_core_spec("mymodel", (2, 3), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), 1)
    scripts = generate_overlay(proj, "pynq-z2", tmp_path / "o2", path="hls", spec=good)
    spec = Spec.load(scripts.spec_path)
    assert spec.name == "mymodel" and spec.input.shape == (2, 3) and spec.top_module == f"{FAKE_HLS_NAME}_fpga_dnn_axis"
    assert spec.core_latency == spec.total_latency == 0 and "HLS synthesis" in spec.extra["latency"]


CSIM_MAIN = r'''
#include <cstdio>
#include <vector>
#include "TOP_HEADER"
void TOP(hls::stream<fpga_dnn_beat<S_BITS>::type> &s_axis, hls::stream<fpga_dnn_beat<M_BITS>::type> &m_axis);
// stdin: samples, in_beats, then in_beats * S_BITS/8 bytes per sample, one frame (TLAST on the last beat).
// stdout: per output beat, M_BITS/8 bytes then the TLAST bit as one byte.
int main() {
    int samples, in_beats;
    if (fread(&samples, 4, 1, stdin) != 1 || fread(&in_beats, 4, 1, stdin) != 1) return 2;
    hls::stream<fpga_dnn_beat<S_BITS>::type> in;
    hls::stream<fpga_dnn_beat<M_BITS>::type> out;
    for (int s = 0; s < samples; s++) {
        for (int b = 0; b < in_beats; b++) {
            fpga_dnn_beat<S_BITS>::type beat;
            unsigned char bytes[S_BITS / 8];
            if (fread(bytes, 1, S_BITS / 8, stdin) != S_BITS / 8) return 3;
            for (int j = 0; j < S_BITS / 8; j++) beat.data.range(8 * j + 7, 8 * j) = bytes[j];
            beat.last = (s == samples - 1 && b == in_beats - 1);
            in.write(beat);
        }
        TOP(in, out);
    }
    while (!out.empty()) {
        fpga_dnn_beat<M_BITS>::type beat = out.read();
        for (int j = 0; j < M_BITS / 8; j++) { unsigned char c = beat.data.range(8 * j + 7, 8 * j); fputc(c, stdout); }
        fputc((int)beat.last, stdout);
    }
    return 0;
}
'''


@pytest.mark.parametrize("io_type,in_bits,out_bits,in_t,out_t", [
    ("io_parallel", 64, 32, "ap_fixed<8,3>", "ap_fixed<12,4>"),
    ("io_stream", 32, 64, "ap_ufixed<5,5>", "ap_int<20>"),
])
def test_hls_top_packs_like_the_runtime(tmp_path, io_type, in_bits, out_bits, in_t, out_t):
    """C simulation of the generated HLS top (g++, hls4ml's ap_types): a batch packed by the
    runtime goes in, and what comes out unpacks to the network's result, framed by TLAST."""
    proj = fake_hls_project(tmp_path, io_type, n_in=6, n_out=5, in_t=in_t, out_t=out_t, in_pack=3, out_pack=5)
    spec0 = dummy_core_spec("net", (6,), parse_format(in_t), (5,), parse_format(out_t), 0,
                            stream_bits=in_bits)
    spec0 = spec0.replace(output=spec0.output.__class__((5,), spec0.output.format, out_bits))
    scripts = generate_overlay(proj, "pynq-z2", tmp_path / "o", path="hls", spec=spec0)
    spec = Spec.load(scripts.spec_path)
    fw = scripts.files["hls_top"].parent
    top = f"{FAKE_HLS_NAME}_fpga_dnn_axis"
    main = (CSIM_MAIN.replace("TOP_HEADER", "fpga_dnn_axis.h").replace("TOP", top)
            .replace("S_BITS", str(in_bits)).replace("M_BITS", str(out_bits)))
    (fw / "main.cpp").write_text(main)
    exe = tmp_path / "csim"
    subprocess.run([GPP, "-std=c++14", "-O0", "-DFPGA_DNN_STANDALONE", f"-I{fw}", f"-I{AP_TYPES}", "-o", str(exe),
                    str(fw / "main.cpp"), str(scripts.files["hls_top"]), str(fw / f"{FAKE_HLS_NAME}.cpp")],
                   check=True, timeout=300)
    rng = np.random.default_rng(1)
    lo, hi = int_range(spec.input.format)
    q = rng.integers(lo, hi + 1, size=(7, 6))
    q[0], q[1] = lo, hi
    packed = pack(q, spec.input)
    stdin = np.array([len(q), spec.input.beats_per_sample], "<i4").tobytes() + packed.tobytes()
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    beat_bytes = out_bits // 8
    rows = np.frombuffer(proc.stdout, np.uint8).reshape(-1, beat_bytes + 1)
    assert len(rows) == len(q) * spec.output.beats_per_sample
    assert rows[:, -1].tolist() == [0] * (len(rows) - 1) + [1]          # TLAST only at the end of the frame
    expected = dummy_core_reference(q, spec)
    # byte for byte what the runtime's packer makes of the result: lanes sign-/zero-extended,
    # samples padded to whole beats with zeros
    np.testing.assert_array_equal(rows[:, :-1].reshape(-1), pack(expected, spec.output).reshape(-1))
    np.testing.assert_array_equal(unpack(np.ascontiguousarray(rows[:, :-1]).reshape(-1), spec.output, len(q)), expected)
