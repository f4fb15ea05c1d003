"""Exact BatchNormalization: hls4ml's BN scale and bias types derived, not defaulted.

hls4ml computes a (non-fused) BatchNormalization as ``x * scale + bias`` with ``scale`` and
``bias`` constants cast to the model default ``fixed<16,6>`` (10 fraction bits, truncated). That
rounds the scale so that, on some inputs, the quantized activation after the BN flips a step
against Keras (seen: 12 of 2,000 random inputs on a 3-bit ReLU; on a Conv -> BN -> ReLU user CNN
with a 16-bit accumulator, 168 of 2,000). A test split of a few dozen samples rarely shows it.

Per BN node and output channel ``c``:

1. **What the BN can see**: the integer codes ``[lo_c, hi_c]`` of its input type that the layer
   before can produce, from that Conv/Dense's weights and its input type's range
   (:func:`fpga_dnn.hw.ranges.acc_bounds`), not the accumulator type's range (far wider).
2. **Keras's levels**: the model's own Keras BN and quantizing activation are a monotone step
   function of the input code (float32 rounding is monotone), so its output levels form runs of
   consecutive codes. :func:`level_runs` finds each run's ends by bisection (a few dozen Keras
   calls, whatever the width of the range) instead of enumerating every code.
3. **Closed-form constants**: hls4ml's ``cast(x*S + B)`` (``S``, ``B`` integers on the ``2**-F``
   grid, exact product and sum, then the activation's rounding and saturation) is affine in the
   code before the cast, so it maps a whole run to Keras's level iff it does so at the run's two
   ends. Each end gives a bound on ``B`` for a given ``S`` and, over pairs of ends, a bound on
   ``S``: :func:`fit_constants` takes the narrowest ``F`` for which every channel's interval is
   non-empty.

The constants are then put on that grid in the graph, so hls4ml's decimal printing and
``ap_fixed`` cast of them are exact. The BN's own result type must hold ``x*S + B`` exactly
(convert leaves it ``auto``, which does). Where no ``F`` up to :data:`MAX_FRAC` fits every channel
(Keras's float32 puts a level boundary where no affine map does), the closest constants are kept
and the layer is reported by name with the count of reachable (value, channel) pairs they miss;
a BN that feeds no quantizer, or whose input range is not bounded, is reported as not guaranteed
(the probe set then measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor

import numpy as np

MAX_FRAC = 32            # widest fraction of scale/bias tried
# ... for an io_parallel graph, which the unrolled RTL traces with da4ml: its trace of a BN was
# measured bit-exact with C-sim at a 38-bit ``data * scale + bias`` (19-bit scale) and 16
# fraction bits, and NOT at 51 bits (a 25-bit scale with 22 fraction bits: 0/1797 samples, 1 LSB
# at the output; tests/test_rtl_trace.py::test_batchnorm_bit_exact_with_csim). Past this, the
# closest constants are used and the unmatched inputs counted (reported as not guaranteed).
UNROLLED_MAX_FRAC = 16
FLOAT32_EXACT_BITS = 24  # codes beyond 2**24 are not exact float32 inputs of Keras's BN
QUANTIZING = ("QActivation",)
MAX_CANDIDATES = 32      # biases scored per scale when no constants match every code
_FAR = 1 << 256          # an unbounded end of a bias interval
#: layers whose output range :func:`input_bounds` derives from their weights
_SUMS = ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D")


def _int_cast(r: np.ndarray, frac_in: int, t, relu: bool) -> np.ndarray:
    """Integers ``r`` with ``frac_in`` fraction bits cast to HlsType ``t`` (ap_fixed rules); returns
    integers with ``t.f`` fraction bits, or None for a rounding mode not replayed here."""
    if relu:
        r = np.maximum(r, 0)
    shift = frac_in - t.f
    if shift <= 0:
        q = r << -shift
    else:
        q = r >> shift
        rem = r - (q << shift)
        half = np.int64(1) << (shift - 1)
        if t.rounding == "RND":
            q = q + (rem >= half)
        elif t.rounding == "RND_CONV":
            q = q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))
        elif t.rounding != "TRN":
            return None
    lo, hi = (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, (1 << t.width) - 1)
    if t.overflow == "SAT":
        return np.clip(q, lo, hi)
    if t.overflow == "WRAP":
        m = np.int64(1) << t.width
        q = q & (m - 1)
        return np.where(q > hi, q - m, q) if t.signed else q
    return None


# --------------------------------------------------------------------------------------------
# 1. the codes the BN can see
# --------------------------------------------------------------------------------------------

def input_bounds(hls_model, node, t_in) -> tuple[np.ndarray, np.ndarray, str]:
    """Per channel, the least and greatest code of ``t_in`` (the BN node's input type) the layer
    before can produce, and where the bound comes from. A Conv/Dense (through 'linear'
    activations) is bounded by its weights and its input type's range, then its result cast
    (monotone unless it wraps); anything else by ``t_in``'s own range."""
    from .hw.from_hls4ml import read_layer
    from .hw.lower import type_range
    from .hw.ranges import acc_bounds
    from .rtl.precision import quantize_np

    channels = int(node.get_input_variable().shape[-1])
    lo_t, hi_t = type_range(t_in)
    whole = (np.full(channels, lo_t, dtype=object), np.full(channels, hi_t, dtype=object), f"the range of {t_in}")
    producers = {n.outputs[0]: n for n in hls_model.get_layers()}
    casts = []  # result types met on the way back, nearest the BN first
    src = producers.get(node.inputs[0])
    while src is not None and src.class_name in ("Activation", "Linear") and \
            str(src.get_attr("activation", "linear")).lower() == "linear":
        casts.append(src)
        src = producers.get(src.inputs[0])
    if src is None or src.class_name not in _SUMS:
        return whole
    try:
        layer = read_layer(src)
        x_t = layer.in_ports[0].type(f"layer {src.name!r} input")
        w, w_t = layer.weights["weight"].values, layer.weights["weight"].fixed
        b = layer.weights["bias"].values if "bias" in layer.weights else np.zeros(w.shape[-1])
        b_t = layer.weights["bias"].fixed if "bias" in layer.weights else w_t
        out_ts = [layer.out_port.type(f"layer {src.name!r} result")] + [
            read_layer(n).out_port.type(f"layer {n.name!r} result") for n in reversed(casts)]
    except Exception:  # a type with no fixed-point form: fall back to the BN input type's range
        return whole
    if w is None or b is None or w.shape[-1] != channels:
        return whole
    frac = max(x_t.f + w_t.f, b_t.f)
    w_int = np.rint(np.ldexp(w.reshape(-1, channels).T.astype(np.float64), frac - x_t.f)).astype(np.int64)
    b_int = np.rint(np.ldexp(np.broadcast_to(b.ravel(), (channels,)).astype(np.float64), frac)).astype(np.int64)
    lo, hi = acc_bounds(w_int, b_int, *type_range(x_t))
    lo_v = np.array([Fraction(int(v), 1 << frac) for v in lo], dtype=object) if frac >= 0 else lo * (1 << -frac)
    hi_v = np.array([Fraction(int(v), 1 << frac) for v in hi], dtype=object) if frac >= 0 else hi * (1 << -frac)
    for t in out_ts:  # each cast is monotone; a wrap could reach any code
        t_lo, t_hi = type_range(t)
        if t.overflow == "WRAP" and (min(lo_v) < t_lo * Fraction(2) ** -t.f or max(hi_v) > t_hi * Fraction(2) ** -t.f):
            return whole
        lo_v = np.array([Fraction(float(quantize_np(float(v), t))) for v in lo_v], dtype=object)
        hi_v = np.array([Fraction(float(quantize_np(float(v), t))) for v in hi_v], dtype=object)
    scale = Fraction(2) ** t_in.f
    lo_c = np.array([max(lo_t, floor(v * scale)) for v in lo_v], dtype=object)
    hi_c = np.array([min(hi_t, ceil(v * scale)) for v in hi_v], dtype=object)
    return lo_c, hi_c, f"{src.name}'s weights and its input range {x_t}"


# --------------------------------------------------------------------------------------------
# 2. Keras's level runs, by bisection
# --------------------------------------------------------------------------------------------

@dataclass
class Runs:
    """Per channel, the runs of input codes Keras maps to one output level: run ``i`` of channel
    ``c`` is codes ``starts[c][i] .. ends[c][i]`` (inclusive), all giving level ``levels[c][i]``."""

    starts: list[list[int]]
    ends: list[list[int]]
    levels: list[list[int]]

    def pairs(self) -> int:
        """Reachable (code, channel) pairs."""
        return sum(int(e[-1]) - int(s[0]) + 1 for s, e in zip(self.starts, self.ends))


def level_runs(levels_of, lo, hi) -> Runs:
    """The runs of the monotone step function ``levels_of`` over codes ``lo[c] .. hi[c]``.

    ``levels_of(codes)`` maps an ``(N, C)`` integer array (column ``c`` fed to channel ``c``) to
    the ``(N, C)`` output level codes. Each level boundary is found by bisection on the code, all
    (level, channel) pairs at once, so the cost is ``log2(hi - lo)`` calls of ``N`` = levels rows.
    Raises ValueError when the function is not monotone on a run's ends."""
    lo, hi = [int(v) for v in lo], [int(v) for v in hi]
    c = len(lo)
    ends = np.array([lo, hi], dtype=np.int64)
    q_ends = np.asarray(levels_of(ends), dtype=np.int64)
    dec = q_ends[1] < q_ends[0]
    q_min, q_max = q_ends.min(0), q_ends.max(0)
    ks = np.arange(int(q_min.min()) + 1, int(q_max.max()) + 1, dtype=np.int64)  # transitions to find
    lo_a, hi_a = np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)
    # smallest code with P(code) = (level >= k) XOR decreasing; P(lo - 1) false, P(hi + 1) true
    left = np.broadcast_to(lo_a - 1, (len(ks), c)).copy()
    right = np.broadcast_to(hi_a + 1, (len(ks), c)).copy()
    while len(ks) and np.any(right - left > 1):
        mid = left + (right - left) // 2
        active = right - left > 1
        probe = np.where(active, mid, lo_a[None, :])
        p = (np.asarray(levels_of(probe), dtype=np.int64) >= ks[:, None]) ^ dec[None, :]
        right = np.where(active & p, mid, right)
        left = np.where(active & ~p, mid, left)
    starts, stops, levels = [], [], []
    for ch in range(c):
        b = sorted({int(v) for v in right[:, ch] if lo[ch] < v <= hi[ch]})
        starts.append([lo[ch]] + b)
        stops.append([v - 1 for v in b] + [hi[ch]])
    width = max(len(s) for s in starts)
    pad = lambda rows: np.array([r + [r[-1]] * (width - len(r)) for r in rows], dtype=np.int64).T  # noqa: E731
    q_s, q_e = np.asarray(levels_of(pad(starts)), np.int64), np.asarray(levels_of(pad(stops)), np.int64)
    for ch in range(c):
        n = len(starts[ch])
        if not np.array_equal(q_s[:n, ch], q_e[:n, ch]) or (n > 1 and np.any(np.diff(q_s[:n, ch]) == 0)):
            raise ValueError(f"channel {ch}: the function is not monotone in its input")
        levels.append([int(v) for v in q_s[:n, ch]])
    return Runs(starts, stops, levels)


