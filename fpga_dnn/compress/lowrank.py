"""Low-rank factorisation of Dense layers: ``W (n_in x n_out) ~ A (n_in x r) @ B (r x n_out)``.

The SVD gives the best rank-``r`` approximation; ``r`` comes from an energy threshold (the
smallest rank keeping that fraction of the squared singular values) or is given. A factorised
layer becomes two QDense layers with a linear quantizer between them (``quantized_bits``, its
integer bits sized from the calibration range of the bottleneck), so the bottleneck is a real
fixed-point bus in hardware and C-sim stays bit-exact. QAT fine-tuning follows. A layer is only
factorised when it saves weights: ``r * (n_in + n_out) < n_in * n_out``.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .. import kerasenv
from ..errors import ConfigError
from ..log import progress
from .chain import DENSE, LayerSpec, from_chain, quantizer_config, set_weight_bits, to_chain
from .finetune import FineTune, fine_tune


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` of the total squared energy."""
    e = np.cumsum(singular_values ** 2) / np.sum(singular_values ** 2)
    return int(np.searchsorted(e, energy - 1e-12) + 1)


def _bottleneck_integer_bits(z: np.ndarray) -> int:
    peak = float(np.max(np.abs(z))) if z.size else 1.0
    return max(0, int(math.ceil(math.log2(max(peak, 1e-9) * 1.25))))


def low_rank(model, ds, *, energy: float | None = 0.9, rank: int | None = None, layers=None,
             bottleneck_bits: int = 8, ft: FineTune | None = None):
    """Factorise Dense layers (all that save weights, or ``layers`` by name) and fine-tune.

    Give ``rank`` (the same for every chosen layer) or ``energy`` in (0, 1]. Returns
    ``(model, info)``; ``info['ranks']`` maps layer -> (rank, n_in, n_out).
    """
    if rank is not None:
        if not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"rank must be a positive integer, got {rank!r}")
    elif energy is None or not 0.0 < float(energy) <= 1.0:
        raise ConfigError(f"energy must be in (0, 1], got {energy!r}")
    if not 2 <= bottleneck_bits <= 24:
        raise ConfigError(f"bottleneck_bits must be in 2..24, got {bottleneck_bits!r}")
    ft = ft or FineTune()
    chain = to_chain(model, "low-rank factorisation")
    qk = kerasenv.qkeras()
    dense = [s for s in chain.layers if s.kind in DENSE]
    if layers is not None:
        unknown = set(layers) - {s.name for s in dense}
        if unknown:
            raise ConfigError(f"low-rank: {sorted(unknown)} are not Dense layers; choose from "
                              f"{[s.name for s in dense]}")
    # Calibration inputs of every layer: the bottleneck quantizer's range comes from real data.
    k = kerasenv.tf_keras()
    probe = k.Model(model.inputs, [model.get_layer(s.name).input for s in dense])
    layer_inputs = dict(zip([s.name for s in dense], probe.predict(ds.x_train[:2000], verbose=0)))
    ranks, new_layers = {}, []
    for spec in chain.layers:
        if spec.kind not in DENSE or (layers is not None and spec.name not in layers):
            new_layers.append(spec)
            continue
        w = spec.weights[0]
        n_in, n_out = w.shape
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        r = min(rank, len(s)) if rank is not None else rank_for_energy(s, float(energy))
        if r * (n_in + n_out) >= n_in * n_out:
            if layers is not None:
                raise ConfigError(f"low-rank: layer {spec.name!r} ({n_in}x{n_out}) at rank {r} would not save "
                                  f"weights (needs rank < {n_in * n_out // (n_in + n_out) + 1})")
            new_layers.append(spec)
            continue
        root = np.sqrt(s[:r])
        a, b = u[:, :r] * root, (vt[:r].T * root).T
        z = layer_inputs[spec.name] @ a
        integer = _bottleneck_integer_bits(z)
        cfg_a = copy.deepcopy(spec.config)
        cfg_a.update(name=f"{spec.name}_lr_a", units=int(r), use_bias=False)
        cfg_b = copy.deepcopy(spec.config)
        cfg_b.update(name=f"{spec.name}_lr_b")
        quant = qk.quantized_bits(bottleneck_bits, integer, alpha=1)
        spec_a, spec_b = LayerSpec(spec.cls, cfg_a, [a]), LayerSpec(spec.cls, cfg_b, [b] + spec.weights[1:])
        if quantizer_config(spec) is None:  # a float Dense: float factors, no bottleneck quantizer
            new_layers += [spec_a, spec_b]
        else:
            for f, fspec in ((a, spec_a), (b, spec_b)):
                _fit_weight_range(fspec, f)
            new_layers += [spec_a,
                           LayerSpec(qk.QActivation, {"name": f"{spec.name}_lr_q", "trainable": True,
                                                      "dtype": "float32", "activation": str(quant)}, []),
                           spec_b]
        ranks[spec.name] = (int(r), int(n_in), int(n_out))
    if not ranks:
        raise ConfigError("low-rank: no Dense layer would save weights at this energy/rank "
                          "(rank r must satisfy r * (n_in + n_out) < n_in * n_out)")
    chain.layers = new_layers
    progress("compress: low-rank " + ", ".join(f"{n} {i}x{o} -> rank {r}" for n, (r, i, o) in ranks.items()))
    out = from_chain(chain)
    hist = fine_tune(out, ds, ft, "low-rank")
    saved = sum(i * o - r * (i + o) for r, i, o in ranks.values())
    info = {"technique": "lowrank", "energy": energy if rank is None else None, "rank": rank,
            "ranks": ranks, "weights_saved": int(saved), **hist}
    progress(f"compress: low-rank saved {saved} weights, test accuracy {hist['accuracy']:.4f}")
    return out, info


def _fit_weight_range(spec: LayerSpec, factor: np.ndarray) -> None:
    """Widen the factor's kernel quantizer when the SVD factor exceeds its range (the split of the
    singular values can push entries past 1): more integer bits, the same fractional bits."""
    q = quantizer_config(spec)
    peak = float(np.max(np.abs(factor)))
    need = max(int(q["integer"]), int(math.ceil(math.log2(peak))) if peak >= 1.0 else 0)
    if need > int(q["integer"]):
        set_weight_bits(spec, int(q["bits"]) + need - int(q["integer"]), need)
