"""The golden-vector self-test on the sim backend: the real pynq Overlay and DMA driver on the
fake board, with a correct design behind the DMA and one that flips a single output bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.fake.hwh import write_sim_bundle
from fpga_dnn.runtime.fake.models import InstantModel, reference_fn
from fpga_dnn.runtime.golden import GoldenVectors, SelfTestError

REPO = Path(__file__).resolve().parents[2]


class FlipOneBit:
    """A frame model behind the fake DMA: the correct design, but one bit of the S2MM stream
    flipped in the output sample that answers ``target`` (bit ``bit`` of byte ``byte`` of it)."""

    frame_model = True

    def __init__(self, spec, target: np.ndarray, byte: int, bit: int):
        self.inner, self.spec = InstantModel(spec), spec
        self.target, self.byte, self.bit = np.asarray(target, dtype=np.int64).reshape(-1), byte, bit
        self.flips = 0

    def __call__(self, frame):
        from fpga_dnn.runtime.packing import unpack

        out = self.inner(frame)
        q = unpack(np.asarray(frame, dtype=np.uint8), self.spec.input).reshape(-1, self.spec.input.elements)
        rows = np.flatnonzero((q == self.target).all(axis=1))
        out = out.copy()
        for r in rows:
            out[r * self.spec.output.sample_bytes + self.byte] ^= 1 << self.bit
            self.flips += 1
        return out


@pytest.fixture
def golden_bundle(tmp_path, digits_spec):
    ref = reference_fn(digits_spec)
    rng = np.random.default_rng(0)
    q = rng.integers(0, 32, size=(24, 64))
    gv = GoldenVectors(q, ref(q), [f"test {i}" for i in range(24)])
    return write_sim_bundle(digits_spec, tmp_path / "b", golden=gv), gv


def test_sim_backend_self_test_accepts_the_right_design(golden_bundle):
    bundle, gv = golden_bundle
    with Accelerator.open(bundle, backend="sim", allow_unsigned=True) as acc:
        assert acc.self_test_report.status == "passed" and acc.self_test_report.vectors == len(gv)
        x = acc.random_inputs(3)
        assert acc.predict(x).shape == (3, 10)


def test_sim_backend_refuses_a_board_that_flips_one_output_bit(golden_bundle, digits_spec):
    bundle, gv = golden_bundle
    # output lanes are 16 bits: byte 7 is element 3's high byte, bit 1 there is bit 9 of the element
    model = FlipOneBit(digits_spec, gv.inputs[5], byte=7, bit=1)
    with pytest.raises(SelfTestError) as err:
        Accelerator.open(bundle, backend="sim", allow_unsigned=True, model=model)
    want = int(gv.outputs[5][3])
    got = want ^ (1 << 9)
    got = got - (1 << 16) if got >= 1 << 15 else got
    msg = str(err.value)
    assert model.flips == 1 and "\n" not in msg
    assert f"golden vector 5 (test 5) output element 3: expected {want}" in msg and f"got {got}" in msg
    assert "1 of 24 vectors differ" in msg


def test_board_verify_command_prints_the_table(golden_bundle):
    bundle, gv = golden_bundle
    r = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "verify", str(bundle), "--sim", "--allow-unsigned"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "test" in r.stdout and f"PASS: self-test of digits_mlp on sim: all {len(gv)} golden vectors" in r.stdout
