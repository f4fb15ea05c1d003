"""A numpy integer executor of the hardware graph: the executable spec the streaming Verilog equals.

Every stream element is an int64 code (value * 2**frac of its port type); each node computes
exactly what its hardware unit computes, in the unit's integer widths: a matrix-vector unit
wraps its accumulator at ``acc_width`` bits, a requant rounds and overflows as ``ap_fixed``'s
assignment does (:func:`requant_int`, equal to :func:`fpga_dnn.rtl.precision.quantize_np` on
the integer grid). Tested equal to hls4ml's C-sim and to Keras in ``tests/test_stream_lowering.py``.
"""

from __future__ import annotations

import numpy as np

from fpga_dnn.errors import DataError
from fpga_dnn.rtl.precision import quantize_np, round_increment

from .graph import (
    AddNode,
    AffineNode,
    ConcatNode,
    HwGraph,
    InputNode,
    MatVecNode,
    PoolNode,
    Requant,
    RequantNode,
    Window,
)
from .lower import to_int, type_range


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap-around of int64 values to ``bits`` bits."""
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - 1)) - half


def requant_int(x: np.ndarray, rq: Requant) -> np.ndarray:
    """``rq.out(x * 2**-(rq.out.f + rq.shift))`` on integer codes, ap_fixed's rounding then overflow."""
    x = np.asarray(x, dtype=np.int64)
    if rq.relu:
        x = np.maximum(x, 0)
    s = rq.shift
    if s <= 0:
        v = x << np.int64(-s)
    else:
        fl = x >> np.int64(s)                         # floor (arithmetic shift)
        rem = x - (fl << np.int64(s))                 # dropped bits, in [0, 2**s)
        half = np.int64(1) << np.int64(s - 1)
        qb = rem >= half                              # the first dropped bit
        r = (rem - half * qb) > 0                     # any dropped bit below it
        neg = x < 0
        lsb = (fl & 1) == 1
        v = fl + round_increment(rq.out.rounding, qb, r, neg, lsb)
    lo, hi = type_range(rq.out)
    mode = rq.out.overflow
    if mode == "WRAP":
        v = wrap(v, rq.out.width) if rq.out.signed else v & np.int64((1 << rq.out.width) - 1)
    elif mode == "SAT":
        v = np.clip(v, lo, hi)
    elif mode == "SAT_SYM":
        v = np.clip(v, -hi if rq.out.signed else lo, hi)
    elif mode == "SAT_ZERO":
        v = np.where((v < lo) | (v > hi), 0, v)
    return v


def requant_chain(x: np.ndarray, chain) -> np.ndarray:
    for rq in chain:
        x = requant_int(x, rq)
    return x


def windows(x: np.ndarray, win: Window) -> np.ndarray:
    """(n, H, W, C) -> (n, OH, OW, KH*KW*C), element ``(kh*KW + kw)*C + c``, zeros in the padding."""
    n, h, w, c = x.shape
    xp = np.zeros((n, h + win.pt + win.pb, w + win.pl + win.pr, c), dtype=np.int64)
    xp[:, win.pt:win.pt + h, win.pl:win.pl + w, :] = x
    oh, ow = win.out_hw(h, w)
    cols = []
    for a in range(win.kh):
        for b in range(win.kw):
            cols.append(xp[:, a:a + win.sh * (oh - 1) + 1:win.sh, b:b + win.sw * (ow - 1) + 1:win.sw, :])
    return np.concatenate(cols, axis=-1)


def _matvec(node: MatVecNode, x: np.ndarray) -> np.ndarray:
    n = len(x)
    vec = windows(x, node.window) if node.window is not None else x.reshape(n, 1, 1, -1)
    acc = np.einsum("nhwk,mk->nhwm", vec, node.w, dtype=np.int64, optimize=False) + node.bias
    return requant_chain(wrap(acc, node.acc_width), node.requant)


def _affine(node: AffineNode, x: np.ndarray) -> np.ndarray:
    return requant_chain(x * node.scale + node.bias, node.requant)


def _pool(node: PoolNode, x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    win = windows(x, node.window).reshape(n, *node.window.out_hw(h, w), node.window.size, c)
    red = win.max(axis=3) if node.mode == "max" else win.sum(axis=3)
    return requant_chain(red, node.requant)


def evaluate(node, ins: list) -> np.ndarray:
    """One node's output codes from its inputs' (the input node: ``ins[0]`` itself)."""
    if isinstance(node, InputNode):
        y = np.asarray(ins[0], dtype=np.int64).reshape((-1,) + node.out_shape)
    elif isinstance(node, MatVecNode):
        y = _matvec(node, ins[0])
    elif isinstance(node, AffineNode):
        y = _affine(node, ins[0])
    elif isinstance(node, PoolNode):
        y = _pool(node, ins[0])
    elif isinstance(node, AddNode):
        y = requant_chain((ins[0] << np.int64(node.shift_a)) + (ins[1] << np.int64(node.shift_b)), node.requant)
    elif isinstance(node, ConcatNode):
        y = np.concatenate([requant_chain(ins[0], node.requant_a), requant_chain(ins[1], node.requant_b)], axis=-1)
    elif isinstance(node, RequantNode):
        y = requant_chain(ins[0], node.requant)
    else:  # pragma: no cover - every node kind is handled above
        raise AssertionError(f"no reference for node kind {node.kind}")
    return y.reshape((-1,) + node.out_shape)


def run(graph: HwGraph, x_int: np.ndarray, keep: bool = False, hook=None):
    """Execute ``graph`` on input codes ``x_int`` (n, H, W, C).

    Returns the output node's codes (n, OH, OW, C), or with ``keep`` a dict of every node's.
    ``hook(node, codes) -> codes``, if given, sees (and may replace) every node's output before
    the nodes after it read it (fault injection: :mod:`fpga_dnn.verify.model_faults`).
    """
    vals: dict[str, np.ndarray] = {}
    for node in graph:
        y = evaluate(node, [x_int] if isinstance(node, InputNode) else [vals[i] for i in node.inputs])
        vals[node.name] = y if hook is None else hook(node, y)
        if not keep:  # drop values no later node reads
            for name in list(vals):
                if name != node.name and not any(name in m.inputs for m in graph.nodes[graph.nodes.index(node) + 1:]):
                    del vals[name]
    return vals if keep else vals[graph.output]


def quantize_inputs(graph: HwGraph, x) -> np.ndarray:
    """Float samples -> input codes (n, H, W, C), as C-sim's ``predict`` converts them."""
    node = graph.input
    x = np.asarray(x, dtype=np.float64)
    per = int(np.prod(node.out_shape))
    if x.size % per or (x.ndim > 1 and int(np.prod(x.shape[1:])) != per):
        raise DataError(f"input of shape {x.shape} does not hold samples of shape {node.out_shape}")
    return to_int(quantize_np(x.reshape((-1,) + node.out_shape), node.out_type), node.out_type.f)


def predict(graph: HwGraph, x) -> np.ndarray:
    """Float samples -> float outputs (n, n_outputs) in the output type, like hls4ml's ``predict``."""
    y = run(graph, quantize_inputs(graph, x))
    return np.ldexp(y.reshape(len(y), -1).astype(np.float64), -graph.out_node.out_type.f)
