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


def fine_tune(model, ds, ft: FineTune, label: str, callbacks=(), restore_best: bool = True) -> dict:
    """Retrain ``model`` in place on ``ds`` (Keras 2); returns epochs, seconds, test accuracy."""
    if ft.epochs <= 0:
        return {"epochs": 0, "seconds": 0.0, "accuracy": accuracy(model, ds.x_test, ds.y_test)}
    return _fit(model, kerasenv.tf_keras(), ds, ft.train_config(), label, callbacks=callbacks,
                restore_best=restore_best)


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


def weight_count(model) -> int:
    return int(sum(k.size for k in quantized_kernels(model).values()))
