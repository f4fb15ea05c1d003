"""Fine-tuning after a compression edit, and the measurements every technique reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kerasenv
from ..train import TrainConfig, _fit, accuracy
from .chain import KERNEL_LAYERS, quantize_weights, to_chain


@dataclass
class FineTune:
    """How a compressed model is retrained (QAT continues: quantizers stay in the graph)."""

    epochs: int = 40
    learning_rate: float = 1e-3
    patience: int = 10
    batch_size: int = 32
    seed: int = 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           patience=self.patience, seed=self.seed, float_baseline=False)


def fine_tune(model, ds, ft: FineTune, label: str, callbacks=(), restore_best: bool = True,
              structure_of=None, keep_existing: bool = True) -> dict:
    """Retrain ``model`` in place on ``ds`` (Keras 2); returns epochs, seconds, test accuracy.

    What earlier compression made is kept (:func:`keep_structure` of ``structure_of``, default
    ``model``): pruned weights stay zero and shared weights stay shared, so techniques compose.
    ``keep_existing=False`` when ``callbacks`` already hold the structure (weight sharing).
    """
    if ft.epochs <= 0:
        return {"epochs": 0, "seconds": 0.0, "accuracy": accuracy(model, ds.x_test, ds.y_test)}
    keep = keep_structure(model if structure_of is None else structure_of) if keep_existing else None
    return _fit(model, kerasenv.tf_keras(), ds, ft.train_config(), label,
                callbacks=[*callbacks, *([keep] if keep else [])], restore_best=restore_best)


def kernel_variables(model) -> list:
    """The kernels of the model's kernel layers (QDense, QConv2D, ...), as variables."""
    return [layer.kernel for layer in model.layers if type(layer).__name__ in KERNEL_LAYERS]


def _keep_class():
    keras = kerasenv.tf_keras()

    class KeepStructure(keras.callbacks.Callback):
        """After every optimiser step: zeros back to zero; each group of shared weights takes its
        group's mean (the shared value moves by the mean update of its members)."""

        def __init__(self, groups):
            super().__init__()
            self.groups = groups  # (variable, labels or None, zero mask)

        def on_train_batch_end(self, batch, logs=None):
            for var, labels, zero in self.groups:
                w = var.numpy()
                if labels is not None:
                    flat = labels.ravel()
                    means = np.bincount(flat, weights=w.ravel()) / np.maximum(np.bincount(flat), 1)
                    w = means[flat].reshape(w.shape)
                w[zero] = 0.0
                var.assign(w.astype(var.dtype.as_numpy_dtype))

    return KeepStructure


def keep_structure(model, labels: dict | None = None, max_shared: int = 64):
    """A callback that keeps the model's compression structure, or None when it has none.

    ``labels``: kernel variable name -> cluster labels (weight sharing sets them explicitly);
    otherwise a kernel with at most ``max_shared`` distinct values counts as shared and one with
    exact zeros as pruned."""
    groups = []
    for var in kernel_variables(model):
        w = var.numpy()
        zero = w == 0
        lab = (labels or {}).get(var.name)
        if lab is None:
            uniq, inverse = np.unique(w, return_inverse=True)
            lab = inverse.reshape(w.shape) if len(uniq) <= max_shared else None
        if lab is not None or zero.any():
            groups.append((var, lab, zero))
    return _keep_class()(groups) if groups else None


def quantized_kernels(model) -> dict[str, np.ndarray]:
    """Layer name -> the kernel as the hardware sees it (after the layer's weight quantizer)."""
    out = {}
    for spec in to_chain(model, "measuring weights").layers:
        if spec.kind in KERNEL_LAYERS:
            out[spec.name] = quantize_weights(spec.weights[0], spec)
    return out


def sparsity(model) -> float:
    """Fraction of zero kernel weights after quantization (what the hardware drops)."""
    ks = quantized_kernels(model)
    total = sum(k.size for k in ks.values())
    return float(sum((k == 0).sum() for k in ks.values()) / total) if total else 0.0


def distinct_weights(model) -> dict[str, int]:
    """Layer name -> number of distinct non-zero quantized kernel values."""
    return {n: int(len(np.unique(k[k != 0]))) for n, k in quantized_kernels(model).items()}
