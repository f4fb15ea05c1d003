"""Datasets that ship offline, with inputs on an exact fixed-point grid.

* ``digits`` / ``digits_images``: scikit-learn's 8x8 handwritten digits (1,797 samples, 10
  classes) as 64 features or as 8x8x1 images. Pixels are integers 0..16; we divide by 16, so
  every input is exactly representable as ``ufixed<5,1>`` and no step can wrap or round it.
* ``jet_synthetic``: a labelled-*synthetic* 16-feature, 5-class tabular set shaped like the
  hls4ml jet-tagging benchmark (which is a download, so not used here). Class-conditional
  Gaussians with correlated features and a few non-linear (|x|, product) features, standardised
  and rounded to ``fixed<8,3>`` (step 1/32, range [-4, 4)).
* ``shapes_synthetic``: labelled-*synthetic* 32x32x3 colour images, 10 classes (CIFAR-10-sized,
  for the MLPerf Tiny CNNs; CIFAR-10 is a download): disc, ring, square, square outline, triangle,
  cross, two blobs, and three rotated textures (stripes near 0 deg / near 90 deg, checkerboard), at
  random positions, sizes, angles and colours over a random gradient background with noise.
  Pixels on ``ufixed<8,0>`` (step 1/256).
* ``anomaly_synthetic``: labelled-*synthetic* 64-bin "machine sound" log-spectra for the AD08
  autoencoder (the MLPerf Tiny ToyADMOS set is a download): normal = harmonic series of a
  random fundamental with a smooth roll-off; anomalies (test split only, half of it) = an extra
  non-harmonic tone, inharmonic partials, a noise band or a missing partial. Train split =
  normal only; ``y`` is 0 normal / 1 anomalous. Standardised and rounded to ``fixed<8,3>``.

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


SHAPE_CLASSES = ("disc", "ring", "square", "square outline", "triangle", "cross", "two blobs",
                 "stripes ~0 deg", "stripes ~90 deg", "checkerboard")


def shapes_synthetic(n_samples: int = 2400, seed: int = 11, size: int = 32) -> Dataset:
    """Labelled SYNTHETIC 32x32x3 images, 10 shape/texture classes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = n_samples
    y = np.arange(n) % len(SHAPE_CLASSES)
    rng.shuffle(y)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    col = lambda v: v[:, None, None]  # noqa: E731  per-sample scalar -> broadcast over the image
    cx, cy = col(rng.uniform(10, size - 10, n)), col(rng.uniform(10, size - 10, n))
    r = col(rng.uniform(5, 9, n))
    th = rng.uniform(0, np.pi, n)
    u = (xx - cx) * col(np.cos(th)) + (yy - cy) * col(np.sin(th))  # rotated coordinates
    v = -(xx - cx) * col(np.sin(th)) + (yy - cy) * col(np.cos(th))
    d = np.hypot(xx - cx, yy - cy)
    box = np.maximum(np.abs(u), np.abs(v))
    period = col(rng.uniform(3.0, 6.0, n))
    phase = col(rng.uniform(0, 2 * np.pi, n))
    # textures: stripes whose direction is near 0 deg or near 90 deg (+-20 deg), inside a patch
    sdir = np.where(y == 8, np.pi / 2, 0.0) + rng.uniform(-0.35, 0.35, n)
    s_arg = (xx - cx) * col(np.sin(sdir)) + (yy - cy) * col(np.cos(sdir))
    patch = box < r * 1.3
    ox, oy = col(rng.uniform(3, 6, n) * np.sign(rng.uniform(-1, 1, n))), col(rng.uniform(3, 6, n))
    masks = {
        0: d < r,
        1: np.abs(d - r) < 1.6,
        2: box < 0.8 * r,
        3: np.abs(box - 0.8 * r) < 1.3,
        4: (v < 0.6 * r) & (np.abs(u) < (v + 0.8 * r) * 0.55) & (v > -0.8 * r),
        5: ((np.abs(u) < 0.28 * r) & (np.abs(v) < r)) | ((np.abs(v) < 0.28 * r) & (np.abs(u) < r)),
        6: (np.hypot(xx - cx - ox, yy - cy - oy) < 0.5 * r) | (np.hypot(xx - cx + ox, yy - cy + oy) < 0.5 * r),
        7: patch & (np.sin(2 * np.pi * s_arg / period + phase) > 0),
        8: patch & (np.sin(2 * np.pi * s_arg / period + phase) > 0),
        9: patch & (np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period) > 0),
    }
    mask = np.zeros((n, size, size), dtype=bool)
    for c, m in masks.items():
        mask[y == c] = m[y == c]
    bg = rng.uniform(0.05, 0.6, (n, 3))
    fg = np.clip(bg + rng.choice([-1, 1], (n, 1)) * rng.uniform(0.25, 0.5, (n, 3)), 0, 1)
    grad = rng.normal(0, 0.006, (n, 2))
    base = bg[:, None, None, :] + ((xx - size / 2)[None] * col(grad[:, 0]) + (yy - size / 2)[None] * col(grad[:, 1]))[..., None]
    img = np.where(mask[..., None], fg[:, None, None, :], base) + rng.normal(0, 0.06, (n, size, size, 3))
    fmt = FixedFormat(signed=False, width=8, integer=0)
    x = fmt.quantize(np.clip(img, 0, 1)).astype(np.float32)
    x_tr, x_te, y_tr, y_te = _split(x, y.astype(np.int64))
    return Dataset(
        name="shapes_synthetic", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        input_format=fmt, n_classes=len(SHAPE_CLASSES),
        description="labelled SYNTHETIC 32x32x3 shapes/textures, 10 classes (ufixed<8,0>)",
        extra={"classes": SHAPE_CLASSES},
    )


