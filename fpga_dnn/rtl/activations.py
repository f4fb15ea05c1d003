"""hls4ml's table and clipped-line activations rebuilt with da4ml's tracer, bit for bit.

* ``Activation(sigmoid | tanh)`` (``nnet::sigmoid`` / ``nnet::tanh``, nnet_activation.h): a table
  of ``table_size`` entries of ``table_t``, filled once by ``init_sigmoid_table`` /
  ``init_tanh_table`` in single-precision C, and read at ``index = (int)(data * N / S) + N / 2``
  (S = 16 for sigmoid, 8 for tanh), clamped to ``[0, N - 1]``; then ``(res_T) table[index]``.
* ``HardActivation`` (``nnet::hard_sigmoid`` / ``hard_tanh``): ``slope * data + shift`` at full
  precision, clipped to ``[0, 1]``, (``2 * s - 1`` for tanh), then the cast. QKeras
  ``quantized_sigmoid`` / ``quantized_tanh`` (without ``use_real_*``) arrive as this layer.
* HGQ2's homogeneous ``UnaryLUT`` (``nnet::unary_lut``): the table is a weight of ``table_t``
  indexed by the input's raw bits read as unsigned (two's complement: negative values at the top).

In hardware the index is a shift and a truncation towards zero (adders), saturated to the table's
range, and the table (fused with the casts to ``table_t`` and ``res_T``) is one da4ml lookup
(opcode 8: ``lookup_table.v``, a ROM read with ``$readmemh``) over the values the index can take.

Why the table entries come from the C library: ``init_tanh_table`` calls ``tanhf`` and
``init_sigmoid_table`` calls ``expf`` in ``float``; glibc's ``tanhf`` is not correctly rounded and
numpy's float32 functions are not glibc's, so numpy disagrees with C-sim's table on about 3% of
the entries at 22 fraction bits. The same libm functions that the C-sim library calls, called
through ctypes, give C-sim's table exactly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from fpga_dnn.errors import ToolError, UnsupportedLayerError
from fpga_dnn.hw.layer_graph import attr_type, in_type, out_type, weight_values

from .precision import HlsType, UnsupportedPrecisionError, cast, cast_scalar, quantize_np

#: function -> (half the input span of init_*_table, the span S the index divides by)
TABLE_FUNCTIONS = {"sigmoid": (8.0, 16), "tanh": (4.0, 8)}
#: the widest index a table lookup is built for (a ROM of 2**bits entries per element)
MAX_LOOKUP_BITS = 16


def _step():
    from .layers import STEP, supported_layers

    return STEP, supported_layers()


def _refuse(layer, what: str):
    step, supported = _step()
    return UnsupportedLayerError(layer.name, what, supported, step=step)


def _array(vals, shape, like):
    from .layers import _array as array

    return array(vals, shape, like)


def _const(value: float, like):
    from da4ml.trace import FixedVariable

    return FixedVariable.from_const(float(value), hwconf=like.hwconf)


# --------------------------------------------------------------------------------------------
# one lookup
# --------------------------------------------------------------------------------------------

def lookup(v, fn, where: str):
    """``fn`` (numpy, element-wise) of the traced scalar ``v`` as one da4ml lookup table over the
    values ``v`` can take (a constant when ``v`` is one or ``fn`` is constant on them)."""
    lo, hi, step = float(v.low), float(v.high), float(v.step)
    if lo == hi:
        return _const(float(np.asarray(fn(np.array([lo])))[0]), v)
    n = round((hi - lo) / step) + 1
    if n > 2**MAX_LOOKUP_BITS:
        raise UnsupportedPrecisionError(f"{where}: a lookup over {n} input values (more than "
                                        f"2**{MAX_LOOKUP_BITS}); narrow the layer's input type")
    table = np.asarray(fn(lo + step * np.arange(n)), dtype=np.float64)
    if np.all(table == table[0]):
        return _const(float(table[0]), v)
    return v.lookup(table)


# --------------------------------------------------------------------------------------------
# sigmoid / tanh tables (nnet_activation.h)
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _libm():
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name)
    except OSError as err:  # pragma: no cover - every Linux/glibc system has libm
        raise ToolError(f"the C math library (libm) does not load ({err}); it computes hls4ml's "
                        "sigmoid/tanh tables exactly as C-sim does") from None
    for fn in ("expf", "tanhf"):
        getattr(lib, fn).restype = ctypes.c_float
        getattr(lib, fn).argtypes = [ctypes.c_float]
    return lib


@lru_cache(maxsize=None)
def c_table(function: str, n: int) -> tuple[float, ...]:
    """``init_sigmoid_table`` / ``init_tanh_table`` before the cast to ``table_t``: the ``float``
    each entry holds (``in_val`` in double, stored as float; ``1.0 / (1 + expf(-x))`` returned
    as float; ``tanhf(x)``)."""
    half, _ = TABLE_FUNCTIONS[function]
    ii = np.arange(n, dtype=np.float64)
    x = (2 * half * (ii - n / 2.0) / n).astype(np.float32)
    m = _libm()
    if function == "sigmoid":
        e = np.array([m.expf(float(-v)) for v in x], dtype=np.float32)
        vals = (1.0 / (np.float32(1) + e).astype(np.float64)).astype(np.float32)
    else:
        vals = np.array([m.tanhf(float(v)) for v in x], dtype=np.float32)
    return tuple(float(v) for v in vals)


def table_index_np(x, n: int, span: int) -> np.ndarray:
    """The C++ index: ``(int)(data * N / S)`` truncates towards zero (ap_fixed's division is a
    signed integer division of the raw value, its int conversion truncates too), ``+ N / 2``
    (unsigned integer arithmetic), clamped to ``[0, N - 1]``."""
    t = np.trunc(np.asarray(x, dtype=np.float64) * n / span)
    return np.clip(t + (n // 2), 0, n - 1).astype(np.int64)


def table_activation(layer, x):
    """``nnet::sigmoid`` / ``nnet::tanh`` on every element of ``x``."""
    act = str(layer.attr("activation", "")).lower()
    where = f"layer {layer.name!r} ({layer.class_name}({act}))"
    n = int(layer.attr("table_size", 1024))
    _, span = TABLE_FUNCTIONS[act]
    table_t = attr_type(layer, "table_t")
    res = out_type(layer)
    data_t = in_type(layer, f"{where} input")
    if max(abs(data_t.min_value), abs(data_t.max_value)) * n / span >= 2**31:
        raise UnsupportedPrecisionError(f"{where}: data * table_size overflows the C++ int index for input {data_t}")
    entries = quantize_np(quantize_np(np.array(c_table(act, n)), table_t), res)  # (res_T) table_t(value)
    # index - N/2 in hardware: data * N/S truncated towards zero, saturated to the table's range
    bits = max(1, (n - 1).bit_length())  # 2**(bits-1) >= ceil(N/2): saturation = the C++ clamps
    idx_t = HlsType(True, bits, bits, "TRN_ZERO", "SAT")
    vals = []
    for v in x._vars.ravel():
        t = cast_scalar(v * (n / span), idx_t)
        vals.append(lookup(t, lambda k: entries[np.clip(k + n // 2, 0, n - 1).astype(np.int64)], where))
    return cast(_array(vals, x.shape, x), res)


# --------------------------------------------------------------------------------------------
# hard sigmoid / tanh
# --------------------------------------------------------------------------------------------

def _sum_integer_bits(data_t: HlsType, slope_t: HlsType, shift_t: HlsType) -> tuple[bool, int]:
    """(signed, integer bits) of ``auto datareg = slope * data + shift`` (ap_fixed's RType rules)."""
    s, i = data_t.signed or slope_t.signed, data_t.integer + slope_t.integer
    i = max(i + (shift_t.signed and not s), shift_t.integer + (s and not shift_t.signed)) + 1
    return s or shift_t.signed, i


def hard_activation(layer, inputs):
    """``nnet::hard_sigmoid``: ``datareg = slope * data + shift`` (exact), ``1`` when above 1,
    ``0`` when below 0, then ``res = datareg``; ``nnet::hard_tanh``: ``res = 2 * sigmoid - 1``.
    ``slope``/``shift`` are ``slope_t``/``shift_t`` constants printed from the layer's floats."""
    x = inputs[0]
    act = str(layer.attr("activation", "")).lower()
    if act not in ("hard_sigmoid", "hard_tanh"):
        raise _refuse(layer, f"HardActivation({act})")
    where = f"layer {layer.name!r} (HardActivation({act}))"
    slope_t, shift_t = attr_type(layer, "slope_t"), attr_type(layer, "shift_t")
    slope = float(quantize_np(float(layer.attr("slope")), slope_t))
    shift = float(quantize_np(float(layer.attr("shift")), shift_t))
    data_t = in_type(layer, f"{where} input")
    signed, integer = _sum_integer_bits(data_t, slope_t, shift_t)
    if integer - int(signed) < 1:  # datareg = 1 would wrap in C++
        raise UnsupportedPrecisionError(f"{where}: slope * data + shift has no room for the value 1")
    vals = []
    for v in x._vars.ravel():
        s = v * slope + shift if slope != 0.0 else _const(shift, x)
        # clip(s, 0, 1) = 1 - relu(1 - relu(s)): exact, and only relu (no variable muxes)
        c = _const(min(max(float(s.low), 0.0), 1.0), x) if s.low == s.high else 1.0 - (1.0 - s.relu()).relu()
        vals.append(c if act == "hard_sigmoid" else c * 2.0 - 1.0)
    return cast(_array(vals, x.shape, x), out_type(layer))


# --------------------------------------------------------------------------------------------
# HGQ2 UnaryLUT
# --------------------------------------------------------------------------------------------

def unary_lut(layer, inputs):
    """``nnet::unary_lut``: ``res = (res_T) table[(unsigned) data(W-1, 0)]``, one table (a
    ``table_t`` weight) for every element."""
    x = inputs[0]
    where = f"layer {layer.name!r} (UnaryLUT)"
    data_t = in_type(layer, f"{where} input")
    table, _table_t = weight_values(layer.weights["table"], f"{where} table")
    table = table.ravel()
    if table.size != 2**data_t.width:
        raise _refuse(layer, f"UnaryLUT with {table.size} entries for a {data_t.width}-bit input {data_t} "
                             f"(the index is the input's raw bits: needs {2**data_t.width})")
    entries = quantize_np(table, out_type(layer))

    def fn(values):
        code = np.round(np.asarray(values) / data_t.step).astype(np.int64)
        return entries[np.mod(code, 2**data_t.width)]

    vals = [lookup(v, fn, where) for v in x._vars.ravel()]
    return cast(_array(vals, x.shape, x), out_type(layer))
