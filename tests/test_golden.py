"""Golden vectors in bundles and the runtime's known-answer self-test (toolchain env, emulate
backend; the sim backend with pynq's DMA driver is tests/board/test_golden_board.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fpga_dnn.errors import DataError
from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.bundle import BundleError, check_bundle
from fpga_dnn.runtime.fake.hwh import write_sim_bundle
from fpga_dnn.runtime.fake.models import reference_fn
from fpga_dnn.runtime.golden import GOLDEN_FILENAME, GoldenVectors, SelfTestError
from fpga_dnn.runtime.spec import Spec, SpecError
from fpga_dnn.verify.golden import choose, edge_inputs, make_golden


@pytest.fixture
def spec():
    return Spec.create("digits_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)


def reference_golden(spec, n_test=8):
    """Golden vectors of the instant model (the reference function behind the fake DMA)."""
    ref = reference_fn(spec)
    q_test = np.random.default_rng(1).integers(0, 32, size=(40, 64))
    return make_golden(spec, ref, q_test, [("itself", ref)], n_test=n_test, n_probes=8, pool_size=256)


def flip_one_bit(spec, vector, element, bit=0):
    """A model_fn that computes the reference but flips one output bit of one vector."""
    ref = reference_fn(spec)
    target = None

    def fn(q):
        nonlocal target
        out = ref(q).copy()
        if target is not None:
            rows = np.flatnonzero((q.reshape(len(q), -1) == target).all(axis=1))
            flat = out.reshape(len(out), -1)
            flat[rows, element] ^= 1 << bit
        return out

    def aim(golden):
        nonlocal target
        target = golden.inputs[vector].reshape(-1)

    return fn, aim


def test_golden_file_is_plain_npz_deterministic_and_checked(tmp_path, spec):
    gv, cov = reference_golden(spec)
    a, b = gv.save(tmp_path / "a.npz"), gv.save(tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()   # no time stamps: a rebuilt bundle keeps its checksum
    with np.load(a, allow_pickle=False) as d:
        assert set(d.files) == {"inputs", "outputs", "kinds", "format"} and d["inputs"].dtype == np.int64
    back = GoldenVectors.load(a, spec)
    assert np.array_equal(back.inputs, gv.inputs) and np.array_equal(back.outputs, gv.outputs)
    kinds = [str(k).split(" ")[0] for k in gv.kinds]
    assert kinds.count("test") == 8 and kinds.count("edge") == len(edge_inputs(spec.input.format, (64,)))
    # a pickled member is refused (never unpickled), as is a vector outside the format's range
    pickled = tmp_path / "p.npz"
    np.savez(pickled, inputs=gv.inputs, outputs=gv.outputs, kinds=np.array([{"x": 1}] * len(gv), dtype=object),
             format=np.array("fpga_dnn-golden-v1"))
    with pytest.raises(DataError, match="cannot be read"):
        GoldenVectors.load(pickled, spec)
    bad = GoldenVectors(gv.inputs + 40, gv.outputs, gv.kinds).save(tmp_path / "c.npz")
    with pytest.raises(DataError, match=r"inputs outside ufixed<5,5>'s range \[0, 31\]"):
        GoldenVectors.load(bad, spec)


def test_probe_choice_covers_output_extremes(spec):
    """Without a hardware graph the probes cover each output element's extremes that the pool
    reaches; the edges hit the input grid's minimum and maximum."""
    spec = Spec.create("narrow", (64,), "ufixed<5,5>", (10,), "fixed<6,6>", 3)   # outputs wrap: extremes reachable
    ref = reference_fn(spec)
    inputs, kinds, cov = choose(spec, ref, np.zeros((0, 64), dtype=np.int64), n_probes=64, pool_size=512)
    assert cov.covered == cov.reachable > 10
    out = ref(inputs).reshape(len(inputs), -1)
    assert (out == 31).any(axis=0).sum() + (out == -32).any(axis=0).sum() == cov.covered
    assert inputs.min() == 0 and inputs.max() == 31 and len(kinds) == len(inputs)


