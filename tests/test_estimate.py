"""yosys resource estimates (real synthesis of a small design) and the fit verdict logic."""

import pytest

from fpga_dnn import boards, estimate
from fpga_dnn.errors import ConfigError, UnknownNameError
from fpga_dnn.simulate.shell import DUMMY_CORE_MODULE, DUMMY_CORE_SOURCE


@pytest.fixture(scope="module")
def dummy_report():
    # The dummy core multiplies each element by 3 in a 2-stage pipeline: yosys maps the
    # multiplications to DSPs and the stages to flip-flops.
    return estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xc7")


def test_real_yosys_counts(dummy_report):
    r = dummy_report
    assert r.ff > 0 and r.dsp > 0 and r.yosys_version.startswith("Yosys")
    assert r.dsp == r.cells.get("DSP48E1", 0)  # DSP usage is what the netlist holds
    assert r.lut == sum(r.cells.get(k, 0) for k in ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"))
    again = estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xc7")
    assert again.cached and again.ff == r.ff  # content-hash cache


def test_ultrascale_family_uses_dsp48e2():
    r = estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xcup")
    assert r.cells.get("DSP48E2", 0) == r.dsp > 0 and "DSP48E1" not in r.cells


def _report(**kw):
    base = dict(top="t", family="xc7", lut=0, ff=0, carry=0, dsp=0, bram36=0.0, lutram=0, logic_levels=1)
    return estimate.ResourceReport(**{**base, **kw})


def test_fit_verdicts():
    z2 = boards.load_board("pynq-z2")
    ok = estimate.fit_check(_report(lut=26600, ff=1000), z2)
    assert ok.fits and ok.utilisation["LUT"] == (26600, 53200, 50.0) and "LUT 50.0%" in ok.message
    over = estimate.fit_check(_report(lut=60000, dsp=230), z2)
    assert not over.fits
    assert "LUT 60,000 > 53,200" in over.message and "over by 6,800" in over.message
    assert "DSP 230 > 220" in over.message
    tight = estimate.fit_check(_report(lut=45000), z2, margin=0.8)
    assert not tight.fits and "over by 2,440" in tight.message
    u96 = estimate.fit_check(_report(lut=60000), boards.load_board("ultra96"))
    assert u96.fits
    assert estimate.latency_ns(10, z2) == 100.0


def test_yosys_failure_names_log(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module broken(input a; endmodule\n")
    with pytest.raises(estimate.ToolError, match="yosys failed on broken.*log:"):
        estimate.synthesize([bad], "broken", "xc7", cache_dir=tmp_path / "cache")


def test_unknown_board_and_family():
    with pytest.raises(UnknownNameError, match="pynq-z2, ultra96"):
        boards.load_board("kria")
    with pytest.raises(estimate.ToolError, match="unknown yosys family"):
        estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "ice40")
    assert ConfigError
