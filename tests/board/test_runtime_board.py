"""The runtime on the real pynq package: overlay parsing, DMA binding, register sequence, buffers,
errors, on the fake board (FakeBoardDevice + AXI DMA model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.errors import DataError, DeviceError, DmaError, DmaTimeoutError
from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.fake.dma import SR_DEC_ERR, SR_HALTED, SR_INT_ERR, SR_SLV_ERR
from fpga_dnn.runtime.fake.hwh import OverlayDesign
from fpga_dnn.runtime.fake.models import FaultyModel, InstantModel

REPO = Path(__file__).resolve().parents[2]


def open_sim(bundle, **kw):
    kw.setdefault("trace", True)
    # these tests check the register protocol, so the DMA completes at once; the timed DMA
    # (bandwidth) and overlapped transfers are tested in test_runtime_overlap.py
    kw.setdefault("bandwidth", None)
    return Accelerator.open(bundle, allow_unsigned=True, backend="sim", **kw)


def live_target(t) -> bool:
    return t.target.startswith("live buffer")


# ------------------------------------------------------------------ environment and parsing

def test_runtime_imports_without_heavy_packages():
    code = ("import sys, fpga_dnn.runtime, fpga_dnn.runtime.accelerator, fpga_dnn.runtime.bundle, "
            "fpga_dnn.runtime.run, fpga_dnn.runtime.backends, fpga_dnn.runtime.bridge\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'hls4ml', 'da4ml', 'qkeras', 'pynq') if m in sys.modules]\n"
            "print(sys.version_info[:2], heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout  # pynq too: only a backend imports it
    assert "(3, 10)" in out.stdout or sys.version_info[:2] != (3, 10)


@pytest.mark.parametrize("board, hierarchy", [("pynq-z2", None), ("ultra96", "hier_0")])
def test_generated_handoff_accepted_by_both_pynq_parsers(tmp_path, board, hierarchy):
    from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    from pynq.pl_server.embedded_device import bit2bin, parse_bit_header
    from pynq.pl_server.hwh_parser import _HWHUltrascale, _HWHZynq
    from pynqmetadata.frontends import Metadata

    design = OverlayDesign(board=board, hierarchy=hierarchy, sg_length_width=14, in_stream_bits=32)
    bit, hwh = design.write(tmp_path, "ov")
    parsed = RuntimeMetadataParser(Metadata(input=hwh))
    dma = parsed.ip_dict[design.dma_path]
    assert dma["type"] == "xilinx.com:ip:axi_dma:7.1"
    assert dma["phys_addr"] == design.family.dma_base and dma["addr_range"] == 0x10000
    p = dma["parameters"]
    assert (p["c_include_sg"], p["c_sg_length_width"], p["c_m_axi_mm2s_data_width"]) == ("0", "14", "32")
    assert p["c_addr_width"] == str(design.dma_addr_width)
    assert dma["interrupts"] == {}  # the DMA driver polls
    assert parsed.clock_dict[0]["enable"] == 1
    legacy = (_HWHZynq if board == "pynq-z2" else _HWHUltrascale)(hwh_data=hwh.read_text())
    assert legacy.ip_dict[design.dma_path]["parameters"]["c_sg_length_width"] == "14"
    assert legacy.clock_dict[0] == parsed.clock_dict[0]
    header = parse_bit_header(bit.read_bytes())
    assert header["part"] == design.family.part
    assert len(bit2bin(bit.read_bytes())) % 4 == 0


@pytest.mark.parametrize("board", ["pynq-z2", "ultra96"])
def test_overlay_binds_pynq_dma_and_programs_the_clock(digits_spec, make_bundle, board):
    import pynq.lib.dma
    bundle = make_bundle(digits_spec, board=board)
    with open_sim(bundle) as acc:
        be = acc.backend
        assert isinstance(be.driver, pynq.lib.dma.DMA)
        assert be.max_transfer_bytes == (1 << 26) - 1
        # the bitstream pynq programs is the verified private copy's, not the caller's folder's
        assert be.fake.downloads == [str(acc.bundle.directory / "digits_mlp.bit")] and acc.bundle.source == bundle
        assert be.fake.pl_clock_mhz(0) == pytest.approx(digits_spec.clock_mhz, rel=1e-3)
        # open: reset, start both channels (with deadlines), then pynq's driver binds and starts them again
        assert be.fake.dma.writes[:5] == [(0x00, 0x4), (0x00, 0x1), (0x30, 0x1), (0x00, 0x1), (0x30, 0x1)]
        assert be.resets == 0
        assert not be.addr64  # the overlay step builds both boards' DMA with 32-bit addresses


def test_bitstream_for_another_board_is_refused(digits_spec, make_bundle):
    bundle = make_bundle(digits_spec, board="ultra96")
    with pytest.raises(DeviceError, match="is for part xczu3eg.*this pynq-z2 is 7z020"):
        open_sim(bundle, board="pynq-z2")


# ------------------------------------------------------------------ predict

def test_repeated_predict_uses_live_buffers_only(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec)) as acc:
        fake = acc.backend.fake
        for seed in range(6):
            x = acc.random_inputs(1 + seed % 3 * 3, seed=seed)
            np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
            # the addresses just written to MM2S_SA / S2MM_DA are those of the live buffers
            live = {a.address for a in fake.memory._allocs.values()}
            sa = [v for off, v in fake.dma.writes if off == 0x18][-1]
            da = [v for off, v in fake.dma.writes if off == 0x48][-1]
            assert (sa, da) == (acc.backend._in[0].physical_address, acc.backend._out[0].physical_address)
            assert {sa, da} <= live
        assert fake.dma.transfers and all(live_target(t) and t.status == "done" for t in fake.dma.transfers)
        assert fake.memory.violations == [] and fake.dma.violations == []


def test_results_are_not_aliased_to_the_dma_buffer(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec)) as acc:
        x1, x2 = acc.random_inputs(4, seed=1), acc.random_inputs(4, seed=2)
        y1 = acc.predict(x1)
        keep = y1.copy()
        acc.predict(x2)
        np.testing.assert_array_equal(y1, keep)


def test_register_sequence_and_cache_maintenance(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec)) as acc:
        fake = acc.backend.fake
        acc.predict(acc.random_inputs(3))
        dma, mem = fake.dma, fake.memory
        n_w, n_r, n_f, n_i = len(dma.writes), len(dma.reads), len(mem.stats.flushes), len(mem.stats.invalidates)
        acc.predict(acc.random_inputs(3, seed=9))
        in_buf, out_buf = acc.backend._in[0], acc.backend._out[0]
        in_bytes, out_bytes = 3 * digits_spec.input.sample_bytes, 3 * digits_spec.output.sample_bytes
        assert dma.writes[n_w:] == [(0x48, out_buf.physical_address), (0x58, out_bytes),
                                    (0x18, in_buf.physical_address), (0x28, in_bytes)]
        assert [off for off, _ in dma.reads[n_r:]] == [0x04, 0x34, 0x58]
        assert mem.stats.flushes[n_f:] == [(in_buf.bo, 0, in_bytes)]
        assert mem.stats.invalidates[n_i:] == [(out_buf.bo, 0, out_bytes)]


def test_64bit_dma_writes_the_msb_registers(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec, board="ultra96", addr_width=64)) as acc:
        assert acc.backend.addr64
        dma = acc.backend.fake.dma
        acc.predict(acc.random_inputs(2))
        offsets = [off for off, _ in dma.writes[-6:]]
        assert offsets == [0x48, 0x4C, 0x58, 0x18, 0x1C, 0x28]


def test_register_rw_access_path(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec), access="register") as acc:
        assert acc.backend.fake.has_capability("REGISTER_RW")
        x = acc.random_inputs(7)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))


def test_batches_are_split_to_the_dma_limit(digits_spec, make_bundle, reference):
    # c_sg_length_width = 10: at most 1023 bytes per transfer -> 15 input samples of 64 bytes
    with open_sim(make_bundle(digits_spec, sg_length_width=10)) as acc:
        assert acc.backend.max_transfer_bytes == 1023
        assert acc.samples_per_transfer == 15
        x = acc.random_inputs(100, seed=3)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        tr = acc.backend.fake.dma.transfers
        mm2s = [t.length for t in tr if t.channel == "MM2S"]
        s2mm = [t.length for t in tr if t.channel == "S2MM"]
        assert mm2s == [15 * 64] * 6 + [10 * 64]
        assert s2mm == [15 * 24] * 6 + [10 * 24]
        assert max(mm2s + s2mm) <= 1023 and acc.backend.fake.dma.violations == []


def test_buffers_allocated_once_and_grown_only_when_needed(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec)) as acc:
        stats = acc.backend.fake.memory.stats
        for b in (1, 1, 4, 2, 4, 1):
            acc.predict(acc.random_inputs(b))
        assert acc.backend.allocations == 4  # in+out at batch 1, again at batch 4, never after
        assert stats.allocations == 4 and stats.frees == 2
        assert len(acc.backend.fake.memory._allocs) == 2


def test_the_fake_catches_a_missing_flush(digits_spec, make_bundle):
    """The cache model is real: pynq's DMA channel sees stale DRAM when the CPU does not flush."""
    import pynq
    with open_sim(make_bundle(digits_spec)) as acc:
        dev = acc.backend.fake
        src = pynq.allocate((64,), np.uint8, target=dev, cacheable=1)
        dst = pynq.allocate((24,), np.uint8, target=dev, cacheable=1)
        src[:] = 7  # stays in the CPU's cache: DRAM still holds zeros
        dev.dma.write(0x48, dst.physical_address)
        dev.dma.write(0x58, 24)
        dev.dma.write(0x18, src.physical_address)
        dev.dma.write(0x28, 64)  # no flush: the DMA reads DRAM (zeros)
        dst.invalidate()
        q = np.frombuffer(dst.tobytes(), dtype="<i2")[:10]
        assert (q == np.arange(10)).all()  # out_i = 3 * 0 + i: the inputs the DMA saw were zeros


