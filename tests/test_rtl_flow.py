"""The RTL contract on the zoo models: RTL = C-sim (= Keras) on every digits test sample, in the
compiled Verilator emulation and in the cocotb AXI-Stream testbench, with the measured latency
equal to the reported one."""

import json
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.simulate.check import SimOptions, simulate_rtl

pytestmark = pytest.mark.slow  # Verilator and cocotb builds of the zoo models

CASES = ["hw_digits_mlp", "hw_digits_cnn", "hw_digits_mlp_hgq2"]


@pytest.mark.parametrize("case", CASES)
def test_rtl_equals_csim_and_keras(case, request):
    """Every test sample and the 2,000 C-sim probes through the AXI-Stream testbench (one Verilator
    build of core + shell per case). The bare core's bulk emulation (a second build) runs for the
    MLP only, on 20,000 more grid inputs against C-sim and against the traced adder graph: the
    other cases' cores are the same generator's, and the testbench already compares each output."""
    hw = request.getfixturevalue(case)
    probe = hw["csim"].probe
    assert hw["csim"].exact_fraction == 1.0 and probe.exact_fraction == 1.0 and probe.n_samples == 2000
    emulate = case == "hw_digits_mlp"
    rep = simulate_rtl(hw["rtl"], hw["x"], hw["csim"].outputs, hw["keras"],
                       SimOptions(cocotb=True, emulation=emulate), probe_x=probe.x, probe_csim=probe.outputs)
    n = len(hw["x"])
    assert n == 450
    assert rep.tb_passed, rep.failures()
    assert rep.tb_exact_samples == n + 2000  # every test sample and probe, through the shell
    assert rep.latency_measured == [hw["rtl"].spec.total_latency] * len(rep.latency_measured)
    lat = rep.tb["test_latency_throughput"]["metrics"]
    assert lat["interval_max"] == max(hw["rtl"].spec.input.beats_per_sample, hw["rtl"].spec.output.beats_per_sample)
    for t in ("test_backpressure", "test_framing", "test_reset_mid_stream"):
        assert rep.tb[t]["passed"], rep.tb[t]["message"]
    if not emulate:
        assert rep.emu_exact_csim is None and rep.emu_build_s is None  # no second build
        return
    assert rep.emu_exact_csim == 1.0 and rep.emu_exact_keras == 1.0 and rep.emu_probe_exact == 1.0
    from fpga_dnn.simulate.emulator import compile_emulator

    emu = compile_emulator(hw["rtl"].design)  # the build simulate_rtl made (cached)
    assert not emu.built_now
    grid = np.random.default_rng(3).integers(0, 32, size=(20000, 64)) / 16.0  # ufixed<5,1>'s grid
    got = np.asarray(emu.predict(grid)).reshape(len(grid), -1)
    csim_out = np.asarray(hw["hls"].predict(np.ascontiguousarray(grid))).reshape(len(grid), -1)
    traced = np.asarray(hw["rtl"].traced.predict(grid)).reshape(len(grid), -1)
    assert (got == csim_out).all(axis=1).mean() == 1.0
    assert (got == traced).all(axis=1).mean() == 1.0


def test_testbench_only_needs_the_testbench():
    from fpga_dnn.errors import ConfigError

    # checked before anything is built: no design is needed to be refused
    for opts in (SimOptions(cocotb=False, emulation=False),
                 SimOptions(cocotb=True, emulation=False, tests=["test_backpressure", "test_framing"])):
        with pytest.raises(ConfigError, match=r"emulation = false .* needs cocotb = true and 'test_batch' in tests"):
            simulate_rtl(None, np.zeros((1, 1)), np.zeros((1, 1)), opts=opts)
    assert SimOptions(emulation=False, tests=["test_batch"]).check().tests == ["test_batch"]


def test_spec_is_the_contract(hw_digits_mlp):
    rtl = hw_digits_mlp["rtl"]
    spec = json.loads((rtl.out_dir / "spec.json").read_text())
    assert spec["input"]["shape"] == [64] and spec["output"]["shape"] == [10]
    assert spec["input"]["format"] == {"signed": False, "width": 5, "integer": 1}
    assert spec["latency"]["total_cycles"] == spec["latency"]["core_cycles"] + 2
    assert spec["latency"]["core_cycles"] == rtl.design.latency_cycles + 1  # da4ml's input register
    assert (rtl.out_dir / f"{spec['top_module']}.v").is_file()


