"""Datasets that ship offline, with inputs on an exact fixed-point grid.

* ``digits`` / ``digits_images``: scikit-learn's 8x8 handwritten digits (1,797 samples, 10
  classes) as 64 features or as 8x8x1 images. Pixels are integers 0..16; we divide by 16, so
  every input is exactly representable as ``ufixed<5,1>`` and no step can wrap or round it.
* ``jet_synthetic``: a labelled-*synthetic* 16-feature, 5-class tabular set shaped like the
  hls4ml jet-tagging benchmark (which is a download, so not used here). Class-conditional
  Gaussians with correlated features and a few non-linear (|x|, product) features, standardised
  and rounded to ``fixed<8,3>`` (step 1/32, range [-4, 4)).

Splits are fixed and seeded (stratified), so every run and every machine sees the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, UnknownNameError
from .fixedpoint import FixedFormat

SPLIT_SEED = 1234
TEST_FRACTION = 0.25


@dataclass
class Dataset:
    """Train/test arrays plus the facts conversion needs (input format, class count)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_format: FixedFormat
    n_classes: int
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def save_npz(self, path) -> Path:
        """Write the test split (what convert/csim consume) as ``x_test``/``y_test`` + format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x_test=self.x_test, y_test=self.y_test, input_format=str(self.input_format))
        return path


def _split(x, y, seed=SPLIT_SEED):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y)


def digits(images: bool = False) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)  # 0..16 -> multiples of 1/16 in [0, 1]
    if images:
        x = x.reshape(-1, 8, 8, 1)
    x_tr, x_te, y_tr, y_te = _split(x, d.target.astype(np.int64))
    return Dataset(
        name="digits_images" if images else "digits",
        x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        input_format=FixedFormat(signed=False, width=5, integer=1),
        n_classes=10,
        description="scikit-learn digits, pixels/16 (exact ufixed<5,1>)",
    )


def jet_synthetic(n_samples: int = 20000, seed: int = 7) -> Dataset:
    """Labelled synthetic stand-in for the hls4ml jet-tagging set (16 features, 5 classes)."""
    rng = np.random.default_rng(seed)
    n_classes, n_feat, n_latent = 5, 16, 10
    y = rng.integers(0, n_classes, n_samples)
    means = rng.normal(0, 0.4, (n_classes, n_latent))
    mixing = rng.normal(0, 1, (n_classes, n_latent, n_latent)) / np.sqrt(n_latent)
    z = rng.normal(0, 1, (n_samples, n_latent))
    latent = means[y] + np.einsum("nj,njk->nk", z, mixing[y] * 0.45 + np.eye(n_latent) * 0.8)
    # Non-linear features, as jet substructure variables are non-linear in the constituents.
    extra = np.stack(
        [np.abs(latent[:, 0]) - np.abs(latent[:, 1]), latent[:, 2] * latent[:, 3],
         np.abs(latent[:, 4] + latent[:, 5]), latent[:, 6] * np.abs(latent[:, 7]),
         np.tanh(latent[:, 8]) * 2, latent[:, 9] ** 2 / 4],
        axis=1,
    )
    x = np.concatenate([latent, extra], axis=1)
    x = (x - x.mean(0)) / x.std(0)
    fmt = FixedFormat(signed=True, width=8, integer=3)
    x = fmt.quantize(x).astype(np.float32)
    x_tr, x_te, y_tr, y_te = _split(x, y.astype(np.int64))
    return Dataset(
        name="jet_synthetic", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        input_format=fmt, n_classes=n_classes,
        description="labelled SYNTHETIC 16-feature 5-class jet-tagging-shaped set (fixed<8,3>)",
    )


DATASETS = {
    "digits": lambda: digits(images=False),
    "digits_images": lambda: digits(images=True),
    "jet_synthetic": jet_synthetic,
}


def load_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]()


def load_data_file(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read calibration/test data: ``.npy`` (inputs only) or ``.npz`` (``x_test``/``x``/``X``
    and optionally ``y_test``/``y``). Returns ``(x, y_or_None)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                xk = next((k for k in ("x_test", "x", "X") if k in z.files), None)
                if xk is None:
                    raise DataError(f"{path}: no input array; expected a key x_test, x or X (found {z.files})")
                yk = next((k for k in ("y_test", "y", "Y") if k in z.files), None)
                return z[xk], (z[yk] if yk else None)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read data file {path}: {err}") from None
    raise DataError(f"data file {path} must be .npy or .npz")
