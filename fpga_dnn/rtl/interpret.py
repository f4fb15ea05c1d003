"""Bit-exact evaluation of a da4ml ``CombLogic`` on a batch of samples, for any width up to 62 bits.

Why this module exists: da4ml 0.6.0's C++ interpreter (``CombLogic.predict``) wraps a value to a
*signed* type wider than 32 bits wrongly. ``DAISInterpreter::quantize`` takes the type's minimum
from ``DType::int_min()``, which computes ``-(1 << (width - 1))`` in a 32-bit ``int``, and holds it
in an ``int32_t``; from 33 bits on the minimum is garbage, so a negative value comes out shifted
by ``2**width`` steps. BatchNormalization's exact ``x * scale + bias`` (35-42 bits) hits it: the
interpreter then agreed with C-sim on about half of the samples while the Verilog (and
da4ml's own Python interpreter, ``CombLogic.__call__``) were right.

:func:`predict` therefore uses the C++ interpreter (fast, multi-threaded) only when no operation
of the logic is a signed value wider than 32 bits, and otherwise evaluates the operations here,
vectorised over the samples in ``int64``, with the semantics of da4ml's Python interpreter (which
is what its Verilog code generator emits). Remove the fallback when da4ml fixes ``int_min``.
"""

from __future__ import annotations

import numpy as np

#: Widest signed operation the C++ interpreter wraps correctly (its ``int_min`` is an int32).
CPP_SIGNED_MAX_BITS = 32
#: Widest value :func:`evaluate` holds exactly (int64, with room for one aligning shift).
MAX_BITS = 62
_CHUNK = 4096  # samples evaluated at once (the live values of one chunk stay in memory)


def _kif(qint):
    from da4ml.types import minimal_kif

    k, i, f = minimal_kif(qint)
    return int(k), int(i), int(f)


def cpp_interpreter_exact(comb) -> bool:
    """Whether da4ml's C++ interpreter is exact on ``comb`` (no signed op wider than 32 bits)."""
    for op in comb.ops:
        k, i, f = _kif(op.qint)
        if k and k + i + f > CPP_SIGNED_MAX_BITS:
            return False
    return True


