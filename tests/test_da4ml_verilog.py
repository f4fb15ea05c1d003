"""da4ml 0.6.0's Verilog for saturating casts of values held at a large scale factor.

A SAT cast is two msb_mux against constants (``max_of(low).min_of(high)``). da4ml holds values in
unscaled units: after a BatchNormalization scale with 36 fraction bits, ``3.9375`` is the unscaled
``63 * 2**32``, and da4ml's ``_const_f`` (searching f only in (-32, 32]) gives that constant a
step of ``2**31``. Its interpreters are right; its Verilog ``mux`` drops the resulting negative
shift and doubles the constant, so a saturating ``ufixed<6,2,RND_CONV,SAT>`` came out 3.875, not
3.9375 (the BN test model: 1968/2000 in Verilator). ``fpga_dnn.compat`` replaces ``_const_f``.
The cone below is that cast; Verilator runs it on all 256 inputs (a build of seconds).
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401
from fpga_dnn import compat
from fpga_dnn.rtl.precision import HlsType, cast_scalar, quantize_np

T_IN = HlsType(True, 8, 4)                       # fixed<8,4>: -8 .. 7.9375, every value enumerated
T_RES = HlsType(True, 52, 12)                    # the BN result: wide, exact
ACT = HlsType(False, 6, 2, "RND_CONV", "SAT")    # quantized_relu(6,2): saturates from 3.96875 up
SCALE_FRAC = 40                                  # scale 1 + 2**-40: the cone runs at factor 2**-40


def _dropped_mux_shifts(comb) -> list[int]:
    """msb_mux ops whose Verilog would drop a shift (da4ml's ``comb.py`` keeps only shift1 > 0 and
    shift0 < 0): the ops da4ml's interpreters and its Verilog disagree on."""
    from da4ml.types import minimal_kif

    kifs = [minimal_kif(op.qint) for op in comb.ops]
    bad = []
    for i, op in enumerate(comb.ops):
        if abs(op.opcode) != 6:
            continue
        shift = (op.data >> 32) & 0xFFFFFFFF
        shift = shift - (1 << 32) if shift >= 1 << 31 else shift
        shift1, shift0 = kifs[i][2] - kifs[op.id1][2] + shift, kifs[i][2] - kifs[op.id0][2]
        if shift1 < 0 or shift0 > 0:
            bad.append(i)
    return bad


def _sat_cone():
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    one = np.array([1])
    inp = FixedVariableArray.from_kif(one * T_IN.k, one * T_IN.i, one * T_IN.f, HWConfig(1, -1, -1), 0.0, None)
    v = (inp._vars[0] * 2.0**-SCALE_FRAC) * float(2**SCALE_FRAC + 1)  # x * (1 + 2**-40), at factor 2**-40
    y = cast_scalar(cast_scalar(v, T_RES).relu(), ACT)
    comb = comb_trace([inp._vars[0]], [y], keep_dead_inputs=True)
    x = (np.arange(-128, 128) * T_IN.step)[:, None]
    ref = quantize_np(np.maximum(quantize_np(x * (1 + 2.0**-SCALE_FRAC), T_RES), 0), ACT)
    return comb, x, ref


def test_const_f_is_exact_for_any_exponent():
    compat.apply_da4ml()
    from da4ml.trace import fixed_variable, tracer

    assert fixed_variable._const_f is compat._const_f_exact and tracer._const_f is compat._const_f_exact
    for value, f in ((1.0, 0), (3.9375, 4), (63 * 2.0**32, -32), (2.0**40, -40), (3 * 2.0**-40, 40),
                     (-0.75, 2), (0.0, -32)):
        assert compat._const_f_exact(value) == f, value
    original = compat._da4ml_const_f
    if original is not None:  # da4ml's own agrees inside its range, and is still wrong outside it
        for value in (0.15625, -12.5, 7 * 2.0**20, 2.0**-31):
            assert original(value) == compat._const_f_exact(value)
        assert original(2.0**40) != -40, "da4ml's _const_f is fixed: drop the compat replacement"


@pytest.mark.slow
def test_saturating_cast_at_large_factor_is_exact_in_verilator(tmp_path):
    from fpga_dnn.rtl import write_verilog
    from fpga_dnn.rtl.trace import TracedModel
    from fpga_dnn.simulate.emulator import compile_emulator

    compat.apply_da4ml()
    comb, x, ref = _sat_cone()
    assert comb.out_shifts[0] <= -36, "the cone no longer runs at a large factor: it tests nothing"
    assert np.sum(ref == ACT.max_value) > 50  # many inputs saturate
    assert _dropped_mux_shifts(comb) == []
    python = np.array([comb(list(row)) for row in x])
    assert np.array_equal(python, ref)
    traced = TracedModel(comb=comb, input_type=T_IN, output_type=ACT, input_shape=(1,), output_shape=(1,), layers=[])
    emu = compile_emulator(write_verilog(traced, tmp_path / "rtl", latency_cutoff=5))
    rtl = emu.predict(x)
    assert np.array_equal(rtl, ref), f"Verilator differs on {int(np.sum(rtl != ref))} of {len(x)} inputs"


def test_cone_has_the_dropped_shift_without_the_fix(monkeypatch):
    """The premise: with da4ml's own ``_const_f`` the cone has a mux whose Verilog drops a shift."""
    from da4ml.trace import fixed_variable, tracer

    compat.apply_da4ml()
    assert compat._da4ml_const_f is not None, "da4ml's _const_f is fixed: drop the compat replacement"
    for module in (fixed_variable, tracer):
        monkeypatch.setattr(module, "_const_f", compat._da4ml_const_f)
    comb, _, _ = _sat_cone()
    assert _dropped_mux_shifts(comb)
