"""The hardware side's one reader of hls4ml: ``ModelGraph`` -> :class:`~.layer_graph.LayerGraph`.

Both RTL generators start here: the unrolled one traces the per-layer graph
(:func:`fpga_dnn.rtl.trace.trace_model_graph`), the streaming one lowers it to hardware units
(:func:`fpga_dnn.hw.lower.lower`). What the hardware side accepts of hls4ml's types (which modes,
which classes) and how it reads weights (as the generated C++ sees them) is decided once, here;
``tests/test_layout.py`` checks that no other module of ``fpga_dnn/rtl``, ``fpga_dnn/hw``,
``fpga_dnn/simulate``, ``fpga_dnn/overlay`` or ``fpga_dnn/estimate`` imports hls4ml.
"""

from __future__ import annotations

import numpy as np

from fpga_dnn.fixedpoint import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from fpga_dnn.rtl.precision import UnsupportedPrecisionError, quantize_np

from .layer_graph import LayerGraph, LayerNode, Port, Weight

#: hls4ml layer classes defined outside hls4ml.model (the FPGA backends' fused/optimised layers).
_BACKEND_LAYER_MODULES = ("hls4ml.backends.fpga.fpga_layers",)


class _Refused(Exception):
    """A type or weight without an exact fixed-point form; the message is the reason."""


# --------------------------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------------------------

def hls_type(precision, where: str) -> FixedFormat:
    """Convert an hls4ml ``PrecisionType``; ``where`` names the layer/variable for errors."""
    try:
        return _fixed(precision)
    except _Refused as why:
        raise UnsupportedPrecisionError(f"{where}: {why}") from None


def _fixed(precision) -> FixedFormat:
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType, XnorPrecisionType

    if isinstance(precision, XnorPrecisionType):  # ap_uint<1>; products read 0 as -1 (see rtl/layers.py)
        return FixedFormat(False, 1, 1)
    # IntegerPrecisionType is ap_int/ap_uint: a fixed type with no fraction bits. Check it
    # before FixedPrecisionType, of which it is not a subclass but might become one.
    if isinstance(precision, IntegerPrecisionType) and not isinstance(precision, FixedPrecisionType):
        return FixedFormat(bool(precision.signed), int(precision.width), int(precision.width))
    if not isinstance(precision, FixedPrecisionType):
        raise _Refused(f"type {precision} ({type(precision).__name__}) is not a fixed-point type; "
                       "RTL generation supports ap_fixed/ap_ufixed/ap_int only")
    rnd = _mode_name(precision.rounding_mode, "TRN")
    sat = _mode_name(precision.saturation_mode, "WRAP")
    if rnd not in ROUNDING_MODES:
        raise _Refused(f"rounding mode {rnd} of {precision} is not supported")
    if sat not in OVERFLOW_MODES:
        raise _Refused(f"overflow mode {sat} of {precision} is not supported (supported: {', '.join(OVERFLOW_MODES)})")
    if int(getattr(precision, "saturation_bits", 0) or 0) != 0:
        raise _Refused(f"saturation bits (N != 0) of {precision} are not supported")
    t = FixedFormat(bool(precision.signed), int(precision.width), int(precision.integer), rnd, sat)
    if t.width < 1:
        raise _Refused(f"type {precision} has no bits")
    return t


def _mode_name(mode, default: str) -> str:
    if mode is None:
        return default
    name = getattr(mode, "name", None) or str(mode)
    name = name.upper()
    return name[3:] if name.startswith("AP_") else name


def _kind(precision) -> str:
    """``FPGABackend.product_type``'s view of a precision class (see :data:`.layer_graph.KINDS`)."""
    from hls4ml.model.types import ExponentPrecisionType, XnorPrecisionType

    if isinstance(precision, XnorPrecisionType):
        return "xnor"
    if isinstance(precision, ExponentPrecisionType):
        return "exponent"
    return "fixed"


def _port(shape, precision) -> Port:
    shape = tuple(int(d) for d in shape)
    try:
        return Port(shape, _fixed(precision), _kind(precision))
    except _Refused as why:
        return Port(shape, None, _kind(precision), str(why))


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------