def test_uncached_buffers_work_too(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec)) as acc:
        acc.backend.cacheable = False
        x = acc.random_inputs(3)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert acc.backend.fake.memory.get(acc.backend._in[0].bo).dram is acc.backend.fake.memory.get(
            acc.backend._in[0].bo).host


def test_use_after_free_is_a_decode_error(digits_spec, make_bundle):
    import pynq
    with open_sim(make_bundle(digits_spec)) as acc:
        dev = acc.backend.fake
        buf = pynq.allocate((4096,), np.uint8, target=dev)
        addr = buf.physical_address
        buf.freebuffer()
        dev.dma.write(0x18, addr)
        dev.dma.write(0x28, 64)
        assert dev.dma.status("MM2S") & (SR_DEC_ERR | SR_HALTED) == SR_DEC_ERR | SR_HALTED
        assert "FREED" in dev.memory.violations[-1]


# ------------------------------------------------------------------ errors and recovery

@pytest.mark.parametrize("channel, bits, text", [("S2MM", SR_SLV_ERR, "slave error"),
                                                 ("MM2S", SR_DEC_ERR, "decode error"),
                                                 ("S2MM", SR_INT_ERR, "internal error")])
def test_dma_error_bits_raise_and_the_next_predict_works(digits_spec, make_bundle, reference, channel, bits, text):
    with open_sim(make_bundle(digits_spec)) as acc:
        x = acc.random_inputs(5)
        acc.predict(x)
        dma = acc.backend.fake.dma
        dma.inject_error(channel, bits)
        polls_before = len(dma.reads)
        with pytest.raises(DmaError, match=text) as err:
            acc.predict(x)
        # seen at the first status reads, not after waiting out a timeout (no wall clock here:
        # a count of register reads does not depend on how busy the machine is)
        assert len(dma.reads) - polls_before < 20 and "did not finish within" not in str(err.value)
        assert err.value.channel == channel and err.value.status & bits
        assert acc.backend.resets == 1
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))


