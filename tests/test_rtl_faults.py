"""Fault injection into the generated RTL and the TMR mitigation, on a tiny hand-made core.

The core: two fixed<6,3> inputs, outputs (relu(x0), x1) in fixed<6,3>. Its input register holds
x0 in bits 0..5 and x1 in bits 6..11 (two's complement, 3 fraction bits), so the outcome of each
flip below can be computed by hand. One Verilator build (TMR msb:1: the sign bits triplicated)
serves every case; the yosys test checks that the replicas survive synthesis.
"""

import numpy as np
import pytest

from fpga_dnn.rtl.registers import TmrPlan, flip_flop_map, register_module
from fpga_dnn.verify.fault_report import fault_study
from fpga_dnn.verify.rtl_faults import (HANG, MASKED, SDC_CLASS_CHANGED, SDC_SAME_CLASS, compile_fault_model,
                                        run_campaign, suggest_tmr)

X = np.array([[-2.0, 1.0],    # golden (0, 1): class 1
              [0.5, -1.0],    # golden (0.5, -1): class 0
              [1.5, 0.25]])   # golden (1.5, 0.25): class 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    from fpga_dnn.rtl.precision import HlsType
    from fpga_dnn.rtl.trace import TracedModel
    from fpga_dnn.rtl.verilog import write_verilog

    t = HlsType(True, 6, 3)
    x = FixedVariableArray.from_kif(np.full(2, 1), np.full(2, 2), np.full(2, 3), HWConfig(1, -1, -1), 0.0, None)
    comb = comb_trace(list(x._vars.ravel()), [x[0].relu(), x[1]], keep_dead_inputs=True)
    traced = TracedModel(comb, t, t, (2,), (2,), [])
    out = tmp_path_factory.mktemp("tiny_faults")
    design = write_verilog(traced, out / "none", name="tiny_fi", latency_cutoff=1.0)
    # the command's whole study (two fault-port builds, two campaigns, yosys costs) once; the tests
    # below reuse its cached msb:1 build
    report = fault_study(design, X, out / "faults", reference=traced.predict(X), n_injections=2000, seed=3,
                         tmr="msb:1", opt="-O0", model_name="tiny")
    model = compile_fault_model(design, "msb:1", opt="-O0")
    assert not model.built_now
    return design, traced, model, out, report


def test_register_layout_and_flip_flop_map(tiny):
    design, _, model, _, _ = tiny
    layout = design.layout
    assert layout.elements[0] == ((1, 2, 3), (1, 2, 3))  # x0, x1 as given
    assert design.register_bits == layout.total_bits     # da4ml's own count
    # msb:1 triplicates the top bit of every element: 2 in the input register, 2 in model_out
    assert model.n_flip_flops == layout.total_bits + 2 * 4
    fmap = flip_flop_map(layout, TmrPlan.parse("msb:1"))
    assert fmap[5] == (0, 5, 0) and fmap[12] == (0, 5, 1) and fmap[15] == (0, 11, 2)


def test_hand_computed_flips(tiny):
    design, traced, model, _, _ = tiny
    codes = np.ldexp(X, 3).astype(np.int32)
    golden = model.golden(codes)
    np.testing.assert_array_equal(golden, np.ldexp(traced.predict(X), 3))
    classes = np.argmax(golden, axis=1).astype(np.int32)
    out_reg = design.layout.depth - 1
    fmap = flip_flop_map(design.layout, TmrPlan.parse("msb:1"))
    ff_of = {v: k for k, v in enumerate(fmap)}
    cases = [  # (register, bit, copy, sample, expected)
        (0, 0, 0, 0, MASKED),               # x0 = -2 -> -1.875: still negative, the ReLU drops it
        (0, 4, 0, 0, MASKED),               # x0 = -2 -> -4: the same
        (0, 6, 0, 0, SDC_SAME_CLASS),       # x1 = 1 -> 1.125: output differs, class 1 stays
        (0, 10, 0, 2, SDC_CLASS_CHANGED),   # x1 = 0.25 -> 2.25 > relu(1.5): class 0 -> 1
        (0, 3, 0, 1, SDC_SAME_CLASS),       # x0 = 0.5 -> 1.5: class 0 stays
        (0, 5, 0, 0, MASKED),               # x0's sign bit (-2 -> 6 would be class 0): outvoted
        (0, 5, 1, 0, MASKED),               # the same bit's replica
        (0, 11, 2, 2, MASKED),              # x1's sign bit, third copy
        (out_reg, 0, 0, 0, SDC_SAME_CLASS),  # the output register's y0 LSB: 0 -> 0.125
    ]
    ff = [ff_of[(r, b, c)] for r, b, c, _, _ in cases]
    # register r holds, after edge c, the sample fed at edge c - r (the stream loops)
    cycle = [(s + r) % len(X) + len(X) * k for k, (r, _, _, s, _) in enumerate(cases)]
    outcome, bad = model.inject(codes, golden, classes, ff, cycle, threads=1)
    assert outcome.tolist() == [e for *_, e in cases]
    assert bad.tolist() == [0 if e == MASKED else 1 for *_, e in cases]  # only the sample in flight