ANOMALY_KINDS = ("extra tone", "inharmonic partials", "noise band", "missing partial")


def anomaly_synthetic(n_train: int = 3000, n_test: int = 1200, seed: int = 13, bins: int = 64) -> Dataset:
    """Labelled SYNTHETIC 64-bin log-spectra; train = normal only, test = half anomalous."""
    rng = np.random.default_rng(seed)
    f = np.arange(bins, dtype=np.float64)

    def spectra(m: int, anomalous: np.ndarray) -> np.ndarray:
        f0 = rng.uniform(4.0, 9.0, m)
        decay = rng.uniform(0.15, 0.5, m)
        width = rng.uniform(0.8, 1.4, m)
        kind = rng.integers(0, len(ANOMALY_KINDS), m)
        spec = np.zeros((m, bins))
        for k in range(1, 12):
            stretch = np.where(anomalous & (kind == 1), 1 + rng.uniform(0.04, 0.08, m) * k / 4, 1.0)
            fk = f0 * k * stretch
            amp = np.exp(-decay * (k - 1))
            amp = np.where(anomalous & (kind == 3) & (k == 2), 0.0, amp)
            spec += amp[:, None] * np.exp(-0.5 * ((f[None] - fk[:, None]) / width[:, None]) ** 2)
        tone_f = rng.uniform(5, bins - 5, m)
        spec += np.where(anomalous & (kind == 0), rng.uniform(0.3, 0.6, m), 0.0)[:, None] * np.exp(
            -0.5 * ((f[None] - tone_f[:, None]) / 1.0) ** 2)
        band_lo = rng.uniform(0, bins - 16, m)
        band = (f[None] >= band_lo[:, None]) & (f[None] < band_lo[:, None] + 12)
        spec += np.where(anomalous & (kind == 2), rng.uniform(0.15, 0.3, m), 0.0)[:, None] * band
        spec += 0.02 * np.exp(-f[None] / 20.0)  # the machine's broadband floor
        return np.log1p(20 * spec) + rng.normal(0, 0.05, (m, bins))

    x_tr = spectra(n_train, np.zeros(n_train, dtype=bool))
    y_te = (np.arange(n_test) % 2).astype(np.int64)
    rng.shuffle(y_te)
    x_te = spectra(n_test, y_te.astype(bool))
    mu, sd = x_tr.mean(0), x_tr.std(0)
    fmt = FixedFormat(signed=True, width=8, integer=3)
    norm = lambda a: fmt.quantize((a - mu) / sd).astype(np.float32)  # noqa: E731
    return Dataset(
        name="anomaly_synthetic", x_train=norm(x_tr), y_train=np.zeros(n_train, dtype=np.int64),
        x_test=norm(x_te), y_test=y_te, input_format=fmt, n_classes=2,
        description="labelled SYNTHETIC 64-bin machine log-spectra; train normal only, test 50% anomalous "
                    "(fixed<8,3>); y: 0 normal, 1 anomaly",
        extra={"task": "reconstruction", "anomaly_kinds": ANOMALY_KINDS},
    )


def anomaly_auc(errors: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of anomaly scores ``errors`` for labels ``y`` (1 = anomaly),
    ties counted half (the Mann-Whitney statistic)."""
    errors, y = np.asarray(errors, dtype=np.float64), np.asarray(y).astype(bool)
    pos, neg = errors[y], errors[~y]
    if not len(pos) or not len(neg):
        raise DataError("AUC needs both normal (0) and anomalous (1) samples")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


DATASETS = {
    "digits": lambda: digits(images=False),
    "digits_images": lambda: digits(images=True),
    "jet_synthetic": jet_synthetic,
    "shapes_synthetic": shapes_synthetic,
    "anomaly_synthetic": anomaly_synthetic,
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