def test_stuck_accelerator_times_out_and_the_next_predict_works(digits_spec, make_bundle, reference):
    model = FaultyModel(InstantModel(digits_spec), "stuck", frames={1})
    with open_sim(make_bundle(digits_spec), model=model, timeout_s=0.05) as acc:
        x = acc.random_inputs(3)
        acc.predict(x)
        resets = acc.backend.resets
        with pytest.raises(DmaTimeoutError, match="did not return its output") as err:
            acc.predict(x)
        assert "did not finish within 0.05 s" in str(err.value)  # the timeout asked for, not the default
        assert err.value.channel == "S2MM"
        # a hang is recovered: the DMA is reset before the error is raised, the next call works
        assert acc.backend.resets == resets + 1 and "the DMA was reset" in str(err.value)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert model.faults == 1


def test_short_output_frame_is_an_error(digits_spec, make_bundle, reference):
    model = FaultyModel(InstantModel(digits_spec), "short", frames={0}, short_bytes=8)
    with open_sim(make_bundle(digits_spec), model=model) as acc:
        x = acc.random_inputs(2)
        with pytest.raises(DmaError, match="received 40 bytes, 48 expected"):
            acc.predict(x)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))


def test_slow_completion_is_polled_not_missed(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec), poll_delay=500, timeout_s=2.0) as acc:
        x = acc.random_inputs(2)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert sum(1 for off, _ in acc.backend.fake.dma.reads if off == 0x34) >= 500