def test_campaign_rates_and_tmr(tiny):
    design, traced, model, _, _ = tiny
    camp = run_campaign(design, X, reference=traced.predict(X), n_injections=3000, seed=1, model=model)
    o = camp.overall
    assert o["injections"] == 3000 and o["hang"] == 0
    assert o["masked"] + o["sdc"] == 3000
    lo, hi = o["sdc_ci95"]
    assert lo < o["sdc_rate"] < hi and hi - lo < 0.05
    by_copy = {row["copy"]: row for row in camp.per_copy}
    assert by_copy[1]["sdc"] == by_copy[2]["sdc"] == 0  # a replica's flip is always outvoted
    by_msb = {row["bit_from_msb"]: row for row in camp.per_bit_from_msb}
    assert by_msb[0]["sdc"] == 0  # the MSBs are triplicated here
    # every unprotected output-register bit reaches the output; its triplicated MSBs never do
    last = design.layout.depth - 1
    rows = [r for r in camp.ranking if r["register"] == last]
    assert rows and all(r["sdc"] == (r["injections"] if r["bit_from_msb"] else 0) for r in rows)
    changed = [r["sdc_class_changed"] for r in camp.ranking]
    assert changed == sorted(changed, reverse=True) and changed[0] > 0  # ranked by misclassifications
    # the suggestion: the fewest top bit positions that hold half the misclassifications
    n = int(suggest_tmr(camp, share=0.5).spec.split(":")[1])
    share = lambda k: sum(r["sdc_class_changed"] for r in camp.per_bit_from_msb  # noqa: E731
                          if r["bit_from_msb"] < k) / o["sdc_class_changed"]
    assert share(n) >= 0.5 > share(n - 1)


def test_fault_report_beside_tmr_cost(tiny):
    design, _, _, out, report = tiny
    base, prot = report["variants"]
    assert (base["variant"], prot["variant"]) == ("unprotected", "tmr msb:1")
    assert base["injections"] == prot["injections"] == 2000 and report["golden_exact"] == 1.0
    # the same campaign (same seed, draws over each variant's flip-flops): TMR cuts the corruptions
    assert prot["sdc_rate"] < base["sdc_rate"] and prot["sdc_ci95"][1] < base["sdc_ci95"][0]
    # yosys: the register module keeps both replicas of each of the 4 triplicated bits, plus voters
    assert prot["yosys"]["register_module_ff"] == base["yosys"]["register_module_ff"] + 2 * 4
    assert prot["yosys"]["ff"] == base["yosys"]["ff"] + 8 and prot["yosys"]["lut"] > base["yosys"]["lut"]
    md = (out / "faults" / "faults.md").read_text()
    assert "| tmr msb:1 |" in md and "95% CI" in md and "sensitivity ranking" in md
    assert (out / "faults" / "faults.png").stat().st_size > 10_000
    import json

    assert json.loads((out / "faults" / "faults.json").read_text())["variants"][1]["tmr"] == "msb:1"


@pytest.mark.extended  # two flat yosys runs (~1 min); the register-module costs above cover the feature
def test_tmr_option_keeps_replicas_in_flat_synthesis(tiny):
    from fpga_dnn.estimate import synthesize
    from fpga_dnn.rtl.verilog import RtlDesign, write_verilog

    design, traced, _, out, _ = tiny
    # the RTL option: [rtl] tmr = "all" writes the register module with voters in place of da4ml's
    tmr = write_verilog(traced, out / "tmr", name="tiny_fi", latency_cutoff=1.0, tmr="all")
    assert RtlDesign.load(tmr.out_dir).tmr == "all"
    text = (tmr.out_dir / "src" / "tiny_fi.v").read_text()
    assert text == register_module(design.layout, TmrPlan.parse("all"))
    assert "keep_hierarchy" in text and text.count("_r (.clk(clk)") == 2 * design.layout.depth
    base = synthesize(design.sources, design.top, "xc7", method="flat", source_info=design.source_info)
    prot = synthesize(tmr.sources, tmr.top, "xc7", method="flat", source_info=tmr.source_info)
    # yosys keeps both replicas of every register bit it keeps at all (not merged by opt_merge)
    assert prot.ff >= 3 * base.ff - 2, (base.ff, prot.ff)
    assert prot.lut > base.lut  # the voters


def test_tmr_rtl_option(tiny, tmp_path):
    from fpga_dnn.rtl.verilog import RtlDesign, write_verilog

    design, traced, _, _, _ = tiny
    tmr = write_verilog(traced, tmp_path, name="tiny_fi", latency_cutoff=1.0, tmr="msb:2")
    assert RtlDesign.load(tmr.out_dir).tmr == "msb:2"
    assert (tmr.out_dir / "src" / "tiny_fi.v").read_text() == register_module(design.layout, TmrPlan.parse("msb:2"))


def test_tmr_spec_errors():
    from fpga_dnn.errors import ConfigError

    assert TmrPlan.parse(None).spec == "none" and TmrPlan.parse("MSB:2").spec == "msb:2"
    with pytest.raises(ConfigError, match="accepted: none, all, msb:N"):
        TmrPlan.parse("msb:0")
    with pytest.raises(ConfigError, match="accepted"):
        TmrPlan.parse("half")


def test_tmr_plans_on_a_layout():
    from fpga_dnn.errors import ConfigError
    from fpga_dnn.rtl.registers import RegisterLayout

    layout = RegisterLayout("c", (((1, 2, 3), (0, 1, 1)), ((1, 5, 0),)))  # 6 + 2 bits, then 6 bits
    assert layout.total_bits == 14 and layout.name(0) == "stage0_inp" and layout.name(1) == "model_out"
    assert TmrPlan.parse("msb:2").protected(layout, 0) == [False] * 4 + [True] * 2 + [True] * 2
    assert TmrPlan.parse("stages:1").flip_flops(layout) == 14 + 2 * 6
    assert TmrPlan.parse("all").flip_flops(layout) == 3 * 14
    with pytest.raises(ConfigError, match="registers 0..1, not \\[2\\]"):
        TmrPlan.parse("stages:2").protected(layout, 0)
    text = register_module(layout, TmrPlan.parse("msb:1"), fault_port=True)
    assert "input [19:0] fi_mask" in text  # 14 + 2 replicas x 3 protected bits (one MSB per element)
