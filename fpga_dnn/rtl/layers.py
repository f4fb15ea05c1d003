"""One function per hls4ml layer class: the layer's C++ (io_parallel) rebuilt with da4ml's tracer.

Each handler takes one layer of hls4ml's graph as read by :mod:`fpga_dnn.hw.from_hls4ml` (a
:class:`~fpga_dnn.hw.layer_graph.LayerNode`: attributes, weights, types as plain data) and the
traced values of its inputs (``FixedVariableArray`` shaped like hls4ml's variables, channels_last)
and returns its traced output, already cast to the layer's ``result_t``. The semantics copied
here were read from hls4ml 1.3's Vivado ``nnet_utils`` headers; the comments name the function each handler mirrors, so a reviewer can
check one against the other.

The key rule, from ``nnet_dense_latency.h`` / ``nnet_conv2d_latency.h``: every product is
*assigned* to ``accum_t`` (rounded by accum_t's quantization mode, folded by its overflow mode),
the bias is cast to ``accum_t``, and the sums stay in ``accum_t``. With a WRAP accumulator the
sum is modular, so order does not matter and one wrap at the end is exact; products that land
on the accumulator's grid anyway go through da4ml's constant-matrix adder graph (CMVM), only the
others are rounded one by one. A saturating accumulator is order-dependent and is replayed in
the C++ loop order.
"""

from __future__ import annotations

from decimal import Decimal
from math import ceil, log2

import numpy as np

from fpga_dnn.errors import UnsupportedLayerError
from fpga_dnn.hw.layer_graph import (  # the layer as read from hls4ml's graph (fpga_dnn.hw.from_hls4ml)
    attr_type as _attr_type,
    in_type as _in_type,
    out_type as _out_type,
    weight_values,
)

from . import activations
from .precision import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    HlsType,
    UnsupportedPrecisionError,
    cast,
    cast_scalar,
    check_width,
    quantize_np,
)

STEP = "RTL generation"

#: Rounding modes for which ``cast(y + x) == y + cast(x)`` whenever ``y`` is on the target grid,
#: so an accumulation may round each term on its own (ties decided by ``x`` alone).
_SHIFT_INVARIANT_ROUNDING = ("TRN", "RND", "RND_MIN_INF")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _array(vars_, shape, like):
    from da4ml.trace import FixedVariableArray

    arr = np.empty(len(vars_), dtype=object)
    arr[:] = list(vars_)
    return FixedVariableArray(arr.reshape(shape), like.solver_options, hwconf=like.hwconf)


def _const(value: float, like):
    from da4ml.trace import FixedVariable

    return FixedVariable.from_const(float(value), hwconf=like.hwconf)


def _is_const(v) -> bool:
    return v.low == v.high


def _reduce(values: list, op):
    """Reduce with da4ml's latency-aware heap (combines the earliest-ready operands first)."""
    from da4ml.trace.ops import reduce

    if len(values) == 1:
        return values[0]
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return reduce(op, arr)


def _sum(values: list, like):
    if not values:
        return _const(0.0, like)
    return _reduce(values, lambda a, b: a + b)


def _on_grid(values: np.ndarray, step: float) -> np.ndarray:
    """Element-wise: is each (dyadic) value a whole multiple of ``step``? Exact in float64."""
    q = np.asarray(values, dtype=np.float64) / step
    return q == np.floor(q)


def _strategy(layer) -> str:
    return str(layer.attr("strategy", "latency") or "latency").lower()


# --------------------------------------------------------------------------------------------
# products: nnet_mult.h's product classes, chosen as FPGABackend.product_type chooses them
# --------------------------------------------------------------------------------------------

def _product_kind(data_kind: str, weight_kind: str) -> str:
    """``FPGABackend.product_type`` (hls4ml/backends/fpga/fpga_backend.py), from the kinds of the
    data and weight precisions (``ExponentPrecisionType`` / ``XnorPrecisionType``: see
    :data:`fpga_dnn.hw.layer_graph.KINDS`)."""
    if weight_kind == "exponent":
        return "weight_exponential"
    if weight_kind == "xnor" and data_kind == "xnor":
        return "both_binary"
    if weight_kind == "xnor":
        return "weight_binary"
    if data_kind == "xnor":
        return "data_binary"
    return "mult"  # also weight_ternary: w in {-1, 0, 1} gives a*w exactly


