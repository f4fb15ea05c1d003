"""Compatibility fixes for the dependency versions we pin, applied by the project (never by editing
site-packages) before hls4ml is used.

* hls4ml 1.3.0, ``hls4ml/model/types.py``, ``ExponentWeightVariable.__iter__`` calls
  ``np.product``, which numpy 2 removed (we pin numpy 2.x because da4ml needs it). Every
  power-of-two weight goes through it when hls4ml writes its weight headers: QKeras
  ``quantized_po2`` kernels, ``quantized_bits(alpha='auto_po2')`` and QBatchNormalization's default
  power-of-two quantizers. Plain hls4ml crashes there with
  ``AttributeError: module 'numpy' has no attribute 'product'``. The replacement is the same method
  with ``np.prod`` (the function ``np.product`` was an alias of).

:func:`apply` is idempotent and a no-op where the fix is not needed (a numpy that still has
``product``, or an hls4ml whose method no longer calls it).

* hls4ml 1.3.0's bit-exact pass has no ``produce_kif`` for ZeroPadding1D/2D (HGQ2 models stop in
  conversion); upstream's fix (PR #1482) is registered here, see :func:`missing_zeropadding_kif`.

* hls4ml 1.3.0 fuses ``BatchNormalization -> binary`` into ``BatchNormalizationQuantizedTanh``
  (``backends/fpga/fpga_layers.py``, ``set_thresholds``): the threshold ``t = -bias/scale`` is
  *floored* onto the grid of the BN's input type ``data_T``, and ``nnet::normalize_binary_tanh``
  (``nnet_batchnorm.h``) outputs 1 when ``data >= threshold``. For data on that grid the exact
  test ``data >= t`` is ``data >= ceil(t)``, so flooring flips every sample whose data equals
  ``floor(t) < t``: how often depends on how many fraction bits ``data_T`` has, i.e. on the types
  the conversion derives (our exact accumulator sizing gave fewer than hls4ml's default
  ``fixed<16,6>`` input did, and C-sim flipped ~1% of samples more often than plain hls4ml).
  :func:`exact_binary_thresholds` rounds up instead, which is exact for any ``data_T``.
  The ternary thresholds (``data > hi``, ``data <= lo``) are exact when floored and stay.

* da4ml 0.6.0, ``trace/fixed_variable.py``, ``_const_f`` ("the minimum f such that const * 2**f is
  an integer") bisects f only inside (-32, 32]: a constant that is a multiple of 2**32 gets f = -31
  and one that needs more than 32 fraction bits gets f = 32 (its ``int(data)`` then truncates). The
  Python and C++ interpreters compute such a constant right (``data * step``), but the Verilog
  ``mux`` of an msb_mux whose constant input is finer than the mux output drops the negative shift
  (``codegen/rtl/verilog/comb.py``: ``shift1 * (shift1 > 0)``) and so doubles the constant. SAT
  casts are ``min_of(max)`` muxes against constants, and da4ml holds values in unscaled units
  (the BN scale's 2**-36 factor makes ``3.9375`` the unscaled ``63 * 2**32``): a saturating
  ``ufixed<6,2,RND_CONV,SAT>`` gave 3.875 instead of 3.9375 in Verilator, nowhere else.
  :func:`_const_f_exact` computes the minimum f from the float's mantissa, for any exponent.
"""

from __future__ import annotations

import contextlib
import inspect
import threading

_APPLIED_MARK = "_fpga_dnn_compat"


def _exponent_iter(self):
    # hls4ml 1.3.0's ExponentWeightVariable.__iter__ with np.prod for the removed np.product.
    import numpy as np

    data = self._format()
    self._iterator = iter(data.reshape((int(np.prod(data.shape[:-1])), 2)))
    return self


def needs_product_fix() -> bool:
    """True when hls4ml's power-of-two weight writer would call the missing ``np.product``."""
    import numpy as np
    from hls4ml.model.types import ExponentWeightVariable

    method = ExponentWeightVariable.__iter__
    if getattr(method, _APPLIED_MARK, False) or hasattr(np, "product"):
        return False
    try:
        return "np.product" in inspect.getsource(method)
    except (OSError, TypeError):  # no source to read: assume the 1.3.0 code
        return True


