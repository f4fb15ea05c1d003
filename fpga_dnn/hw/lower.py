"""Lowering: hls4ml ``ModelGraph`` (io_parallel or io_stream; QKeras or HGQ2) -> :class:`HwGraph`.

Reads the graph as plain data (:func:`fpga_dnn.hw.from_hls4ml.read_model_graph`, the hardware
side's one reader of hls4ml objects) and fuses its layers into hardware units. The numeric rules are those of the
unrolled path (:mod:`fpga_dnn.rtl.layers`, which cites the ``nnet_utils`` header each rule comes
from) restated for integer hardware:

* Dense / Conv (``nnet_dense_latency.h``, ``nnet_dense_resource.h``, ``nnet_conv2d_stream.h``):
  every product is cast to ``accum_t``, the bias is cast to ``accum_t``, sums stay in ``accum_t``.
  With a WRAP ``accum_t`` and products on its grid, that is an exact sum modulo
  ``2**accum_t.integer`` (in value), independent of the order: a folded unit may sum in any order.
  A saturating accumulator, or products finer than ``accum_t`` (each one would be rounded), is
  order-dependent and refused here. Padded taps multiply zeros (skipped in hls4ml, 0 in fd_swg).
* BatchNormalization (``nnet_batchnorm.h``): ``x*scale + bias`` at full precision, then the cast.
* Pooling (``nnet_pooling.h`` / ``nnet_pooling_stream.h``): inputs cast to ``accum_t`` (refused
  unless exact), max or sum, an average divides by the window size truncating towards zero, then
  ``accum_t`` and ``result_t``. Padded pooling is refused (hls4ml pads a max pool with the input
  type's MSB and averages over the unpadded cells only).
* Merge add (``nnet_merge.h``): the exact sum at full precision, then the cast. Concatenate: each
  operand cast to ``result_t``.
* Activation relu/linear (``nnet_activation.h``): ``x > 0 ? x : 0`` then the cast; fused into the
  producing unit's requant chain when that unit has no other consumer.
* io_stream's own layers: ``ZeroPadding1D/2D`` (inserted before a 'same' conv) becomes the conv's
  window padding; ``Clone`` becomes a fork (several consumers of one node); ``Reshape``/Flatten
  is the same stream (a Dense reads the pixels in order, which is hls4ml's Flatten order).
"""

from __future__ import annotations

from math import prod

import numpy as np

from fpga_dnn.errors import UnsupportedLayerError
from fpga_dnn.rtl.precision import HlsType, UnsupportedPrecisionError, quantize_np
from fpga_dnn.rtl.trace import SOFTMAX_MODES, UnsupportedGraphError

from .from_hls4ml import read_model_graph

from .graph import (
    AddNode,
    AffineNode,
    ConcatNode,
    HwGraph,
    InputNode,
    MatVecNode,
    Node,
    PoolNode,
    Requant,
    RequantNode,
    Window,
)
from .layer_graph import LayerGraph, attr_type as _attr_type, out_type as _out_type, weight_values
from .ranges import acc_bounds

STEP = "streaming RTL generation"

#: Widest integer the numpy reference executor (int64) and the Verilog parameters handle.
MAX_BITS = 62


def supported_layers() -> list[str]:
    """What the streaming generator accepts, as named in hls4ml's graph (for error messages)."""
    return [
        "Input", "Dense (WRAP accum_t)", "Conv1D (WRAP accum_t)", "Conv2D (WRAP accum_t)",
        "Activation(linear)", "Activation(relu)", "BatchNormalization",
        "Pooling1D/2D(Max|Average, unpadded, Average over 2**n cells)", "Reshape/Flatten",
        "ZeroPadding1D/2D (before a Conv)", "Clone", "Merge(add)", "Concatenate (channels)",
        "FixedPointQuantizer (uniform)", "Softmax (model output only: logits)",
    ]