def test_a_dma_that_does_not_restart_is_a_device_error(digits_spec, make_bundle, monkeypatch):
    with open_sim(make_bundle(digits_spec)) as acc:
        dma = acc.backend.fake.dma
        monkeypatch.setattr(type(dma), "_write_cr", lambda self, ch, value: None)  # the engine ignores control
        dma.inject_error("MM2S", SR_SLV_ERR)
        monkeypatch.setattr("fpga_dnn.runtime.pynq_backend.CONTROL_TIMEOUT_S", 0.05)
        with pytest.raises(DeviceError, match="did not start after a reset|reload the overlay"):
            acc.predict(acc.random_inputs(1))


def test_a_dead_dma_at_open_is_a_device_error_not_a_hang(digits_spec, make_bundle, monkeypatch):
    from fpga_dnn.runtime.fake.dma import AxiDmaModel
    monkeypatch.setattr(AxiDmaModel, "_write_cr", lambda self, ch, value: None)  # never leaves reset/halt
    monkeypatch.setattr("fpga_dnn.runtime.pynq_backend.CONTROL_TIMEOUT_S", 0.05)
    with pytest.raises(DeviceError, match="did not start"):
        open_sim(make_bundle(digits_spec))


# ------------------------------------------------------------------ input validation

def test_bad_shapes_dtypes_and_ranges(digits_spec, make_bundle, reference):
    with open_sim(make_bundle(digits_spec)) as acc:
        with pytest.raises(DataError, match=r"expected a batch of shape \(batch, 64\).*x\[None\]"):
            acc.predict(np.zeros(64))
        with pytest.raises(DataError, match="got \\(2, 63\\)"):
            acc.predict(np.zeros((2, 63)))
        with pytest.raises(DataError, match="real numbers"):
            acc.predict(np.zeros((1, 64), dtype=complex))
        with pytest.raises(DataError, match="real numbers"):
            acc.predict(np.full((1, 64), "a"))
        x = np.zeros((2, 64))
        x[1, 5] = 32.0  # ufixed<5,5> holds 0..31
        with pytest.raises(DataError, match=r"outside the range.*index \(1, 5\)"):
            acc.predict(x)
        y = acc.predict(x, overflow="saturate")
        np.testing.assert_array_equal(y, reference(digits_spec, np.minimum(x, 31)))
        x[1, 5] = 2.5
        with pytest.raises(DataError, match="not on the"):
            acc.predict(x)
        np.testing.assert_array_equal(acc.predict(x, rounding="nearest_even"),
                                      reference(digits_spec, np.round(x)))
        x[1, 5] = np.nan
        with pytest.raises(DataError, match="non-finite"):
            acc.predict(x)
        with pytest.raises(DataError, match="integers"):
            acc.predict_fixed(np.zeros((1, 64)))
        assert acc.predict(np.zeros((0, 64))).shape == (0, 10)
        # nothing of the above reached the DMA
        assert all(t.status == "done" for t in acc.backend.fake.dma.transfers)
        with pytest.raises(DataError, match="unknown overflow policy"):
            acc.predict(x, overflow="wrap")


def test_predict_fixed_and_multi_dim_shapes(make_bundle):
    from fpga_dnn.runtime.fake.models import reference_fn
    from fpga_dnn.runtime.spec import Spec
    spec = Spec.create("img", (4, 4, 2), "fixed<7,3>", (3, 2), "ufixed<12,4>", 2, stream_bits=32)
    with open_sim(make_bundle(spec)) as acc:
        rng = np.random.default_rng(0)
        q = rng.integers(-64, 64, size=(9, 4, 4, 2))
        out = acc.predict_fixed(q)
        assert out.shape == (9, 3, 2) and out.dtype == np.int64
        np.testing.assert_array_equal(out, reference_fn(spec)(q))
        np.testing.assert_array_equal(acc.predict_fixed(q.reshape(9, 32)), out)