def test_unrolled_design_records_what_the_generator_wrote(hw_digits_mlp):
    """design.json: the Design the later steps read; its pipeline stages are the core's (checked
    here against the Verilog's own register declarations, the only place that reads it back)."""
    import re

    from fpga_dnn.rtl.design import Design

    rtl = hw_digits_mlp["rtl"]
    d = Design.load(rtl.out_dir)
    assert d == rtl.axis and d.kind == "unrolled" and d.core == rtl.design.top
    assert d.latency == rtl.spec.total_latency
    assert d.interval == max(rtl.spec.input.beats_per_sample, rtl.spec.output.beats_per_sample)
    p = d.pipeline
    core = Path(p.source).read_text()
    regs = {int(k): int(w) + 1 for w, k in re.findall(r"reg \[(\d+):0\] stage(\d+)_inp;", core)}
    assert [s.in_bits for s in p.stages] == [regs[k] for k in range(len(regs))] and len(p.stages) >= 2
    assert f"output reg [{p.out_bits - 1}:0] model_out" in core
    assert all(Path(s.source).is_file() and Path(s.source) in d.sources for s in p.stages)
    assert [m.module for m in d.modules] == [s.module for s in p.stages]
    # what each source holds (read back here only): its modules; da4ml's lookup table names a default file
    assert set(d.source_info) == {str(s) for s in d.sources}
    for s in d.sources:
        assert d.source_info[str(s)].modules == tuple(re.findall(r"^\s*module\s+(\w+)", Path(s).read_text(), re.M)), s
    assert {f for i in d.source_info.values() for f in i.memfile_defaults} == {"whatever.mem"}


def test_convert_saves_the_interface_the_hls_overlay_reads(hw_digits_mlp, tmp_path):
    """The convert step's project folder carries the top function's interface as data; the HLS
    overlay made from the folder (as a later process would) is the one made from the graph."""
    import dataclasses

    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.hw.from_hls4ml import read_interface
    from fpga_dnn.hw.interface import HlsInterface
    from fpga_dnn.overlay import generate_overlay

    hm, spec = hw_digits_mlp["hls"], hw_digits_mlp["rtl"].spec
    folder = Path(hm.config.get_output_dir())
    saved = HlsInterface.load(folder)
    assert saved == dataclasses.replace(read_interface(hm), directory=folder)
    (inp,), (out,) = saved.inputs, saved.outputs
    assert (saved.io_type, saved.part, inp.shape, out.shape) == ("io_parallel", "xc7z020clg400-1", (64,), (10,))
    assert inp.fixed.format == spec.input.format == FixedFormat(False, 5, 1) and out.fixed.format == spec.output.format
    tops = [generate_overlay(d, "pynq-z2", tmp_path / f"o{k}", path="hls", spec=spec).files["hls_top"].read_text()
            for k, d in enumerate((folder, hm))]
    assert tops[0] == tops[1] and f"{saved.project}(x, y);" in tops[0]


def test_argmax_softmax_option_and_unsupported_layer(tmp_path, digits):
    from fpga_dnn import convert, csim, kerasenv
    from fpga_dnn.errors import UnsupportedLayerError
    from fpga_dnn.rtl.build import RtlOptions, build_rtl

    k = kerasenv.tf_keras()
    qk = kerasenv.qkeras()
    inp = k.Input((64,), name="x_in")
    h = qk.QDense(10, kernel_quantizer=qk.quantized_bits(6, 0, alpha=1),
                  bias_quantizer=qk.quantized_bits(6, 0, alpha=1), name="d")(inp)
    model = k.Model(inp, k.layers.Activation("softmax", name="sm")(h))
    conv = convert.convert(model, digits.x_test, output_dir=tmp_path / "hls")
    csim.compile_model(conv.hls_model)
    rtl = build_rtl(conv.hls_model, tmp_path / "rtl", opts=RtlOptions(softmax="argmax"), name="argmax_net")
    assert rtl.spec.output.shape == (1,) and rtl.traced.softmax == "argmax"
    # The argmax Verilog itself, in the Verilator emulation, against np.argmax of the logits the
    # 'logits' trace of the same graph computes (first index on ties), on every test sample plus
    # random points of the input grid.
    from fpga_dnn.rtl import trace_model_graph
    from fpga_dnn.simulate.emulator import compile_emulator

    grid = np.random.default_rng(4).integers(0, 32, size=(2000, 64)) / 16.0
    x = np.concatenate([digits.x_test, grid])
    logits = trace_model_graph(conv.hls_model, softmax="logits").predict(x)
    want = np.argmax(np.asarray(logits).reshape(len(x), -1), axis=1)
    got = np.asarray(compile_emulator(rtl.design).predict(x)).reshape(len(x))
    assert (got == want).mean() == 1.0, f"{int((got == want).sum())}/{len(x)} argmax indices equal"
    assert len(np.unique(want)) >= 3  # several classes picked: not a constant output
    inp = k.Input((8,), name="x_in")
    model = k.Model(inp, k.layers.Activation("softsign", name="ln")(k.layers.Dense(4, name="d")(inp)))
    conv = convert.convert(model, None, convert.ConvertOptions(input_precision="fixed<8,3>"),
                           output_dir=tmp_path / "hls2")
    with pytest.raises(UnsupportedLayerError, match="'ln'.*supported"):
        build_rtl(conv.hls_model, tmp_path / "rtl2", name="ln_net")
