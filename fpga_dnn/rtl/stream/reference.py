"""Integer numpy references of the streaming modules' arithmetic (what each ``fd_*`` computes).

Used by the module tests; element values are plain integers (fixed-point value times 2^frac).
"""

from __future__ import annotations

import numpy as np


def wrap(x, bits: int, signed: bool = True) -> np.ndarray:
    """``x`` reduced to ``bits``-bit two's complement (signed) or modulo 2^bits (unsigned)."""
    x = np.asarray(x).astype(object) % (1 << bits)
    if signed:
        x = np.where(x >= (1 << (bits - 1)), x - (1 << bits), x)
    return x.astype(np.int64) if bits <= 63 else x


def out_size(n: int, k: int, s: int, pad_lo: int, pad_hi: int) -> int:
    """Output length of a window of ``k`` with stride ``s`` over ``n`` padded by pad_lo/pad_hi."""
    return (n + pad_lo + pad_hi - k) // s + 1


def windows(x, kh: int, kw: int, sh: int = 1, sw: int = 1, pads=(0, 0, 0, 0), pad_value: int = 0) -> np.ndarray:
    """fd_swg's output: ``x`` (frames, H, W, C) -> (frames, OH, OW, KH*KW*C), element
    ``(i*KW + j)*C + c`` of a window = padded input at (oh*SH + i, ow*SW + j, c).
    ``pads`` = (top, left, bottom, right)."""
    x = np.asarray(x)
    f, h, w, c = x.shape
    pt, pl, pb, pr = pads
    xp = np.full((f, h + pt + pb, w + pl + pr, c), pad_value, dtype=x.dtype)
    xp[:, pt:pt + h, pl:pl + w, :] = x
    oh, ow = out_size(h, kh, sh, pt, pb), out_size(w, kw, sw, pl, pr)
    out = np.empty((f, oh, ow, kh * kw * c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., (i * kw + j) * c:(i * kw + j + 1) * c] = xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
    return out


def matvec(x, w, bias, aw: int) -> np.ndarray:
    """fd_mvu: ``bias + x @ w.T`` for vectors ``x`` (V, K), ``w`` (N, K), in AW-bit wrap-around."""
    acc = np.asarray(x).astype(object) @ np.asarray(w).astype(object).T
    if bias is not None:
        acc = acc + np.asarray(bias).astype(object)
    return wrap(acc, aw)


def pool(x, kh, kw, sh, sw, pads, mode: str, signed: bool, ew: int) -> np.ndarray:
    """fd_pool: per-channel max (padding never wins) or sum (padding adds 0) of each window."""
    x = np.asarray(x)
    c = x.shape[-1]
    pad_value = -(1 << (ew - 1)) if (mode == "max" and signed) else 0
    win = windows(x, kh, kw, sh, sw, pads, pad_value)
    win = win.reshape(win.shape[:-1] + (kh * kw, c))
    return win.max(axis=-2) if mode == "max" else win.astype(np.int64).sum(axis=-2)
