import subprocess
import sys
from pathlib import Path

import pytest

from fpga_dnn.cli import build_parser


def test_help_lists_every_verb():
    r = subprocess.run([sys.executable, "-m", "fpga_dnn", "--help"], capture_output=True, text=True, check=True)
    for verb in ("train", "convert", "csim", "flow", "rtl", "sim", "estimate", "overlay", "run", "verify", "bundle", "compress",
                 "pareto", "faults", "model-faults", "robustness"):
        assert verb in r.stdout


@pytest.mark.parametrize("verb, option", [("train", "--weight-bits"), ("convert", "--io-type"),
                                          ("csim", "--reuse-factor"), ("flow", "config"),
                                          ("rtl", "--stream-bits"), ("sim", "--no-cocotb"),
                                          ("estimate", "--target-board"), ("overlay", "--vivado"),
                                          ("run", "--sim"), ("verify", "--design"), ("bundle", "bundle"),
                                          ("compress", "--techniques"), ("pareto", "--yosys"),
                                          ("faults", "--injections")])
def test_each_verb_has_its_own_help(verb, option):
    r = subprocess.run([sys.executable, "-m", "fpga_dnn", verb, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and option in r.stdout and f"fpga-dnn {verb}" in r.stdout


def test_faults_refuses_a_bad_tmr_spec_before_any_work(capsys):
    from fpga_dnn.cli import main

    assert main(["faults", "digits_mlp", "--tmr", "half"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tmr 'half' is not understood; accepted: none, all, msb:N" in err[0]


def test_parser_defaults():
    a = build_parser().parse_args(["csim", "digits_mlp"])
    assert (a.framework, a.io_type, a.board, a.weight_bits) == ("qkeras", "io_parallel", None, 8)  # None: the flow target (pynq-z2)


# ---------------------------------------------------------------------------------------------
# Every hardware verb end to end, once, on the tiny user model (tests/conftest.py): the README's
# commands, with their reports checked. In-process (fpga_dnn.cli.main), sharing the session's
# build cache: the RTL is the same for rtl/sim/estimate/overlay, so Verilator builds it once.
# ---------------------------------------------------------------------------------------------

def _verb(*argv) -> int:
    from fpga_dnn.cli import main

    return main([str(a) for a in argv])


def _report(folder) -> dict:
    import json

    return json.loads((folder / "report.json").read_text())


@pytest.fixture(scope="module")
def tiny_cli(tiny_model_files, tmp_path_factory):
    model, data = tiny_model_files
    return model, data, tmp_path_factory.mktemp("cli")


@pytest.mark.slow
def test_rtl_verb(tiny_cli):
    from fpga_dnn.runtime.spec import Spec

    model, data, out = tiny_cli
    assert _verb("rtl", model, "--data", data, "--build-dir", out / "rtl", "--stream-bits", 32) == 0
    r = _report(out / "rtl")
    assert r["bit_exact"] == 1.0 and r["input_format"] == "fixed<6,2>"  # signed inputs
    spec = Spec.load(out / "rtl" / "rtl")
    assert spec.input.stream_bits == 32 and spec.total_latency == r["rtl_latency_cycles"] > 0
    assert spec.input.shape == (8,) and spec.output.shape == (3,)


@pytest.mark.slow
def test_sim_verb(tiny_cli):
    """Emulation and the cocotb AXI-Stream testbench: every test sample through the shell."""
    model, data, out = tiny_cli
    assert _verb("sim", model, "--data", data, "--build-dir", out / "sim") == 0
    r = _report(out / "sim")
    assert r["rtl_exact_csim"] == r["rtl_exact_keras"] == 1.0
    exact, total = r["tb_exact"].split("/")   # the test split (200) and the probe set
    assert r["tb_passed"] == "all" and exact == total and int(total) >= 200
    assert r["latency_measured"] == r["rtl_latency_cycles"]
    assert r["rtl_probe_exact"] == 1.0 and r["rtl_probe_exact_samples"] == r["probe_exact_samples"]


@pytest.mark.slow
def test_sim_verb_on_a_streaming_design(tiny_cli):
    """The streaming simulate step runs C-sim's probe set (random inputs on the input grid)
    through the streamed RTL too, as the unrolled one does: the report gives its fraction and
    count beside the test split's, and the measured cycles/frame beside the prediction."""
    model, data, out = tiny_cli
    assert _verb("sim", model, "--data", data, "--build-dir", out / "sims", "--architecture", "streaming") == 0
    r = _report(out / "sims")
    n = int(r["probe_exact_samples"].split("/")[1])
    assert n >= 2000 and r["rtl_architecture"] == "streaming"
    assert r["rtl_exact_csim"] == r["rtl_exact_keras"] == r["rtl_probe_exact"] == 1.0
    assert r["rtl_probe_exact_samples"] == f"{n}/{n}"
    assert r["cycles_per_frame_measured"] > 0 and r["cycles_per_frame_predicted"] > 0


@pytest.mark.slow
def test_estimate_verb_runs_split_yosys_on_the_generated_core(tiny_cli):
    """The flow's estimate step on a real generated core: yosys counts and the fit verdict, and the
    split method really splits it (a da4ml pipeline), not a silent fall-back to one flat run.
    One board (one yosys family) keeps it cheap; both families are covered in test_estimate.py."""
    model, data, out = tiny_cli
    assert _verb("estimate", model, "--data", data, "--build-dir", out / "est", "--target-board", "pynq-z2") == 0
    r = _report(out / "est")
    assert r["lut"] > 0 and r["ff"] > 0 and r["dsp"] == 0  # da4ml: adder graphs, no DSPs
    assert r["fit_pynq-z2"].startswith("fits pynq-z2: largest use LUT") and "fit_ultra96" not in r
    method, pieces = r["estimate_method"].split(", ")
    assert method == "split" and int(pieces.split()[0]) >= 2, r["estimate_method"]


@pytest.mark.slow
def test_overlay_verb_on_the_generated_core_then_bundle_verb(tiny_cli, monkeypatch, tmp_path):
    """The flow's overlay step on a real generated core, Vivado played by the recording double:
    the scripts build the block design around that core's ports; the bundle then gets what Vivado
    would export (the fake board's .bit/.hwh for this spec) and `fpga-dnn bundle` accepts it, and
    rejects it once the .hwh is changed."""
    from fpga_dnn.overlay import finalize_bundle
    from test_overlay import verilog_ports  # the tests' own reader of a top's ports (the toolchain reads the Design)
    from fpga_dnn.runtime.fake.hwh import OverlayDesign
    from fpga_dnn.runtime.spec import Spec
    from test_overlay import STUB_TCL, _check_block_design, run_stub

    model, data, out = tiny_cli
    monkeypatch.delenv("FPGA_DNN_VIVADO", raising=False)
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    assert _verb("overlay", model, "--data", data, "--build-dir", out / "ov", "--target-board", "ultra96") == 0
    r = _report(out / "ov")
    scripts_dir = out / "ov" / "overlay" / "ultra96-rtl"
    assert "run_vivado.sh" in r["overlay"]
    # the Ultra96-V2's bundle is for Avnet's PYNQ v3.0.1 image, built with Vivado 2022.1 (board file)
    assert "Targets Vivado 2022.1" in (scripts_dir / "run_vivado.sh").read_text()
    spec = Spec.load(scripts_dir / "bundle")   # the bundle is built inside the overlay folder
    ports = verilog_ports(next(scripts_dir.rglob(f"{spec.top_module}.v")).read_text(), spec.top_module)
    stub = tmp_path / "stub.tcl"
    stub.write_text(STUB_TCL)
    rc, log, runs = run_stub(stub, scripts_dir / "build_overlay.tcl", bytes_s_axis=ports["s_axis_tdata"][1] // 8,
                             bytes_m_axis=ports["m_axis_tdata"][1] // 8)
    assert rc == 0, log
    calls = runs["build_overlay.tcl"]
    _check_block_design(calls, "ultra96", spec, f"fpga-dnn.org:user:{spec.top_module}", "clk", "aresetn")

    bundle = scripts_dir / "bundle"
    for f in bundle.glob("*.bit"):
        f.unlink()  # the double's placeholder files: replace them by a real-format handoff
    OverlayDesign.for_spec(spec).write(bundle, spec.name)
    finalize_bundle(bundle)
    assert _verb("bundle", bundle) == 0
    hwh = bundle / f"{spec.name}.hwh"
    hwh.write_text(hwh.read_text().replace("<", " <", 1))
    assert _verb("bundle", bundle) == 1


@pytest.mark.slow
def test_overlay_verb_on_a_streaming_design(tiny_cli, tmp_path, monkeypatch):
    """The flow's overlay step on the streaming generator's design (the tiny model, folded), Vivado
    played by the recording double: the overlay reads the streaming Design (its AXI-Stream ports,
    tkeep too, are the unrolled top's), copies the fd_* library, the stitched top and the weight
    ROMs' memory files, packages them and builds the same block design."""
    from fpga_dnn.rtl.design import Design
    from fpga_dnn.rtl.shell import axis_ports
    from fpga_dnn.runtime.spec import Spec
    from test_overlay import STUB_TCL, _check_block_design, calls_of, run_stub, tcl_list, verilog_ports

    model, data, out = tiny_cli
    monkeypatch.delenv("FPGA_DNN_VIVADO", raising=False)
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    assert _verb("overlay", model, "--data", data, "--build-dir", out / "ovs", "--target-board", "pynq-z2",
                 "--architecture", "streaming") == 0
    design = Design.load(out / "ovs" / "rtl")
    assert design.kind == "streaming" and design.data_files
    top = (design.directory / f"{design.top}.v").read_text()
    assert verilog_ports(top, design.top) == dict(design.ports)
    assert axis_ports(design.spec).items() <= design.ports.items()
    scripts_dir = out / "ovs" / "overlay" / "pynq-z2-rtl"
    spec = Spec.load(scripts_dir / "bundle")
    assert spec.top_module == design.top and spec.extra["architecture"] == "streaming"
    stub = tmp_path / "stub.tcl"
    stub.write_text(STUB_TCL)
    rc, log, runs = run_stub(stub, scripts_dir / "build_overlay.tcl", bytes_s_axis=design.ports["s_axis_tdata"][1] // 8,
                             bytes_m_axis=design.ports["m_axis_tdata"][1] // 8)
    assert rc == 0, log
    calls = runs["build_overlay.tcl"]
    _check_block_design(calls, "pynq-z2", spec, f"fpga-dnn.org:user:{design.top}", "clk", "aresetn")
    sources, tables = (tcl_list(c[1]) for c in calls_of(calls, "add_files")[:2])
    assert [Path(f).name for f in sources] == [Path(f).name for f in design.sources]
    assert sorted(Path(f).name for f in tables) == sorted(Path(f).name for f in design.data_files)
    assert f"IP synthesis files include the {len(design.data_files)} $readmemh table(s)" in log


@pytest.mark.slow
def test_compress_verb(tiny_cli):
    model, data, out = tiny_cli
    assert _verb("compress", model, "--data", data, "--train-data", data, "--techniques", "prune",
                 "--sparsity", 0.5, "--epochs-finetune", 5, "--build-dir", out / "compress") == 0
    r = _report(out / "compress")
    assert r["compress"] == "prune (sparsity 50%)" and r["bit_exact"] == 1.0
    import json

    saved = json.loads((out / "compress" / "compress" / "compress.json").read_text())
    assert saved[0]["technique"] == "prune" and saved[0]["sparsity"] >= 0.49


@pytest.mark.slow
def test_pareto_verb_quick(pareto_quick):
    """The quick sweep through the CLI (4 recipes; its folder is shared with tests/test_pareto.py,
    which pins the yosys and RTL-emulation columns on a smaller sweep). Exit 0 if a headline model
    was found, 1 if not: both are a completed sweep."""
    import json

    pareto_quick_dir, epochs = pareto_quick
    rc = _verb("pareto", "digits_mlp", "--quick", "--yosys", "none", "--epochs", epochs, "--out", pareto_quick_dir)
    data = json.loads((pareto_quick_dir / "pareto.json").read_text())
    assert rc == (0 if data["headline"]["found"] else 1)
    assert [p["name"] for p in data["points"]] == ["qat_w8", "qat_w6", "prune50", "prune75"]
    assert all(p["bit_exact"] == 1.0 for p in data["points"])
    assert (pareto_quick_dir / "pareto.md").is_file() and (pareto_quick_dir / "pareto.png").is_file()