# --------------------------------------------------------------------------------------------
# 3. closed-form scale and bias
# --------------------------------------------------------------------------------------------

def _thresholds(t_out, relu: bool) -> tuple[int, int, dict]:
    """The activation cast as thresholds: ``(base, top, {k: (theta_k, strict_k)})`` such that the
    level is ``>= k`` iff ``y >= theta_k`` (``y > theta_k`` when strict), for ``base < k <= top``.
    Found by casting the cells around each step (``quantize_np``: the project's one replay of
    ap_fixed's rounding modes), so every rounding mode is covered."""
    from .hw.lower import type_range
    from .rtl.precision import quantize_np

    lo, hi = type_range(t_out)
    if t_out.overflow == "SAT_SYM" and t_out.signed:
        lo = -hi
    base = max(lo, 0) if relu else lo
    step = Fraction(2) ** -t_out.f
    out = {}
    for k in range(base + 1, hi + 1):
        # points k-1, k-3/4, k-1/2, k-1/4, k (in steps): the cast is constant between them
        cells = [(k - 1, False, None), (k - Fraction(3, 4), True, k - 1), (k - Fraction(1, 2), False, None),
                 (k - Fraction(1, 4), True, k - Fraction(1, 2)), (k, False, None)]
        for at, open_cell, theta in cells:
            y = max(at, 0) if relu else at
            code = int(np.rint(float(quantize_np(float(y * step), t_out)) / float(step)))
            if code >= k:
                out[k] = ((theta if open_cell else at) * step, open_cell)
                break
    return base, hi, out