def _const_f_exact(const) -> int:
    """da4ml's ``_const_f`` without its (-32, 32] range: the least f with ``const * 2**f`` an integer
    (-32 for zero, as da4ml has it)."""
    import math

    const = abs(float(const))
    if const == 0:
        return -32
    mantissa, exponent = math.frexp(const)  # const = mantissa * 2**exponent, 0.5 <= mantissa < 1
    n = int(mantissa * 2**53)  # an integer: const = n * 2**(exponent - 53)
    trailing_zeros = (n & -n).bit_length() - 1
    return 53 - exponent - trailing_zeros


#: da4ml's own ``_const_f``, kept once replaced (the tests check it is still wrong).
_da4ml_const_f = None

#: da4ml modules that hold their own reference to ``_const_f`` (``from ... import _const_f``).
_CONST_F_MODULES = ("da4ml.trace.fixed_variable", "da4ml.trace.tracer", "da4ml.codegen.hls.hls_codegen")


def needs_const_f_fix() -> bool:
    """True when da4ml's ``_const_f`` is the range-limited one (wrong for ``2**40``)."""
    from da4ml.trace import fixed_variable

    return fixed_variable._const_f is not _const_f_exact and fixed_variable._const_f(2.0**40) != -40


def apply_da4ml() -> list[str]:
    """The da4ml fixes alone (tracing needs them, hls4ml need not be imported); returns those applied now."""
    import importlib

    global _da4ml_const_f
    if not needs_const_f_fix():
        return []
    from da4ml.trace import fixed_variable

    _da4ml_const_f = fixed_variable._const_f
    for name in _CONST_F_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_const_f"):
            module._const_f = _const_f_exact
    return ["da4ml _const_f: exact for any exponent"]


def apply() -> list[str]:
    """Apply every fix this environment needs; returns the names of those applied now."""
    applied = apply_da4ml()
    if needs_product_fix():
        from hls4ml.model.types import ExponentWeightVariable

        setattr(_exponent_iter, _APPLIED_MARK, True)
        ExponentWeightVariable.__iter__ = _exponent_iter
        applied.append("hls4ml ExponentWeightVariable np.product -> np.prod")
    for cls in missing_zeropadding_kif():
        _register_zeropadding_kif(cls)
        applied.append(f"hls4ml bit_exact produce_kif for {cls.__name__} (upstream PR #1482)")
    return applied


# --------------------------------------------------------------------------------------------
# ZeroPadding1D/2D in hls4ml's bit-exact pass (HGQ2 models)
# --------------------------------------------------------------------------------------------
# hls4ml 1.3.0's bit_exact pass (model/optimizer/passes/bit_exact.py) propagates each layer's
# (k, i, f) bit widths with the singledispatch function ``_produce_kif``, which has no case for
# ZeroPadding1D/2D: every HGQ2 model with a ZeroPadding layer stops in conversion with
# ``NotImplementedError: No implementation of produce_kif for ... ZeroPadding1D``. Upstream fixed
# it after 1.3.0 (fastmachinelearning/hls4ml PR #1482, commit b2184c3): the padded cells are exact
# zeros (k = i = f = 0), so the output's kif is the input's padded with zeros along the spatial
# axes (channels_last). The same rule, registered by us when the installed hls4ml lacks it.


def _zeropadding_pads(layer) -> tuple:
    """Pads per axis of a channels_last kif array, as in PR #1482."""
    from hls4ml.model.layers import ZeroPadding2D

    a = layer.attributes
    if a.get("data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"{layer.class_name} {layer.name!r}: only channels_last is supported "
                                  "by hls4ml's bit-exact pass")
    if isinstance(layer, ZeroPadding2D):
        return (int(a["pad_top"]), int(a["pad_bottom"])), (int(a["pad_left"]), int(a["pad_right"]))
    return ((int(a["pad_left"]), int(a["pad_right"])),)


def _zeropadding_kif(layer):
    import numpy as np
    from hls4ml.model.optimizer.passes.bit_exact import get_input_kifs

    k, i, f = get_input_kifs(layer)[0]
    spatial = _zeropadding_pads(layer)
    pads = spatial + ((0, 0),) * (k.ndim - len(spatial))  # channels are not padded
    k, i, f = (np.pad(a, pads, mode="constant", constant_values=0) for a in (k, i, f))
    return k.astype(np.int16), i, f


