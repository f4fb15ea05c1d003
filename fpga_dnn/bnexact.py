"""Exact BatchNormalization: hls4ml's BN scale and bias types derived, not defaulted.

hls4ml computes a (non-fused) BatchNormalization as ``x * scale + bias`` with ``scale`` and
``bias`` constants cast to the model default ``fixed<16,6>`` (10 fraction bits, truncated). That
rounds the scale so that, on some inputs, the quantized activation after the BN flips a step
against Keras (seen: 12 of 2,000 random inputs on a 3-bit ReLU). A test split of a few dozen
samples rarely shows it.

Here, for each BN node, **every** value the preceding layer can produce (its hls4ml output type,
enumerated) goes through the model's own Keras BN layer and the quantizing activation after it;
hls4ml's arithmetic (exact product and sum, then the activation's cast, in integers) is replayed
for scale/bias types with 2, 3, ... fraction bits, and the narrowest for which all outputs agree
is chosen. The constants are then put on that grid in the graph, so hls4ml's decimal printing
and ``ap_fixed`` cast of them are exact. When no width up to :data:`MAX_FRAC` agrees, or the BN
feeds no quantizer, or the input type is too wide to enumerate, the layer is reported by name as
not guaranteed (the probe set then measures it).
"""

from __future__ import annotations

import numpy as np

MAX_FRAC = 32          # widest fraction of scale/bias tried
MAX_INPUT_BITS = 20    # the widest BN input type enumerated (2**20 values per channel)
QUANTIZING = ("QActivation",)


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


def _following(hls_model, node):
    """The hls4ml node that reads ``node``'s output, if exactly one does."""
    outs = [n for n in hls_model.get_layers() if node.outputs[0] in n.inputs]
    return outs[0] if len(outs) == 1 else None


def _keras_reference(model, bn_layer, act_layer, x_values: np.ndarray) -> np.ndarray:
    """Keras's own BN (+ activation) on ``x_values`` fed to every channel at once: (N, C)."""
    from . import kerasenv

    keras = kerasenv.tf_keras() if kerasenv.is_keras2_model(model) else kerasenv.keras3()
    shape = tuple(bn_layer.input.shape[1:])
    channels = int(shape[-1])
    inp = keras.Input(shape=(1,) * (len(shape) - 1) + (channels,))
    out = bn_layer(inp)
    if act_layer is not None:
        out = act_layer(out)
    sub = keras.Model(inp, out)
    x = np.repeat(x_values[:, None], channels, axis=1).reshape((len(x_values),) + (1,) * (len(shape) - 1)
                                                                  + (channels,))
    y = sub.predict(x.astype(np.float32), verbose=0, batch_size=8192)
    return np.asarray(y, dtype=np.float64).reshape(len(x_values), channels)


def _float32_reason(bn_layer, x: np.ndarray, want: np.ndarray, t_out, relu: bool) -> str:
    """Why Keras is not an affine map on a grid: the share of (input, channel) pairs whose Keras
    output differs from the same BN formula in exact (float64) arithmetic, i.e. flipped by float32
    rounding of ``x * inv + (beta - mean * inv)`` next to a rounding boundary of ``t_out``."""
    from .rtl.precision import quantize_np

    cfg = bn_layer.get_config()
    weights = [np.asarray(w, dtype=np.float64) for w in bn_layer.get_weights()]
    gamma = weights.pop(0) if cfg.get("scale", True) else 1.0
    beta = weights.pop(0) if cfg.get("center", True) else 0.0
    mean, var = weights[0], weights[1]
    inv = gamma / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
    exact = x[:, None] * inv[None, :] + (beta - mean * inv)[None, :]
    exact_q = quantize_np(np.maximum(exact, 0) if relu else exact, t_out) * 2.0 ** t_out.f
    flips = int(np.count_nonzero(exact_q != want))
    return (f"Keras's float32 BN differs from its exact value on {flips} pairs (float32 rounding next to a "
            f"step of {t_out}), which no fixed-point scale and bias reproduce")