@dataclass
class Fit:
    """Constants for one BN: ``frac`` fraction bits, per channel integer ``scale`` and ``bias``
    (value ``* 2**-frac``), and per channel the reachable codes they map to another level than
    Keras (all 0 when exact)."""

    frac: int
    scale: np.ndarray
    bias: np.ndarray
    unmatched: np.ndarray
    pairs: int


def _constraints(starts, ends, levels, th, base, top):
    """A channel's bounds, as ``(code, theta, is_lower, strict)``: the run ends' conditions."""
    out = []
    for a, b, k in zip(starts, ends, levels):
        for v in {a, b}:
            if k > base:
                out.append((v, *th[k][:1], True, th[k][1]))
            if k < top:   # level < k+1: not (y >= theta) -> y < theta; not (y > theta) -> y <= theta
                out.append((v, th[k + 1][0], False, not th[k + 1][1]))
    return out


def _bias_interval(cons, s_int: int, f_in: int, frac: int) -> tuple[int, int]:
    """The integer biases (on 2**-frac) meeting every constraint for scale ``s_int``: y(v) =
    (v*s_int*2**-f_in + B) * 2**-frac; ``(lo, hi)``, empty when lo > hi."""
    b_lo, b_hi = -_FAR, _FAR
    for v, theta, lower, strict in cons:
        x = theta * (1 << frac) - Fraction(v * s_int, 1 << f_in) if f_in >= 0 else \
            theta * (1 << frac) - v * s_int * (1 << -f_in)
        if lower:   # y >= theta (or >)
            b_lo = max(b_lo, floor(x) + 1 if strict else ceil(x))
        else:       # y < theta (strict here means y < theta; else y <= theta)
            b_hi = min(b_hi, ceil(x) - 1 if strict else floor(x))
    return b_lo, b_hi


