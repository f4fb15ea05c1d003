import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fpga_dnn.errors import ConfigError, UnknownNameError
from fpga_dnn.flow import FlowConfig, run_flow

ROOT = Path(__file__).resolve().parent.parent


def test_demo_config_parses_with_documented_defaults():
    cfg = FlowConfig.load(ROOT / "fpga_dnn" / "configs" / "demo.toml")
    assert cfg.steps == ["train", "convert", "csim", "rtl", "simulate", "estimate", "overlay", "deploy"]
    assert cfg.quant.weight_bits == 6 and cfg.rtl.stream_bits == 64 and cfg.board == "pynq-z2"
    assert cfg.model.zoo == "digits_mlp" and cfg.model.framework == "qkeras"
    assert cfg.target_board() == "pynq-z2" and cfg.convert_options().part == "xc7z020clg400-1"


@pytest.mark.parametrize("raw, err, match", [
    ({"flow": {"steps": ["csim", "train"]}}, ConfigError, "flow order"),
    ({"flow": {"steps": ["train", "synthesize"]}}, UnknownNameError, "unknown step 'synthesize'"),
    ({"modle": {}}, ConfigError, r"unknown section\(s\) \['modle'\]"),
    ({"train": {"epoch": 3}}, ConfigError, r"unknown key\(s\) \['epoch'\] in \[train\]"),
    ({"model": {"zoo": "vgg"}}, UnknownNameError, "unknown model 'vgg'"),
    ({"model": {"file": "m.h5"}, "flow": {"steps": ["convert"]}}, ConfigError, "needs data="),
    ({"convert": {"backend": "Quartus"}}, UnknownNameError, "backend"),
    ({"flow": {"steps": ["train", "convert", "csim", "simulate"]}}, ConfigError, "add 'rtl'"),
    ({"overlay": {"board": "zcu104"}}, UnknownNameError, "unknown board 'zcu104'"),
    ({"rtl": {"stream_bits": 12}}, ConfigError, "stream_bits"),
    # the testbench alone, without the test that streams the samples, checks none of them
    ({"simulate": {"emulation": False, "tests": ["test_framing", "test_latency_throughput"]}}, ConfigError,
     r"^\[simulate\] emulation = false checks the samples in the testbench only: it needs cocotb = true and "
     r"'test_batch' in tests \(or set emulation = true\)$"),
    ({"simulate": {"tests": ["test_batch", "test_bubbles"]}}, UnknownNameError,
     "unknown \\[simulate\\] test 'test_bubbles'; known: test_backpressure, test_batch"),
    ({"compress": {"techniques": ["prune"], "sparsity": 1.0}}, ConfigError, "sparsity"),
    ({"compress": {"techniques": ["distil"]}}, UnknownNameError, "unknown compression technique 'distil'"),
    ({"model": {"file": "m.h5", "data": "d.npz"}, "flow": {"steps": ["compress", "convert"]},
      "compress": {"techniques": ["prune"]}}, ConfigError, "train_data"),
])
def test_bad_flow_files(raw, err, match):
    with pytest.raises(err, match=match):
        FlowConfig.from_dict(raw)


def test_malformed_toml(tmp_path):
    p = tmp_path / "f.toml"
    p.write_text("[flow\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        FlowConfig.load(p)


@pytest.mark.slow
def test_flow_with_users_model_file(digits_mlp_qkeras, tmp_path):
    """A user's own saved model + data file goes through convert and csim, bit-exact."""
    res, _ = digits_mlp_qkeras
    p = tmp_path / "user.toml"
    p.write_text(f'[flow]\nname = "user"\nsteps = ["convert", "csim"]\n'
                 f'[model]\nfile = "{res.model_path}"\ndata = "{res.data_path}"\n'
                 f'[convert]\nio_type = "io_stream"\n')
    rep = run_flow(FlowConfig.load(p), tmp_path / "out")
    assert rep.values["bit_exact"] == 1.0 and rep.values["bit_exact_samples"] == "450/450"
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["csim_accuracy"] == rep.values["csim_accuracy"] >= 0.95
    assert "| C-sim acc |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_cli_flow_end_to_end_and_train_cache(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text('[flow]\nname = "small"\nsteps = ["train", "convert", "csim"]\n[model]\nzoo = "digits_mlp"\n'
                 '[quant]\nweight_bits = 6\nactivation_bits = 6\n[train]\nepochs = 8\nfloat_baseline = false\n')
    cmd = [sys.executable, "-m", "fpga_dnn", "flow", str(p), "--build-dir", str(tmp_path / "b")]
    env = {k: v for k, v in os.environ.items() if k != "FPGA_DNN_QUIET"}  # we read the progress lines
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert re.search(r"bit-exact \(Keras = C-sim\)\s+1\.0000", first.stdout), first.stdout
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["bits"] == "w6/a6" and report["bit_exact"] == 1.0
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0 and "inputs unchanged, reusing" in second.stderr
    again = json.loads((tmp_path / "b" / "report.json").read_text())
    assert again["qat_accuracy"] == report["qat_accuracy"]


