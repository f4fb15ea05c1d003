"""Trace hls4ml's ``ModelGraph`` into a da4ml ``CombLogic``: the network as a fixed-point dataflow.

The graph is read once, as plain data, by :func:`fpga_dnn.hw.from_hls4ml.read_model_graph` (the
hardware side's one reader of hls4ml); the tracing below and the handlers of :mod:`.layers` read
that :class:`~fpga_dnn.hw.layer_graph.LayerGraph`.

Why start from hls4ml's graph and not from Keras: the graph is the model *after* hls4ml's
parsing, optimizers and precision inference, i.e. exactly what C-sim computes. Reading every
type from it (and following ``ap_fixed``'s rounding/overflow rules, see :mod:`.precision`) makes
the RTL bit-exact with C-sim for any front-end hls4ml parses (QKeras, HGQ2, ...), not only for
the models da4ml's own HGQ2 tracer knows.

The traced core reads one whole sample in hls4ml's input type and writes one whole result in
hls4ml's output type; :mod:`fpga_dnn.rtl.verilog` turns the ``CombLogic`` into pipelined Verilog.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from math import ceil, log2, prod

import numpy as np

from fpga_dnn.errors import DataError, FpgaDnnError, UnsupportedLayerError
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.hw.layer_graph import LayerGraph, in_type as _in_type

from .layers import HANDLERS, STEP, supported_layers
from .precision import (
    INTERPRETER_MAX_BITS,
    HlsType,
    UnsupportedPrecisionError,
    quantize_np,
)

log = logging.getLogger(__name__)

SOFTMAX_MODES = ("argmax", "logits")


class UnsupportedGraphError(FpgaDnnError):
    """The graph's shape is outside what RTL generation handles (e.g. several inputs)."""


@dataclass(frozen=True)
class LayerInfo:
    """One traced hls4ml layer, for reports."""

    name: str
    class_name: str
    output_shape: tuple[int, ...]
    result_type: str
    note: str = ""


