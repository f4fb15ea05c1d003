"""Value ranges of a layer's integer sums, from its weights and its input's range (numpy only).

A Conv/Dense accumulator type (hls4ml's ``auto`` accum_t) is sized for every code of its input
type times every weight *bit*, which is far wider than what the actual weights can produce. The
true range of ``bias + sum_i w_i * x_i`` over all inputs ``x_i`` in ``[x_lo, x_hi]`` is
``bias + sum_i max(w_i * x_lo, w_i * x_hi)`` at the top and the same with ``min`` at the bottom,
per output channel: what the BatchNormalization after a conv can see (:mod:`fpga_dnn.bnexact`)
and how wide a streaming unit's accumulator must be (:mod:`fpga_dnn.hw.lower`).

Padded taps multiply an input of 0, which lies in every fixed-point type's range, so the bounds
hold for 'same' convolutions too (they may then not be reached).
"""

from __future__ import annotations

import numpy as np


def acc_bounds(w: np.ndarray, bias: np.ndarray, x_lo, x_hi) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel ``c``, the least and greatest value of ``bias[c] + w[c] @ x`` over every
    ``x`` with ``x_lo <= x <= x_hi`` elementwise.

    ``w`` is ``(channels, taps)`` integer codes (rows are output channels), ``bias`` ``(channels,)``,
    ``x_lo``/``x_hi`` integers or ``(taps,)`` arrays, all on one grid. The sums are Python integers
    (object arrays), exact however wide; ``(lo, hi)`` each of shape ``(channels,)``.
    """
    w = np.asarray(w).astype(object)
    lo_x, hi_x = np.asarray(x_lo, dtype=object), np.asarray(x_hi, dtype=object)
    at_lo, at_hi = w * lo_x, w * hi_x
    b = np.broadcast_to(np.asarray(bias).astype(object), (w.shape[0],))
    lo = np.minimum(at_lo, at_hi).sum(axis=1) + b
    hi = np.maximum(at_lo, at_hi).sum(axis=1) + b
    return lo, hi