@pytest.mark.slow
def test_flow_compress_step_to_rtl_emulation_and_cache(tmp_path):
    """Compression is a flow step: the pruned model goes on through convert, C-sim and the RTL
    emulation, bit-exact at each; a second run reuses the compressed model."""
    p = tmp_path / "c.toml"
    p.write_text('[flow]\nname = "c"\nsteps = ["train", "compress", "convert", "csim", "rtl", "simulate"]\n'
                 '[model]\nzoo = "digits_mlp"\n[quant]\nweight_bits = 6\nactivation_bits = 6\n'
                 '[train]\nepochs = 20\nfloat_baseline = false\n'
                 '[compress]\ntechniques = ["prune"]\nsparsity = 0.8\nepochs = 10\n'
                 '[simulate]\ncocotb = false\n')
    rep = run_flow(FlowConfig.load(p), tmp_path / "b")
    v = rep.values
    assert v["compress"] == "prune (sparsity 80%)" and v["compressed_accuracy"] >= 0.9
    assert v["bit_exact"] == 1.0 and v["rtl_exact_csim"] == 1.0 and v["rtl_exact_keras"] == 1.0
    assert v["rtl_est_luts"] < 15000  # the unpruned 6-bit model is ~27k by the same estimate
    saved = json.loads((tmp_path / "b" / "compress" / "compress.json").read_text())
    assert saved[0]["sparsity"] >= 0.79
    cfg = FlowConfig.load(p)
    cfg.steps = ["train", "compress", "convert", "csim"]
    again = run_flow(cfg, tmp_path / "b")
    assert again.values["compressed_accuracy"] == v["compressed_accuracy"]


# ---------------------------------------------------------------------------------------------
# The flow's gates, shown closing: a step that finds a mismatch stops the flow, says why, and
# leaves the report; the steps after it do not run.
# ---------------------------------------------------------------------------------------------

def _tiny_config(tiny_model_files, steps, **sections):
    model, data = tiny_model_files
    return FlowConfig.from_dict({"flow": {"name": "gate", "steps": steps},
                                 "model": {"file": str(model), "data": str(data)}, **sections})