def predict(comb, x: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """``comb``'s outputs on the rows of ``x`` (already on the input grid), float64 (n, n_out)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if cpp_interpreter_exact(comb):
        return np.asarray(comb.predict(x, n_threads=n_threads), dtype=np.float64).reshape(len(x), -1)
    return evaluate(comb, x)


def _shl(v: np.ndarray, s: int) -> np.ndarray:
    """``v * 2**s`` on integers; a right shift floors (an arithmetic shift), i.e. truncates."""
    return v << s if s >= 0 else v >> -s


def _wrap(v: np.ndarray, k: int, i: int, f: int) -> np.ndarray:
    """Fold integers into the ``k + i + f``-bit two's complement (k) or unsigned range."""
    b = k + i + f
    if b <= 0:
        return np.zeros_like(v)
    bias = np.int64(1 << (b - 1)) if k else np.int64(0)
    return ((v + bias) & np.int64((1 << b) - 1)) - bias


def _last_uses(comb) -> list[int]:
    """For each op, the index of the last op (or output) that reads it."""
    last = list(range(len(comb.ops)))
    for j, op in enumerate(comb.ops):
        srcs = []
        if op.opcode in (0, 1, 7, 10):
            srcs = [op.id0, op.id1]
        elif op.opcode in (6, -6):
            srcs = [op.id0, op.id1, op.data & 0xFFFFFFFF]
        elif op.opcode not in (-1, 5):
            srcs = [op.id0]
        for s in srcs:
            last[s] = max(last[s], j)
    for idx in comb.out_idxs:
        if idx >= 0:
            last[idx] = len(comb.ops)
    return last


def evaluate(comb, x: np.ndarray) -> np.ndarray:
    """Evaluate ``comb`` on the rows of ``x`` exactly (da4ml's Python-interpreter semantics)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    kifs = [_kif(op.qint) for op in comb.ops]
    widest = max((sum(k) for k in kifs), default=0)
    if widest > MAX_BITS:
        raise ValueError(f"a {widest}-bit value: more than the {MAX_BITS} bits evaluated exactly here")
    last = _last_uses(comb)
    out = np.empty((len(x), len(comb.out_idxs)), dtype=np.float64)
    for lo in range(0, len(x), _CHUNK):
        out[lo:lo + _CHUNK] = _evaluate_chunk(comb, kifs, last, x[lo:lo + _CHUNK])
    return out


def _evaluate_chunk(comb, kifs, last, x: np.ndarray) -> np.ndarray:
    ops = comb.ops
    buf: list = [None] * len(ops)
    n = len(x)
    for j, op in enumerate(ops):
        k, i, f = kifs[j]
        code = op.opcode
        if code == -1:
            scaled = x[:, op.id0] * 2.0 ** (int(comb.inp_shifts[op.id0]) + f)
            v = _wrap(np.floor(scaled).astype(np.int64), k, i, f)
        elif code in (0, 1):
            f0, f1 = kifs[op.id0][2], kifs[op.id1][2] - int(op.data)  # v1 * 2**data has f1 - data
            fc = max(f0, f1)
            a, b = _shl(buf[op.id0], fc - f0), _shl(buf[op.id1], fc - f1)
            v = _wrap(_shl(a + b if code == 0 else a - b, f - fc), k, i, f)
        elif code in (2, -2):
            src = buf[op.id0] if code == 2 else -buf[op.id0]
            v = _wrap(_shl(np.maximum(src, 0), f - kifs[op.id0][2]), k, i, f)
        elif code in (3, -3):
            src = buf[op.id0] if code == 3 else -buf[op.id0]
            v = _wrap(_shl(src, f - kifs[op.id0][2]), k, i, f)
        elif code == 4:
            v = _wrap(_shl(buf[op.id0], f - kifs[op.id0][2]) + np.int64(op.data), k, i, f)
        elif code == 5:
            v = np.full(n, np.int64(op.data))
        elif code in (6, -6):
            id_c = op.data & 0xFFFFFFFF
            shift = (op.data >> 32) & 0xFFFFFFFF
            shift = shift if shift < 0x80000000 else shift - 0x100000000
            kc, ic, fc = kifs[id_c]
            cond = buf[id_c] < 0 if kc else buf[id_c] >= np.int64(1 << max(ic + fc - 1, 0))
            v1 = buf[op.id1] if code == 6 else -buf[op.id1]
            a = _shl(buf[op.id0], f - kifs[op.id0][2])
            b = _shl(v1, f - (kifs[op.id1][2] - shift))
            v = _wrap(np.where(cond, a, b), k, i, f)
        elif code == 7:
            fp = kifs[op.id0][2] + kifs[op.id1][2]
            v = _wrap(_shl(buf[op.id0] * buf[op.id1], f - fp), k, i, f)
        elif code == 8:
            table = comb.lookup_tables[op.data]
            src_qint = ops[op.id0].qint
            start = round(src_qint.min / src_qint.step)
            vals = np.asarray(table.table, dtype=np.int64)
            tk, ti, tf = (int(a) for a in table.spec.out_kif)
            vals = _wrap(vals, tk, ti, tf)
            v = _wrap(_shl(vals[buf[op.id0] - start], f - tf), k, i, f)
        else:
            raise ValueError(f"operation code {code} is not evaluated here ({op})")
        buf[j] = v
        for s in {op.id0, op.id1, op.data & 0xFFFFFFFF} if code in (6, -6) else {op.id0, op.id1}:
            if 0 <= s < j and last[s] == j and code not in (-1, 5):
                buf[s] = None  # dead from here on
    res = np.zeros((n, len(comb.out_idxs)), dtype=np.float64)
    for c, idx in enumerate(comb.out_idxs):
        if idx < 0:
            continue
        v = buf[idx].astype(np.float64) * 2.0 ** (int(comb.out_shifts[c]) - kifs[idx][2])
        res[:, c] = -v if comb.out_negs[c] else v
    return res
