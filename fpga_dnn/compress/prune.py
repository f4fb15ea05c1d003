"""Pruning: unstructured magnitude pruning (tensorflow-model-optimization) and structured pruning
of whole neurons/filters (the layer shrinks).

Unstructured zeros disappear from the hardware because the generated RTL is an adder graph of
constant multiplications: a zero weight contributes no adder (and hls4ml's HLS drops constant
zero products too). Structured pruning shrinks the layers themselves, which also shortens the
accumulations and the buses between layers.
"""

from __future__ import annotations

import math

import numpy as np

from .. import kerasenv
from ..errors import ConfigError
from ..log import progress
from .chain import CHANNEL_PRESERVING, DENSE, KERNEL_LAYERS, from_chain, require_keras2, to_chain
from .finetune import FineTune, fine_tune, sparsity


def _check_fraction(value, what: str) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{what} must be in [0, 1) (1.0 would remove every weight), got {value!r}")
    return float(value)


def magnitude_prune(model, ds, target: float, ft: FineTune | None = None, *, ramp_fraction: float = 0.6):
    """Prune ``target`` of every kernel's weights by magnitude, ramping sparsity up over the first
    ``ramp_fraction`` of the fine-tuning epochs (polynomial schedule), then train on at the final
    sparsity. Returns ``(pruned model, info)``; the pruning wrappers are stripped."""
    require_keras2(model, "magnitude pruning")
    target = _check_fraction(target, "sparsity")
    ft = ft or FineTune()
    kerasenv.tf_keras()  # TF_USE_LEGACY_KERAS before tfmot is imported
    import tensorflow_model_optimization as tfmot

    sp = tfmot.sparsity.keras
    steps_per_epoch = math.ceil(len(ds.x_train) * (1 - ft.train_config().validation_fraction) / ft.batch_size)
    ramp_epochs = max(1, int(ft.epochs * ramp_fraction))
    schedule = sp.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target, begin_step=0,
                                  end_step=steps_per_epoch * ramp_epochs, frequency=max(1, steps_per_epoch // 2))
    progress(f"compress: magnitude pruning to {target:.0%} sparsity over {ramp_epochs} epochs "
             f"(then {ft.epochs - ramp_epochs} at full sparsity)")
    wrapped = sp.prune_low_magnitude(model, pruning_schedule=schedule)
    # No early stop before the schedule has reached the target: patience covers the whole run,
    # and the last weights (at full sparsity) are kept.
    full = FineTune(epochs=ft.epochs, learning_rate=ft.learning_rate, patience=ft.epochs,
                    batch_size=ft.batch_size, seed=ft.seed)
    hist = fine_tune(wrapped, ds, full, "prune", callbacks=[sp.UpdatePruningStep()], restore_best=False)
    pruned = sp.strip_pruning(wrapped)
    achieved = sparsity(pruned)
    info = {"technique": "prune", "target_sparsity": target, "sparsity": round(achieved, 4), **hist}
    progress(f"compress: sparsity {achieved:.1%} (target {target:.0%}), test accuracy {hist['accuracy']:.4f}")
    return pruned, info


def _next_kernel(chain, i: int) -> tuple[int, list]:
    """Index of the kernel layer that reads layer ``i``'s channels, and the layers in between."""
    between = []
    for j in range(i + 1, len(chain.layers)):
        spec = chain.layers[j]
        if spec.kind in KERNEL_LAYERS:
            return j, between
        if spec.kind not in CHANNEL_PRESERVING + ("Flatten",):
            from ..errors import UnsupportedLayerError

            raise UnsupportedLayerError(spec.name, spec.kind, CHANNEL_PRESERVING + ("Flatten",) + KERNEL_LAYERS,
                                        step="structured pruning (between two kernel layers)")
        between.append(j)
    return -1, between


def structured_prune(model, ds, fraction: float, ft: FineTune | None = None, layers=None):
    """Remove ``fraction`` of the neurons (Dense) / filters (Conv) of every hidden kernel layer
    (or of ``layers``, by name), the least important first, then fine-tune. A unit's importance
    is the norm of its incoming weights times the norm of its outgoing weights, so a unit that
    nothing downstream listens to goes first. The output layer is never shrunk."""
    fraction = _check_fraction(fraction, "structured pruning fraction")
    ft = ft or FineTune()
    chain = to_chain(model, "structured pruning")
    kernels = [i for i, s in enumerate(chain.layers) if s.kind in KERNEL_LAYERS]
    hidden = kernels[:-1]
    if layers is not None:
        names = {chain.layers[i].name for i in hidden}
        unknown = set(layers) - names
        if unknown:
            raise ConfigError(f"structured pruning: {sorted(unknown)} are not hidden kernel layers; "
                              f"choose from {sorted(names)}")
        hidden = [i for i in hidden if chain.layers[i].name in layers]
    shapes = {l.name: (l.input_shape, l.output_shape) for l in model.layers}
    units_after = {}
    for i in hidden:
        spec = chain.layers[i]
        j, between = _next_kernel(chain, i)
        w_in, b_in = spec.weights[0], spec.weights[1] if len(spec.weights) > 1 else None
        n = w_in.shape[-1]
        n_keep = max(1, int(round(n * (1 - fraction))))
        nxt = chain.layers[j]
        flatten = [k for k in between if chain.layers[k].kind == "Flatten"]
        w_out = nxt.weights[0]
        if flatten:  # conv channels -> flattened dense rows: (H*W, C, n_out)
            spatial = int(np.prod(shapes[chain.layers[flatten[0]].name][0][1:-1]))
            w_out_u = w_out.reshape(spatial, n, -1)
            out_norm = np.sqrt((w_out_u ** 2).sum(axis=(0, 2)))
        elif nxt.kind in DENSE:
            out_norm = np.linalg.norm(w_out, axis=1)
        else:  # conv reads channels on its second-to-last kernel axis
            out_norm = np.sqrt((np.moveaxis(w_out, -2, 0).reshape(n, -1) ** 2).sum(axis=1))
        in_norm = np.sqrt((w_in.reshape(-1, n) ** 2).sum(axis=0))
        keep = np.sort(np.argsort(-(in_norm * out_norm), kind="stable")[:n_keep])
        spec.weights[0] = w_in[..., keep]
        if b_in is not None:
            spec.weights[1] = b_in[keep]
        spec.config["units" if spec.kind in DENSE else "filters"] = int(n_keep)
        for k in between:  # per-channel layers in between (batch norm) keep their channels' parameters
            b = chain.layers[k]
            b.weights = [w[keep] for w in b.weights]
        if flatten:
            nxt.weights[0] = w_out.reshape(spatial, n, -1)[:, keep, :].reshape(spatial * n_keep, -1)
        elif nxt.kind in DENSE:
            nxt.weights[0] = w_out[keep, :]
        else:
            nxt.weights[0] = np.take(w_out, keep, axis=-2)
        units_after[spec.name] = (int(n), int(n_keep))
    progress("compress: structured pruning " + ", ".join(f"{k} {a}->{b}" for k, (a, b) in units_after.items()))
    shrunk = from_chain(chain)
    hist = fine_tune(shrunk, ds, ft, "structured")
    info = {"technique": "structured", "fraction": fraction, "units": units_after, **hist}
    progress(f"compress: structured pruning done, test accuracy {hist['accuracy']:.4f}")
    return shrunk, info