def test_csim_mismatch_stops_the_flow(tiny_model_files, tmp_path):
    """relu1 narrowed to 2 bits in hls4ml only: C-sim differs from Keras, the flow raises before
    generating RTL and the report names the sample and the layer."""
    from fpga_dnn.errors import MismatchError

    cfg = _tiny_config(tiny_model_files, ["convert", "csim", "rtl"],
                       convert={"precision_overrides": {"relu1": {"result": "ufixed<2,1,RND_CONV,SAT>"}}})
    with pytest.raises(MismatchError, match=r"C-sim is not bit-exact with Keras \(test split 0\.\d+, probe set 0\.\d+\); first mismatch \(test split\): .*relu1"):
        run_flow(cfg, tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["bit_exact"] < 1.0 and "relu1" in saved["first_mismatch"]
    assert not (tmp_path / "b" / "rtl").exists() and "rtl" not in saved.get("step_seconds", {})


@pytest.mark.slow
def test_rtl_failure_stops_the_flow(tiny_model_files, tmp_path, monkeypatch):
    """The RTL emulation disagrees with the C-sim reference on one sample (the reference is
    altered after C-sim has passed): the simulate step raises, writes the failure into the
    report, and the estimate step after it never runs."""
    import fpga_dnn.csim
    from fpga_dnn.errors import MismatchError

    real = fpga_dnn.csim.run_csim

    def csim_with_one_changed_output(*args, **kwargs):
        rep = real(*args, **kwargs)
        rep.outputs = rep.outputs.copy()
        rep.outputs[7, 0] += 2.0 ** -8
        return rep

    monkeypatch.setattr(fpga_dnn.csim, "run_csim", csim_with_one_changed_output)
    cfg = _tiny_config(tiny_model_files, ["convert", "csim", "rtl", "simulate", "estimate"],
                       simulate={"cocotb": False})
    with pytest.raises(MismatchError, match=r"RTL simulation failed: RTL emulation equals the C-sim outputs on 0\.9950 of the test samples"):
        run_flow(cfg, tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["bit_exact"] == 1.0 and saved["rtl_exact_csim"] == 0.995 and saved["rtl_exact_keras"] == 1.0
    assert "0.9950 of the test samples" in saved["simulate_failures"] and "lut" not in saved


def test_sim_report_failures_name_each_gate():
    """What the simulate gate reacts to: emulation mismatch, a failed testbench test, and a measured
    latency other than the reported one (a core deeper than its spec)."""
    from fpga_dnn.simulate.check import SimReport

    ok = SimReport(n_samples=10, emu_exact_csim=1.0, emu_exact_keras=1.0, emu_samples_per_s=1.0, emu_build_s=None,
                   tb={"test_batch": {"passed": True}}, latency_reported=6, latency_measured=[6, 6, 6, 6])
    assert ok.failures() == [] and ok.tb_passed
    late = SimReport(**{**ok.__dict__, "latency_measured": [7, 7, 7, 7]})
    assert late.failures() == ["measured latency [7, 7, 7, 7] != reported 6"]
    bad = SimReport(**{**ok.__dict__, "emu_exact_csim": 0.9, "tb": {"test_batch": {"passed": False, "message": "m"}}})
    assert bad.failures() == ["RTL emulation equals the C-sim outputs on 0.9000 of the test samples", "test_batch: m"]
    assert bad.tb_passed is False


def test_stream_check_failures_name_each_gate():
    """The streamed design's gate (the flow's third MismatchError): each comparison that is not
    1.0, and a wrong TLAST framing, is named; a clean check has none."""
    from fpga_dnn.simulate.stream_emulator import StreamCheck

    ok = StreamCheck(n_samples=200, exact_csim=1.0, exact_keras=1.0, exact_reference=1.0, cycles_per_frame=10.0,
                     predicted_cycles_per_frame=10, first_latency=12, fifo_max={}, tlast_ok=True, samples_per_s=1.0,
                     build_seconds=None, backpressure_exact=1.0)
    assert ok.failures() == []
    assert StreamCheck(**{**ok.__dict__, "backpressure_exact": None}).failures() == []  # not run: no failure
    bad = StreamCheck(**{**ok.__dict__, "exact_csim": 0.995, "exact_reference": 0.5, "backpressure_exact": 0.95,
                         "tlast_ok": False})
    assert bad.failures() == ["streamed RTL equals C-sim on 0.9950 of 200 samples",
                              "streamed RTL equals the reference on 0.5000 of 200 samples",
                              "streamed RTL equals C-sim under backpressure on 0.9500 of 200 samples",
                              "tlast did not mark each result's last beat"]
    # the probe set: its fraction and count, and the first departing sample with its layer
    probes = StreamCheck(**{**ok.__dict__, "probe_samples": 2000, "probe_exact": 0.999,
                            "first_mismatch": "probe sample 17: first departing layer 'c2'"})
    assert probes.probe_exact_samples == "1998/2000" and ok.probe_exact_samples is None
    assert probes.failures() == ["streamed RTL equals C-sim on 0.9990 of 2000 probe inputs",
                                 "first mismatch: probe sample 17: first departing layer 'c2'"]


@pytest.mark.slow
def test_jet_mlp_signed_inputs_convert_csim_rtl_simulate(tmp_path):
    """The README's second zoo model (16-64-32-32-5, signed standardised inputs) through convert,
    C-sim, RTL and the Verilator emulation, bit-exact at each step. 3-bit and 3 epochs keep the
    adder graph and the build small; the cocotb testbench with signed inputs runs in
    tests/test_cli.py (the tiny model's `sim` verb)."""
    cfg = FlowConfig.from_dict({
        "flow": {"name": "jet", "steps": ["train", "convert", "csim", "rtl", "simulate"]},
        "model": {"zoo": "jet_mlp"}, "quant": {"weight_bits": 3, "activation_bits": 3},
        "train": {"epochs": 3, "float_baseline": False}, "simulate": {"cocotb": False}})
    v = run_flow(cfg, tmp_path / "b").values
    assert v["input_format"].startswith("fixed<")  # signed: the digits models only have ufixed inputs
    n = int(v["bit_exact_samples"].split("/")[1])
    assert v["bit_exact_samples"] == f"{n}/{n}" and n >= 1000
    assert v["bit_exact"] == v["rtl_exact_csim"] == v["rtl_exact_keras"] == 1.0
    assert v["csim_accuracy"] > 0.5  # five classes: well above chance after 3 epochs