def test_self_test_accepts_the_right_design_and_names_the_wrong_one(tmp_path, spec):
    gv, cov = reference_golden(spec)
    bundle = write_sim_bundle(spec, tmp_path / "b", golden=gv, golden_info={"coverage": cov.as_dict()})
    assert GOLDEN_FILENAME in Spec.load(bundle).checksums
    rep = check_bundle(bundle)
    assert rep.ok and rep.facts["golden_vectors"] == f"{len(gv)} in golden.npz"
    with Accelerator.open(bundle, backend="emulate", allow_unsigned=True) as acc:
        assert acc.self_test_report.status == "passed" and acc.self_test_report.vectors == len(gv)
        assert acc.calls == 0 and acc.samples == 0      # the self-test is not the user's traffic
        assert acc.self_test().status == "passed"       # on demand (fpga-dnn verify)
    fn, aim = flip_one_bit(spec, vector=len(gv) - 2, element=3, bit=0)
    aim(gv)
    with pytest.raises(SelfTestError) as err:
        Accelerator.open(bundle, backend="emulate", allow_unsigned=True, model=fn)
    msg = str(err.value)
    want = int(gv.outputs[len(gv) - 2].reshape(-1)[3])
    assert "\n" not in msg
    assert f"golden vector {len(gv) - 2} ({gv.kinds[len(gv) - 2]}) output element 3: expected {want}" in msg
    assert f"got {want ^ 1}" in msg and f"1 of {len(gv)} vectors differ" in msg
    with Accelerator.open(bundle, backend="emulate", allow_unsigned=True, model=fn, self_test=False) as acc:
        assert acc.self_test_report is None and acc.self_test().status == "failed"


def test_bundles_without_or_with_broken_golden_vectors(tmp_path, spec, caplog):
    old = write_sim_bundle(spec, tmp_path / "old")       # made before golden vectors existed
    with caplog.at_level(logging.WARNING, logger="fpga_dnn.runtime"):
        with Accelerator.open(old, backend="emulate", allow_unsigned=True) as acc:
            assert acc.self_test_report.status == "none"
    assert "has no golden vectors" in caplog.text
    with pytest.raises(SelfTestError, match="self_test='required' refuses it"):
        Accelerator.open(old, backend="emulate", allow_unsigned=True, self_test="required")
    with pytest.raises(DataError, match="self_test must be True, False or 'required'"):
        Accelerator.open(old, backend="emulate", allow_unsigned=True, self_test="yes")
    assert any("no golden vectors" in w for w in check_bundle(old).warnings)

    gv, _ = reference_golden(spec)
    b = write_sim_bundle(spec, tmp_path / "b", golden=gv)
    GoldenVectors(gv.inputs, gv.outputs + 1, gv.kinds).save(b / GOLDEN_FILENAME)   # replaced after signing
    with pytest.raises(SpecError, match="golden.npz does not match its checksum"):
        Accelerator.open(b, backend="emulate", allow_unsigned=True)
    s = Spec.load(b)
    s.replace(checksums={k: v for k, v in s.checksums.items() if k != GOLDEN_FILENAME}).save(b)
    with pytest.raises(BundleError, match="not covered by a checksum"):
        Accelerator.open(b, backend="emulate", allow_unsigned=True)


@pytest.mark.slow
def test_flow_bundles_carry_golden_vectors_and_verify_passes(tiny_model_files, tmp_path, capsys):
    """The flow's deploy and overlay steps write golden vectors (the RTL emulation's outputs,
    equal to C-sim) into both bundles, under their checksums; the deploy step's open ran them;
    ``fpga-dnn verify --sim --design`` passes on the RTL emulation and fails, naming the vector,
    on the instant reference model (a board that computes something else)."""
    from fpga_dnn.cli import main
    from fpga_dnn.flow import FlowConfig, run_flow

    model, data = tiny_model_files
    cfg = FlowConfig.from_dict({"flow": {"steps": ["convert", "csim", "rtl", "overlay", "deploy"]},
                                "model": {"file": str(model), "data": str(data)}, "overlay": {"vivado": False},
                                "deploy": {"bench_calls": 10}}, base_dir=tmp_path)
    build = tmp_path / "b"
    rep = run_flow(cfg, build).values
    assert rep["runtime_self_test"] == "passed" and rep["golden_vectors"] >= 16 + 7, rep
    covered, reachable = map(int, rep["golden_events_covered"].split("/"))
    assert reachable > 0 and covered / reachable > 0.9, rep
    sim, overlay = build / "bundle" / "sim", build / "overlay" / "pynq-z2-rtl" / "bundle"
    for b in (sim, overlay):
        spec = Spec.load(b)
        assert GOLDEN_FILENAME in spec.checksums and spec.extra["golden"]["coverage"]["covered"] == covered
    assert (sim / GOLDEN_FILENAME).read_bytes() == (overlay / GOLDEN_FILENAME).read_bytes()
    gv = GoldenVectors.load(sim / GOLDEN_FILENAME)
    kinds = {str(k).split(" ")[0] for k in gv.kinds}
    assert {"test", "edge"} <= kinds
    key = build / "keys" / "throwaway.pub"
    capsys.readouterr()
    assert main(["verify", str(sim), "--sim", "--design", str(build / "rtl" / "core"), "--trusted-key", str(key)]) == 0
    out = capsys.readouterr().out
    assert f"PASS: self-test of tiny on emulate: all {len(gv)} golden vectors bit-exact" in out and "edge" in out
    assert main(["verify", str(sim), "--sim", "--trusted-key", str(key)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: self-test of tiny on emulate failed: golden vector 0 (test 0) output element" in out
    assert "instant reference function" in out
