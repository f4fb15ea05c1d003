"""The runtime in the toolchain environment (numpy 2, no pynq): the emulate backend, the DMA and
memory models, the handoff generator, bundle checks, the runner and the model bridge.
(The pynq paths are tested in tests/board with the real pynq package.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.errors import ConfigError, DataError, DeviceError, DmaError, DmaTimeoutError, UnknownNameError
from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.bundle import Bundle, BundleError, check_bundle, read_bit_header
from fpga_dnn.runtime.fake.dma import (CR_RESET_VALUE, SR_DEC_ERR, SR_ERR_IRQ, SR_HALTED, SR_IDLE, SR_INT_ERR,
                                       SR_IOC_IRQ, SR_SLV_ERR, AxiDmaModel)
from fpga_dnn.runtime.fake.hwh import (PS_FAMILIES, OverlayDesign, clock_divisors, read_dma_parameters,
                                       write_sim_bundle)
from fpga_dnn.runtime.fake.memory import FakeMemory
from fpga_dnn.runtime.fake.models import FaultyModel, Float32Model, InstantModel, RecordingModel, reference_fn
from fpga_dnn.runtime.packing import from_fixed, int_range, to_fixed
from fpga_dnn.runtime.spec import Spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def spec():
    return Spec.create("digits_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)


def make_bundle(directory: Path, spec: Spec, with_bitstream: bool = True, **design) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if with_bitstream:
        OverlayDesign.for_spec(spec, **design).write(directory, spec.name)
        spec = spec.with_checksums(directory, [f"{spec.name}.bit", f"{spec.name}.hwh"])
    spec.save(directory)
    return directory


def expected(spec, x):
    return from_fixed(reference_fn(spec)(to_fixed(np.asarray(x), spec.input.format)), spec.output.format)


# ------------------------------------------------------------------ import weight

def test_runtime_import_pulls_in_no_heavy_package():
    code = ("import sys\nimport fpga_dnn.runtime, fpga_dnn.runtime.accelerator, fpga_dnn.runtime.run, "
            "fpga_dnn.runtime.bundle, fpga_dnn.runtime.backends, fpga_dnn.runtime.bridge, "
            "fpga_dnn.runtime.fake.models, fpga_dnn.runtime.fake.dma, fpga_dnn.runtime.fake.hwh\n"
            "print([m for m in ('tensorflow', 'keras', 'hls4ml', 'da4ml', 'qkeras', 'pynq') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ emulate backend

def test_emulate_predict_matches_the_reference_and_splits(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec, sg_length_width=11)  # 2047-byte transfers
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate") as acc:
        assert acc.samples_per_transfer == 31 and acc.backend.max_transfer_bytes == 2047
        x = acc.random_inputs(100)
        np.testing.assert_array_equal(acc.predict(x), expected(spec, x))
        assert acc.backend.transfers == 4
        np.testing.assert_array_equal(acc.predict(x[:3]), expected(spec, x[:3]))
        # two buffer pairs (transfers overlap host work), sized for 31 samples, reused
        assert acc.backend.allocations == 4
        np.testing.assert_array_equal(acc.predict(x), expected(spec, x))
        assert acc.backend.allocations == 4 and acc.backend.transfers == 9


def test_emulate_works_without_a_bitstream(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec, with_bitstream=False)
    assert Bundle.load(bundle).bitfile is None
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate", model=lambda q: reference_fn(spec)(q)) as acc:
        x = acc.random_inputs(5)
        np.testing.assert_array_equal(acc.predict(x), expected(spec, x))
    with pytest.raises(BundleError, match="no bitstream"):
        Accelerator.open(bundle, allow_unsigned=True, backend="pynq")


def test_sim_and_pynq_backends_need_pynq_here(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec)
    with pytest.raises(DeviceError, match="needs the pynq package"):
        Accelerator.open(bundle, allow_unsigned=True, backend="sim")
    with pytest.raises(DeviceError, match="needs the pynq package"):
        Accelerator.open(bundle, allow_unsigned=True, backend="pynq")
    with pytest.raises(UnknownNameError, match="known: emulate, pynq, sim"):
        Accelerator.open(bundle, allow_unsigned=True, backend="fpga")


def test_emulate_errors(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec)
    stuck = FaultyModel(InstantModel(spec), "stuck", frames={0})
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate", model=stuck) as acc:
        x = acc.random_inputs(2)
        with pytest.raises(DmaTimeoutError):
            acc.predict(x)
        np.testing.assert_array_equal(acc.predict(x), expected(spec, x))
    short = FaultyModel(InstantModel(spec), "short")
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate", model=short) as acc:
        with pytest.raises(DmaError, match="44 bytes, 48 expected"):
            acc.predict(acc.random_inputs(2))
    bad = lambda q: np.full((len(q), 10), 1 << 20)  # noqa: E731 - outside fixed<16,6>
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate", model=bad) as acc:
        with pytest.raises(DataError, match="range"):
            acc.predict(acc.random_inputs(1))


def test_input_policies(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec)
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate", overflow="saturate", rounding="floor") as acc:
        x = np.full((1, 64), 40.7)
        np.testing.assert_array_equal(acc.predict(x), expected(spec, np.full((1, 64), 31.0)))
        with pytest.raises(DataError, match="outside the range"):
            acc.predict(x, overflow="raise")
    with pytest.raises(DataError, match="unknown rounding"):
        Accelerator.open(bundle, allow_unsigned=True, backend="emulate", rounding="up")
    with Accelerator.open(bundle, allow_unsigned=True, backend="emulate") as acc:
        with pytest.raises(DataError, match=r"x\[None\]"):
            acc.predict(np.zeros(64))
        assert acc.predict(np.zeros((3, 64), dtype=np.int32)).shape == (3, 10)
        assert acc.predict(np.ones((2, 64), dtype=bool)).shape == (2, 10)


def test_benchmark_on_emulate(tmp_path, spec):
    with Accelerator.open(make_bundle(tmp_path / "b", spec), allow_unsigned=True, backend="emulate") as acc:
        r = acc.benchmark(n=50, batch=10)
        assert r["calls"] == 5 and r["accelerator_us_per_call"] > 0 and r["host_us_per_call"] > 0
        with pytest.raises(DataError):
            acc.benchmark(n=0)


# ------------------------------------------------------------------ the DMA register model

def _dma(model=None, **kw):
    mem = FakeMemory()
    return mem, AxiDmaModel(mem, model or (lambda f: f[::-1].copy()), **kw)


def test_dma_reset_state_start_and_a_transfer():
    mem, dma = _dma()
    assert (dma.read(0x00), dma.read(0x04), dma.read(0x34)) == (CR_RESET_VALUE, SR_HALTED, SR_HALTED)
    src, dst = mem.alloc(64), mem.alloc(64)
    src.host[:8] = np.arange(8)
    mem.flush(src.id, 0, 8)
    dma.write(0x58, 8)  # halted: ignored
    assert "halted" in dma.violations[-1] and not dma.transfers
    dma.write(0x00, 1)
    dma.write(0x30, 1)
    assert dma.read(0x04) == 0 and dma.read(0x34) == 0  # running, not idle before the first transfer
    dma.write(0x48, dst.address)
    dma.write(0x58, 64)  # S2MM armed first: waits for the stream
    assert not dma.read(0x34) & SR_IDLE
    dma.write(0x18, src.address)
    dma.write(0x28, 8)
    assert dma.read(0x04) & (SR_IDLE | SR_IOC_IRQ) == SR_IDLE | SR_IOC_IRQ
    assert dma.read(0x34) & SR_IDLE and dma.read(0x58) == 8  # frame shorter than LENGTH: 8 bytes received
    mem.invalidate(dst.id, 0, 8)
    assert dst.host[:8].tolist() == list(range(7, -1, -1))
    dma.write(0x34, SR_IOC_IRQ)  # write-1-to-clear
    assert not dma.read(0x34) & SR_IOC_IRQ and dma.read(0x34) & SR_IDLE


def test_dma_errors_need_a_reset():
    mem, dma = _dma()
    for ch in (0x00, 0x30):
        dma.write(ch, 1)
    dma.write(0x18, 0x1000)  # nothing allocated there
    dma.write(0x28, 16)
    sr = dma.read(0x04)
    assert sr & (SR_DEC_ERR | SR_HALTED | SR_ERR_IRQ) == SR_DEC_ERR | SR_HALTED | SR_ERR_IRQ
    assert not dma.read(0x00) & 1  # RS cleared
    dma.write(0x00, 1)
    assert dma.read(0x04) & SR_HALTED  # still halted: errors clear only on reset
    dma.write(0x30, 0x4)  # reset from either channel resets both
    assert (dma.read(0x04), dma.read(0x34), dma.read(0x00)) == (SR_HALTED, SR_HALTED, CR_RESET_VALUE)
    dma.write(0x00, 1)
    assert dma.read(0x04) == 0
    dma.write(0x28, 0)
    assert dma.read(0x04) & SR_INT_ERR  # length 0


def test_dma_injected_errors_long_frames_and_wrapping_lengths():
    mem, dma = _dma(model=lambda f: np.zeros(100, np.uint8), length_width=8)
    src, dst = mem.alloc(256), mem.alloc(256)
    for ch in (0x00, 0x30):
        dma.write(ch, 1)
    dma.inject_error("S2MM", SR_SLV_ERR)
    dma.write(0x48, dst.address)
    dma.write(0x58, 64)
    assert dma.read(0x34) & SR_SLV_ERR
    dma.write(0x00, 0x4)
    for ch in (0x00, 0x30):
        dma.write(ch, 1)
    dma.write(0x48, dst.address)
    dma.write(0x58, 64)
    dma.write(0x18, src.address)
    dma.write(0x28, 300)  # wraps to 300 & 0xFF = 44 in an 8-bit LENGTH field
    assert dma.transfers[-1].length == 44 and "wrapped" in " ".join(dma.violations)
    assert dma.read(0x34) & SR_INT_ERR  # the 100-byte frame does not fit the 64-byte S2MM buffer
    with pytest.raises(ValueError):
        dma.inject_error("MM2S", 0x8)


def test_dma_unaligned_address_without_dre():
    mem, dma = _dma(mm2s_bytes=8)
    src = mem.alloc(64)
    dma.write(0x00, 1)
    dma.write(0x18, src.address + 4)
    dma.write(0x28, 8)
    assert dma.read(0x04) & SR_INT_ERR and "aligned" in dma.violations[-1]


def test_memory_cache_model_and_no_address_reuse():
    mem = FakeMemory(capacity=3 * 4096)
    a = mem.alloc(100)
    a.host[:4] = 9
    assert mem.dma_read(a.address, 4).tolist() == [0, 0, 0, 0]  # not flushed yet
    mem.flush(a.id, 0, 4)
    assert mem.dma_read(a.address, 4).tolist() == [9] * 4
    mem.free(a.id)
    b = mem.alloc(100)
    assert b.address != a.address and "FREED" in mem.describe(a.address)
    assert mem.dma_read(a.address, 4) is None
    with pytest.raises(RuntimeError, match="freed"):
        mem.flush(a.id, 0, 4)
    with pytest.raises(MemoryError):
        mem.alloc(3 * 4096)
    lax = FakeMemory(strict=False)
    c = lax.alloc(10)
    assert lax.dma_write(c.address + 8192, np.ones(4, np.uint8)) is True and lax.violations


# ------------------------------------------------------------------ handoff, bitstream, bundle

def test_handoff_xml_and_parameters(tmp_path):
    d = OverlayDesign(board="ultra96", sg_length_width=12, in_stream_bits=32, out_stream_bits=64,
                      hierarchy="hier_0", clock_mhz=150, addr_width=64)
    bit, hwh = d.write(tmp_path, "x")
    root = ET.parse(hwh).getroot()
    assert root.find("SYSTEMINFO").get("ARCH") == "zynquplus"
    (p,) = read_dma_parameters(hwh)
    assert p["fullpath"] == "hier_0/axi_dma_0" and p["vlnv"] == "xilinx.com:ip:axi_dma:7.1"
    assert (p["c_sg_length_width"], p["c_m_axis_mm2s_tdata_width"], p["c_s_axis_s2mm_tdata_width"],
            p["c_addr_width"], p["c_include_sg"]) == ("12", "32", "64", "64", "0")
    assert d.max_transfer_bytes == 4095
    hdr = read_bit_header(bit)
    assert hdr["part"] == "xczu3eg-sbva484-1-e" and hdr["design"] == "fpga_dnn_overlay_wrapper"
    names = {m.get("INSTANCE") for m in root.iter("MODULE")}
    assert names == {"zynq_ultra_ps_e_0", "axi_dma_0", "fpga_dnn_axis_0"}
    with pytest.raises(ConfigError):
        OverlayDesign(sg_length_width=30)
    with pytest.raises(ConfigError):
        OverlayDesign(in_stream_bits=48)
    with pytest.raises(BundleError, match="not a Xilinx bitstream"):
        read_bit_header(hwh)


@pytest.mark.parametrize("board", sorted(PS_FAMILIES))
def test_board_parts_agree_with_the_board_files(board):
    raw = tomllib.loads((REPO / "overlays" / "boards" / f"{board}.toml").read_text())
    fam = PS_FAMILIES[board]
    assert raw["ps_ip"] == fam.modtype
    # .bit headers name 7-series parts without "xc" and the speed grade, UltraScale+ ones in full
    assert raw["part"].startswith("xc" + fam.part) or raw["part"] == fam.part


def test_design_follows_the_overlay_steps_spec(tmp_path, spec):
    overlay = {"dma": "axi_dma_0", "accelerator": "accel", "accelerator_ip": "fpga-dnn.org:hls:digits_mlp_axis:1.0",
               "dma_max_transfer_bytes": 2 ** 20 - 1}
    s = spec.replace(extra={"board": "ultra96", "overlay": overlay})
    d = OverlayDesign.for_spec(s)
    assert (d.board, d.accel_name, d.accel_vlnv, d.sg_length_width) == ("ultra96", "accel", overlay["accelerator_ip"], 20)
    bundle = write_sim_bundle(s, tmp_path / "b")
    rep = check_bundle(bundle)
    assert rep.ok, rep.format()
    assert rep.facts["board"] == "ultra96" and rep.facts["max_transfer_bytes"] == 2 ** 20 - 1
    assert Bundle.load(bundle).spec.extra["simulated_bitstream"] is True


def test_clock_divisors():
    assert clock_divisors(1600.0, 100.0) == (16, 1)
    a, b = clock_divisors(1499.985, 100.0)
    assert abs(1499.985 / (a * b) - 100) < 0.01
    with pytest.raises(ConfigError):
        clock_divisors(1600.0, 0)


def test_check_bundle_reports(tmp_path, spec):
    rep = check_bundle(make_bundle(tmp_path / "ok", spec))
    assert rep.ok and rep.facts["pl_clock_mhz"] == 100.0 and "OK" in rep.format()
    assert check_bundle(tmp_path / "nothing").problems
    (tmp_path / "badspec").mkdir()
    (tmp_path / "badspec" / "spec.json").write_text("{")
    assert "not valid JSON" in check_bundle(tmp_path / "badspec").problems[0]
    nobit = check_bundle(make_bundle(tmp_path / "nobit", spec, with_bitstream=False))
    assert nobit.ok and any("no .bit" in w for w in nobit.warnings)
    nohwh = make_bundle(tmp_path / "nohwh", spec)
    (nohwh / "digits_mlp.hwh").unlink()
    assert any("missing" in p for p in check_bundle(nohwh).problems)
    with pytest.raises(Exception, match="missing"):
        Bundle.load(nohwh)
    wrongboard = make_bundle(tmp_path / "wb", spec.replace(extra={"board": "ultra96"}), board="pynq-z2")
    assert any("board 'ultra96'" in p for p in check_bundle(wrongboard).problems)
    slow = make_bundle(tmp_path / "slow", spec, clock_mhz=125.0)
    assert any("PL clock" in w for w in check_bundle(slow).warnings)


# ------------------------------------------------------------------ runner, CLI module, bridge

def test_run_on_emulate(tmp_path, spec):
    from fpga_dnn.runtime.run import run, score
    bundle = make_bundle(tmp_path / "b", spec)
    x = np.random.default_rng(0).integers(0, 32, size=(40, 64)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    lines = []
    res = run(bundle, tmp_path / "x.npy", allow_unsigned=True, backend="emulate", batch=16, bench_samples=20, print_fn=lines.append)
    np.testing.assert_array_equal(res["outputs"], expected(spec, x))
    assert "score" not in res and set(res["bench"]) == {1, 16}
    # labels that agree with the argmax on 30 of 40 samples: the score must count, not echo
    labels = res["outputs"].argmax(axis=1).copy()
    labels[::4] = (labels[::4] + 1) % res["outputs"].shape[1]
    assert score(res["outputs"], labels) == {"accuracy": 0.75}
    wrong = res["outputs"].copy()
    wrong[3, 0] += 1  # one element of one sample differs
    assert score(res["outputs"], wrong) == {"agreement": 39 / 40, "mismatched_samples": 1}
    with pytest.raises(DataError, match="labels"):
        score(res["outputs"], np.zeros((3, 2)))
    np.savez(tmp_path / "bad.npz", inputs=x)
    with pytest.raises(DataError, match="expected inputs under"):
        run(bundle, tmp_path / "bad.npz", allow_unsigned=True, backend="emulate", print_fn=None)


def test_runtime_module_cli_check(tmp_path, spec):
    bundle = make_bundle(tmp_path / "b", spec)
    out = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "check", str(bundle)], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0 and "OK" in out.stdout
    (bundle / "digits_mlp.hwh").write_text("<x/>")
    out = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "check", str(bundle)], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 1 and "checksum" in out.stdout


def test_bridge_worker_serves_a_model_fn(tmp_path, spec):
    from fpga_dnn.runtime.bridge import WorkerModelFn
    make_bundle(tmp_path / "b", spec)
    argv = [sys.executable, "-m", "fpga_dnn.runtime.bridge", "--factory", "fpga_dnn.runtime.bridge:reference_model_fn",
            str(tmp_path / "b" / "spec.json")]
    q = np.random.default_rng(0).integers(0, 32, size=(7, 64))
    with WorkerModelFn(argv, timeout_s=30) as fn:
        np.testing.assert_array_equal(fn(q), reference_fn(spec)(q))
        with pytest.raises(DeviceError, match="model worker failed"):
            fn(np.zeros((2, 3)))  # wrong shape: the worker reports, and lives on
        np.testing.assert_array_equal(fn(q[:2]), reference_fn(spec)(q[:2]))
    hang = WorkerModelFn([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.3)
    # raised by the 0.3 s deadline (a worker that ran out its 30 s sleep would be "exited"), and
    # the hung worker is gone: no wall clock asserted
    with pytest.raises(DeviceError, match=r"did not answer within 0\.3 s"):
        hang(q)
    assert hang._proc is None


def test_hls4ml_driver_template_is_found():
    from fpga_dnn.runtime.driver_bench import hls4ml_driver_path
    path = hls4ml_driver_path()
    assert path is not None and "NeuralNetworkOverlay" in path.read_text()


def test_float32_model_for_the_hls4ml_comparison():
    m = Float32Model(4, 3)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    y = m(x.view(np.uint8).reshape(-1)).view(np.float32).reshape(2, 3)
    np.testing.assert_array_equal(y, x[:, [0, 1, 2]] * 3 + np.arange(3))


def test_driver_bench_runs_in_the_board_environment():
    from fpga_dnn.runtime.driver_bench import run_in_board_env
    board_python = Path(os.environ.get("FPGA_DNN_BOARD_PYTHON") or REPO / ".venv-board" / "bin" / "python")
    assert board_python.exists(), f"the board environment's Python {board_python} is missing: `make board-env`"
    r = run_in_board_env(board_python, extra_args=["--calls-small", "20", "--calls-large", "1", "--repeats", "1",
                                                   "--large-batch", "100"])
    assert r["numpy"].startswith("1.") and r["ours"]["batch_1"]["host_us_per_call"] > 0
    assert r["summary"]["pack_unpack_elements_per_s"] > 0
    assert "RuntimeError" in r["hls4ml_bugs"]["decode_second_predict_strict"]["second_predict_error"]
    summary = r["summary"]   # every figure of issue 13 with its target beside it
    for key, target in [("batch1_overhead_ratio", "batch1_overhead_ratio_target_max"),
                        ("timed_dma_ratio_predict_vs_hls4ml", "timed_dma_ratio_target_min"),
                        ("timed_dma_ratio_zero_copy_vs_hls4ml", "timed_dma_ratio_target_min"),
                        ("stream_float64_overlapped_fraction_of_dma_bound", "stream_fraction_of_dma_bound_target_min"),
                        ("stream_float64_no_overlap_fraction_of_dma_bound", "stream_fraction_of_dma_bound_target_min"),
                        ("stream_float32_overlapped_fraction_of_dma_bound", "stream_fraction_of_dma_bound_target_min"),
                        ("stream_float64_overlapped_1_thread_fraction_of_dma_bound",
                         "stream_fraction_of_dma_bound_target_min")]:
        assert summary[key] > 0 and summary[target] > 0, key
    assert summary["dma_bound_samples_per_s"] == 12.5e6


def test_dma_bound_is_the_slowest_of_port_beats_and_core():
    from fpga_dnn.runtime.driver_bench import dma_bound
    from fpga_dnn.runtime.spec import Spec

    digits = Spec.create("d", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)
    b = dma_bound(digits, 800e6)   # 64 bytes = 8 beats in, 24 bytes = 3 beats out, 100 MHz
    assert b["memory_port_samples_per_s"] == b["stream_beats_samples_per_s"] == b["samples_per_s"] == 12.5e6
    assert b["limited_by"] == ["memory_port", "stream_beats"]
    narrow = Spec.create("n", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=32)   # 16 beats in
    assert dma_bound(narrow, 800e6)["samples_per_s"] == 100e6 / 16
    assert dma_bound(narrow, 800e6)["limited_by"] == ["stream_beats"]
    assert dma_bound(digits, 800e6, core_interval_cycles=20)["limited_by"] == ["core_interval"]
    assert dma_bound(digits, 400e6)["samples_per_s"] == 400e6 / 64


# ------------------------------------------------------------------ the prepared predict path



def _specials(fmt):
    """(name, value) pairs that each policy must treat exactly as to_fixed does."""
    lo, hi = int_range(fmt)
    step = 2.0 ** -fmt.frac
    return [("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf), ("-0.0", -0.0), ("half step", 2.5 * step),
            ("quarter step", 3.25 * step), ("three quarters", -1.75 * step if fmt.signed else 1.75 * step),
            ("below", (lo - 1) * step), ("above", (hi + 1) * step), ("huge", 1e300), ("-huge", -1e300),
            ("lowest", lo * step), ("highest", hi * step), ("tiny", 1e-45)]


def _same_outcome(fast, general):
    """Run both; they must return equal arrays (same dtype and shape) or raise the same error."""
    try:
        want = general()
    except Exception as err:  # noqa: BLE001 - compared below
        with pytest.raises(type(err)) as got:
            fast()
        assert str(got.value) == str(err)
        return None
    y = fast()
    assert y.dtype == want.dtype and y.shape == want.shape
    np.testing.assert_array_equal(y, want)
    return y


PREPARED_CASES = [
    # input format, input shape, output format, output shape, stream bits
    ("ufixed<5,5>", (64,), "fixed<16,6>", (10,), 64),     # the digits design: frac 0, no padding
    ("fixed<7,3>", (4, 4, 2), "ufixed<12,4>", (3, 2), 32),  # multi-dim, spare bits both ways
    ("fixed<20,4>", (3,), "fixed<9,9>", (5,), 24),          # 32-bit lanes on a 24-bit stream, padding out
    ("fixed<8,8>", (3,), "ufixed<16,0>", (2,), 32),          # full-lane formats, padded input
    ("ufixed<6,-2>", (5,), "fixed<32,-3>", (1,), 64),        # negative integer bits (frac > width)
    ("fixed<32,16>", (1,), "fixed<32,1>", (1,), 24),         # sample not whole lanes: no in-place view
    ("ufixed<3,1>", (3, 2, 1), "fixed<10,3>", (2, 2), 64),   # multi-dim views of padded samples
]


@pytest.mark.parametrize("case", PREPARED_CASES, ids=[c[0] + "_" + str(c[4]) for c in PREPARED_CASES])
@pytest.mark.parametrize("overflow", ["raise", "saturate"])
@pytest.mark.parametrize("rounding", ["exact", "nearest_even", "nearest_up", "floor"])
def test_prepared_predict_matches_the_general_path(case, overflow, rounding):
    """predict() with the open-time policies takes the prepared path (conversion straight into the
    DMA buffer); passing the policies explicitly takes the general one (to_fixed, pack). Same bytes
    sent, same outputs, same errors — for every special value, dtype and batch shape."""
    from fpga_dnn.runtime.backends import EmulatedBackend
    fin, sin, fout, sout, bits = case
    spec = Spec.create("p", sin, fin, sout, fout, 1, stream_bits=bits)
    rec = RecordingModel(InstantModel(spec))
    acc = Accelerator(spec, EmulatedBackend(rec), overflow=overflow, rounding=rounding)
    fmt = spec.input.format
    general = dict(overflow=overflow, rounding=rounding)
    rng = np.random.default_rng(len(sin) + bits)
    lo, hi = int_range(fmt)
    for batch in (1, 3):
        x = from_fixed(rng.integers(lo, hi + 1, size=(batch,) + sin), fmt)
        inputs = [x, x.reshape(batch, -1), np.asfortranarray(x), x.astype(np.float32), x.astype(np.float16),
                  np.repeat(x, 2, axis=0)[::2]]
        if fmt.frac <= 0:
            inputs.append((x * 1).astype(np.int64))
        for name, value in _specials(fmt):
            bad = x.copy()
            bad.reshape(-1)[-1] = value
            with np.errstate(over="ignore"):  # 1e300 -> inf in float32
                inputs += [bad, bad.astype(np.float32)]
        for xi in inputs:
            n_frames = len(rec.frames)
            y = _same_outcome(lambda: acc.predict(xi), lambda: acc.predict(xi, **general))
            if y is not None:
                assert rec.frames[n_frames] == rec.frames[n_frames + 1]  # byte for byte, padding included
    assert acc.predict(np.zeros((2,) + sin, dtype=bool)).shape == (2,) + sout
    with pytest.raises(DataError, match="real numbers"):
        acc.predict(np.zeros((1,) + sin, dtype=complex))
    with pytest.raises(DataError, match="real numbers"):
        acc.predict(np.full((1,) + sin, "a"))


def test_prepared_path_large_batches_buffers_and_accounting(spec):
    from fpga_dnn.runtime.backends import EmulatedBackend, StageTimes
    from fpga_dnn.runtime.packing import SMALL_BATCH_ELEMENTS
    acc = Accelerator(spec, EmulatedBackend(InstantModel(spec), max_transfer_bytes=2 ** 20))
    big = SMALL_BATCH_ELEMENTS // 64 + 7      # past the size whose scratch arrays are kept
    for b in (1, 4, 1, big, 1):
        x = acc.random_inputs(b, seed=b)
        np.testing.assert_array_equal(acc.predict(x), expected(spec, x))
    x = acc.random_inputs(big, seed=1)
    x[-1, -1] = 0.5
    with pytest.raises(DataError, match=r"not on the .*index \(%d, 63\)" % (big - 1)):
        acc.predict(x)
    assert acc.backend.allocations == 6 and acc.calls == 5 and acc.samples == 7 + big
    assert acc.last_times.pack > 0 and acc.last_times.transfer > 0
    total = acc.times
    assert all(v > 0 for v in total.as_dict().values())
    acc.times = StageTimes()
    acc.predict(acc.random_inputs(1))
    assert 0 < acc.times.pack == acc.last_times.pack
    for _ in range(600):  # the raw log is folded in bounded chunks
        acc.predict(acc.random_inputs(1))
    assert acc.calls == 606 and len(acc._log) < 300
    acc.overflow = "saturate"   # a policy change applies to the next call
    np.testing.assert_array_equal(acc.predict(np.full((1, 64), 99.0)), expected(spec, np.full((1, 64), 31.0)))
    with pytest.raises(DataError, match="unknown overflow"):
        acc.overflow = "wrap"
    acc.close()
    with pytest.raises(DmaError, match="closed"):
        acc.predict(acc.random_inputs(1))


def test_valid_inputs_never_fall_back_to_to_fixed(spec, monkeypatch):
    """The prepared path's check accepts every valid input by itself (to_fixed is only for errors)."""
    import fpga_dnn.runtime.packing as packing
    from fpga_dnn.runtime.backends import EmulatedBackend
    calls = []
    real_to_fixed = packing.to_fixed
    monkeypatch.setattr(packing, "to_fixed", lambda *a, **k: calls.append(1) or real_to_fixed(*a, **k))
    for rounding in ("exact", "nearest_even", "floor", "nearest_up"):
        acc = Accelerator(spec, EmulatedBackend(InstantModel(spec)), rounding=rounding)
        for b in (1, 5):
            x = acc.random_inputs(b, seed=b)
            for xi in (x, x.astype(np.float32), x.astype(np.uint8), x + (0.25 if rounding != "exact" else 0)):
                acc.predict(xi)
        assert calls == [] and list(acc._plans) == [(5, 64)]  # batch 5 grew the buffers: batch 1 re-prepares
