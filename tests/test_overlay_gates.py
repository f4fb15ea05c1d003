"""The Vivado stand-in's own gates, shown closing: a run that Vivado reports as failed stops the
build (and ``generate_overlay`` names the error), and the list of known Vivado / HLS commands
rejects a misspelled command in a generated script instead of letting the double record it.

The recording double and its helpers live in ``tests/test_overlay.py``; this file only adds a
variant of the double whose run PROGRESS/STATUS can be set per run.
"""

from __future__ import annotations

import pytest

from fpga_dnn.errors import ToolError
from fpga_dnn.overlay import generate_overlay
from test_overlay import (STUB_TCL, _check_block_design, _check_hls_commands, _fake_tools, calls_of, dummy_design,  # noqa: F401
                          fake_hls_project, no_vivado_env, run_stub)

# The double answers `get_property STATUS|PROGRESS <run>` from FD_STUB_STATUS_<RUN> / FD_STUB_PROGRESS_<RUN>
# (else FD_STUB_STATUS / 100%), so one run can fail while the other completes.
PER_RUN_STUB = STUB_TCL.replace(
    'PROGRESS { return [expr {$failed ? "40%" : "100%"}] }',
    'PROGRESS { return [setting PROGRESS_[string toupper [file tail $obj]] [expr {$failed ? "40%" : "100%"}]] }').replace(
    'return "[setting STATUS {write_bitstream Complete!}]"',
    'return [setting STATUS_[string toupper [file tail $obj]] [setting STATUS {write_bitstream Complete!}]]')
assert PER_RUN_STUB.count("setting PROGRESS_") == 1 and PER_RUN_STUB.count("setting STATUS_") == 1


@pytest.fixture(scope="module")
def run_stub_tcl(tmp_path_factory):
    path = tmp_path_factory.mktemp("stub_runs") / "vivado_stub.tcl"
    path.write_text(PER_RUN_STUB)
    return path


@pytest.fixture
def overlay(tmp_path):
    design = dummy_design(tmp_path)
    return design, generate_overlay(design, "pynq-z2", tmp_path / "overlay", path="rtl")


def test_a_complete_run_passes_the_run_checks(overlay, run_stub_tcl):
    """The variant double changes nothing by default: the build completes and exports the bitstream."""
    _, scripts = overlay
    rc, out, runs = run_stub(run_stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)
    assert rc == 0, out
    assert "synthesis: write_bitstream Complete!" in out and scripts.bit_path.is_file()


@pytest.mark.parametrize("settings, line", [
    ({"status_synth_1": "synth_design ERROR"}, "synthesis failed (run synth_1: synth_design ERROR, 100%)"),
    ({"progress_synth_1": "57%", "status_synth_1": "Running synth_design"},
     "synthesis failed (run synth_1: Running synth_design, 57%)"),
    ({"status_impl_1": "route_design Failed"}, "implementation and bitstream failed (run impl_1: route_design Failed"),
])
def test_failed_run_status_stops_the_build(overlay, run_stub_tcl, settings, line):
    _, scripts = overlay
    rc, out, runs = run_stub(run_stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4, **settings)
    assert rc == 1, out
    error = next(ln for ln in out.splitlines() if ln.startswith("ERROR: [fpga_dnn]"))
    assert line in error and "runme.log" in error, error
    launched = [c[0] for c in calls_of(runs["build_overlay.tcl"], "launch_runs")]
    assert launched == (["synth_1"] if "synth_1" in line else ["synth_1", "impl_1"])  # stopped at the failed run
    assert not scripts.bit_path.exists() and not scripts.hwh_path.exists()


def test_failed_run_through_run_vivado_sh_is_a_tool_error(tmp_path, run_stub_tcl, monkeypatch):
    """End to end: the fake vivado runs the scripts under the double, synthesis reports an error,
    generate_overlay raises a ToolError with the script's ERROR line and no bundle is exported."""
    vivado = _fake_tools(tmp_path, run_stub_tcl, monkeypatch, bytes_s_axis=8, bytes_m_axis=4,
                         status_synth_1="synth_design ERROR")
    with pytest.raises(ToolError) as err:
        generate_overlay(dummy_design(tmp_path), "pynq-z2", tmp_path / "o", vivado=vivado)
    msg = str(err.value)
    assert "Vivado overlay build failed (exit 1)" in msg and "synthesis failed (run synth_1: synth_design ERROR" in msg
    assert not list((tmp_path / "o").rglob("*.bit"))


def _misspell(path, right, wrong):
    text = path.read_text()
    assert right in text
    path.write_text(text.replace(right, wrong, 1))


def test_allow_list_rejects_a_misspelled_vivado_command(overlay, run_stub_tcl):
    """The double records any command it does not implement and returns "", so a misspelled
    command runs through: the allow-list is what catches it."""
    design, scripts = overlay
    _misspell(scripts.out_dir / "block_design.tcl", "connect_bd_intf_net ", "conect_bd_intf_net ")
    rc, out, runs = run_stub(run_stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)
    assert rc == 0, out  # the double itself does not notice
    with pytest.raises(AssertionError, match=r"neither stubbed nor known Vivado commands: \{'conect_bd_intf_net'\}"):
        _check_block_design(runs["build_overlay.tcl"], "pynq-z2", design.spec,
                            f"fpga-dnn.org:user:{design.top}", "clk", "aresetn")


def test_allow_list_rejects_a_misspelled_hls_command(tmp_path, run_stub_tcl):
    scripts = generate_overlay(fake_hls_project(tmp_path), "pynq-z2", tmp_path / "o", path="hls", stream_bits=32)
    _misspell(scripts.files["hls_synth"], "config_compile", "config_compiel")
    rc, out, runs = run_stub(run_stub_tcl, scripts.files["hls_synth"], bytes_s_axis=4, bytes_m_axis=4)
    assert rc == 0, out
    with pytest.raises(AssertionError, match=r"neither stubbed nor known Vitis HLS commands: \{'config_compiel'\}"):
        _check_hls_commands(runs["hls_synth.tcl"])
