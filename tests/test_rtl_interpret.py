"""fpga_dnn.rtl.interpret: exact evaluation of traced logic where da4ml 0.6.0's C++ interpreter is not.

The logic here is BatchNormalization's ``x * scale + bias`` at full precision (35 bits for an
18-bit input and a scale with 19 fraction bits), then the two casts hls4ml applies after it. Every
one of the 2**18 inputs is checked against numpy's exact float64 arithmetic (the values fit in
53 bits) and against da4ml's own Python interpreter on a sample of them.
"""

from __future__ import annotations

import numpy as np

import fpga_dnn  # noqa: F401
from fpga_dnn.rtl import interpret
from fpga_dnn.rtl.precision import HlsType, cast_scalar, quantize_np

T_IN = HlsType(True, 18, 7)
RELU_OUT = HlsType(False, 8, 0, "RND_CONV", "SAT")
SIGNED_OUT = HlsType(True, 12, 6, "RND", "SAT")


def _bn_logic(scale_frac: int):
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    scale = quantize_np(np.array([1.04826355, 1.38109207, 1.1463604, -1.01144409]), HlsType(True, scale_frac + 2, 2))
    bias = quantize_np(np.array([-0.3603363, -0.56764984, -0.16611099, 0.16065216]), HlsType(True, 20, 1))
    full = lambda v: np.full((4,), v, dtype=np.int64)  # noqa: E731
    inp = FixedVariableArray.from_kif(full(T_IN.k), full(T_IN.i), full(T_IN.f), HWConfig(1, -1, -1), 0.0, None)
    bn = [inp._vars[j] * float(scale[j]) + float(bias[j]) for j in range(4)]
    outs = [cast_scalar(v.relu(), RELU_OUT) for v in bn] + [cast_scalar(v, SIGNED_OUT) for v in bn]
    comb = comb_trace(list(inp._vars), outs, keep_dead_inputs=True)
    x = np.repeat((np.arange(-2**17, 2**17) * T_IN.step)[:, None], 4, axis=1)
    exact = x * scale + bias
    ref = np.concatenate([quantize_np(np.maximum(exact, 0), RELU_OUT), quantize_np(exact, SIGNED_OUT)], axis=1)
    return comb, x, ref


def _rows_equal(a, b) -> float:
    return float(np.all(np.asarray(a) == np.asarray(b), axis=1).mean())


def test_wide_signed_logic_is_evaluated_exactly():
    comb, x, ref = _bn_logic(scale_frac=19)
    widest = max(sum(interpret._kif(op.qint)) for op in comb.ops)
    assert widest > interpret.CPP_SIGNED_MAX_BITS and not interpret.cpp_interpreter_exact(comb)
    assert _rows_equal(interpret.predict(comb, x), ref) == 1.0  # all 262,144 inputs
    sample = x[::1009]
    python_interp = np.array([comb(list(row)) for row in sample])
    assert _rows_equal(python_interp, ref[::1009]) == 1.0
    # the da4ml bug this works around; when this fails, da4ml is fixed: drop the fallback
    cpp = _rows_equal(comb.predict(x), ref)
    assert cpp < 0.9, f"da4ml's C++ interpreter is now exact on wide signed values ({cpp:.4f})"


def test_narrow_logic_matches_the_cpp_interpreter():
    comb, x, ref = _bn_logic(scale_frac=10)
    x, ref = x[::4], ref[::4]
    assert interpret.cpp_interpreter_exact(comb)
    ours = interpret.evaluate(comb, x)
    assert _rows_equal(ours, comb.predict(x)) == 1.0
    assert _rows_equal(ours, ref) == 1.0