@dataclass
class TracedModel:
    """The traced network and what the hardware around it must know.

    ``comb`` is da4ml's ``CombLogic`` (bit-exact interpreter: :meth:`predict`). The core's input
    is every element of the flattened (C order, channels_last) input in ``input_type``; the
    output likewise in ``output_type``.
    """

    comb: object
    input_type: HlsType
    output_type: HlsType
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[LayerInfo]
    softmax: str | None = None
    notes: list[str] = field(default_factory=list)
    trace_seconds: float = 0.0

    @property
    def input_format(self) -> FixedFormat:
        return self.input_type.format

    @property
    def output_format(self) -> FixedFormat:
        return self.output_type.format

    @property
    def n_inputs(self) -> int:
        return int(prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return int(prod(self.output_shape))

    def quantize_inputs(self, x) -> np.ndarray:
        """Float samples -> the input type, as C-sim's ``predict`` converts them; (n, n_inputs)."""
        x = np.asarray(x, dtype=np.float64)
        if x.size % self.n_inputs or (x.ndim > 1 and int(prod(x.shape[1:])) != self.n_inputs):
            raise DataError(f"input of shape {x.shape} does not hold samples of shape {self.input_shape}")
        return quantize_np(x.reshape(-1, self.n_inputs), self.input_type)

    def predict(self, x, n_threads: int = 1) -> np.ndarray:
        """Bit-exact outputs of the traced logic; shape (n, *output_shape). da4ml's C++ interpreter
        where it is exact, else :mod:`.interpret`'s evaluation (see there: wide signed values)."""
        from .interpret import predict

        xq = self.quantize_inputs(x)
        y = predict(self.comb, xq, n_threads=n_threads)
        return np.asarray(y, dtype=np.float64).reshape((len(xq),) + self.output_shape)


def trace_model_graph(hls_model, *, softmax: str = "logits", hwconf=None, solver_options=None) -> TracedModel:
    """Trace a converted hls4ml model (io_parallel; a ``ModelGraph`` or the
    :class:`~fpga_dnn.hw.layer_graph.LayerGraph` read from one) into a da4ml ``CombLogic``.

    ``softmax`` decides what happens to a Softmax at the model's output, which the RTL does not
    implement: ``'logits'`` drops it (the core outputs the softmax's input, in its type) and
    ``'argmax'`` replaces it by the index of the largest logit (first one on ties, like
    ``np.argmax``), output type ``ufixed<B,B>``. Either way a warning is logged and recorded
    in ``TracedModel.notes``.

    Raises :class:`fpga_dnn.errors.UnsupportedLayerError` for a layer outside
    :func:`fpga_dnn.rtl.layers.supported_layers` and :class:`UnsupportedPrecisionError` for a
    type that cannot be reproduced or is wider than da4ml's emulation holds.
    """
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    from fpga_dnn import compat
    from fpga_dnn.hw.from_hls4ml import read_model_graph

    compat.apply_da4ml()  # da4ml 0.6.0 emits large/fine constants wrongly in Verilog: see compat.py
    if softmax not in SOFTMAX_MODES:
        raise ValueError(f"softmax must be one of {SOFTMAX_MODES}, got {softmax!r}")
    t0 = time.perf_counter()
    graph = read_model_graph(hls_model)
    _check_flavour(graph)
    _refuse_inexact_keras_layers(graph)
    hwconf = HWConfig(*(hwconf or (1, -1, -1)))
    in_names, out_names = list(graph.inputs), list(graph.outputs)
    if len(in_names) != 1 or len(out_names) != 1:
        raise UnsupportedGraphError(
            f"RTL generation needs one input and one output; the model has {len(in_names)} "
            f"inputs and {len(out_names)} outputs"
        )
    values: dict[str, object] = {}
    infos: list[LayerInfo] = []
    notes: list[str] = []
    in_type = out_type = None
    in_shape: tuple[int, ...] = ()
    softmax_used: str | None = None
    consumers = graph.consumers()

    for layer in graph.layers:
        cls = layer.hls_class
        if cls == "Input":
            in_type = layer.out_port.type(f"input {layer.name!r}")
            in_shape = tuple(layer.out_shape)
            full = lambda v: np.full(in_shape, v, dtype=np.int64)  # noqa: E731
            values[layer.outputs[0]] = FixedVariableArray.from_kif(
                full(in_type.k), full(in_type.i), full(in_type.f), hwconf, 0.0, solver_options
            )
            infos.append(LayerInfo(layer.name, cls, in_shape, str(in_type)))
            continue
        ins = [values[name] for name in layer.inputs]
        if cls == "Softmax":
            if layer.outputs[0] not in out_names or consumers.get(layer.outputs[0]):
                raise UnsupportedLayerError(layer.name, "Softmax (not at the model output)",
                                            supported_layers(), step=STEP)
            out, out_type, note = _replace_softmax(layer, ins[0], softmax)
            log.warning(note)
            notes.append(note)
            softmax_used = softmax
            values[layer.outputs[0]] = out
            infos.append(LayerInfo(layer.name, cls, tuple(out.shape), str(out_type), note))
            continue
        handler = HANDLERS.get(cls)
        if handler is None:
            raise UnsupportedLayerError(layer.name, cls, supported_layers(), step=STEP)
        try:
            out = handler(layer, ins)
        except FpgaDnnError as err:
            _name_keras_origin(err, layer)
            raise
        expected = tuple(layer.out_shape)
        if tuple(out.shape) != expected:  # an internal fault, not a user error
            raise AssertionError(f"layer {layer.name}: traced shape {out.shape} != hls4ml shape {expected}")
        values[layer.outputs[0]] = out
        res_type = layer.out_port.type(layer.name)
        infos.append(LayerInfo(layer.name, cls, expected, str(res_type)))
        if layer.outputs[0] in out_names:
            out_type = res_type

    if in_type is None:
        raise UnsupportedGraphError("the hls4ml model has no Input layer")
    final = values[out_names[0]]
    if out_type is None:
        raise UnsupportedGraphError(f"no layer produces the model output {out_names[0]!r}")
    inp = _input_array(values, graph)
    comb = comb_trace(list(inp._vars.ravel()), list(np.ravel(final._vars)), keep_dead_inputs=True)
    _check_comb_widths(comb)
    return TracedModel(
        comb=comb,
        input_type=in_type,
        output_type=out_type,
        input_shape=in_shape,
        output_shape=tuple(final.shape),
        layers=infos,
        softmax=softmax_used,
        notes=notes,
        trace_seconds=time.perf_counter() - t0,
    )


def _check_flavour(graph: LayerGraph) -> None:
    """The layer semantics here are those of the Vivado/Vitis io_parallel templates (ap_fixed)."""
    io_type, backend = graph.io_type, graph.backend
    if io_type != "io_parallel":
        raise UnsupportedGraphError(
            f"RTL generation reproduces hls4ml's io_parallel code; this model was converted with "
            f"{io_type}: convert it again with io_type='io_parallel' for the RTL step"
        )
    if backend and backend.lower() not in ("vivado", "vitis"):
        raise UnsupportedGraphError(
            f"RTL generation reproduces the Vivado/Vitis backends' ap_fixed code, not {backend}'s"
        )


#: Keras layers hls4ml converts but not bit-exactly (measured in tests/test_hgq2_corpus.py): an
#: RTL bit-exact with that C-sim would still not be the model, so RTL generation refuses them.
INEXACT_IN_HLS4ML = {
    "QMultiHeadAttention": ("hls4ml 1.3.0's own C-sim of HGQ2 multi-head attention is not bit-exact with Keras "
                            "(its table softmax inside the attention), so no exact RTL can follow it; "
                            "keep attention in software or replace it with exact layers"),
}


def _refuse_inexact_keras_layers(graph: LayerGraph) -> None:
    """hls4ml expands some Keras layers into several graph nodes; refuse by the Keras layer."""
    for name, cls in graph.keras_layers:
        why = INEXACT_IN_HLS4ML.get(cls)
        if why:
            raise UnsupportedLayerError(name, f"{cls}: {why}", supported_layers(), step=STEP)


def _name_keras_origin(err: Exception, layer) -> None:
    """Rewrite ``err``'s message in place to say which Keras layers ``layer`` stands for, where hls4ml
    made it up (a user cannot act on a node name that is not in their model): ``layer.origin``."""
    if layer.origin is None or not err.args:
        return
    text, tag = str(err.args[0]), f"layer {layer.name!r}"
    note = f"{tag} (hls4ml's fusion of {layer.origin})"
    err.args = (text.replace(tag, note, 1) if tag in text else f"{note}: {text}",) + tuple(err.args[1:])


def _input_array(values, graph: LayerGraph):
    for layer in graph.layers:
        if layer.hls_class == "Input":
            return values[layer.outputs[0]]
    raise UnsupportedGraphError("the hls4ml model has no Input layer")


def _replace_softmax(layer, logits, mode: str):
    """The softmax's input unchanged ('logits') or the argmax of it ('argmax')."""
    logit_type = _in_type(layer, f"layer {layer.name!r} input")
    if mode == "logits":
        note = (f"softmax layer {layer.name!r} at the output is not implemented in RTL: the core "
                f"outputs its input logits ({logit_type.format}) instead")
        return logits, logit_type, note
    out = _argmax(logits)
    out_type = _index_type(logits.size)
    note = (f"softmax layer {layer.name!r} at the output is replaced by argmax in RTL: the core "
            f"outputs the index of the largest logit ({out_type.format}, first on ties)")
    return out, out_type, note


def _index_type(n: int) -> HlsType:
    """``ufixed<B,B>``: an unsigned integer wide enough for the indices 0..n-1."""
    bits = max(1, ceil(log2(n))) if n > 1 else 1
    return HlsType(False, bits, bits)


def _argmax(x):
    """Index of the largest element, ties to the lowest index (a left-to-right comparison tree)."""
    from da4ml.trace import FixedVariable, FixedVariableArray

    flat = list(x._vars.ravel())
    pairs = [(v, FixedVariable.from_const(float(i), hwconf=x.hwconf)) for i, v in enumerate(flat)]
    while len(pairs) > 1:
        nxt = []
        for a in range(0, len(pairs) - 1, 2):
            (va, ia), (vb, ib) = pairs[a], pairs[a + 1]
            right_wins = va < vb  # 1 when vb is strictly larger: ties keep the left (lower) index
            nxt.append((right_wins.msb_mux(vb, va), right_wins.msb_mux(ib, ia)))
        if len(pairs) % 2:
            nxt.append(pairs[-1])
        pairs = nxt
    idx = np.empty(1, dtype=object)
    idx[0] = pairs[0][1]
    return FixedVariableArray(idx.reshape(()), x.solver_options, hwconf=x.hwconf)


def _check_comb_widths(comb) -> None:
    from da4ml.types import minimal_kif

    widest = max((sum(minimal_kif(op.qint)) for op in comb.ops), default=0)
    if widest > INTERPRETER_MAX_BITS:
        raise UnsupportedPrecisionError(
            f"the traced network has a {widest}-bit intermediate value, more than the "
            f"{INTERPRETER_MAX_BITS} bits da4ml's bit-exact emulation holds; narrow accum/result types"
        )
