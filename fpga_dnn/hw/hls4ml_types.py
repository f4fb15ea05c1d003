"""The hardware side's reader of hls4ml precision types: hls4ml ``PrecisionType`` -> the project's
one fixed-point type (:class:`fpga_dnn.fixedpoint.FixedFormat`).

The lowering (:mod:`fpga_dnn.hw.lower`) and the unrolled generator's layer handlers
(:mod:`fpga_dnn.rtl.layers`, :mod:`fpga_dnn.rtl.trace`) read every layer's types through these
functions (``HlsType.from_hls4ml`` is :func:`hls_type`), so what the hardware side accepts of
hls4ml's types (which modes, which classes) is decided once, here.
"""

from __future__ import annotations

from fpga_dnn.fixedpoint import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from fpga_dnn.rtl.precision import UnsupportedPrecisionError


def hls_type(precision, where: str) -> FixedFormat:
    """Convert an hls4ml ``PrecisionType``; ``where`` names the layer/variable for errors."""
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType, XnorPrecisionType

    if isinstance(precision, XnorPrecisionType):  # ap_uint<1>; products read 0 as -1 (see rtl/layers.py)
        return FixedFormat(False, 1, 1)
    # IntegerPrecisionType is ap_int/ap_uint: a fixed type with no fraction bits. Check it
    # before FixedPrecisionType, of which it is not a subclass but might become one.
    if isinstance(precision, IntegerPrecisionType) and not isinstance(precision, FixedPrecisionType):
        return FixedFormat(bool(precision.signed), int(precision.width), int(precision.width))
    if not isinstance(precision, FixedPrecisionType):
        raise UnsupportedPrecisionError(
            f"{where}: type {precision} ({type(precision).__name__}) is not a fixed-point type; "
            "RTL generation supports ap_fixed/ap_ufixed/ap_int only"
        )
    rnd = _mode_name(precision.rounding_mode, "TRN")
    sat = _mode_name(precision.saturation_mode, "WRAP")
    if rnd not in ROUNDING_MODES:
        raise UnsupportedPrecisionError(f"{where}: rounding mode {rnd} of {precision} is not supported")
    if sat not in OVERFLOW_MODES:
        raise UnsupportedPrecisionError(
            f"{where}: overflow mode {sat} of {precision} is not supported (supported: {', '.join(OVERFLOW_MODES)})"
        )
    if int(getattr(precision, "saturation_bits", 0) or 0) != 0:
        raise UnsupportedPrecisionError(f"{where}: saturation bits (N != 0) of {precision} are not supported")
    t = FixedFormat(bool(precision.signed), int(precision.width), int(precision.integer), rnd, sat)
    if t.width < 1:
        raise UnsupportedPrecisionError(f"{where}: type {precision} has no bits")
    return t


def out_type(layer) -> FixedFormat:
    """A layer's result type (``result_t``)."""
    return hls_type(layer.get_output_variable().type.precision, f"layer {layer.name!r} result_t")


def attr_type(layer, name: str) -> FixedFormat:
    """A layer's type attribute (``accum_t``, ``table_t``, ...); refused when the layer has none."""
    attr = layer.get_attr(name)
    if attr is None:
        raise UnsupportedPrecisionError(f"layer {layer.name!r} has no {name}")
    return hls_type(attr.precision, f"layer {layer.name!r} {name}")


def _mode_name(mode, default: str) -> str:
    if mode is None:
        return default
    name = getattr(mode, "name", None) or str(mode)
    name = name.upper()
    return name[3:] if name.startswith("AP_") else name