def _weight(var) -> Weight:
    """A weight variable's values as the C++ build sees them, and its type.

    hls4ml prints each weight with ``precision_fmt`` (``'{:.Nf}'`` with N = the type's fraction
    bits), the compiler parses that decimal text to double and ``ap_fixed`` casts it. A weight
    that is not on its type's grid is therefore first rounded to N decimals, then cast.
    """
    data = np.asarray(var.data, dtype=np.float64)
    precision = var.type.precision
    kind = _kind(precision)
    try:
        if kind == "exponent":
            values, t = _po2_values(data, precision)
        else:
            t = _fixed(precision)
            printed = data
            fmt = var.precision_fmt
            if fmt:
                printed = np.array([float(fmt.format(v)) for v in data.ravel()], dtype=np.float64).reshape(data.shape)
            values = quantize_np(printed, t)
    except (_Refused, UnsupportedPrecisionError) as why:
        return Weight(data, None, None, kind, str(why))
    return Weight(data, values, t, kind)


def _po2_values(data: np.ndarray, precision) -> tuple[np.ndarray, FixedFormat]:
    """A power-of-two weight as hls4ml writes it (``ExponentWeightVariable._format``): the sign
    (w >= 0) and ``int(log2|w|)`` in an ``ap_int<width>`` exponent. Returns the values
    ``+-2**e`` the C++ uses, and the exponent's type (an integer type of that width)."""
    if np.any(data == 0) or not np.all(np.isfinite(data)):
        raise _Refused("a power-of-two weight of 0 has no exponent (hls4ml writes log2(0)); such weights are "
                       "not supported")
    exp = (np.log2(np.abs(data)) / np.log2(2.0)).astype("int")
    e_type = FixedFormat(bool(precision.signed), int(precision.width), int(precision.width))
    exp = quantize_np(exp.astype(np.float64), e_type)  # the ap_int<width> the header holds
    return np.where(data < 0, -1.0, 1.0) * np.ldexp(1.0, exp.astype(int)), e_type


# --------------------------------------------------------------------------------------------
# layers and the graph
# --------------------------------------------------------------------------------------------

def _hls4ml_classes(layer) -> list[type]:
    return [c for c in type(layer).__mro__
            if c.__module__.startswith("hls4ml.model.") or c.__module__ in _BACKEND_LAYER_MODULES]


def hls_class(layer) -> str:
    """hls4ml's own layer class (backends wrap it in generated subclasses), e.g. the fused
    ``BatchNormalizationQuantizedTanh`` rather than its base ``Layer``."""
    classes = _hls4ml_classes(layer)
    return classes[0].__name__ if classes else str(layer.class_name)


#: hls4ml's MergeBatchNormAndQuantizedTanh pass (backends/vivado/passes/bn_quant.py) replaces a
#: BatchNormalization and the binary/ternary activation after it by one node named this + the BN's name.
FUSED_BN_PREFIX = "bnbt_"


def keras_origin(keras_model, layer) -> str | None:
    """The Keras layers behind an hls4ml node that has no Keras layer of its own, e.g. the fused
    ``bnbt_<bn>`` node: "the Keras layers 'bn' (BatchNormalization) and 'act' (QActivation)"."""
    if hls_class(layer) != "BatchNormalizationQuantizedTanh" or not layer.name.startswith(FUSED_BN_PREFIX):
        return None
    bn_name = layer.name[len(FUSED_BN_PREFIX):]
    names = {l.name: l for l in getattr(keras_model, "layers", None) or []}
    bn = names.get(bn_name)
    if bn is None:
        return f"the Keras BatchNormalization {bn_name!r} and the binary/ternary activation after it"
    act = next((l for l in names.values() if bn in _inbound_layers(l)), None)
    act_text = f" and {act.name!r} ({type(act).__name__})" if act is not None else " and the activation after it"
    return f"the Keras layers {bn.name!r} ({type(bn).__name__}){act_text}"


def _inbound_layers(layer) -> list:
    """The layers feeding ``layer`` (Keras 2's ``inbound_layers``, Keras 3's ``parent_nodes``)."""
    found = []
    for node in getattr(layer, "_inbound_nodes", None) or []:
        inbound = getattr(node, "inbound_layers", None)
        if inbound is None:  # Keras 3
            inbound = [p.operation for p in getattr(node, "parent_nodes", [])]
        found.extend(inbound if isinstance(inbound, (list, tuple)) else [inbound])
    return found