class _Products:
    """How one layer's products are formed, and what that does to its weights and inputs.

    * ``mult`` / ``weight_ternary``: ``a * w`` exactly.
    * ``weight_binary``: ``w == 0 ? -a : a``: the XNOR weight 0/1 stands for -1/+1.
    * ``data_binary``: ``a == 0 ? -w : w``: the XNOR input 0/1 stands for -1/+1.
    * ``both_binary``: ``a == w`` (1 or 0), summed in accum_t; ``cast`` then returns
      ``ap_int<ceillog2(n_in)+2>(acc * 2 - n_in)`` (nnet_mult.h), i.e. the +-1 dot product.
    * ``weight_exponential``: ``r_T y = (r_T) a << e; return sign ? y : (r_T) -y`` with
      ``r_T = ap_fixed<2*(We+Wx), We+Wx>``: a shift that truncates (an arithmetic right shift
      floors) and wraps in r_T; no multiplier, which suits adder graphs.
    """

    def __init__(self, kind: str, data_t: HlsType, w_type: HlsType):
        self.kind = kind
        self.r_t = None
        if kind == "weight_exponential":
            wx, we = data_t.width, w_type.width
            self.r_t = HlsType(True, 2 * (we + wx), we + wx)

    def weights(self, w: np.ndarray) -> np.ndarray:
        """Weight values as the products use them (XNOR 0/1 -> -1/+1)."""
        return 2.0 * w - 1.0 if self.kind in ("weight_binary", "both_binary") else w

    def inputs(self, xs: list) -> list:
        """Input values as the products use them (XNOR 0/1 -> -1/+1, but not for both_binary)."""
        if self.kind == "data_binary":
            return [_const(2.0 * float(v.low) - 1.0, v) if _is_const(v) else v * 2.0 - 1.0 for v in xs]
        return xs

    def bias_offset(self, w_pm: np.ndarray) -> np.ndarray:
        """both_binary: sum(a == w) = sum(a * w') + (count of w' == -1): that count per output."""
        if self.kind != "both_binary":
            return np.zeros(w_pm.shape[1])
        return (w_pm < 0).sum(axis=0).astype(np.float64)

    def product(self, v, w: float):
        """One shift product (weight_exponential); None: an exact product suits the adder graph."""
        if self.r_t is None:
            return None
        y = cast_scalar(v * abs(float(w)), self.r_t)
        return y if w > 0 else cast_scalar(-y, self.r_t)

    def finish(self, accs: list, n_in: int, like) -> list:
        """nnet_mult.h ``cast<data_T, res_T, CONFIG_T>`` before the cast to result_t."""
        if self.kind != "both_binary":
            return accs
        bits = max(0, ceil(log2(n_in))) + 2 if n_in > 1 else 2
        t = HlsType(True, bits, bits)
        return [cast_scalar(a * 2.0 - float(n_in), t) for a in accs]


def _products(layer, weight_var, where: str):
    """The products of ``layer`` (data: its first input) and its weight values (as the products use them)."""
    w, w_type = weight_values(weight_var, f"{where} weight")
    data_t = _in_type(layer, f"{where} input")
    p = _Products(_product_kind(layer.in_ports[0].kind, weight_var.kind), data_t, w_type)
    return p, p.weights(w)


# --------------------------------------------------------------------------------------------
# multiply-accumulate: Dense and Conv share it
# --------------------------------------------------------------------------------------------

def _affine(xs: list, w: np.ndarray, bias: np.ndarray, acc: HlsType, like, where: str, strategy: str,
            products: "_Products | None" = None) -> list:
    """``acc_j = (accum_t) b_j + sum_i (accum_t)(x_i * w_ij)`` in accum_t arithmetic.

    ``xs`` are traced scalars (constants allowed: padding, dead units), ``w`` is (len(xs), m).
    ``products`` (see :class:`_Products`): the layer's product kind; ``w`` is then already in
    the values the products use. Returns m traced scalars of type accum_t (not yet cast to
    result_t).
    """
    m = w.shape[1]
    b_acc = quantize_np(bias, acc)
    if products is not None:
        xs = products.inputs(xs)
        b_acc = b_acc + products.bias_offset(w)  # integers in an integer accumulator (both_binary)
        if products.r_t is not None:
            return _affine_products(xs, w, b_acc, acc, like, where, products)
    if acc.overflow != "WRAP":
        if strategy != "latency":
            raise UnsupportedPrecisionError(
                f"{where}: a saturating accumulator ({acc}) is replayed only for the Latency "
                f"strategy (its result depends on the summation order); this layer uses {strategy!r}"
            )
        return _affine_sequential(xs, w, b_acc, acc, like)

    const_part = b_acc.copy()
    var_idx = [i for i, v in enumerate(xs) if not _is_const(v)]
    for i, v in enumerate(xs):
        if _is_const(v) and float(v.low) != 0.0:
            const_part += quantize_np(float(v.low) * w[i], acc)
    if not var_idx:
        return [_const(c, like) for c in const_part]

    wv = w[var_idx]
    steps = np.array([float(xs[i].step) for i in var_idx])
    exact = _on_grid(wv * steps[:, None], acc.step)
    w_exact = np.where(exact, wv, 0.0)
    xv = _array([xs[i] for i in var_idx], (len(var_idx),), like)
    if np.any(w_exact):
        sums = list((xv @ w_exact)._vars)
    else:
        sums = [_const(0.0, like) for _ in range(m)]
    out = []
    for j in range(m):
        terms = [sums[j]]
        for r in np.nonzero(~exact[:, j])[0]:  # products finer than accum_t: round each one
            terms.append(cast_scalar(xv._vars[r] * float(wv[r, j]), acc))
        total = _sum(terms, like) + float(const_part[j])
        out.append(total)
    out_arr = _array(out, (m,), like)
    check_width(out_arr, where, "the accumulator before wrapping to accum_t")
    return list(cast(out_arr, acc)._vars)