def missing_zeropadding_kif() -> list:
    """ZeroPadding layer classes hls4ml's bit-exact ``_produce_kif`` has no case for."""
    from hls4ml.model.layers import Layer, ZeroPadding1D, ZeroPadding2D
    from hls4ml.model.optimizer.passes.bit_exact import _produce_kif

    fallback = _produce_kif.dispatch(Layer)  # the case that raises NotImplementedError
    return [cls for cls in (ZeroPadding1D, ZeroPadding2D) if _produce_kif.dispatch(cls) is fallback]


def _register_zeropadding_kif(cls) -> None:
    from hls4ml.model.optimizer.passes.bit_exact import _produce_kif

    _produce_kif.register(cls, _zeropadding_kif)


# --------------------------------------------------------------------------------------------
# BatchNormalization -> binary: the fused threshold, exact for any input type
# --------------------------------------------------------------------------------------------

_threshold_lock = threading.Lock()


def exact_threshold(scale, bias, precision) -> "np.ndarray":
    """``ceil(-bias/scale)`` on the grid of ``precision`` (an hls4ml fixed type), kept in range.

    For data on that grid, ``data >= ceil(t)`` equals ``data >= t`` (``scale > 0``). A threshold
    below the type's minimum becomes the minimum (every value passes, as it should); one above
    its maximum becomes the maximum (only the maximum itself then passes: a value the exact
    test would refuse).
    """
    import numpy as np

    frac = int(precision.width) - int(precision.integer)
    t = -np.asarray(bias, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    q = np.ceil(np.ldexp(t, frac))
    if precision.signed:
        lo, hi = -(2.0 ** (precision.width - 1)), 2.0 ** (precision.width - 1) - 1
    else:
        lo, hi = 0.0, 2.0**precision.width - 1
    return np.ldexp(np.clip(q, lo, hi), -frac)


@contextlib.contextmanager
def exact_binary_thresholds():
    """While open, hls4ml's fused BN -> binary layers get :func:`exact_threshold` thresholds.

    A context (not a global patch) so that plain hls4ml in the same process keeps its own
    behaviour, for side-by-side comparisons.
    """
    from hls4ml.backends.fpga.fpga_layers import BatchNormalizationQuantizedTanh as Bnqt
    from hls4ml.model.types import FixedPrecisionType

    original = Bnqt.set_thresholds

    def set_thresholds(self, scale, bias, ternary_threshold=0.5):
        original(self, scale, bias, ternary_threshold)
        if self.get_attr("quantize") != 2:
            return
        precision = self.get_input_variable().type.precision
        if not isinstance(precision, FixedPrecisionType):
            return  # not a fixed grid: leave hls4ml's value
        self.weights["threshold"].data = exact_threshold(scale, bias, precision)

    with _threshold_lock:
        Bnqt.set_thresholds = set_thresholds
        try:
            yield
        finally:
            Bnqt.set_thresholds = original


# hls4ml 1.3.0's nnet_sepconv1d_latency.h guards itself with NNET_SEPARABLE_CONV2D_LATENCY_H_,
# the guard of nnet_sepconv2d_latency.h: a project including both (every written project does,
# through nnet_sepconv1d.h and nnet_sepconv2d.h) loses the 2-D one, and a DepthwiseConv2D or
# SeparableConv2D fails to compile ("'depthwise_conv_2d_latency_cl' was not declared in this
# scope", nnet_sepconv2d.h:20). The written project's copy gets its own guard.
_SEPCONV1D_HEADER = "nnet_sepconv1d_latency.h"
_SEPCONV_GUARD = "NNET_SEPARABLE_CONV2D_LATENCY_H_"


def fix_written_project(out_dir) -> list[str]:
    """Fix known defects of the hls4ml headers a project was written with; returns what was fixed."""
    from pathlib import Path

    fixed = []
    header = Path(out_dir) / "firmware" / "nnet_utils" / _SEPCONV1D_HEADER
    if header.is_file():
        text = header.read_text()
        if f"#ifndef {_SEPCONV_GUARD}" in text:
            header.write_text(text.replace(_SEPCONV_GUARD, "NNET_SEPARABLE_CONV1D_LATENCY_H_"))
            fixed.append(f"{_SEPCONV1D_HEADER}: its own include guard (it shared nnet_sepconv2d_latency.h's)")
    return fixed
