"""hls4ml precision types, and ap_fixed's casts rebuilt exactly: in numpy and in da4ml's tracer.

Why this module exists: RTL generated from hls4ml's ``ModelGraph`` must be bit-exact with
hls4ml's C-sim, and C-sim is Vivado's ``ap_fixed`` arithmetic. Every assignment to an
``ap_fixed<W,I,Q,O>`` variable first rounds away the dropped fraction bits by the quantization
mode ``Q`` and then folds the value into range by the overflow mode ``O`` (see
``quantization_adjust``/``overflow_adjust`` in hls4ml's ``ap_fixed_base.h``). da4ml's tracer
knows only TRN and RND (half up) with WRAP/SAT/SAT_SYM, so the other rounding modes are built
here from its primitives, by adding a data-dependent offset before truncating:

=============  =============================  ==========================================
mode           ties go                        offset added before TRN (u = input step,
                                              h = half an output step, s = sign bit)
=============  =============================  ==========================================
TRN            (floor)                        0
RND            up                             h
RND_MIN_INF    down                           h - u
RND_CONV       to even                        h - u + u*L  (L = kept LSB of the input)
RND_ZERO       towards zero                   h - u + u*s
RND_INF        away from zero                 h - u*s
TRN_ZERO       (towards zero)                 (2h - u)*s
=============  =============================  ==========================================

Values are always on their input grid (step ``u``), so "x + h - u, then floor" rounds exact
ties down and everything else to nearest; that is what makes the table above exact.

Conventions: hls4ml/ap_fixed describe a type by (signed, width W, integer bits I incl. sign);
da4ml by (k, i, f) = (signed, I - signed, W - I). :class:`HlsType` (= :class:`FixedFormat`)
converts between the two.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from fpga_dnn.errors import UnsupportedPrecisionError  # defined with the other user errors; imported from here too
from fpga_dnn.fixedpoint import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat  # noqa: F401 (re-exported)

#: Widest intermediate value da4ml's bit-exact interpreter (``CombLogic.predict``) holds: it
#: computes in 64-bit integers and warns that wider ops "may compromise bit-exactness".
INTERPRETER_MAX_BITS = 64

#: Widest constant/input that numpy float64 represents exactly (53-bit mantissa).
FLOAT64_EXACT_BITS = 53

#: One ``ap_fixed``/``ap_ufixed`` type with its quantization and overflow modes: the project's
#: one fixed-point type class (:class:`fpga_dnn.fixedpoint.FixedFormat`), under its rtl name.
#: Reading one from hls4ml: :func:`fpga_dnn.hw.from_hls4ml.hls_type` (``HlsType.from_hls4ml``).
HlsType = FixedFormat


# --------------------------------------------------------------------------------------------
# numpy: float64 -> ap_fixed, as ap_fixed's constructor from double does it
# --------------------------------------------------------------------------------------------

def round_increment(rounding: str, qb, r, neg, lsb):
    """The 0/1 that ``rounding`` adds to the floor of a value (ap_fixed's quantization modes),
    from the first dropped bit ``qb``, whether any dropped bit below it is set ``r``, the sign
    ``neg`` and the kept least significant bit ``lsb``. Shared by the float model
    (:func:`quantize_np`) and the integer one of the streaming path (``fpga_dnn.hw.reference``)."""
    return {
        "TRN": np.zeros_like(qb),
        "RND": qb,
        "RND_ZERO": qb & (neg | r),
        "RND_MIN_INF": qb & r,
        "RND_INF": qb & (~neg | r),
        "RND_CONV": qb & (lsb | r),
        "TRN_ZERO": neg & (qb | r),
    }[rounding]


def quantize_np(x, t: HlsType) -> np.ndarray:
    """Convert float values to type ``t`` exactly like ``ap_fixed<...>(double)``; returns float64.

    Used for weights (hls4ml writes them as decimal text that the C++ compiler parses to double
    and casts), for the input conversion of C-sim's ``predict`` and for constants such as
    ``(accum_t) bias``.
    """
    x = np.asarray(x, dtype=np.float64)
    scaled = np.ldexp(x, t.f)
    fl = np.floor(scaled)
    rem = scaled - fl  # exact: fl and scaled share the exponent range
    qb = rem >= 0.5
    r = (rem - 0.5 * qb) > 0
    s = x < 0
    lsb = np.mod(fl, 2) == 1
    v = fl + round_increment(t.rounding, qb, r, s, lsb)
    lo, hi = (-(2.0 ** (t.width - 1)), 2.0 ** (t.width - 1) - 1) if t.signed else (0.0, 2.0**t.width - 1)
    if np.all((v >= lo) & (v <= hi)):
        pass  # in range: every overflow mode leaves it alone (and wide types stay exact)
    elif t.width > FLOAT64_EXACT_BITS:
        raise UnsupportedPrecisionError(
            f"value out of the range of {t}, a type wider than {FLOAT64_EXACT_BITS} bits: its "
            "overflow cannot be computed exactly in float64"
        )
    elif t.overflow == "WRAP":
        v = np.mod(v - lo, 2.0**t.width) + lo
    elif t.overflow == "SAT":
        v = np.clip(v, lo, hi)
    elif t.overflow == "SAT_SYM":
        v = np.clip(v, -hi if t.signed else lo, hi)
    else:  # pragma: no cover - HlsType validates the mode
        raise UnsupportedPrecisionError(f"overflow mode {t.overflow}")
    return np.ldexp(v, -t.f)


# --------------------------------------------------------------------------------------------
# da4ml: the same casts on traced variables
# --------------------------------------------------------------------------------------------

def cast(x, t: HlsType):
    """Cast every element of a ``FixedVariableArray`` to ``t`` (rounding, then overflow)."""
    from da4ml.trace import FixedVariableArray

    flat = [cast_scalar(v, t) for v in x._vars.ravel()]
    return FixedVariableArray(np.array(flat, dtype=object).reshape(x.shape), x.solver_options, hwconf=x.hwconf)


def cast_scalar(v, t: HlsType):
    """Cast one ``FixedVariable`` to ``t``: the ap_fixed assignment ``t y = v;``."""
    from da4ml.trace import FixedVariable

    if v.low == v.high:  # a constant: compute it, do not build logic
        value = float(quantize_np(float(v.low), t))
        return FixedVariable.from_const(value, hwconf=v.hwconf)
    _k0, _i0, f0 = v.kif
    if f0 > t.f and t.rounding != "TRN":
        v = _round_offset(v, f0, t)
    return v.quantize(t.k, t.i, t.f, t.overflow, "TRN")


def _round_offset(v, f0: int, t: HlsType):
    """Add the rounding-mode offset of the module docstring's table so that TRN then rounds."""
    u = Decimal(2) ** -f0
    h = Decimal(2) ** -(t.f + 1)
    mode = t.rounding
    if mode == "RND":
        return v + h
    if mode == "RND_MIN_INF":
        return v + (h - u)
    if mode == "RND_CONV":
        # L: the bit that becomes the output's LSB, as a variable worth 0 or 2**-f.
        lsb = v.quantize(0, 1 - t.f, t.f, "WRAP", "TRN")
        return v + (h - u) + lsb * float(u * (Decimal(2) ** t.f))
    neg = _sign_bit(v)
    if mode == "RND_ZERO":
        return v + (h - u) + neg * float(u)
    if mode == "RND_INF":
        return v + h - neg * float(u)
    if mode == "TRN_ZERO":
        return v + neg * float(2 * h - u)
    raise UnsupportedPrecisionError(f"rounding mode {mode}")  # pragma: no cover - validated earlier


def _sign_bit(v):
    """1 when ``v`` < 0 else 0, as a variable (a constant when the range decides it)."""
    return v.is_negative()


def kif_width(v) -> int:
    """Bits needed to hold a traced scalar (k + i + f of its interval; 0 for constant zero)."""
    if v.low == v.high == 0:
        return 0
    k, i, f = v.kif
    return int(k) + int(i) + int(f)


def check_width(x, where: str, what: str, limit: int = INTERPRETER_MAX_BITS) -> None:
    """Refuse values wider than da4ml's interpreter can hold, naming the layer."""
    widest = max((kif_width(v) for v in x._vars.ravel()), default=0)
    if widest > limit:
        raise UnsupportedPrecisionError(
            f"{where}: {what} needs {widest} bits, more than the {limit} bits da4ml's bit-exact "
            "emulation holds; narrow the layer's accum/result precision"
        )