def _unsupported(layer, what: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(layer.name, what, supported_layers(), step=STEP)


# --------------------------------------------------------------------------------------------
# integer helpers
# --------------------------------------------------------------------------------------------

def type_range(t: HlsType) -> tuple[int, int]:
    """The integer codes a type holds."""
    return (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, (1 << t.width) - 1)


def bits_for(lo: int, hi: int) -> int:
    """Two's complement bits holding every integer in [lo, hi]."""
    need = 1
    while not (-(1 << (need - 1)) <= lo and hi <= (1 << (need - 1)) - 1):
        need += 1
    return need


def to_int(values: np.ndarray, frac: int) -> np.ndarray:
    """Exact integers ``values * 2**frac`` (the values must be on that grid)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), frac)
    ints = np.rint(scaled)
    if not np.array_equal(ints, scaled):  # an internal fault: the frac was computed from the values
        raise AssertionError(f"values not on the 2**-{frac} grid")
    return ints.astype(np.int64)


def min_frac(values: np.ndarray, frac: int) -> int:
    """The coarsest grid ``2**-f`` (f <= frac) holding every value already on ``2**-frac``."""
    ints = to_int(values, frac)
    if not np.any(ints):
        return -MAX_BITS
    while np.all(ints % 2 == 0):
        ints = ints // 2
        frac -= 1
    return frac


def requant_step(in_signed: bool, in_width: int, in_frac: int, out: HlsType, relu: bool = False) -> Requant | None:
    """The cast of an integer stream to ``out``; None when it leaves every integer unchanged."""
    shift = in_frac - out.f
    if not relu and shift == 0:
        lo = -(1 << (in_width - 1)) if in_signed else 0
        hi = (1 << (in_width - (1 if in_signed else 0))) - 1
        olo, ohi = type_range(out)
        if olo <= lo and hi <= ohi:
            return None
    return Requant(shift=shift, out=out, relu=relu)


def fits_exactly(src: HlsType, dst: HlsType, lo: int | None = None, hi: int | None = None) -> bool:
    """Does every code of ``src`` (or of [lo, hi]) convert to ``dst`` without rounding or overflow?"""
    if dst.f < src.f:
        return False
    slo, shi = type_range(src)
    lo, hi = (slo if lo is None else lo), (shi if hi is None else hi)
    dlo, dhi = type_range(dst)
    d = dst.f - src.f
    return dlo <= (lo << d) and (hi << d) <= dhi


def requant_chain(steps: list[Requant | None]) -> tuple[Requant, ...]:
    return tuple(s for s in steps if s is not None)


def _widened(rq: Requant, width: int) -> int | None:
    """Bits after ``rq`` when it is an exact left shift of a signed ``width``-bit integer, else None."""
    if rq.relu or rq.shift > 0 or not rq.out.signed:
        return None
    lo, hi = type_range(rq.out)
    if lo <= -(1 << (width - 1)) << -rq.shift and ((1 << (width - 1)) - 1) << -rq.shift <= hi:
        return rq.out.width
    return None


def lossless_shift(chain: tuple[Requant, ...], width: int) -> int | None:
    """How far left ``chain`` shifts a signed ``width``-bit integer when every step is exact, else None."""
    up = 0
    for rq in chain:
        width = _widened(rq, width)
        if width is None:
            return None
        up -= rq.shift
    return up


def merge_shifts(chain: tuple[Requant, ...], width: int) -> tuple[Requant, ...]:
    """``chain`` with each exact widening step folded into the step after it (same codes, fewer
    wide registers): an exact ``x << d`` followed by a shift right by ``s`` is a shift by ``s - d``."""
    out, pending = [], 0
    for i, rq in enumerate(chain):
        wider = _widened(rq, width)
        if wider is not None and i + 1 < len(chain):
            pending += -rq.shift
            width = wider
            continue
        out.append(Requant(rq.shift - pending, rq.out, rq.relu) if pending else rq)
        pending, width = 0, rq.out.width
    return tuple(out)


def _acc_range(w: np.ndarray, bias: np.ndarray, x_t: HlsType) -> tuple[int, int]:
    """The extreme values of ``bias + w @ x`` over every input code of ``x_t`` (exact ints)."""
    lo, hi = acc_bounds(w, bias, *type_range(x_t))
    return int(min(lo, default=0)), int(max(hi, default=0))


# --------------------------------------------------------------------------------------------
# the lowering
# --------------------------------------------------------------------------------------------

def lower(hls_model, *, name: str = "model", softmax: str = "logits") -> HwGraph:
    """The hardware graph of a converted hls4ml model (a ``ModelGraph`` or the
    :class:`~fpga_dnn.hw.layer_graph.LayerGraph` read from one).

    Raises :class:`~fpga_dnn.errors.UnsupportedLayerError` (names the layer, lists
    :func:`supported_layers`) or :class:`UnsupportedPrecisionError` for what a streaming design
    cannot reproduce bit-exactly.
    """
    if softmax not in SOFTMAX_MODES:
        raise ValueError(f"softmax must be one of {SOFTMAX_MODES}, got {softmax!r}")
    layers = read_model_graph(hls_model)
    _check_flavour(layers)
    in_names, out_names = list(layers.inputs), list(layers.outputs)
    if len(in_names) != 1 or len(out_names) != 1:
        raise UnsupportedGraphError(f"streaming RTL needs one input and one output; the model has "
                                    f"{len(in_names)} inputs and {len(out_names)} outputs")
    lw = _Lowering(layers, softmax)
    for layer in layers.layers:
        lw.layer(layer)
    out = lw.var_node[out_names[0]]
    graph = HwGraph(name, lw.nodes, out.name, lw.softmax_used, lw.notes)
    return graph


def _check_flavour(layers: LayerGraph) -> None:
    io_type, backend = layers.io_type, layers.backend
    if io_type not in ("io_parallel", "io_stream"):
        raise UnsupportedGraphError(f"streaming RTL reads io_parallel or io_stream graphs, not {io_type}")
    if backend and backend.lower() not in ("vivado", "vitis"):
        raise UnsupportedGraphError(f"streaming RTL reproduces the Vivado/Vitis backends' ap_fixed code, not {backend}'s")


def _shape3(shape) -> tuple[int, int, int]:
    s = tuple(int(d) for d in shape)
    if len(s) == 1:
        return (1, 1, s[0])
    if len(s) == 2:
        return (1, s[0], s[1])
    if len(s) == 3:
        return s
    raise UnsupportedGraphError(f"tensor of shape {s}: streaming RTL handles 1-, 2- and 3-D tensors")


class _Lowering:
    def __init__(self, layers: LayerGraph, softmax: str):
        self.softmax = softmax
        self.softmax_used: str | None = None
        self.nodes: list[Node] = []
        self.var_node: dict[str, Node] = {}      # hls4ml variable name -> node producing it
        self.var_shape: dict[str, tuple] = {}    # hls4ml variable name -> (H, W, C) as streamed
        self.pending_pad: dict[str, tuple] = {}  # ZeroPadding output var -> (source var, pads)
        self.users = layers.consumers()          # variable -> consuming layer names
        self.out_names = list(layers.outputs)
        self.notes: list[str] = []
        self.node_var: dict[str, str] = {}       # node name -> the variable its stream now carries

    # -- bookkeeping -----------------------------------------------------------------------------
    def _add(self, node: Node, layer) -> Node:
        self.nodes.append(node)
        self.var_node[layer.outputs[0]] = node
        self.var_shape[layer.outputs[0]] = node.out_shape
        self.node_var[node.name] = layer.outputs[0]
        return node

    def _src(self, layer, i: int = 0) -> Node:
        var = layer.inputs[i]
        if var in self.pending_pad:
            raise _unsupported(layer, f"{layer.class_name} after ZeroPadding (padding is supported before a Conv)")
        return self.var_node[var]

    def _fusable(self, src: Node, layer, i: int = 0) -> bool:
        """May ``layer``'s cast join ``src``'s requant chain (``src`` feeding its input ``i``)? Only if
        nothing else reads ``src``."""
        var = layer.inputs[i]
        return (hasattr(src, "requant") and not isinstance(src, InputNode)
                and self.node_var.get(src.name) == var and len(self.users.get(var, [])) == 1
                and var not in self.out_names)

    def _cast_after(self, layer, src: Node, casts: list[tuple[HlsType, bool]]) -> None:
        """Element-wise casts ``[(type, relu), ...]`` (an activation, a quantizer) after ``src``:
        fused into its requant chain, or a RequantNode of their own."""
        steps, t = [], src.out_type
        for out, relu in casts:
            steps.append(requant_step(t.signed, t.width, t.f, out, relu))
            t = out
        steps = requant_chain(steps)
        if self._fusable(src, layer):
            chain = src.requant + steps
            if isinstance(src, (MatVecNode, AffineNode, AddNode)):  # signed accumulators
                chain = merge_shifts(chain, src.acc_width)
            src.requant = chain
            src.out_type = t
            src.layers = src.layers + (layer.name,)
            self.var_node[layer.outputs[0]] = src
            self.var_shape[layer.outputs[0]] = src.out_shape
            self.node_var[src.name] = layer.outputs[0]
            return
        node = RequantNode(layer.name, (src.name,), src.out_shape, src.out_shape, src.out_type, t,
                           layers=(layer.name,), requant=steps)
        self._add(node, layer)

    # -- dispatch --------------------------------------------------------------------------------
    def layer(self, layer) -> None:
        cls = layer.hls_class
        if cls == "Layer":  # backend-defined layers (io_stream's Clone) derive from the base class
            cls = str(layer.class_name)
        if cls in ("Conv1D", "Conv2D") or cls.startswith("PointwiseConv"):
            cls = "Conv"
        handler = getattr(self, f"_l_{cls}", None)
        if handler is None:
            raise _unsupported(layer, cls)
        handler(layer)

    def _l_Input(self, layer) -> None:
        t = layer.out_port.type(f"input {layer.name!r}")
        shape = _shape3(layer.out_shape)
        self._add(InputNode(layer.name, (), shape, shape, t, t, layers=(layer.name,)), layer)

    def _l_Clone(self, layer) -> None:
        src = self._src(layer)
        for var in layer.outputs:  # io_stream's copies: in hardware, one node with several consumers
            self.var_node[var] = src
            self.var_shape[var] = self.var_shape[layer.inputs[0]]

    def _l_Reshape(self, layer) -> None:
        src = self._src(layer)
        new = tuple(layer.out_shape)
        old = self.var_shape[layer.inputs[0]]
        if isinstance(src, InputNode) and len(self.nodes) == 1:
            # The input streams in the reshaped pixel layout: the flat element order is the same.
            shape = _shape3(new)
            src.in_shape = src.out_shape = shape
            self.node_var[src.name] = layer.outputs[0]
            self.var_node[layer.outputs[0]] = src
            self.var_shape[layer.outputs[0]] = shape
            return
        if len(new) == 1 or _shape3(new)[2] == old[2]:
            # A Flatten (a Dense reads the pixel stream in order) or a reshape keeping the beat.
            if self.node_var.get(src.name) == layer.inputs[0]:
                self.node_var[src.name] = layer.outputs[0]
            self.var_node[layer.outputs[0]] = src
            self.var_shape[layer.outputs[0]] = old if len(new) == 1 else _shape3(new)
            return
        raise _unsupported(layer, f"Reshape {old} -> {tuple(new)} (changes the channels per pixel)")

    def _l_ZeroPadding1D(self, layer) -> None:
        g = layer.attr
        self.pending_pad[layer.outputs[0]] = (layer.inputs[0], (0, g("pad_left"), 0, g("pad_right")), layer.name)

    def _l_ZeroPadding2D(self, layer) -> None:
        g = layer.attr
        self.pending_pad[layer.outputs[0]] = (layer.inputs[0], (g("pad_top"), g("pad_left"), g("pad_bottom"),
                                                                g("pad_right")), layer.name)

    def _l_Activation(self, layer) -> None:
        act = str(layer.attr("activation", "")).lower()
        if act not in ("linear", "relu"):
            raise _unsupported(layer, f"{layer.class_name}({act})")
        self._cast_after(layer, self._src(layer), [(_out_type(layer), act == "relu")])

    def _l_FixedPointQuantizer(self, layer) -> None:
        src = self._src(layer)
        k, b, i = (np.asarray(a)[0] for a in layer.attr("mask_kbi"))
        if not all(np.all(a == a.ravel()[0]) for a in (k, b, i)):
            raise _unsupported(layer, "FixedPointQuantizer with per-element bit widths (streaming needs one type "
                                      "per tensor: set the HGQ2 activation quantizer's scope to per-tensor)")
        k, b, i = int(k.ravel()[0]), int(b.ravel()[0]), int(i.ravel()[0])
        if b <= 0:
            raise _unsupported(layer, "FixedPointQuantizer with 0 bits (a constant-zero tensor)")
        t = HlsType.from_kbi(k, b, i, str(layer.attr("RND")), str(layer.attr("SAT")))
        if t.overflow not in Requant.OVERFLOW_CODES or t.rounding not in Requant.ROUNDING_CODES:
            raise UnsupportedPrecisionError(f"layer {layer.name!r}: modes {t.rounding}/{t.overflow} are not supported")
        self._cast_after(layer, src, [(t, False), (_out_type(layer), False)])

    def _l_Softmax(self, layer) -> None:
        if layer.outputs[0] not in self.out_names or self.users.get(layer.outputs[0]):
            raise _unsupported(layer, "Softmax (not at the model output)")
        if self.softmax != "logits":
            raise _unsupported(layer, f"Softmax replaced by {self.softmax} (the streaming design outputs logits: "
                                      "set [rtl] softmax = 'logits')")
        src = self._src(layer)
        self.var_node[layer.outputs[0]] = src
        self.var_shape[layer.outputs[0]] = src.out_shape
        self.node_var[src.name] = layer.outputs[0]
        self.softmax_used = "logits"
        self.notes.append(f"softmax layer {layer.name!r} at the output is not implemented in RTL: the design "
                          f"outputs its input logits ({src.out_type.format}) instead")

    # -- Dense / Conv ----------------------------------------------------------------------------
    def _matvec(self, layer, src: Node, in_shape, w_kn: np.ndarray, window: Window | None, out_shape) -> None:
        where = f"layer {layer.name!r} ({layer.class_name})"
        acc = _attr_type(layer, "accum_t")
        if acc.overflow != "WRAP":
            raise UnsupportedPrecisionError(
                f"{where}: accum_t {acc} saturates; a folded unit sums in another order than hls4ml's "
                "loops, which changes a saturating sum: give the layer a WRAP accumulator (e.g. "
                "precision_overrides {layer: {accum: 'fixed<W,I>'}}) or use the unrolled architecture")
        if not acc.signed:
            raise UnsupportedPrecisionError(f"{where}: unsigned accum_t {acc} is not supported by the streaming "
                                            "units (two's complement accumulators); make it signed")
        x_t = src.out_type
        n_out = w_kn.shape[1]
        b = self._bias(layer, n_out, where)
        b_acc = quantize_np(b, acc)
        if layer.weights["weight"].kind != "fixed":  # XNOR / power-of-two products: the unrolled path's
            raise UnsupportedPrecisionError(f"{where}: {layer.weights['weight'].kind} weights are not supported by "
                                            "the streaming units (fixed-point weights only); use the unrolled "
                                            "architecture")
        _, wt = weight_values(layer.weights["weight"], f"{where} weight")
        f_w = min_frac(w_kn, wt.f)
        f_p = x_t.f + f_w
        if f_p > acc.f and np.any(w_kn):
            raise UnsupportedPrecisionError(
                f"{where}: products of {x_t} inputs and weights on the 2**-{f_w} grid are finer than accum_t "
                f"{acc}: hls4ml rounds each one, a folded unit cannot; widen accum_t's fraction")
        f_m = min(acc.f, max(f_p, min_frac(b_acc, acc.f)))
        w_int = to_int(w_kn.T, f_m - x_t.f)             # (N, K): w * x lands on the 2**-f_m grid
        b_int = to_int(b_acc, f_m)
        aw_wrap = acc.integer + f_m                      # hls4ml's modulus, on this grid
        lo_x, hi_x = type_range(x_t)
        pos, neg = np.clip(w_int, 0, None), np.clip(w_int, None, 0)
        hi = int(np.max(pos.sum(1) * hi_x + neg.sum(1) * lo_x + b_int))
        lo = int(np.min(pos.sum(1) * lo_x + neg.sum(1) * hi_x + b_int))
        aw = min(aw_wrap, bits_for(lo, hi))              # never wraps at aw unless it wraps at aw_wrap
        ww = bits_for(int(w_int.min(initial=0)), int(w_int.max(initial=0)))
        if aw_wrap < 1 or aw > MAX_BITS or ww > MAX_BITS:
            raise UnsupportedPrecisionError(f"{where}: a {aw}-bit accumulator or {ww}-bit weights exceed "
                                            f"the {MAX_BITS} bits the streaming units handle")
        res = _out_type(layer)
        rq = requant_step(True, aw, f_m, res)
        kind_layers = (layer.name,)
        node = MatVecNode(layer.name, (src.name,), in_shape, out_shape, x_t, res, layers=kind_layers,
                          window=window, w=w_int, bias=b_int, weight_width=ww, acc_width=aw, acc_frac=f_m,
                          requant=requant_chain([rq]))
        if aw == aw_wrap and bits_for(lo, hi) > aw_wrap:
            self.notes.append(f"{where}: accum_t {acc} can wrap; the unit wraps identically ({aw} bits)")
        self._add(node, layer)

    def _bias(self, layer, n_out: int, where: str) -> np.ndarray:
        var = layer.weights.get("bias")
        if var is None:
            return np.zeros(n_out)
        b, _ = weight_values(var, f"{where} bias")
        return np.broadcast_to(b.ravel(), (n_out,)).astype(np.float64)

    def _l_Dense(self, layer) -> None:
        where = f"layer {layer.name!r} (Dense)"
        src = self._src(layer)
        w, _ = weight_values(layer.weights["weight"], f"{where} weight")
        if layer.attr("_weights_transposed", False):
            w = w.T  # the Resource strategy stores (n_out, n_in)
        n_in, n_out = w.shape
        in_shape = self.var_shape[layer.inputs[0]]
        if int(prod(in_shape)) != n_in:
            raise _unsupported(layer, f"Dense on a {in_shape} input (needs {n_in} values)")
        self._matvec(layer, src, in_shape, w, None, (1, 1, n_out))

    def _l_Conv(self, layer) -> None:
        g = layer.attr
        name = layer.class_name
        where = f"layer {layer.name!r} ({name})"
        two_d = layer.is_a("Conv2D")
        if g("data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, f"{name} (channels_first)")
        dil = (g("dilation_height", 1) if two_d else 1, g("dilation_width", 1))
        if dil != (1, 1):
            raise _unsupported(layer, f"{name} with dilation {dil}")
        var = layer.inputs[0]
        pads = (0, 0, 0, 0)
        if var in self.pending_pad:
            var, pads, _pad_layer = self.pending_pad.pop(var)
        src = self.var_node[var]
        w, _ = weight_values(layer.weights["weight"], f"{where} weight")
        if g("_weights_transposed", False):  # Resource strategy: (F, [H,] W, C)
            w = np.moveaxis(w, 0, -1)
        if not two_d:
            w = w[None]
        kh, kw, cin, nf = w.shape
        in_shape = self.var_shape[var]
        own = ((g("pad_top"), g("pad_left"), g("pad_bottom"), g("pad_right")) if two_d
               else (0, g("pad_left"), 0, g("pad_right")))
        pt, pl, pb, pr = (a + b for a, b in zip(pads, own))
        sh, sw = (g("stride_height"), g("stride_width")) if two_d else (1, g("stride_width"))
        win = Window(kh, kw, sh, sw, pt, pl, pb, pr)
        if in_shape[2] != cin:
            raise _unsupported(layer, f"{name} on a {in_shape} input")
        oh, ow = win.out_hw(in_shape[0], in_shape[1])
        out_shape = _shape3(layer.out_shape)
        if (oh, ow, nf) != out_shape:
            raise _unsupported(layer, f"{name} whose output {out_shape} is not the window's ({oh}, {ow}, {nf})")
        self._matvec(layer, src, in_shape, w.reshape(kh * kw * cin, nf), win, out_shape)

    # -- other units -----------------------------------------------------------------------------
    def _l_BatchNormalization(self, layer) -> None:
        where = f"layer {layer.name!r} (BatchNormalization)"
        src = self._src(layer)
        in_shape = self.var_shape[layer.inputs[0]]
        c = in_shape[2]
        scale, st = weight_values(layer.weights["scale"], f"{where} scale")
        bias, bt = weight_values(layer.weights["bias"], f"{where} bias")
        scale = np.broadcast_to(scale.ravel(), (c,)) if scale.size in (1, c) else None
        bias = np.broadcast_to(bias.ravel(), (c,)) if bias.size in (1, c) else None
        if scale is None or bias is None:
            raise _unsupported(layer, "BatchNormalization whose scale is not per channel")
        x_t = src.out_type
        f_s = min_frac(scale, st.f)
        f_m = max(x_t.f + f_s, min_frac(bias, bt.f))
        s_int = to_int(scale, f_m - x_t.f)
        b_int = to_int(bias, f_m)
        lo_x, hi_x = type_range(x_t)
        ends = np.stack([s_int * lo_x, s_int * hi_x]) + b_int
        aw = bits_for(int(ends.min()), int(ends.max()))
        sw = bits_for(int(s_int.min(initial=0)), int(s_int.max(initial=0)))
        if aw > MAX_BITS:
            raise UnsupportedPrecisionError(f"{where}: x*scale+bias needs {aw} bits (> {MAX_BITS})")
        res = _out_type(layer)
        chain = requant_chain([requant_step(True, aw, f_m, res)])
        if self._fuse_affine(layer, src, s_int, b_int, f_m, res, chain):
            return
        node = AffineNode(layer.name, (src.name,), in_shape, in_shape, x_t, res, layers=(layer.name,),
                          scale=s_int, bias=b_int, scale_width=sw, scale_frac=f_m - x_t.f, acc_width=aw,
                          acc_frac=f_m, requant=chain)
        self._add(node, layer)

    def _fuse_affine(self, layer, src: Node, s_int, b_int, f_m: int, res: HlsType, chain) -> bool:
        """Fold a BatchNormalization into the Conv/Dense before it, when that is bit-exact.

        hls4ml keeps such a BN a layer of its own (its ``FuseBatchNormalization`` pass skips
        quantized weights) and computes ``cast_bn(x*scale + bias)`` at full precision on the
        Conv/Dense *result*. When that result is the exact accumulator (its cast loses nothing
        and the accumulator never wraps: hls4ml's 'auto' result types), ``scale*(W x + b) + bias
        = (scale*W) x + (scale*b + bias)`` holds in integers, so one MVU with fused weights and the
        BN's own cast chain gives the same codes, and the BN needs no multipliers of its own.
        Otherwise (a rounding or wrapping result type) the BN stays an :class:`AffineNode`.
        """
        if not (isinstance(src, MatVecNode) and self._fusable(src, layer)):
            return False
        lo, hi = _acc_range(src.w, src.bias, src.in_type)
        if bits_for(lo, hi) > src.acc_width:          # the accumulator can wrap: not an exact value
            return False
        up = lossless_shift(src.requant, src.acc_width)
        if up is None:                                # the Conv/Dense result rounds or overflows
            return False
        # the BN's input code X = acc << up; its integer result = s*X + b on the 2**-f_m grid
        scale = s_int.astype(np.int64) << np.int64(up)
        w = src.w * scale[:, None]
        bias = src.bias * scale + b_int
        lo, hi = _acc_range(w, bias, src.in_type)
        aw, ww = bits_for(lo, hi), bits_for(int(w.min(initial=0)), int(w.max(initial=0)))
        if aw > MAX_BITS or ww > MAX_BITS:
            return False
        src.w, src.bias, src.weight_width, src.acc_width, src.acc_frac = w, bias, ww, aw, f_m
        src.requant = merge_shifts(chain, aw)
        src.out_type = res
        src.layers = src.layers + (layer.name,)
        self.var_node[layer.outputs[0]] = src
        self.var_shape[layer.outputs[0]] = src.out_shape
        self.node_var[src.name] = layer.outputs[0]
        self.notes.append(f"layer {layer.name!r} (BatchNormalization) folded into {src.name!r}: its result type "
                          f"holds the exact accumulator, so the fused weights give the same codes")
        return True

    def _pool(self, layer) -> None:
        g = layer.attr
        name = layer.class_name
        two_d = layer.is_a("Pooling2D")
        op = str(g("pool_op", "")).lower()
        if op not in ("max", "average"):
            raise _unsupported(layer, f"{name}({op})")
        src = self._src(layer)
        in_shape = self.var_shape[layer.inputs[0]]
        ph, pw = (g("pool_height"), g("pool_width")) if two_d else (1, g("pool_width"))
        sh, sw = (g("stride_height"), g("stride_width")) if two_d else (1, g("stride_width"))
        pads = ((g("pad_top"), g("pad_left"), g("pad_bottom"), g("pad_right")) if two_d
                else (0, g("pad_left") or 0, 0, g("pad_right") or 0))
        win = Window(ph, pw, sh, sw, *(int(p or 0) for p in pads))
        if win.padded:
            raise _unsupported(layer, f"{name} with padding {pads} (hls4ml's padded pooling counts only the "
                                      "unpadded cells; use 'valid' pooling)")
        out_shape = _shape3(layer.out_shape)
        oh, ow = win.out_hw(in_shape[0], in_shape[1])
        if (oh, ow, in_shape[2]) != out_shape:
            raise _unsupported(layer, f"{name} whose output {out_shape} is not the window's ({oh}, {ow})")
        x_t = src.out_type
        acc = _attr_type(layer, "accum_t")
        if not fits_exactly(x_t, acc):
            raise UnsupportedPrecisionError(f"layer {layer.name!r} ({name}): its input {x_t} does not fit accum_t "
                                            f"{acc} exactly; streaming pooling needs an exact accum_t")
        res = _out_type(layer)
        if op == "max":
            steps = [requant_step(x_t.signed, x_t.width, x_t.f, res)]
            node = PoolNode(layer.name, (src.name,), in_shape, out_shape, x_t, res, layers=(layer.name,),
                            window=win, mode="max", acc_width=x_t.width, requant=requant_chain(steps))
        else:
            n = win.size
            s = n.bit_length() - 1
            if n != 1 << s:
                raise _unsupported(layer, f"{name}(Average) over {n} cells (the streaming unit divides by a power of 2)")
            lo, hi = type_range(x_t)
            aw = bits_for(lo * n, hi * n)
            # trunc(sum / n) towards zero on accum_t's grid (C's division of the raw value), wrapped
            # into accum_t (the sum itself may wrap in accum_t: mod 2**acc.integer in value).
            if not fits_exactly(x_t, acc, lo * n, hi * n):
                raise UnsupportedPrecisionError(f"layer {layer.name!r} ({name}): the window sum can wrap in accum_t "
                                                f"{acc}; widen accum_t")
            div_t = HlsType(True, acc.width + 1, acc.integer + 1, "TRN_ZERO", "WRAP")
            steps = [Requant(shift=x_t.f + s - acc.f, out=div_t),
                     requant_step(True, div_t.width, div_t.f, res)]
            node = PoolNode(layer.name, (src.name,), in_shape, out_shape, x_t, res, layers=(layer.name,),
                            window=win, mode="avg", acc_width=aw, requant=requant_chain(steps))
        self._add(node, layer)

    _l_Pooling1D = _pool
    _l_Pooling2D = _pool

    def _unwiden(self, src: Node, layer, i: int) -> None:
        """An Add operand whose cast chain only widens exactly streams its accumulator instead.

        A BatchNormalization folded into the Conv before an Add keeps hls4ml's wide BN result
        type (resnet8: 26 accumulator bits shifted into fixed<42,18>): the sum is the same from the
        accumulator on its own grid (the Add aligns the grids), and the stream, its FIFO and the
        adder shrink to the accumulator's width."""
        if not (isinstance(src, (MatVecNode, AffineNode)) and src.requant and self._fusable(src, layer, i)):
            return
        if lossless_shift(src.requant, src.acc_width) is None:
            return
        src.requant = ()
        src.out_type = HlsType(True, src.acc_width, src.acc_width - src.acc_frac)
        self.notes.append(f"{src.name!r} feeds {layer.name!r} its accumulator ({src.out_type}): its cast "
                          f"only widened it exactly")

    def _l_Merge(self, layer) -> None:
        op = str(layer.attr("op", "")).lower()
        if op != "add":
            raise _unsupported(layer, f"Merge({op})")
        for i in (0, 1):
            self._unwiden(self._src(layer, i), layer, i)
        a, b = self._src(layer, 0), self._src(layer, 1)
        sa, sb = self.var_shape[layer.inputs[0]], self.var_shape[layer.inputs[1]]
        if sa != sb:
            raise _unsupported(layer, f"Merge(add) of shapes {sa} and {sb} (broadcasting)")
        ta, tb = a.out_type, b.out_type
        f = max(ta.f, tb.f)
        (la, ha), (lb, hb) = type_range(ta), type_range(tb)
        lo = (la << (f - ta.f)) + (lb << (f - tb.f))
        hi = (ha << (f - ta.f)) + (hb << (f - tb.f))
        aw = bits_for(lo, hi)
        res = _out_type(layer)
        node = AddNode(layer.name, (a.name, b.name), sa, sa, ta, res, layers=(layer.name,), in_type_b=tb,
                       shift_a=f - ta.f, shift_b=f - tb.f, acc_width=aw, acc_frac=f,
                       requant=requant_chain([requant_step(True, aw, f, res)]))
        self._add(node, layer)

    def _l_Concatenate(self, layer) -> None:
        a, b = self._src(layer, 0), self._src(layer, 1)
        sa, sb = self.var_shape[layer.inputs[0]], self.var_shape[layer.inputs[1]]
        out = _shape3(layer.out_shape)
        if sa[:2] != sb[:2] or out != (sa[0], sa[1], sa[2] + sb[2]):
            raise _unsupported(layer, f"Concatenate of {sa} and {sb} into {out} (the channel axis only)")
        res = _out_type(layer)
        ta, tb = a.out_type, b.out_type
        node = ConcatNode(layer.name, (a.name, b.name), sa, out, ta, res, layers=(layer.name,), in_type_b=tb,
                          requant_a=requant_chain([requant_step(ta.signed, ta.width, ta.f, res)]),
                          requant_b=requant_chain([requant_step(tb.signed, tb.width, tb.f, res)]))
        self._add(node, layer)