def derive_batchnorm_types(model, hls_model) -> tuple[dict, dict, dict]:
    """For each BatchNormalization node of ``hls_model`` (converted from the Keras ``model``):
    ``(types, data, unguaranteed)``: hls4ml precision overrides ``{node: {"scale": t, "bias": t}}``
    that make it exact on every input, the on-grid constants ``{node: (scale, bias)}`` to put in
    the graph after the conversion with those types, and ``{node: reason}`` for the rest."""
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
        except Exception as err:  # a non-fixed input type: nothing to enumerate
            unguaranteed[name] = f"input/result type not fixed point ({err})"
            continue
        nxt = _following(hls_model, node)
        act_layer = None
        relu = False
        t_out = t_res
        if nxt is not None and nxt.class_name in ("Activation", "ReLU") and \
                type(keras_layers.get(nxt.name)).__name__ in QUANTIZING:
            act = str(nxt.get_attr("activation", "linear")).lower()
            if act not in ("relu", "linear"):
                unguaranteed[name] = f"followed by a {act} activation (only relu/linear quantizers are replayed)"
                continue
            act_layer, relu = keras_layers[nxt.name], act == "relu"
            t_out = HlsType.from_hls4ml(nxt.get_output_variable().type.precision, f"{nxt.name} result")
        elif t_res.width >= 32:  # an unquantized (exact, wide) BN result: Keras's float32 is not on a grid
            unguaranteed[name] = ("its output feeds no quantizer, so hls4ml's exact sum and Keras's float32 "
                                  "cannot be made equal on every input")
            continue
        if t_in.width > MAX_INPUT_BITS:
            unguaranteed[name] = f"input type {t_in} too wide to enumerate (> {MAX_INPUT_BITS} bits)"
            continue
        lo, hi = (-(1 << (t_in.width - 1)), (1 << (t_in.width - 1)) - 1) if t_in.signed else (0, (1 << t_in.width) - 1)
        v = np.arange(lo, hi + 1, dtype=np.int64)
        ref = _keras_reference(model, bn_layer, act_layer, v.astype(np.float64) * t_in.step)
        ref_int = np.round(ref * 2.0 ** t_out.f)
        if not np.array_equal(ref_int, ref * 2.0 ** t_out.f):
            unguaranteed[name] = f"Keras's outputs are not on the grid of {t_out}"
            continue
        scale = np.asarray(node.weights["scale"].data, dtype=np.float64).ravel()
        bias = np.asarray(node.weights["bias"].data, dtype=np.float64).ravel()
        found, closest = None, None  # closest: (mismatching (input, channel) pairs, frac, s_int, b_int)
        want = ref_int.astype(np.int64)
        for frac in range(2, MAX_FRAC + 1):
            s_int = np.round(scale * 2.0 ** frac).astype(np.int64)
            b_int = np.round(bias * 2.0 ** frac).astype(np.int64)
            s_bits, b_bits = int(np.abs(s_int).max()).bit_length(), int(np.abs(b_int).max()).bit_length()
            if max(t_in.width + s_bits, b_bits + t_in.f) + 2 > 62:  # s_int already holds the frac bits
                break  # int64 replay limit
            r = v[:, None] * s_int[None, :] + (b_int[None, :] << t_in.f)
            q = _int_cast(r, t_in.f + frac, t_out, relu)
            if q is None:
                unguaranteed[name] = f"rounding/overflow mode of {t_out} not replayed"
                break
            wrong = int(np.count_nonzero(q != want))
            if closest is None or wrong < closest[0]:
                closest = (wrong, frac, s_int, b_int)
            if wrong == 0:
                found = closest[1:]
                break
        if found is None and closest is not None and name not in unguaranteed:
            # No type is exact: take the one with the fewest flips (better than hls4ml's default) and say why.
            wrong, *found = closest
            pairs = want.size
            unguaranteed[name] = (f"no scale/bias type up to {MAX_FRAC} fraction bits matches Keras on all "
                                  f"{len(v)} inputs of {t_in}; the closest ({found[0]} fraction bits) differs on "
                                  f"{wrong} of {pairs} (input, channel) pairs ({1 - wrong / pairs:.6f} exact): "
                                  f"{_float32_reason(bn_layer, v * t_in.step, want, t_out, relu)}")
        if found is None:
            unguaranteed.setdefault(name, f"no scale/bias type up to {MAX_FRAC} fraction bits matches Keras on "
                                          f"all {len(v)} inputs of {t_in}")
            continue
        frac, s_int, b_int = found

        def fixed(ints):
            integer = max(int(np.abs(ints).max()).bit_length() - frac, 0) + 1  # magnitude + sign
            return f"fixed<{integer + frac},{integer},TRN,WRAP>"

        types[name] = {"scale": fixed(s_int), "bias": fixed(b_int)}
        data[name] = (s_int.astype(np.float64) / 2.0 ** frac, b_int.astype(np.float64) / 2.0 ** frac)
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