def test_prepared_predict_matches_the_general_path_on_numpy1(make_bundle):
    """The prepared batch path (conversion straight into the DMA buffer, a prepared register
    sequence) against the general one (policies passed explicitly: to_fixed + pack), under numpy
    1.x's casting rules and real pynq: same bytes sent, same outputs, same errors."""
    from fpga_dnn.runtime.fake.models import RecordingModel, make_model
    from fpga_dnn.runtime.packing import from_fixed, int_range
    from fpga_dnn.runtime.spec import Spec

    for fin, sin, fout, sout, bits in [("ufixed<5,5>", (64,), "fixed<16,6>", (10,), 64),
                                       ("fixed<7,3>", (4, 4, 2), "ufixed<12,4>", (3, 2), 32),
                                       ("fixed<12,2>", (3,), "fixed<9,9>", (5,), 32)]:
        spec = Spec.create("p", sin, fin, sout, fout, 1, stream_bits=bits)
        rec = RecordingModel(make_model(spec, None))
        bundle = make_bundle(spec, name=f"b{len(sin)}_{bits}_{fin[:2]}")
        for rounding in ("exact", "nearest_even"):
            with open_sim(bundle, model=rec, trace=False, rounding=rounding) as acc:
                fmt = spec.input.format
                lo, hi = int_range(fmt)
                step = 2.0 ** -fmt.frac
                x = from_fixed(np.random.default_rng(bits).integers(lo, hi + 1, size=(3,) + sin), fmt)
                inputs = [x, x[:1], x.reshape(3, -1), np.asfortranarray(x), x.astype(np.float32),
                          x.astype(np.float16)]
                for value in (np.nan, np.inf, -0.0, 2.5 * step, 1.25 * step, (lo - 1) * step, (hi + 1) * step,
                              1e300, 1e-45):
                    bad = x.copy()
                    bad.reshape(-1)[-1] = value
                    inputs += [bad, bad.astype(np.float32)]
                for xi in inputs:
                    try:
                        want = acc.predict(xi, overflow="raise", rounding=rounding)
                    except DataError as err:
                        with pytest.raises(DataError) as got:
                            acc.predict(xi)
                        assert str(got.value) == str(err)
                        continue
                    n = len(rec.frames)
                    y = acc.predict(xi)
                    assert y.dtype == want.dtype == np.float64 and y.shape == want.shape
                    np.testing.assert_array_equal(y, want)
                    assert rec.frames[n - 1] == rec.frames[n]
                assert acc.backend.fake.memory.violations == [] and acc.backend.fake.dma.violations == []


# ------------------------------------------------------------------ benchmark, bundle, run

def test_benchmark_breakdown(digits_spec, make_bundle):
    with open_sim(make_bundle(digits_spec), trace=False) as acc:
        r = acc.benchmark(n=200, batch=1)
        assert r["calls"] == 200 and r["samples_per_s"] > 0
        assert set(r["breakdown_us_per_call"]) == {"pack", "transfer", "wait", "unpack", "other"}
        assert all(v >= 0 for v in r["breakdown_us_per_call"].values())
        assert 0 < r["host_us_per_call"] < r["latency_us"]["mean"]
        big = acc.benchmark(n=4000, batch=2000)
        assert big["calls"] == 2 and big["samples"] == 4000 and big["transfers_per_call"] == 1


def test_bundle_checks(digits_spec, make_bundle, tmp_path):
    from fpga_dnn.runtime.bundle import check_bundle
    good = make_bundle(digits_spec, name="good")
    rep = check_bundle(good)
    assert rep.ok, rep.format()
    assert rep.facts["board"] == "pynq-z2" and rep.facts["samples_per_transfer"] == (2 ** 26 - 1) // 64
    bad = make_bundle(digits_spec, name="tampered")
    with open(bad / "digits_mlp.bit", "ab") as fh:
        fh.write(b"x")
    assert any("checksum" in p for p in check_bundle(bad).problems)
    with pytest.raises(Exception, match="checksum"):
        Accelerator.open(bad, allow_unsigned=True, backend="sim")
    narrow = make_bundle(digits_spec, name="narrow", in_stream_bits=32)
    assert any("32 bits in the handoff but 64" in p for p in check_bundle(narrow).problems)
    wide = digits_spec.replace(name="wide", input=digits_spec.input.__class__((512,), digits_spec.input.format, 64))
    tiny = make_bundle(wide, name="tiny", sg_length_width=8)  # 255-byte transfers, 512-byte samples
    assert any("exceeds the DMA" in p for p in check_bundle(tiny).problems)
    with pytest.raises(DeviceError, match="c_sg_length_width"):
        Accelerator.open(tiny, allow_unsigned=True, backend="sim")