def _affine_products(xs: list, w: np.ndarray, b_acc: np.ndarray, acc: HlsType, like, where: str,
                     products: "_Products") -> list:
    """Shift products (power-of-two weights): each product formed in r_T, then into accum_t."""
    out = []
    for j in range(w.shape[1]):
        a = _const(b_acc[j], like)
        if acc.overflow == "WRAP":
            terms = [cast_scalar(products.product(v, float(w[i, j])), acc) for i, v in enumerate(xs)]
            a = cast_scalar(_sum(terms + [a], like), acc)
        else:
            for i, v in enumerate(xs):
                a = cast_scalar(a + cast_scalar(products.product(v, float(w[i, j])), acc), acc)
        out.append(a)
    check_width(_array(out, (len(out),), like), where, "the power-of-two products' sum")
    return out


def _affine_sequential(xs: list, w: np.ndarray, b_acc: np.ndarray, acc: HlsType, like) -> list:
    """Saturating accumulator: ``acc = b; for i: acc = (accum_t)(acc + (accum_t)(x_i*w_ij))``."""
    out = []
    for j in range(w.shape[1]):
        a = _const(b_acc[j], like)
        for i, v in enumerate(xs):
            if w[i, j] == 0 or (_is_const(v) and float(v.low) == 0.0):
                continue  # adds exactly 0 to an in-range accumulator: no change
            a = cast_scalar(a + cast_scalar(v * float(w[i, j]), acc), acc)
        out.append(a)
    return out


# --------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------

def dense(layer, inputs):
    """``nnet::dense`` (latency and resource strategies): products and bias into accum_t."""
    x = inputs[0]
    where = f"layer {layer.name!r} (Dense)"
    products, w = _products(layer, layer.weights["weight"], where)
    if layer.attr("_weights_transposed", False):
        w = w.T  # the Resource strategy stores (n_out, n_in)
    n_in, n_out = w.shape
    b = _bias(layer, n_out, where)
    if x.size != n_in:
        raise UnsupportedLayerError(layer.name, f"Dense on a {x.shape} input (needs {n_in} values)",
                                    supported_layers(), step=STEP)
    acc = _attr_type(layer, "accum_t")
    accs = _affine(list(x._vars.ravel()), w, b, acc, x, where, _strategy(layer), products)
    return cast(_array(products.finish(accs, n_in, x), (n_out,), x), _out_type(layer))


def einsum_dense(layer, inputs):
    """``nnet::einsum_dense`` (nnet_einsum_dense.h, io_parallel, Latency): the input transposed to
    (inplace I, free L0, contract C), then for every (i, l0) one ``nnet::dense`` (DenseLatency,
    products and bias into accum_t, each output cast to result_t) of its C values with kernel
    slice i, written to (I, L0, L1) and transposed to the output. hls4ml's
    ``init_einsum_dense`` (vivado_backend.py) stores the kernel as (I, C, L1) and the bias
    broadcast to (I, L0, L1); its recipe comes from ``hls4ml.utils.einsum_utils.parse_einsum``."""
    x = inputs[0]
    where = f"layer {layer.name!r} (EinsumDense)"
    g = layer.attr
    n_l0, n_l1, n_c, n_i = (int(g(a)) for a in ("n_free_data", "n_free_kernel", "n_contract", "n_inplace"))
    products, w = _products(layer, layer.weights["weight"], where)
    w = np.asarray(w, np.float64).reshape(n_i, n_c, n_l1)
    bias_var = layer.weights.get("bias")
    b = (weight_values(bias_var, f"{where} bias")[0] if bias_var is not None else np.zeros(n_i * n_l0 * n_l1))
    b = np.asarray(b, np.float64).reshape(n_i, n_l0, n_l1)
    acc, res = _attr_type(layer, "accum_t"), _out_type(layer)
    xt = x.reshape(tuple(int(d) for d in g("inp_shape"))).transpose(tuple(g("inp_tpose_idxs")))
    xt = list(xt._vars.ravel())
    outs = []
    for i in range(n_i):
        for l0 in range(n_l0):
            taps = xt[(i * n_l0 + l0) * n_c:(i * n_l0 + l0 + 1) * n_c]
            accs = _affine(taps, w[i], b[i, l0], acc, x, where, "latency", products)
            outs.extend(cast(_array(products.finish(accs, n_c, x), (n_l1,), x), res)._vars)
    y = _array(outs, tuple(int(d) for d in g("out_interpert_shape")), x)
    return y.transpose(tuple(g("out_tpose_idxs"))).reshape(tuple(layer.out_shape))


