"""yosys resource estimates (real synthesis of a small design) and the fit verdict logic."""

import json
from pathlib import Path

import pytest

from fpga_dnn import boards, estimate
from fpga_dnn.errors import ConfigError, UnknownNameError
from fpga_dnn.simulate.shell import DUMMY_CORE_MODULE, DUMMY_CORE_SOURCE


@pytest.fixture(scope="module")
def dummy_report():
    # The dummy core multiplies each element by 3 in a 2-stage pipeline: yosys maps the
    # multiplications to DSPs and the stages to flip-flops.
    return estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xc7")


@pytest.mark.slow
def test_real_yosys_counts(dummy_report):
    r = dummy_report
    assert r.ff > 0 and r.dsp > 0 and r.yosys_version.startswith("Yosys")
    assert r.dsp == r.cells.get("DSP48E1", 0)  # DSP usage is what the netlist holds
    assert not r.cached  # the tests' build cache starts empty (tests/conftest.py)
    again = estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xc7")
    assert again.cached and (again.ff, again.dsp, again.cells) == (r.ff, r.dsp, r.cells)  # content-hash cache


def test_resource_classes_from_cells():
    """LUT = LUT1..6 + INV (yosys keeps inverters apart), BRAM36 counts a RAMB18 as half."""
    cells = {"LUT1": 1, "LUT2": 2, "LUT3": 4, "LUT4": 8, "LUT5": 16, "LUT6": 32, "INV": 64, "FDRE": 5, "FDSE": 2,
             "CARRY4": 3, "DSP48E1": 2, "RAMB36E1": 1, "RAMB18E1": 3, "MUXF7": 100}
    r = estimate.count_resources(cells)
    assert (r["lut"], r["ff"], r["carry"], r["dsp"], r["bram36"]) == (127, 7, 3, 2, 2.5)


def test_lut_ram_counts_against_the_lut_budget():
    """Vivado's Slice LUTs are logic plus memory: a RAM32M takes the four LUTs of its slice, an
    SRL one. A design whose logic fits but whose LUT RAM does not must not be called a fit."""
    cells = {"LUT6": 40_000, "RAM32M": 2_000, "RAM64M": 100, "RAM32X1D": 10, "SRLC32E": 7, "SRL16E": 3}
    r = estimate.count_resources(cells)
    assert (r["lut"], r["lutram"], r["lut_as_memory"]) == (40_000, 2_120, 8_000 + 400 + 20 + 10)
    rep = _report(**r)
    assert rep.lut_total == 48_430
    z2 = boards.load_board("pynq-z2")          # 53,200 LUTs
    assert estimate.fit_check(_report(lut=40_000, lutram=0), z2).fits
    verdict = estimate.fit_check(rep, z2, margin=0.85)
    assert not verdict.fits and "LUT 48,430" in verdict.message
    # the LUTs' own headroom (the bench's 85% criterion) leaves the other resources at 100%
    assert not estimate.fit_check(rep, z2, lut_margin=0.85).fits
    assert estimate.fit_check(_report(lut=45_000, dsp=200), z2, lut_margin=0.85).fits      # 84.6%, DSP 91%
    assert not estimate.fit_check(_report(lut=45_000, dsp=200), z2, margin=0.85).fits      # DSP over 85%
    lut_row = estimate.resource_table(rep, z2)[0]
    assert (lut_row["resource"], lut_row["yosys"], lut_row["logic"], lut_row["memory"]) == ("LUT", 48_430, 40_000, 8_430)


@pytest.mark.slow
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
    with pytest.raises(ConfigError, match="unknown board 'kria'"):  # bad input: the CLI's exit-2 family
        boards.load_board("kria")


