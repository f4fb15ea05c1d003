"""The project's one fixed-point type, in the ap_fixed convention (numpy only: importable on a board).

A format ``(signed, width, integer)`` holds ``value = k * 2**-(width - integer)`` for an integer
``k`` in ``[-2**(width-1), 2**(width-1))`` when signed, ``[0, 2**width)`` when not; the sign bit
counts among the integer bits, as in ``ap_fixed<W,I>`` / ``ap_ufixed<W,I>``. A type also carries
ap_fixed's quantization and overflow modes (``rounding``, ``overflow``; the defaults TRN and
WRAP are ap_fixed's), which say how a value is cast *into* it; the spec and the runtime's packing
use the bare format (:attr:`FixedFormat.format`). Conversion, the hardware graph, both RTL
generators and the spec all use this class (``fpga_dnn.rtl.precision.HlsType`` is this class).

Conventions: hls4ml/ap_fixed describe a type by (signed, width W, integer bits I incl. sign);
da4ml by (k, i, f) = (signed, I - signed, W - I): the properties ``k``, ``i``, ``f``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import DataError

#: ``[ap_][u]fixed<W,I[,Q[,O[,N]]]>`` or ``[ap_][u]int<W>``.
_HLS_RE = re.compile(r"^\s*(?:ap_)?(u?)(fixed|int)\s*<\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?"
                     r"(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,\s*(\d+)\s*)?>\s*$")

ROUNDING_MODES = ("TRN", "RND", "RND_MIN_INF", "RND_CONV", "RND_ZERO", "RND_INF", "TRN_ZERO")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM")
DEFAULT_MODES = ("TRN", "WRAP")  # ap_fixed's


def _mode(name):
    """``AP_RND`` / ``rnd`` -> ``RND`` (None stays None)."""
    if name is None:
        return None
    name = name.upper()
    return name[3:] if name.startswith("AP_") else name


@dataclass(frozen=True)
class FixedFormat:
    signed: bool
    width: int
    integer: int
    rounding: str = "TRN"
    overflow: str = "WRAP"

    @property
    def k(self) -> int:
        return int(self.signed)

    @property
    def i(self) -> int:
        """Integer bits without the sign bit (da4ml's ``i``)."""
        return self.integer - int(self.signed)

    @property
    def f(self) -> int:
        """Fractional bits (da4ml's ``f``; the same as :attr:`frac`)."""
        return self.width - self.integer

    @property
    def format(self) -> "FixedFormat":
        """The bare format (default modes), as the spec and the runtime's packing code use it."""
        if (self.rounding, self.overflow) == DEFAULT_MODES:
            return self
        return FixedFormat(self.signed, self.width, self.integer)

    @property
    def frac(self) -> int:
        """Number of fractional bits (may be negative or exceed width)."""
        return self.width - self.integer

    @property
    def step(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return -(2.0 ** (self.integer - 1)) if self.signed else 0.0

    @property
    def max_value(self) -> float:
        top = self.integer - 1 if self.signed else self.integer
        return 2.0**top - self.step

    def hls4ml(self) -> str:
        """The hls4ml precision string, e.g. ``ufixed<5,1>`` or ``fixed<8,3,RND,SAT>`` (modes
        written when they are not ap_fixed's defaults)."""
        modes = "" if (self.rounding, self.overflow) == DEFAULT_MODES else f",{self.rounding},{self.overflow}"
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.integer}{modes}>"

    def __str__(self) -> str:
        return self.hls4ml()

    @classmethod
    def parse(cls, text: str) -> "FixedFormat":
        """Parse ``fixed<W,I>``, ``ufixed<W,I>``, ``ap_fixed<W,I,Q,O[,N]>``, ``ap_int<W>``,
        ``ap_uint<W>``; the modes are kept (saturation bits N must be 0)."""
        m = _HLS_RE.match(str(text))
        if not m:
            raise DataError(f"not a fixed-point format: {text!r} (expected e.g. 'fixed<8,3>', 'ufixed<5,1>', "
                            "'ap_fixed<8,3,RND,SAT>' or 'ap_int<8>')")
        unsigned, kind, width, integer, rnd, sat, nbits = m.groups()
        if kind == "int":
            if integer is not None or rnd is not None:
                raise DataError(f"{text!r}: int<> takes one parameter (the width)")
            integer = width
        if integer is None:
            raise DataError(f"{text!r}: fixed<> needs <width,integer>")
        rnd, sat = (_mode(rnd) or "TRN"), (_mode(sat) or "WRAP")
        if rnd not in ROUNDING_MODES or sat not in OVERFLOW_MODES or (nbits or "0") != "0":
            raise DataError(f"{text!r}: modes must be one of {', '.join(ROUNDING_MODES)} and one of "
                            f"{', '.join(OVERFLOW_MODES)} (saturation bits 0)")
        return cls(not unsigned, int(width), int(integer), rnd, sat)

    @classmethod
    def from_kbi(cls, k: int, b: int, i: int, rounding: str, overflow: str) -> "FixedFormat":
        """HGQ's (keep_negative, bits, integer bits incl. sign) as hls4ml writes ``ap_fixed<b,i>``."""
        return cls(bool(k), int(b), int(i), rounding.upper(), overflow.upper())

    @classmethod
    def from_hls4ml(cls, precision, where: str) -> "FixedFormat":
        """An hls4ml ``PrecisionType`` as this type; ``where`` names the layer/variable for errors.
        The reading lives in :mod:`fpga_dnn.hw.from_hls4ml` (the hardware side's hls4ml reader)."""
        from fpga_dnn.hw.from_hls4ml import hls_type

        return hls_type(precision, where)

    def on_grid(self, x) -> np.ndarray:
        """Element-wise: is the value a multiple of the step and inside the range?"""
        x = np.asarray(x, dtype=np.float64)
        k = x * 2.0**self.frac
        return (k == np.round(k)) & (x >= self.min_value) & (x <= self.max_value)

    def quantize(self, x, *, saturate: bool = True) -> np.ndarray:
        """Round half to even onto the grid, then saturate (or raise if outside the range)."""
        x = np.asarray(x, dtype=np.float64)
        q = np.round(x * 2.0**self.frac) / 2.0**self.frac
        if not saturate and ((q < self.min_value) | (q > self.max_value)).any():
            raise DataError(f"values outside the range of {self} [{self.min_value}, {self.max_value}]")
        return np.clip(q, self.min_value, self.max_value)

    @classmethod
    def infer(cls, x, max_frac: int = 24) -> "FixedFormat":
        """The narrowest format that holds every value of ``x`` exactly.

        Raises DataError when the values are not on a power-of-two grid of at most ``max_frac``
        fractional bits: such inputs would be rounded by the hardware and so could never be
        bit-exact with Keras. Quantize them first (``FixedFormat.quantize``) or give a precision.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0 or not np.isfinite(x).all():
            raise DataError("input data is empty or holds NaN/inf; cannot infer a fixed-point format")
        for frac in range(0, max_frac + 1):
            k = x * 2.0**frac
            if (k == np.round(k)).all():
                break
        else:
            raise DataError(
                f"input values are not on a fixed-point grid of <= {max_frac} fractional bits; "
                "quantize the data or set the input precision explicitly"
            )
        kmin, kmax = int(k.min()), int(k.max())
        signed = kmin < 0
        if signed:
            bits = max(int(kmax).bit_length(), int(-kmin - 1).bit_length()) + 1
        else:
            bits = max(int(kmax).bit_length(), 1)
        return cls(signed=signed, width=bits, integer=bits - frac)