def einsum(layer, inputs):
    """``nnet::einsum`` (nnet_einsum.h, io_parallel, Latency; HGQ2's two-operand ``QEinsum``): both
    operands transposed by ``inp{0,1}_tpose_idxs`` to (I, L0, C) and (I, L1, C); for every
    (i, l0, l1) ``accum_t acc = 0; acc += a*b`` over c (each exact product added and the sum cast
    to accum_t at every step), ``tpose_o = acc`` (the cast to result_t), then ``out_tpose_idxs``.
    With a TRN/WRAP accumulator, casting each product to accum_t and wrapping once at the end is
    the same sum (both operands of every step are on the accum_t grid but the product)."""
    a, b = inputs
    where = f"layer {layer.name!r} (Einsum)"
    g = layer.attr
    kind = _product_kind(layer.in_ports[0].kind, layer.in_ports[1].kind)
    if kind != "mult":
        raise UnsupportedLayerError(layer.name, f"Einsum with {kind} products (binary operands)",
                                    supported_layers(), step=STEP)
    n_l0, n_l1, n_c, n_i = (int(g(k)) for k in ("n_free0", "n_free1", "n_contract", "n_inplace"))
    acc, res = _attr_type(layer, "accum_t"), _out_type(layer)

    def transposed(x, which: str) -> list:
        shape = tuple(int(d) for d in g(f"{which}_shape"))
        return list(x.reshape(shape).transpose(tuple(g(f"{which}_tpose_idxs")))._vars.ravel())

    a_t, b_t = transposed(a, "inp0"), transposed(b, "inp1")
    outs = []
    for i in range(n_i):
        for l0 in range(n_l0):
            for l1 in range(n_l1):
                pairs = [(a_t[(i * n_l0 + l0) * n_c + c], b_t[i * n_l1 * n_c + l1 * n_c + c]) for c in range(n_c)]
                if acc.overflow == "WRAP" and acc.rounding == "TRN":
                    total = _sum([cast_scalar(p * q, acc) for p, q in pairs], a)
                else:
                    total = _const(0.0, a)
                    for p, q in pairs:
                        total = cast_scalar(total + p * q, acc)
                outs.append(cast_scalar(total, acc))
    y = cast(_array(outs, tuple(int(d) for d in g("out_interpert_shape")), a), res)
    return y.transpose(tuple(g("out_tpose_idxs"))).reshape(layer.out_shape)


def _bias(layer, n_out: int, where: str) -> np.ndarray:
    var = layer.weights.get("bias")
    if var is None:
        return np.zeros(n_out)
    b, _ = weight_values(var, f"{where} bias")
    return np.broadcast_to(b.ravel(), (n_out,)).astype(np.float64)