def _scale_interval(cons, f_in: int) -> tuple[float, float]:
    """The real scales (in value) for which some real bias meets every constraint: pairs of a
    lower bound at code ``a`` and an upper bound at code ``b`` give ``(a - b) s >= theta_a - theta_b``.
    (float64: the integer candidates around it are checked exactly by :func:`_bias_interval`.)"""
    low = np.array([(v, float(th)) for v, th, lower, _ in cons if lower], dtype=np.float64).reshape(-1, 2)
    high = np.array([(v, float(th)) for v, th, lower, _ in cons if not lower], dtype=np.float64).reshape(-1, 2)
    da = (low[:, None, 0] - high[None, :, 0]) * 2.0 ** -f_in
    dt = low[:, None, 1] - high[None, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = dt / da
    s_lo = float(bound[da > 0].max(initial=-np.inf))
    s_hi = float(bound[da < 0].min(initial=np.inf))
    return s_lo, s_hi


def _unmatched(starts, ends, levels, th, base, s_int: int, b_int: int, f_in: int, frac: int) -> int:
    """Codes of the channel that ``cast(v*s + b)`` maps to another level than Keras's runs."""
    def level(v):
        y = Fraction(v * s_int, 1 << f_in) + b_int if f_in >= 0 else v * s_int * (1 << -f_in) + b_int
        y = y / (1 << frac)
        return base + sum(1 for theta, strict in th.values() if (y > theta if strict else y >= theta))

    cuts = set(starts) | {ends[-1] + 1}
    if s_int:
        for theta, _ in th.values():  # where the affine map crosses a step, and its neighbours
            at = (theta * (1 << frac) - b_int) * Fraction(2) ** f_in / s_int
            cuts |= {c for c in (floor(at) - 1, floor(at), floor(at) + 1, floor(at) + 2) if starts[0] < c <= ends[-1]}
    cuts = sorted(cuts)
    wrong = 0
    for left, right in zip(cuts, cuts[1:]):
        i = int(np.searchsorted(starts, left, side="right")) - 1
        if level(left) != levels[i]:
            wrong += right - left
    return wrong


def fit_constants(runs: Runs, f_in: int, t_out, relu: bool, scale, bias, max_frac: int = MAX_FRAC) -> Fit:
    """The narrowest ``frac`` (2 .. ``max_frac``) whose integer scale/bias intervals are non-empty
    on every channel; inside them the constants nearest hls4ml's own ``scale``/``bias`` (float, per
    channel). When no ``frac`` fits every channel: the ``frac`` fitting the most, the others' closest
    constants and their unmatched counts. None when ``t_out`` wraps (not a monotone cast)."""
    base, top, th = _thresholds(t_out, relu)
    channels = len(runs.starts)
    cons = [_constraints(s, e, k, th, base, top) for s, e, k in zip(runs.starts, runs.ends, runs.levels)]
    slopes = [_scale_interval(c, f_in) for c in cons]
    best = None   # (fitted channels, frac, s, b, fitted mask)
    for frac in range(2, max_frac + 1):
        s_out, b_out, ok = np.zeros(channels, dtype=object), np.zeros(channels, dtype=object), np.zeros(channels, bool)
        for ch in range(channels):
            nominal = int(round(float(scale[ch]) * 2.0 ** frac))
            s_out[ch], b_out[ch] = nominal, int(round(float(bias[ch]) * 2.0 ** frac))
            lo_s, hi_s = slopes[ch]
            if lo_s > hi_s:   # no real scale fits: no frac will
                continue
            lo_s = max(floor(lo_s * 2.0 ** frac), nominal - 64) if np.isfinite(lo_s) else nominal - 64
            hi_s = min(ceil(hi_s * 2.0 ** frac), nominal + 64) if np.isfinite(hi_s) else nominal + 64
            for s_int in sorted(range(lo_s, hi_s + 1), key=lambda s: (abs(s - nominal), s))[:16]:
                b_lo, b_hi = _bias_interval(cons[ch], s_int, f_in, frac)
                if b_lo <= b_hi:
                    s_out[ch], b_out[ch], ok[ch] = s_int, min(max(b_out[ch], b_lo), b_hi), True
                    break
        if best is None or ok.sum() > best[0]:
            best = (int(ok.sum()), frac, s_out, b_out, ok)
        if ok.all():
            break
    _, frac, s_out, b_out, ok = best
    unmatched = np.zeros(channels, dtype=np.int64)
    for ch in np.flatnonzero(~ok):   # the closest: over nearby scales and each bound's bias
        args = (runs.starts[ch], runs.ends[ch], runs.levels[ch], th, base)
        cands = []
        for s_int in range(int(s_out[ch]) - 2, int(s_out[ch]) + 3):
            bounds = {int(b_out[ch])}
            for con in cons[ch]:   # each bound is where some constraint starts or stops holding
                bounds |= set(_bias_interval([con], s_int, f_in, frac)) - {-_FAR, _FAR}
            near = sorted(bounds, key=lambda b: abs(b - int(b_out[ch])))[:MAX_CANDIDATES]
            cands += [(s_int, b) for b in near]
        scored = sorted(((_unmatched(*args, s, b, f_in, frac), abs(s - s_out[ch]), s, b) for s, b in cands))
        unmatched[ch], _, s_out[ch], b_out[ch] = scored[0]
    return Fit(frac, s_out, b_out, unmatched, runs.pairs())


# --------------------------------------------------------------------------------------------
# the model's BN nodes
# --------------------------------------------------------------------------------------------

def _following(hls_model, node):
    """The hls4ml node that reads ``node``'s output, if exactly one does."""
    outs = [n for n in hls_model.get_layers() if node.outputs[0] in n.inputs]
    return outs[0] if len(outs) == 1 else None


def _keras_levels(model, bn_layer, act_layer, t_in, t_out):
    """Keras's own BN (+ activation) as :func:`level_runs` wants it: ``(N, C)`` input codes of
    ``t_in`` (column ``c`` to channel ``c``) -> ``(N, C)`` output codes of ``t_out``."""
    from . import kerasenv

    keras = kerasenv.tf_keras() if kerasenv.is_keras2_model(model) else kerasenv.keras3()
    shape = tuple(bn_layer.input.shape[1:])
    channels = int(shape[-1])
    ones = (1,) * (len(shape) - 1)
    inp = keras.Input(shape=ones + (channels,))
    out = bn_layer(inp)
    sub = keras.Model(inp, act_layer(out) if act_layer is not None else out)

    def levels_of(codes: np.ndarray) -> np.ndarray:
        x = np.ldexp(np.asarray(codes, dtype=np.float64), -t_in.f).reshape((len(codes),) + ones + (channels,))
        y = np.asarray(sub.predict(x.astype(np.float32), verbose=0, batch_size=8192), dtype=np.float64)
        q = np.ldexp(y.reshape(len(codes), channels), t_out.f)
        if not np.array_equal(q, np.rint(q)):
            raise ValueError(f"Keras's outputs are not on the grid of {t_out}")
        return q.astype(np.int64)

    return levels_of


def _replays(fit: Fit, runs: Runs, t_in, t_out, relu: bool) -> bool:
    """hls4ml's integer arithmetic on every run end gives Keras's level (a check of the closed
    form on the matched channels; True when the rounding mode is not replayed here)."""
    for ch in np.flatnonzero(fit.unmatched == 0):
        v = np.array(runs.starts[ch] + runs.ends[ch], dtype=object)
        s, b = int(fit.scale[ch]), int(fit.bias[ch])
        f_in = max(t_in.f, 0)   # the exact sum's grid: 2**-(f_in + frac)
        r = v * (s << (f_in - t_in.f)) + (b << f_in)
        q = _int_cast(r, f_in + fit.frac, t_out, relu)
        if q is None:
            return True
        if list(q) != runs.levels[ch] * 2:
            return False
    return True


def _reason_unmatched(fit: Fit) -> str:
    bad = np.flatnonzero(fit.unmatched)
    n = int(fit.unmatched.sum())
    return (f"{n:,} of {fit.pairs:,} reachable (value, channel) pairs cannot be matched (channel(s) "
            f"{', '.join(map(str, bad))}): Keras's float32 BN puts a level step where no fixed-point scale and "
            f"bias does; the closest constants ({fit.frac} fraction bits) are used")


def derive_batchnorm_types(model, hls_model, max_frac: int = MAX_FRAC) -> tuple[dict, dict, dict]:
    """For each BatchNormalization node of ``hls_model`` (converted from the Keras ``model``):
    ``(types, data, unguaranteed)``: hls4ml precision overrides ``{node: {"scale": t, "bias": t}}``
    that make it exact on every reachable input, the on-grid constants ``{node: (scale, bias)}``
    to put in the graph after the conversion with those types, and ``{node: reason}`` for the rest
    (also for a BN whose closest constants still miss some inputs: they are used, and counted)."""
    from .rtl.precision import HlsType

    types, data, unguaranteed = {}, {}, {}
    keras_layers = {l.name: l for l in model.layers}
    for node in hls_model.get_layers():
        if node.class_name != "BatchNormalization":
            continue
        name = node.name
        bn_layer = keras_layers.get(name)
        if bn_layer is None:
            unguaranteed[name] = "no Keras layer of that name to check it against"
            continue
        try:
            t_in = HlsType.from_hls4ml(node.get_input_variable().type.precision, f"{name} input")
            t_res = HlsType.from_hls4ml(node.get_output_variable().type.precision, f"{name} result")
        except Exception as err:  # a non-fixed input type: nothing to bound
            unguaranteed[name] = f"input/result type not fixed point ({err})"
            continue
        nxt = _following(hls_model, node)
        nxt_keras = keras_layers.get(nxt.name) if nxt is not None else None
        act_layer, relu, t_out = None, False, t_res
        if nxt is not None and nxt.class_name in ("Activation", "ReLU") and type(nxt_keras).__name__ in QUANTIZING:
            act = str(nxt.get_attr("activation", "linear")).lower()
            if act not in ("relu", "linear"):
                unguaranteed[name] = f"followed by a {act} activation (only relu/linear quantizers are replayed)"
                continue
            act_layer, relu = nxt_keras, act == "relu"
            t_out = HlsType.from_hls4ml(nxt.get_output_variable().type.precision, f"{nxt.name} result")
        elif nxt is not None and nxt.class_name in ("Activation", "ReLU") and nxt_keras is not None:
            unguaranteed[name] = (f"followed by {nxt.name!r}, a float {type(nxt_keras).__name__} "
                                  f"({nxt.get_attr('activation', 'relu')}): Keras keeps float32 values there, which "
                                  "no fixed-point hardware reproduces bit for bit; accepted after a BatchNormalization: "
                                  "a QActivation quantizer, e.g. QActivation('quantized_relu(4,0)')")
            continue
        elif t_res.width >= 32:  # an unquantized (exact, wide) BN result: Keras's float32 is not on a grid
            unguaranteed[name] = ("its output feeds no quantizer, so hls4ml's exact sum and Keras's float32 "
                                  "cannot be made equal on every input")
            continue
        if t_out.overflow == "WRAP" and act_layer is not None:
            unguaranteed[name] = f"{nxt.name}'s type {t_out} wraps: only saturating quantizers are replayed"
            continue
        lo, hi, source = input_bounds(hls_model, node, t_in)
        if max(max(abs(int(v)) for v in lo), max(abs(int(v)) for v in hi)) >= 1 << FLOAT32_EXACT_BITS:
            unguaranteed[name] = (f"its input (bounded by {source}) reaches codes beyond 2**{FLOAT32_EXACT_BITS}, "
                                  "which Keras's float32 does not hold exactly")
            continue
        try:
            runs = level_runs(_keras_levels(model, bn_layer, act_layer, t_in, t_out), lo, hi)
        except ValueError as err:
            unguaranteed[name] = str(err)
            continue
        scale = np.asarray(node.weights["scale"].data, dtype=np.float64).ravel()
        bias = np.asarray(node.weights["bias"].data, dtype=np.float64).ravel()
        channels = len(runs.starts)
        fit = fit_constants(runs, t_in.f, t_out, relu, np.broadcast_to(scale, (channels,)),
                            np.broadcast_to(bias, (channels,)), max_frac=max_frac)
        if not _replays(fit, runs, t_in, t_out, relu):  # pragma: no cover - an internal fault
            raise AssertionError(f"{name}: the derived BN constants do not replay Keras's levels")
        if fit.unmatched.any():
            unguaranteed[name] = _reason_unmatched(fit)
        frac = fit.frac

        def fixed(ints):
            integer = max(max(abs(int(v)) for v in ints).bit_length() - frac, 0) + 1  # magnitude + sign
            return f"fixed<{integer + frac},{integer},TRN,WRAP>"

        types[name] = {"scale": fixed(fit.scale), "bias": fixed(fit.bias)}
        data[name] = (np.array([float(Fraction(int(v), 1 << frac)) for v in fit.scale]),
                      np.array([float(Fraction(int(v), 1 << frac)) for v in fit.bias]))
    return types, data, unguaranteed


def apply_batchnorm_data(hls_model, data: dict) -> None:
    """Put the on-grid constants into the converted graph (before it is written)."""
    for node in hls_model.get_layers():
        if node.name in data:
            s, b = data[node.name]
            for key, values in (("scale", s), ("bias", b)):
                w = node.weights[key]
                w.data = values.reshape(np.shape(w.data))
                w.min, w.max = np.min(w.data), np.max(w.data)


#: hls4ml's model default precision: a type that is this and was not asked for is a guess.
HLS4ML_DEFAULT = "fixed<16,6>"
#: Types that never reach the RTL or Keras's comparison (softmax tables: the RTL drops the softmax).
_IGNORED_TYPES = ("exp_table", "inv_table", "table")


def default_typed(hls_model, skip=()) -> dict:
    """``{node: reason}`` for every variable/weight type of the graph that is hls4ml's default
    ``fixed<16,6>`` (except softmax tables and nodes in ``skip``)."""
    out = {}
    for node in hls_model.get_layers():
        # a final Softmax is compared on its input (logits) and is not in the RTL: its types don't matter
        if node.name in skip or node.class_name == "Softmax":
            continue
        found = []
        for key, t in getattr(node, "types", {}).items():
            prec = getattr(t, "precision", None)
            if prec is None or any(key.startswith(i) for i in _IGNORED_TYPES):
                continue
            if str(prec).replace(",TRN,WRAP,0", "") == HLS4ML_DEFAULT:
                found.append(key.removesuffix("_t"))
        if found:
            out[node.name] = f"type(s) {', '.join(sorted(found))} left at hls4ml's default {HLS4ML_DEFAULT}"
    return out


def derive_pooling_types(hls_model) -> tuple[dict, dict]:
    """Average pooling: hls4ml sums exactly (its accumulator has the extra bits) but casts the
    mean back to the *input* type, truncating what Keras keeps. For a power-of-two window the
    mean is exact with log2(window) more fraction bits: ``({node: {"result": t}}, unguaranteed)``;
    other windows (a division by 3 or 9 is not a binary fraction) and padded windows are reported."""
    from .rtl.precision import HlsType

    types, unguaranteed = {}, {}
    for node in hls_model.get_layers():
        if "Pooling" not in node.class_name or str(node.get_attr("pool_op", "")).lower() != "average":
            continue
        size = int(node.get_attr("pool_height", 1) or 1) * int(node.get_attr("pool_width", 1) or 1)
        if "Global" in node.class_name:
            size = int(np.prod(node.get_input_variable().shape[:-1]))
        pads = [node.get_attr(k, 0) or 0 for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
        if any(pads):
            unguaranteed[node.name] = "average over padded windows (hls4ml rescales them in the input type)"
            continue
        if size & (size - 1):
            unguaranteed[node.name] = f"average over {size} values is not a binary fraction"
            continue
        try:
            t_in = HlsType.from_hls4ml(node.get_input_variable().type.precision, f"{node.name} input")
        except Exception as err:
            unguaranteed[node.name] = f"input type not fixed point ({err})"
            continue
        k = size.bit_length() - 1
        types[node.name] = {"result": f"{'' if t_in.signed else 'u'}fixed<{t_in.width + k},{t_in.integer}>"}
    return types, unguaranteed