def _pipeline_design(folder):
    """A small da4ml-shaped pipeline: a top around a core of three combinational stages chained by
    registers (the core module pattern the split method recognises)."""
    stages = [(16, 10), (10, 9), (9, 8)]
    files = []
    for k, (wi, wo) in enumerate(stages):
        body = {0: "assign model_out = {2'b00, model_inp[15:8]} + model_inp[7:0] - model_inp[11:4];",
                1: "assign model_out = model_inp[9:1] ^ {model_inp[3:0], model_inp[8:4]} + 9'd3;",
                2: "assign model_out = model_inp[8:1] + model_inp[7:0];"}[k]
        f = folder / f"p_core_stage{k}.v"
        f.write_text(f"module p_core_stage{k} (input [{wi - 1}:0] model_inp, output [{wo - 1}:0] model_out);\n"
                     f"    {body}\nendmodule\n")
        files.append(f)
    regs = "\n".join(f"    reg [{wi - 1}:0] stage{k}_inp;\n    wire [{wo - 1}:0] stage{k}_out;" for k, (wi, wo) in enumerate(stages))
    insts = "\n".join(f"    p_core_stage{k} stage{k} (.model_inp(stage{k}_inp), .model_out(stage{k}_out));"
                      for k in range(len(stages)))
    chain = "\n".join(f"        stage{k}_inp <= {'model_inp' if k == 0 else f'stage{k - 1}_out'};" for k in range(len(stages)))
    core = folder / "p_core.v"
    core.write_text(f"module p_core (input clk, input [15:0] model_inp, output reg [7:0] model_out);\n{regs}\n{insts}\n"
                    f"    always @(posedge clk) begin\n{chain}\n        model_out <= stage2_out;\n    end\nendmodule\n")
    top = folder / "p_top.v"
    top.write_text("module p_top (input clk, input [15:0] d, output reg [7:0] q);\n    reg [15:0] r;\n"
                   "    wire [7:0] y;\n    p_core core (.clk(clk), .model_inp(r), .model_out(y));\n"
                   "    always @(posedge clk) begin r <= d; q <= ~y; end\nendmodule\n")
    return [top, core, *files]


def _pipeline(folder):
    """How the generator describes that core (fpga_dnn.rtl.design.Pipeline)."""
    from fpga_dnn.rtl.design import Pipeline, Stage

    stages = [(16, 10), (10, 9), (9, 8)]
    return Pipeline("p_core", folder / "p_core.v",
                    tuple(Stage(f"p_core_stage{k}", folder / f"p_core_stage{k}.v", wi, wo) for k, (wi, wo) in enumerate(stages)))


def test_split_pieces_follow_the_pipeline(tmp_path):
    sources = _pipeline_design(tmp_path)
    pieces = estimate._split(sources, "p_top", _pipeline(tmp_path))
    assert pieces is not None and len(pieces) == 3  # two stage groups + the top without the core
    groups, rest = pieces[:2], pieces[2]
    assert rest.top == "p_top" and rest.blackboxes == ("p_core",) and "p_core.v" in rest.lib
    assert not any(f.name.startswith("p_core_stage") for f in rest.files)
    staged = [f.name for g in groups for f in g.files if f.name.startswith("p_core_stage")]
    assert sorted(staged) == ["p_core_stage0.v", "p_core_stage1.v", "p_core_stage2.v"]  # each stage once
    last = groups[-1].extra[0][1]
    assert "output reg [7:0] piece_out" in last and "piece_out <= s" in last  # the core's output register
    # no pipeline (the dummy core) -> None: the caller synthesises flat
    assert estimate._split([Path(DUMMY_CORE_SOURCE)], DUMMY_CORE_MODULE, None) is None