def conv(layer, inputs):
    """``nnet::conv_1d_cl`` / ``conv_2d_cl`` (io_parallel): zero-padded im2col, then as Dense."""
    x = inputs[0]
    name = layer.class_name
    where = f"layer {layer.name!r} ({name})"
    two_d = layer.is_a("Conv2D")  # hls4ml's 1x1 PointwiseConv2D and Conv2DBatchnorm derive from it
    if layer.attr("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(layer.name, f"{name} (channels_first)", supported_layers(), step=STEP)
    # Conv2DBatchnorm (QKeras QConv2DBatchnorm): hls4ml folded the BN into weight/bias already.
    products, w = _products(layer, layer.weights["weight"], where)
    if layer.attr("_weights_transposed", False):  # Resource strategy: (F, [H,] W, C)
        w = np.moveaxis(w, 0, -1)
    if not two_d:
        w = w[None]  # (1, W, C, F): a 1-D conv is a 2-D conv of height 1
        x = x.reshape((1,) + tuple(x.shape))
    if name.startswith("Depthwise") or layer.hls_class.startswith("Depthwise"):
        w = _depthwise_as_conv(layer, w, products, where)
    kh, kw, cin, nf = w.shape
    b = _bias(layer, nf, where)
    g = layer.attr
    dil = (g("dilation_height", 1) if two_d else 1, g("dilation_width", 1))
    if dil != (1, 1):
        raise UnsupportedLayerError(layer.name, f"{name} with dilation {dil}", supported_layers(), step=STEP)
    in_h, in_w = (g("in_height"), g("in_width")) if two_d else (1, g("in_width"))
    out_h, out_w = (g("out_height"), g("out_width")) if two_d else (1, g("out_width"))
    sh, sw = (g("stride_height"), g("stride_width")) if two_d else (1, g("stride_width"))
    pt, pl = (g("pad_top"), g("pad_left")) if two_d else (0, g("pad_left"))
    if tuple(x.shape) != (in_h, in_w, cin):
        raise UnsupportedLayerError(layer.name, f"{name} on a {x.shape} input", supported_layers(), step=STEP)
    acc = _attr_type(layer, "accum_t")
    strategy = _strategy(layer)
    wflat = w.reshape(kh * kw * cin, nf)
    outs = []
    for oh in range(out_h):
        for ow in range(out_w):
            taps, rows = [], []
            for a in range(kh):
                r = oh * sh + a - pt
                for c in range(kw):
                    col = ow * sw + c - pl
                    base = (a * kw + c) * cin
                    if 0 <= r < in_h and 0 <= col < in_w:
                        taps.extend(x._vars[r, col, :])
                        rows.extend(range(base, base + cin))
                    elif products.kind in ("data_binary", "both_binary"):
                        # a padded XNOR input is 0, which the products read as -1: not a no-op
                        taps.extend(_const(0.0, x) for _ in range(cin))
                        rows.extend(range(base, base + cin))
                    # other padded taps multiply a zero: skipped
            if not taps:
                outs.extend(_const(v, x) for v in quantize_np(b, acc))
                continue
            accs = _affine(taps, wflat[rows], b, acc, x, where, strategy, products)
            outs.extend(products.finish(accs, kh * kw * cin, x))
    shape = (out_h, out_w, nf) if two_d else (out_w, nf)
    return cast(_array(outs, shape, x), _out_type(layer))


def _depthwise_as_conv(layer, w: np.ndarray, products, where: str) -> np.ndarray:
    """``nnet::depthwise_conv_{1,2}d_latency_cl`` (nnet_sepconv{1,2}d_latency.h): output channel c
    is ``(accum_t) b_c + sum over taps of (accum_t)(x[tap, c] * w[tap, c])``, then the cast, i.e.
    a convolution whose filter c sees only input channel c: the kernel becomes block-diagonal
    (zero weights add no logic). hls4ml asserts a depth multiplier of 1."""
    kh, kw, c = w.shape[0], w.shape[1], w.shape[2]
    if w.size != kh * kw * c:
        raise UnsupportedLayerError(layer.name, f"{layer.hls_class} with depth multiplier {w.size // (kh * kw * c)}",
                                    supported_layers(), step=STEP)
    if products.kind == "both_binary":
        raise UnsupportedLayerError(layer.name, f"{layer.hls_class} of XNOR data with XNOR weights",
                                    supported_layers(), step=STEP)
    full = np.zeros((kh, kw, c, c))
    flat = w.reshape(kh, kw, c)
    for ch in range(c):
        full[:, :, ch, ch] = flat[:, :, ch]
    return full


def activation(layer, inputs):
    """``nnet::linear`` (a cast), ``nnet::relu`` (``x > 0 ? x : 0``, then the cast),
    ``nnet::binary_tanh`` and ``nnet::ternary_tanh`` (nnet_activation.h); the table ones
    (``nnet::sigmoid``, ``nnet::tanh``) are in :mod:`.activations`."""
    x = inputs[0]
    act = str(layer.attr("activation", "")).lower()
    res = _out_type(layer)
    if act == "linear":
        return cast(x, res)
    if act == "relu":
        return cast(x.relu(), res)
    if act == "binary_tanh":
        return _binary_tanh(x, res)
    if act == "ternary_tanh":
        return _ternary_tanh(x, _in_type(layer, f"layer {layer.name!r} input"), res)
    if act in activations.TABLE_FUNCTIONS:
        return activations.table_activation(layer, x)
    raise UnsupportedLayerError(layer.name, f"{layer.class_name}({act})", supported_layers(), step=STEP)


def _binary_tanh(x, res: HlsType):
    """``cache = data >= 0 ? 1 : -1; res = binary_cast<ap_int<2>, res_T>(cache)``: for
    ``res_T = ap_uint<1>`` that is ``cache > 0 ? 1 : 0``, otherwise ``(res_T) cache``."""
    vals = []
    for v in x._vars.ravel():
        pos = v >= 0.0  # 1 or 0
        vals.append(pos if (res.signed, res.width, res.integer) == (False, 1, 1) else cast_scalar(pos * 2.0 - 1.0, res))
    return cast(_array(vals, x.shape, x), res)


def _ternary_tanh(x, data_t: HlsType, res: HlsType):
    """``datareg = 2 * data`` (assigned to data_T: it wraps or saturates), then 1 when
    ``datareg > 1``, 0 when ``-1 < datareg <= 1``, else -1; ``(res_T) cache``."""
    vals = []
    for v in x._vars.ravel():
        d = cast_scalar(v * 2.0, data_t)
        hi = d > 1.0
        lo = d <= -1.0
        vals.append(cast_scalar(hi - lo, res))  # hi and lo never both hold
    return cast(_array(vals, x.shape, x), res)


def parametrized_activation(layer, inputs):
    """``nnet::leaky_relu`` (nnet_activation.h): ``data > 0 ? data : alpha * data`` with alpha a
    ``param_t`` constant (the layer's ``activ_param``); the product is exact, then the cast.
    QKeras ``quantized_relu(negative_slope=...)`` becomes this layer."""
    x = inputs[0]
    act = str(layer.attr("activation", "")).lower()
    if act not in ("leakyrelu", "leaky_relu"):
        raise UnsupportedLayerError(layer.name, f"ParametrizedActivation({act})", supported_layers(), step=STEP)
    param_t = _attr_type(layer, "param_t")
    alpha = float(quantize_np(float(layer.attr("activ_param", 1.0)), param_t))
    vals = []
    for v in x._vars.ravel():
        # v > 0 ? v : alpha*v  ==  relu(v) - alpha * relu(-v), exactly (one of the two is 0)
        vals.append(v.relu() - (-v).relu() * alpha if not _is_const(v) else
                    _const(float(v.low) if v.low > 0 else float(v.low) * alpha, x))
    return cast(_array(vals, x.shape, x), _out_type(layer))


def batchnorm_quantized_tanh(layer, inputs):
    """hls4ml's fused BatchNormalization -> binary/ternary (``BatchNormalizationQuantizedTanh``):
    ``nnet::normalize_binary_tanh``: ``data >= threshold ? 1 : 0`` (``ap_uint<1>``);
    ``nnet::normalize_ternary_tanh``: ``data > hi ? 1 : data <= lo ? -1 : 0`` (``ap_int<2>``)
    (nnet_batchnorm.h). The thresholds are data_T constants."""
    x = inputs[0]
    where = f"layer {layer.name!r} (BatchNormalization fused with a binary/ternary activation)"
    n = x.size
    n_filt = layer.attr("n_filt", -1)
    idx = np.arange(n) if (n_filt is None or n_filt in (-1, 0)) else np.arange(n) % n_filt
    flat = x._vars.ravel()
    q = layer.attr("quantize")
    vals = []
    if q == 2:
        t, _ = weight_values(layer.weights["threshold"], f"{where} threshold")
        t = t.ravel()
        for e in range(n):
            vals.append(flat[e] >= float(t[idx[e]]))
    elif q == 3:
        hi, _ = weight_values(layer.weights["threshold_hi"], f"{where} threshold_hi")
        lo, _ = weight_values(layer.weights["threshold_lo"], f"{where} threshold_lo")
        hi, lo = hi.ravel(), lo.ravel()
        for e in range(n):
            up = flat[e] > float(hi[idx[e]])
            down = flat[e] <= float(lo[idx[e]])
            # the C++ tests hi first: 1 wins even when lo > hi. (msb_mux with a variable operand
            # gave wrong values for a signed one in da4ml 0.6.0: only constants are muxed here.)
            neg = down.msb_mux(-1.0, 0.0) if not _is_const(down) else _const(-float(down.low), x)
            vals.append(up.msb_mux(1.0, neg) if not _is_const(up) else (_const(1.0, x) if float(up.low) else neg))
    else:
        raise UnsupportedLayerError(layer.name, f"BatchNormalizationQuantizedTanh(quantize={q})", supported_layers(),
                                    step=STEP)
    return cast(_array(vals, x.shape, x), _out_type(layer))


def batchnorm(layer, inputs):
    """``nnet::normalize``: ``res = data * scale + bias`` at full precision, then the cast."""
    x = inputs[0]
    where = f"layer {layer.name!r} ({layer.hls_class})"
    # the product is CONFIG_T::product<data_T, scale_t> (a shift for ApplyAlpha's po2 scale)
    products, scale = _products(layer, layer.weights["scale"], where)
    bias, _ = weight_values(layer.weights["bias"], f"{where} bias")
    scale, bias = scale.ravel(), bias.ravel()
    n = x.size
    n_filt = layer.attr("n_filt", -1)
    idx = np.arange(n) if (n_filt is None or n_filt == -1) else np.arange(n) % n_filt
    if idx.max() >= scale.size or idx.max() >= bias.size:
        raise UnsupportedLayerError(layer.name, "BatchNormalization with mismatched scale size",
                                    supported_layers(), step=STEP)
    flat = products.inputs(list(x._vars.ravel()))
    if products.kind == "both_binary":
        raise UnsupportedLayerError(layer.name, "BatchNormalization of XNOR data with XNOR scales",
                                    supported_layers(), step=STEP)
    vals = []
    for e in range(n):
        p = products.product(flat[e], float(scale[idx[e]]))
        vals.append((flat[e] * float(scale[idx[e]]) if p is None else p) + float(bias[idx[e]]))
    y = _array(vals, x.shape, x)
    check_width(y, where, "data * scale + bias")
    return cast(y, _out_type(layer))


def pooling(layer, inputs):
    """``nnet::pooling1d_cl`` / ``pooling2d_cl`` (io_parallel, channels_last), Max or Average.

    Copied quirks: a padded cell of a max pool holds data_T with only its MSB set (the most
    negative value when signed, but +2**(I-1) when unsigned); average pooling sums in accum_t,
    divides by the count of unpadded cells (``count_pad`` false) with C's truncation towards
    zero, and the max/average is cast to accum_t before the cast to result_t.
    """
    x = inputs[0]
    name = layer.class_name
    where = f"layer {layer.name!r} ({name})"
    two_d = layer.is_a("Pooling2D")
    g = layer.attr
    op = str(g("pool_op", "")).lower()
    if op not in ("max", "average"):
        raise UnsupportedLayerError(layer.name, f"{name}({op})", supported_layers(), step=STEP)
    if g("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(layer.name, f"{name} (channels_first)", supported_layers(), step=STEP)
    if not two_d:
        x = x.reshape((1,) + tuple(x.shape))
    in_h, in_w, nf = x.shape
    ph, pw = (g("pool_height"), g("pool_width")) if two_d else (1, g("pool_width"))
    sh, sw = (g("stride_height"), g("stride_width")) if two_d else (1, g("stride_width"))
    pt, pl = (g("pad_top"), g("pad_left")) if two_d else (0, g("pad_left"))
    out_h, out_w = (g("out_height"), g("out_width")) if two_d else (1, g("n_out"))  # Pooling1D: n_in/n_out
    data_t = _in_type(layer, f"{where} input")
    acc = _attr_type(layer, "accum_t")
    res = _out_type(layer)
    # pad_val<data_T, Max>(): x = 0; x[x.width - 1] = 1
    pad_max = quantize_np(-(2.0 ** (data_t.integer - 1)) if data_t.signed else 2.0 ** (data_t.integer - 1), data_t)
    outs = []
    for oh in range(out_h):
        for ow in range(out_w):
            for f in range(nf):
                cells, n_pad = [], 0
                for a in range(ph):
                    r = oh * sh + a - pt
                    for c in range(pw):
                        col = ow * sw + c - pl
                        if 0 <= r < in_h and 0 <= col < in_w:
                            cells.append(x._vars[r, col, f])
                        else:
                            n_pad += 1
                if op == "max":
                    vals = cells + ([_const(float(pad_max), x)] if n_pad else [])
                    y = cast_scalar(_reduce(vals, lambda p, q: p.max_of(q)), acc)
                else:
                    length = ph * pw if g("count_pad", False) else len(cells)
                    y = _trunc_div(_accumulate(cells, acc, x), length, acc, x)
                outs.append(y)
    shape = (out_h, out_w, nf) if two_d else (out_w, nf)
    return cast(_array(outs, shape, x), res)


def _accumulate(cells: list, acc: HlsType, like):
    """``accum_t y = 0; for (...) y += x[i];`` exactly."""
    if not cells:
        return _const(0.0, like)
    needs_rounding = any(float(v.step) < acc.step for v in cells if not _is_const(v))
    if acc.overflow == "WRAP" and (not needs_rounding or acc.rounding in _SHIFT_INVARIANT_ROUNDING):
        # y stays on accum_t's grid, so rounding y + x equals y + rounding x; WRAP is modular.
        total = _sum([cast_scalar(v, acc) for v in cells], like)
        return cast_scalar(total, acc)
    y = _const(0.0, like)
    for v in cells:
        y = cast_scalar(y + v, acc)
    return y


def _trunc_div(y, n: int, acc: HlsType, like):
    """``y /= n`` for ap_fixed ``y`` and unsigned ``n``: integer division of the raw value,
    truncating towards zero, result in y's own format.

    Built from adders: bias negative values by (n-1) ulps so that a floor division truncates
    towards zero, shift the range to non-negative, then floor(u / n) = floor(u * m / 2**s) with
    m = ceil(2**s / n), exact for 0 <= u <= U when U * (m*n - 2**s) < 2**s.
    """
    if n == 1:
        return y
    if _is_const(y):
        q = int(Decimal(y.low) / (Decimal(2) ** -acc.f))
        q = q // n if q >= 0 else -((-q) // n)
        return _const(q * acc.step, like)
    ulp = Decimal(2) ** -acc.f
    lo = int((y.low / ulp).to_integral_value())
    hi = int((y.high / ulp).to_integral_value())
    t = y + y.is_negative() * float((n - 1) * ulp) if lo < 0 else y
    shift_k = -(-max(0, -lo) // n)  # ceil
    u = t + float(shift_k * n * ulp) if shift_k else t
    u_max = hi + (n - 1 if lo < 0 else 0) + shift_k * n
    s = max(1, ceil(log2(n)))
    while True:
        m = -(-(1 << s) // n)
        if u_max * (m * n - (1 << s)) < (1 << s):
            break
        s += 1
    w = u * float(Decimal(m) / (Decimal(2) ** s))
    k, i, _ = w.kif
    q = w.quantize(k, i, acc.f, "WRAP", "TRN")
    return q - float(shift_k * ulp) if shift_k else q


def reshape(layer, inputs):
    """``Reshape``/``Flatten`` in io_parallel: the same array viewed in a new shape (no cast)."""
    shape = tuple(layer.out_shape)
    return inputs[0].reshape(shape)


def zeropadding(layer, inputs):
    """``nnet::zeropad1d_cl`` / ``zeropad2d_cl`` (nnet_padding.h, io_parallel): the data cast to
    result_t, zeros around it along the width (and height)."""
    x = inputs[0]
    g = layer.attr
    if g("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(layer.name, f"{layer.class_name} (channels_first)", supported_layers(), step=STEP)
    res = _out_type(layer)
    pads = [(int(g("pad_left")), int(g("pad_right")))]
    if layer.is_a("ZeroPadding2D"):
        pads.insert(0, (int(g("pad_top")), int(g("pad_bottom"))))
    y = cast(x, res)
    out_shape = tuple(layer.out_shape)
    cells = np.full(out_shape, None, dtype=object)
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, x.shape)) + (slice(None),)
    cells[inner] = y._vars
    zero = _const(0.0, x)
    flat = [zero if v is None else v for v in cells.ravel()]
    return _array(flat, out_shape, x)


def merge(layer, inputs):
    """``nnet::add`` / ``subtract`` / ``multiply`` / ``average`` / ``maximum`` / ``minimum``
    (nnet_merge.h): element-wise at full precision, the operands indexed ``ii % n_elem1`` and
    ``ii % n_elem2`` (broadcast), then the cast. ``multiply`` is the exact product of two
    variables (a multiplier; HGQ2's ``QMultiply``), ``average`` is ``(a + b) * 0.5``, exact."""
    a, b = inputs
    op = str(layer.attr("op", "")).lower()
    fns = {"add": lambda p, q: p + q, "subtract": lambda p, q: p - q, "multiply": lambda p, q: p * q,
           "average": lambda p, q: (p + q) * 0.5,
           "maximum": lambda p, q: p.max_of(q), "minimum": lambda p, q: p.min_of(q)}
    if op not in fns:
        raise UnsupportedLayerError(layer.name, f"Merge({op})", supported_layers(), step=STEP)
    fa, fb = a._vars.ravel(), b._vars.ravel()
    shape = tuple(layer.out_shape)
    n = int(np.prod(shape))
    vals = [fns[op](fa[e % fa.size], fb[e % fb.size]) for e in range(n)]
    return cast(_array(vals, shape, a), _out_type(layer))


def concatenate(layer, inputs):
    """``nnet::concatenate{1,2,3}d``: copy both operands into result_t along ``axis``."""
    a, b = inputs
    axis = int(layer.attr("axis", -1))
    if axis > 0:
        axis -= 1  # hls4ml counts the batch axis in positive axes
    return cast(np.concatenate([a, b], axis=axis), _out_type(layer))


def fixed_point_quantizer(layer, inputs):
    """HGQ2's ``FixedPointQuantizer`` left in the graph (heterogeneous, not fused):
    ``out[i] = ap_fixed<b_i, i_i, RND, SAT>(inp[i])`` (0 where b_i == 0), then result_t."""
    x = inputs[0]
    k, b, i = (np.broadcast_to(np.asarray(a)[0], x.shape) for a in layer.attr("mask_kbi"))
    rnd, sat = str(layer.attr("RND")).upper(), str(layer.attr("SAT")).upper()
    flat = x._vars.ravel()
    kf, bf, iff = k.ravel(), b.ravel(), i.ravel()
    vals = []
    for e in range(x.size):
        if bf[e] <= 0:
            vals.append(_const(0.0, x))
            continue
        t = HlsType.from_kbi(kf[e], bf[e], iff[e], rnd, sat)
        _validate_modes(t, f"layer {layer.name!r} (FixedPointQuantizer)")
        vals.append(cast_scalar(flat[e], t))
    return cast(_array(vals, x.shape, x), _out_type(layer))


def _validate_modes(t: HlsType, where: str) -> None:
    if t.rounding not in ROUNDING_MODES or t.overflow not in OVERFLOW_MODES:
        raise UnsupportedPrecisionError(f"{where}: modes {t.rounding}/{t.overflow} are not supported")


HANDLERS = {
    "Dense": dense,
    "EinsumDense": einsum_dense,
    "Einsum": einsum,  # two operands: branches of the one model input
    "Conv1D": conv,
    "Conv2D": conv,  # also hls4ml's PointwiseConv1D/2D (1x1 kernels), subclasses of these
    "Activation": activation,
    "BatchNormalization": batchnorm,
    "ApplyAlpha": batchnorm,  # QKeras alpha != 1: nnet::normalize with the scale (po2 for auto_po2)
    "BatchNormalizationQuantizedTanh": batchnorm_quantized_tanh,
    "ParametrizedActivation": parametrized_activation,
    "Conv2DBatchnorm": conv,
    "DepthwiseConv1D": conv,  # block-diagonal kernels; SeparableConv{1,2}D arrive split into
    "DepthwiseConv2D": conv,  # Depthwise + (Pointwise)Conv by hls4ml's SeparableToDepthwiseAndConv
    "PointwiseConv1D": conv,  # 1x1 kernels (hls4ml's fpga_layers)
    "PointwiseConv2D": conv,
    "Pooling1D": pooling,
    "Pooling2D": pooling,
    "Reshape": reshape,
    "ZeroPadding1D": zeropadding,
    "ZeroPadding2D": zeropadding,
    "Merge": merge,
    "Concatenate": concatenate,
    "FixedPointQuantizer": fixed_point_quantizer,
    "HardActivation": activations.hard_activation,  # also QKeras quantized_sigmoid/quantized_tanh
    "UnaryLUT": activations.unary_lut,  # HGQ2's QUnaryFunctionLUT (homogeneous table)
}


def supported_layers() -> list[str]:
    """What RTL generation accepts, as named in hls4ml's graph (for error messages)."""
    return [
        "Input", "Dense", "EinsumDense", "Einsum (two operands from one input)", "Conv1D", "Conv2D",
        "Activation(linear|relu|binary_tanh|ternary_tanh|sigmoid|tanh)", "HardActivation(hard_sigmoid|hard_tanh)",
        "UnaryLUT (HGQ2, homogeneous table)", "ParametrizedActivation(leakyrelu)",
        "BatchNormalization", "ApplyAlpha", "BatchNormalizationQuantizedTanh (BN fused with binary/ternary)",
        "Conv2DBatchnorm", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D/2D (as depthwise + pointwise)",
        "binary/ternary/power-of-two weights (XNOR, shift products)",
        "Pooling1D(Max|Average)", "Pooling2D(Max|Average)", "Reshape", "ZeroPadding1D", "ZeroPadding2D",
        "Merge(add|subtract|multiply|average|maximum|minimum)", "Concatenate", "FixedPointQuantizer",
        "Softmax (model output only: argmax or logits)",
    ]
