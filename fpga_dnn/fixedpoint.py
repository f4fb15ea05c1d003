"""Fixed-point formats in the ap_fixed convention (numpy only: importable on a board).

A format ``(signed, width, integer)`` holds ``value = k * 2**-(width - integer)`` for an integer
``k`` in ``[-2**(width-1), 2**(width-1))`` when signed, ``[0, 2**width)`` when not; the sign bit
counts among the integer bits, as in ``ap_fixed<W,I>`` / ``ap_ufixed<W,I>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import DataError

_HLS_RE = re.compile(r"^\s*(ap_)?(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(,[^>]*)?>\s*$")


@dataclass(frozen=True)
class FixedFormat:
    signed: bool
    width: int
    integer: int

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
        """The hls4ml precision string, e.g. ``ufixed<5,1>``."""
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.integer}>"

    def __str__(self) -> str:
        return self.hls4ml()

    @classmethod
    def parse(cls, text: str) -> "FixedFormat":
        """Parse ``fixed<W,I>``, ``ufixed<W,I>``, ``ap_fixed<W,I,...>`` (modes are ignored)."""
        m = _HLS_RE.match(str(text))
        if not m:
            raise DataError(f"not a fixed-point format: {text!r} (expected e.g. 'fixed<8,3>' or 'ufixed<5,1>')")
        return cls(signed=m.group(2) != "u", width=int(m.group(3)), integer=int(m.group(4)))

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