@pytest.mark.slow
def test_split_equals_flat_on_a_small_pipeline(tmp_path):
    sources = _pipeline_design(tmp_path)
    flat = estimate.synthesize(sources, "p_top", "xc7", cache_dir=tmp_path / "c", method="flat")
    split = estimate.synthesize(sources, "p_top", "xc7", cache_dir=tmp_path / "c", method="split", pipeline=_pipeline(tmp_path))
    assert (flat.method, flat.pieces, split.method, split.pieces) == ("flat", 1, "split", 3)
    # registers: 16 (top in) + 16 + 10 + 9 (stage inputs) + 8 (core out) + 8 (top out), as flat
    assert split.ff == flat.ff > 0 and split.carry > 0
    luts = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")
    assert flat.lut == sum(flat.cells.get(k, 0) for k in luts) > 0
    assert abs(split.lut - flat.lut) <= max(3, 0.1 * flat.lut)
    assert "p_core" not in split.cells and split.logic_levels > 0
    # the stage groups have no multiplier/memory: the second family reuses them, runs only the top
    up = estimate.synthesize(sources, "p_top", "xcup", cache_dir=tmp_path / "c", method="split", pipeline=_pipeline(tmp_path))
    runs = [json.loads(p.read_text()) for p in (tmp_path / "c").glob("*/piece.json")]
    assert sorted(r["neutral"] for r in runs) == [True, True, True]  # no family-specific cell anywhere
    assert len(runs) == 3 and up.ff == split.ff and up.lut == split.lut
    again = estimate.synthesize(sources, "p_top", "xc7", cache_dir=tmp_path / "c", method="split", pipeline=_pipeline(tmp_path))
    assert again.cached and again.lut == split.lut


@pytest.mark.slow
def test_family_specific_piece_runs_per_family(tmp_path):
    # a multiplier in a stage maps to DSP48E1 on xc7 and DSP48E2 on xcup: not shared
    sources = _pipeline_design(tmp_path)
    s1 = tmp_path / "p_core_stage1.v"
    s1.write_text("module p_core_stage1 (input [9:0] model_inp, output [8:0] model_out);\n"
                  "    assign model_out = model_inp[9:5] * model_inp[4:0] + model_inp[8:0];\nendmodule\n")
    z2 = estimate.synthesize(sources, "p_top", "xc7", cache_dir=tmp_path / "c", pipeline=_pipeline(tmp_path))
    u96 = estimate.synthesize(sources, "p_top", "xcup", cache_dir=tmp_path / "c", pipeline=_pipeline(tmp_path))
    assert z2.method == "split" and z2.cells.get("DSP48E1", 0) == z2.dsp
    assert u96.cells.get("DSP48E2", 0) == u96.dsp and "DSP48E1" not in u96.cells


def test_unknown_method(monkeypatch):
    monkeypatch.setenv(estimate.METHOD_ENV, "guess")
    with pytest.raises(estimate.ToolError, match="unknown estimate method 'guess'"):
        estimate.synthesize([DUMMY_CORE_SOURCE], DUMMY_CORE_MODULE, "xc7")


def test_negative_module_parameter_reaches_yosys(tmp_path):
    # A streaming design's requantiser can shift left (SHIFT = -4 in resnet8): yosys' chparam
    # decodes neither "-4" nor "-32'sd4". The module below holds a multiplier only when the
    # parameter arrives as the integer -4, so its cell count shows what yosys received.
    src = tmp_path / "neg.v"
    src.write_text("module neg #(parameter integer P = 0) (input [7:0] a, input [7:0] b, output [15:0] o);\n"
                   "  assign o = (P == -4) ? a * b : 16'd0;\nendmodule\n")
    for value, multiplies in ((-4, True), (4, False), (0, False)):
        work = tmp_path / f"p{value}"
        work.mkdir()
        (work / "neg.v").write_text(src.read_text())
        estimate._run_yosys(work, f"read_verilog -sv neg.v; {estimate._chparam('P', value)} neg; synth -top neg; "
                                  "tee -q -o stat.json stat -json", f"neg P={value}", timeout=120)
        cells = json.loads((work / "stat.json").read_text())["modules"]["\\neg"]["num_cells"]
        assert (cells > 0) == multiplies, (value, cells)
    with pytest.raises(estimate.ToolError, match="does not fit a Verilog integer"):
        estimate._chparam("P", 2**31)
