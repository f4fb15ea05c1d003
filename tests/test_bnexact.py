"""Exact BatchNormalization constants (:mod:`fpga_dnn.bnexact`) and the true range of a conv.

Unit tests on a synthetic float32 BN (numpy, no Keras): the bisection finds exactly the runs a full
enumeration finds, the closed-form constants replay every code, and a step no affine map can
make is counted, not hidden. Then a user's Conv -> BatchNormalization -> quantized ReLU CNN whose
accumulator is too wide to enumerate: C-sim equals Keras on the test split and the probe set, and
the streamed RTL equals C-sim.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from fpga_dnn import bnexact
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.hw.ranges import acc_bounds
from fpga_dnn.rtl.precision import quantize_np

T_OUT = FixedFormat(False, 4, 0, "RND_CONV", "SAT")   # quantized_relu(4,0) in hls4ml


def _float32_bn(inv, off, f_in, t_out=T_OUT, relu=True):
    """A BN + quantized activation as Keras computes it: float32 x*inv + off, then the quantizer."""
    inv, off = np.float32(inv), np.float32(off)

    def levels_of(codes):
        x = np.ldexp(np.asarray(codes, np.float64), -f_in).astype(np.float32)
        y = (x * inv + off).astype(np.float64)
        y = np.maximum(y, 0) if relu else y
        return np.rint(np.ldexp(quantize_np(y, t_out), t_out.f)).astype(np.int64)

    return levels_of


def _enumerated(levels_of, lo, hi):
    """Every code of every channel: (codes per channel, levels per channel)."""
    n = max(h - l for l, h in zip(lo, hi)) + 1
    codes = np.array([np.minimum(np.arange(l, l + n), h) for l, h in zip(lo, hi)]).T
    q = levels_of(codes)
    return [codes[: h - l + 1, c] for c, (l, h) in enumerate(zip(lo, hi))], \
        [q[: h - l + 1, c] for c, (l, h) in enumerate(zip(lo, hi))]


def _replay(fit, codes, f_in, t_out=T_OUT, relu=True):
    """hls4ml's integer arithmetic, cast(x*S + B), on every code of channel c."""
    out = []
    for c, v in enumerate(codes):
        r = v.astype(object) * int(fit.scale[c]) + (int(fit.bias[c]) << f_in)
        out.append(np.asarray(bnexact._int_cast(r, f_in + fit.frac, t_out, relu), dtype=np.int64))
    return out


def test_acc_bounds_are_the_extremes_over_every_input():
    """Per channel max/min of bias + w @ x, checked against all 3**4 inputs of a 3-code type."""
    rng = np.random.default_rng(0)
    w, b = rng.integers(-5, 6, (3, 4)), rng.integers(-3, 4, 3)
    lo, hi = acc_bounds(w, b, -1, 1)
    grid = np.array(np.meshgrid(*[[-1, 0, 1]] * 4)).reshape(4, -1)
    sums = w @ grid + b[:, None]
    assert list(lo) == list(sums.min(1)) and list(hi) == list(sums.max(1))
    # exact beyond int64: the sums are Python integers
    lo, hi = acc_bounds(np.full((1, 4), 1 << 40), [0], -(1 << 30), 1 << 30)
    assert int(hi[0]) == 4 << 70 and int(lo[0]) == -(4 << 70)


def test_bisection_finds_the_runs_of_an_enumeration():
    """level_runs on a 5-channel float32 BN over a 2**17-code range (negative scale included):
    its runs are exactly those of enumerating every code."""
    f_in = 10
    inv = [0.97, 1.31, -0.7, 2.5e-3, 0.0]
    off = [0.03, -0.2, 0.4, 0.51, 0.3]
    lo, hi = [-40_000, -65_536, -30_000, 0, -5], [65_535, 50_000, 12_345, 65_535, 5]
    fn = _float32_bn(inv, off, f_in)
    runs = bnexact.level_runs(fn, lo, hi)
    codes, levels = _enumerated(fn, lo, hi)
    for c in range(len(lo)):
        change = np.flatnonzero(np.diff(levels[c])) + 1
        assert runs.starts[c] == [lo[c]] + list(codes[c][change]), c
        assert runs.levels[c] == [int(levels[c][0])] + list(levels[c][change]), c
    assert runs.pairs() == sum(h - l + 1 for l, h in zip(lo, hi))


def test_closed_form_constants_replay_every_code():
    """fit_constants' scale/bias, replayed in hls4ml's integer arithmetic on every code of every
    channel, give Keras's (float32) level: no mismatch, at a small fraction width."""
    f_in = 9
    rng = np.random.default_rng(3)
    inv, off = rng.uniform(0.4, 2.0, 6).astype("f4"), rng.uniform(-0.5, 0.5, 6).astype("f4")
    inv[2] = -inv[2]
    lo, hi = [-3000] * 6, [3000] * 6
    fn = _float32_bn(inv, off, f_in)
    fit = bnexact.fit_constants(bnexact.level_runs(fn, lo, hi), f_in, T_OUT, True, inv, off)
    codes, levels = _enumerated(fn, lo, hi)
    assert not fit.unmatched.any() and fit.frac <= 24
    for c, (got, want) in enumerate(zip(_replay(fit, codes, f_in), levels)):
        assert np.array_equal(got, want), c
    # hls4ml's default, 10 fraction bits rounded, is not exact here (why the types are derived)
    s10, b10 = np.round(inv.astype(np.float64) * 1024), np.round(off.astype(np.float64) * 1024)
    default = bnexact.Fit(10, s10.astype(np.int64), b10.astype(np.int64), None, 0)
    assert any(not np.array_equal(g, w) for g, w in zip(_replay(default, codes, f_in), levels))


def test_a_step_no_affine_map_makes_is_counted():
    """Runs whose steps are not those of any x*s + b (one boundary moved by 3 codes): the closest
    constants are returned with the exact number of codes they map to another level."""
    f_in = 6
    fn = _float32_bn([1.0], [0.0], f_in)
    runs = bnexact.level_runs(fn, [0], [1000])
    runs.starts[0][5] += 3          # level 5 starts 3 codes late
    runs.ends[0][4] += 3
    fit = bnexact.fit_constants(runs, f_in, T_OUT, True, [1.0], [0.0])
    codes = [np.arange(0, 1001)]
    want = np.repeat(runs.levels[0], np.array(runs.ends[0]) - np.array(runs.starts[0]) + 1)
    wrong = int(np.count_nonzero(_replay(fit, codes, f_in)[0] != want))
    assert fit.unmatched[0] == wrong and 0 < wrong <= 3 and fit.pairs == 1001
    assert f"{wrong} of 1,001 reachable (value, channel) pairs cannot be matched" in bnexact._reason_unmatched(fit)
