"""QAT training step: a zoo model (QKeras or HGQ2) and its float twin on the zoo dataset.

Writes the trained QAT model (``model.h5`` for QKeras/Keras 2, ``model.keras`` for HGQ2/Keras 3),
the test split it was evaluated on (``data.npz``) and ``model.meta.json`` with float and QAT
accuracy, bit widths, parameter count and timings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import data as data_mod
from . import kerasenv, models
from .log import progress


@dataclass
class TrainConfig:
    epochs: int = 120
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int = 15
    validation_fraction: float = 0.15
    seed: int = 0
    float_baseline: bool = True


@dataclass
class TrainResult:
    """What the train step hands to the next: paths and numbers (also in ``meta.json``)."""

    model_path: Path
    data_path: Path
    meta_path: Path
    meta: dict = field(default_factory=dict)


def validation_split(n: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a fixed, seeded split of the training data (never the test set)."""
    idx = np.random.default_rng(cfg.seed).permutation(n)
    n_val = max(1, int(n * cfg.validation_fraction))
    return idx[n_val:], idx[:n_val]


def progress_callback(keras, label: str, epochs: int, metric: str = "val_accuracy"):
    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if epoch == 0 or (epoch + 1) % 10 == 0:
                progress(f"  {label}: epoch {epoch + 1:3d}/{epochs} loss {logs.get('loss', 0):.4f} "
                         f"{metric} {logs.get(metric, 0):.4f}")

    return Progress()


def _fit(model, keras, ds: data_mod.Dataset, cfg: TrainConfig, label: str, callbacks=(),
         restore_best: bool = True) -> dict:
    """Train with early stopping on the validation loss. ``callbacks`` run after each batch/epoch
    (pruning steps, weight-sharing projections); ``restore_best=False`` keeps the last weights
    (needed when a callback enforces a constraint the best epoch may predate)."""
    keras.utils.set_random_seed(cfg.seed)
    recon = is_reconstruction(ds)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=keras.losses.MeanSquaredError() if recon else keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[] if recon else ["accuracy"],
    )
    target = ds.x_train if recon else ds.y_train  # an autoencoder learns to reproduce its input
    tr, val = validation_split(len(ds.x_train), cfg)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                         restore_best_weights=restore_best)
    t0 = time.perf_counter()
    hist = model.fit(ds.x_train[tr], target[tr], validation_data=(ds.x_train[val], target[val]),
                     epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=0, shuffle=True,
                     callbacks=[*callbacks, stop, progress_callback(keras, label, cfg.epochs,
                                                                    "val_loss" if recon else "val_accuracy")])
    seconds = time.perf_counter() - t0
    scores = evaluate(model, ds)
    progress(f"  {label}: {len(hist.history['loss'])} epochs, {score_text(scores)} ({seconds:.1f} s)")
    return {**scores, "epochs": len(hist.history["loss"]), "seconds": round(seconds, 2)}


def is_reconstruction(ds: data_mod.Dataset) -> bool:
    return ds.extra.get("task") == "reconstruction"


def evaluate(model, ds: data_mod.Dataset) -> dict:
    """Test-split scores: ``accuracy`` for a classifier; for an autoencoder the mean squared
    reconstruction error of the normal samples and the anomaly-detection AUC of the per-sample
    error (also stored as ``accuracy``, the figure reports and benches show)."""
    if not is_reconstruction(ds):
        return {"accuracy": accuracy(model, ds.x_test, ds.y_test)}
    err = ((predict_logits(model, ds.x_test) - ds.x_test) ** 2).mean(axis=1)
    auc = data_mod.anomaly_auc(err, ds.y_test)
    return {"accuracy": auc, "auc": auc, "reconstruction_mse": float(err[ds.y_test == 0].mean()),
            "reconstruction_mse_anomalous": float(err[ds.y_test == 1].mean())}


def score_text(scores: dict) -> str:
    if "auc" in scores:
        return f"test AUC {scores['auc']:.4f} (reconstruction MSE {scores['reconstruction_mse']:.4f})"
    return f"test accuracy {scores['accuracy']:.4f}"


def predict_logits(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def accuracy(model, x, y) -> float:
    return float((predict_logits(model, x).argmax(axis=1) == y).mean())


def weight_count(model) -> int:
    """Trainable network weights (kernels and biases), not HGQ2's bit-width variables."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights
                   if w.name.split("/")[-1].split(":")[0] in ("kernel", "bias")))


def train(model_name: str, framework: str, quant: models.Quant, cfg: TrainConfig, out_dir) -> TrainResult:
    """Train the zoo model ``model_name`` with QAT (and its float baseline) and save everything."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = models.arch(model_name)
    ds = data_mod.load_dataset(arch.dataset)
    progress(f"train: {model_name} ({framework}, w{quant.weight_bits}/a{quant.activation_bits}) on "
             f"{ds.name}: {len(ds.x_train)} train / {len(ds.x_test)} test samples")
    meta: dict = {"model": model_name, "framework": framework, "dataset": ds.name, "quant": asdict(quant),
                  "train_config": asdict(cfg), "input_format": str(ds.input_format), "n_classes": ds.n_classes}
    if cfg.float_baseline and framework != "float":
        fm = models.build_model(model_name, "float", quant, seed=cfg.seed)
        meta["float"] = _fit(fm, kerasenv.tf_keras(), ds, cfg, "float")
        fm.save(out_dir / "float.h5")  # the float baseline: distillation's default teacher
        meta["float"]["model_path"] = "float.h5"
    keras = kerasenv.keras3() if framework == "hgq2" else kerasenv.tf_keras()
    model = models.build_model(model_name, framework, quant, seed=cfg.seed)
    meta["qat"] = _fit(model, keras, ds, cfg, framework)
    if models.snap_batchnorm(model):  # BatchNorm onto the hardware grid: re-measure
        meta["qat"].update(evaluate(model, ds), batchnorm_snapped=True)
        progress(f"  {framework}: BatchNorm snapped to the fixed-point grid, {score_text(meta['qat'])}")
    meta["weights"] = weight_count(model)
    model_path = out_dir / ("model.keras" if framework == "hgq2" else "model.h5")
    model.save(model_path)
    data_path = ds.save_npz(out_dir / "data.npz")
    meta_path = out_dir / "model.meta.json"
    meta["model_path"], meta["data_path"] = model_path.name, data_path.name
    meta_path.write_text(json.dumps(meta, indent=2))
    return TrainResult(model_path, data_path, meta_path, meta)