def test_run_reports_accuracy_and_speed(digits_spec, make_bundle, tmp_path, reference):
    from fpga_dnn.runtime.run import run
    bundle = make_bundle(digits_spec)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 32, size=(50, 64)).astype(np.float32)
    y_expected = reference(digits_spec, x)
    np.savez(tmp_path / "data.npz", x_test=x, y_test=y_expected.argmax(axis=1))
    lines = []
    res = run(bundle, tmp_path / "data.npz", allow_unsigned=True, backend="sim", bench_samples=50, print_fn=lines.append,
              output_path=tmp_path / "y.npy")
    assert res["score"] == {"accuracy": 1.0}
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y_expected)
    assert set(res["bench"]) == {1, 50}
    assert any("us/call" in line for line in lines) and any("InstantModel" in line for line in lines)
    np.save(tmp_path / "expected.npy", y_expected)
    res = run(bundle, tmp_path / "data.npz", allow_unsigned=True, backend="sim", labels_path=tmp_path / "expected.npy",
              bench_samples=0, print_fn=None)
    assert res["score"]["agreement"] == 1.0


def test_runtime_cli_on_the_board(digits_spec, make_bundle, tmp_path):
    bundle = make_bundle(digits_spec)
    np.save(tmp_path / "x.npy", np.zeros((4, 64)))
    out = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "run", str(bundle), "--input",
                          str(tmp_path / "x.npy"), "--sim", "--bench-samples", "20", "--allow-unsigned"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "samples/s" in out.stdout
    out = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "check", str(bundle)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "OK" in out.stdout
    out = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "run", str(bundle), "--input",
                          str(tmp_path / "missing.npy"), "--sim", "--allow-unsigned"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and out.stderr.startswith("error: cannot read inputs")


def test_model_fn_from_a_worker_process(digits_spec, make_bundle, reference):
    from fpga_dnn.runtime.bridge import WorkerModelFn
    bundle = make_bundle(digits_spec)
    argv = [sys.executable, "-m", "fpga_dnn.runtime.bridge", "--factory",
            "fpga_dnn.runtime.bridge:reference_model_fn", str(bundle / "spec.json")]
    with WorkerModelFn(argv, timeout_s=30) as fn, open_sim(bundle, model=fn) as acc:
        x = acc.random_inputs(33)
        np.testing.assert_array_equal(acc.predict(x), reference(digits_spec, x))
        assert fn.calls == 1
    broken = WorkerModelFn([sys.executable, "-c", "import sys; sys.exit(3)"], timeout_s=10)
    with pytest.raises(DeviceError, match="model worker"):
        broken(np.zeros((1, 64), dtype=np.int64))


# ------------------------------------------------------------------ hls4ml's driver, for comparison

def test_hls4ml_driver_second_predict_bug_reproduced(tmp_path):
    from fpga_dnn.runtime.driver_bench import hls4ml_driver_path, load_hls4ml_driver, reproduce_hls4ml_bugs
    path = hls4ml_driver_path()
    assert path is not None, "hls4ml's driver template not found (toolchain environment .venv missing: `make env`)"
    rep = reproduce_hls4ml_bugs(load_hls4ml_driver(path), tmp_path)
    strict = rep["decode_second_predict_strict"]
    assert "FREED" in strict["original_output_buffer"]  # decode() dropped the last reference
    (first_da, first_target, _), (second_da, second_target, second_status) = strict["s2mm_destinations"]
    assert first_target.startswith("live buffer") and second_da != first_da
    assert second_target == "no buffer" and second_status.startswith("error 0x40")
    assert "RuntimeError" in strict["second_predict_error"]
    board = rep["decode_second_predict_board_like"]  # every DDR address decodes, as on a board
    assert board["s2mm_destinations"][1][2] == "done"  # the DMA wrote into unallocated memory...
    assert board["second_predict"] != board["second_predict_expected"]  # ...and predict returned stale data
    assert rep["result_aliasing"]["same_object"] is True
    assert rep["result_aliasing"]["first_result_before"] != rep["result_aliasing"]["first_result_after_second_call"]
    assert rep["no_batch_split"].startswith("ValueError")