def read_layer(layer, keras_model=None) -> LayerNode:
    """One hls4ml layer as a :class:`LayerNode`."""
    from hls4ml.model.types import NamedType, PrecisionType

    attrs, types = {}, {}
    for key, value in layer.attributes.items():
        if isinstance(value, (NamedType, PrecisionType)):
            types[key] = _port((), getattr(value, "precision", value))
        elif not type(value).__module__.startswith("hls4ml"):  # variables, weights, code: read below or not at all
            attrs[key] = value
    ins = []
    for name in layer.inputs:
        var = layer.get_input_variable(name)
        if var is not None:  # an Input layer names the model input it is, not a producer
            ins.append(_port(var.shape, var.type.precision))
    out = layer.get_output_variable()
    return LayerNode(
        name=str(layer.name), hls_class=hls_class(layer), class_name=str(layer.class_name),
        bases=tuple(c.__name__ for c in _hls4ml_classes(layer)),
        inputs=tuple(layer.inputs), outputs=tuple(layer.outputs), in_ports=tuple(ins),
        out_port=_port(out.shape, out.type.precision), attrs=attrs, types=types,
        weights={k: _weight(v) for k, v in layer.weights.items()},
        origin=keras_origin(keras_model, layer),
    )


def read_model_graph(hls_model) -> LayerGraph:
    """The converted model as plain data (a :class:`LayerGraph` is returned unchanged)."""
    if isinstance(hls_model, LayerGraph):
        return hls_model
    get = hls_model.config.get_config_value
    keras = (getattr(getattr(hls_model, "config", None), "config", None) or {}).get("KerasModel")
    return LayerGraph(
        layers=[read_layer(layer, keras) for layer in hls_model.get_layers()],
        inputs=tuple(hls_model.inputs), outputs=tuple(hls_model.outputs),
        io_type=str(get("IOType")), backend=str(get("Backend") or ""),
        input_shapes=tuple(tuple(int(d) for d in v.shape) for v in hls_model.get_input_variables()),
        output_shapes=tuple(tuple(int(d) for d in v.shape) for v in hls_model.get_output_variables()),
        keras_layers=tuple((str(k.name), type(k).__name__) for k in getattr(keras, "layers", None) or []),
    )


def _io_port(var, io_type: str):
    """A top-function argument: hls4ml's variable (its typedef and, for a stream, the packing
    of ``PackedType``: ``nnet::array<T, n_elem*n_pack>``, or ``n_elem/n_pack`` when unpacking)."""
    from .interface import IoPort

    t = var.type
    pack = 1
    if io_type == "io_stream" and hasattr(t, "n_elem"):
        n_elem, n_pack = int(t.n_elem), int(t.n_pack)
        pack = n_elem // n_pack if getattr(t, "unpack", False) else n_elem * n_pack
    try:
        fixed, reason = _fixed(t.precision), ""
    except _Refused as why:
        fixed, reason = None, str(why)
    return IoPort(str(var.name), str(t.name), tuple(int(d) for d in var.shape), fixed, pack, reason)


def read_interface(hls_model):
    """The top-level interface of ``hls_model`` (an hls4ml ``ModelGraph``) as an
    :class:`~fpga_dnn.hw.interface.HlsInterface`: what hls4ml's writer puts in the top function's
    prototype (``firmware/<project>.h``), the typedefs of its arguments (``defines.h``) and the
    project settings (``project.tcl``), taken from the graph those files are written from."""
    from pathlib import Path

    from .interface import HlsInterface

    cfg = hls_model.config
    get = cfg.get_config_value
    io_type = str(get("IOType"))
    writer = cfg.get_writer_config() or {}
    brams = [str(v.name) for v in hls_model.get_weight_variables() if str(getattr(v, "storage", "")).lower() == "bram"]
    return HlsInterface(
        project=str(cfg.get_project_name()), io_type=io_type, backend=str(get("Backend") or ""),
        part=str(get("Part") or ""), clock_period=float(get("ClockPeriod") or 0.0),
        clock_uncertainty=str(get("ClockUncertainty", "12.5%")), maximum_size=int(get("MaximumSize", 4096)),
        inputs=tuple(_io_port(v, io_type) for v in hls_model.get_input_variables()),
        outputs=tuple(_io_port(v, io_type) for v in hls_model.get_output_variables()),
        namespace=writer.get("Namespace"), extra_args=tuple(brams), directory=Path(cfg.get_output_dir()))
