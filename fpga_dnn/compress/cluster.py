"""Weight sharing: k-means clustering of each kernel's weights, then fine-tuning with the weights
tied to their cluster (the Deep Compression recipe).

Each kernel gets at most ``clusters`` distinct values. Fine-tuning keeps the assignment fixed and
moves each shared value by the mean update of its members (a projection after every batch), so
the tie holds throughout. At the end every shared value is put on the layer's quantizer grid,
so the hardware sees exactly ``clusters`` (or fewer, if two centres round to one grid point)
distinct constants per layer. The adder-graph RTL profits: a constant that repeats in a column
is one shifted term shared by several inputs, and fewer distinct constants give more common
sub-expressions. tensorflow-model-optimization's ``cluster_weights`` only knows built-in Keras
layers (not QKeras'), so the clustering is done here, on any kernel layer.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..log import progress
from .chain import KERNEL_LAYERS, clone, quantize_weights, to_chain
from .finetune import FineTune, distinct_weights, fine_tune, keep_structure


def kmeans_1d(values: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(centres, assignment) of 1-D k-means with linear (quantile) initialisation."""
    from sklearn.cluster import KMeans

    v = values.reshape(-1, 1).astype(np.float64)
    k = min(k, len(np.unique(v)))
    init = np.quantile(v, np.linspace(0, 1, k)).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=init, n_init=1, random_state=seed).fit(v)
    return km.cluster_centers_.ravel(), km.labels_


def cluster_weights(model, ds, clusters: int, ft: FineTune | None = None, layers=None):
    """Share ``clusters`` values per kernel (every kernel layer, or ``layers`` by name).

    Returns ``(model, info)``; ``info['distinct']`` maps layer -> distinct non-zero quantized
    values after fine-tuning (at most ``clusters``)."""
    if not isinstance(clusters, int) or clusters < 2:
        raise ConfigError(f"clusters must be an integer >= 2 (1 would make every weight equal), got {clusters!r}")
    ft = ft or FineTune()
    model = clone(model)  # the caller's model stays as it was
    chain = to_chain(model, "weight clustering")
    specs = {s.name: s for s in chain.layers if s.kind in KERNEL_LAYERS}
    names = list(specs) if layers is None else list(layers)
    unknown = set(names) - set(specs)
    if unknown:
        raise ConfigError(f"clustering: {sorted(unknown)} are not kernel layers; choose from {sorted(specs)}")
    assign = {}
    for n in names:
        w = model.get_layer(n).get_weights()[0]
        centres, labels = kmeans_1d(w.ravel(), clusters, ft.seed)
        assign[n] = labels.reshape(w.shape)
        weights = model.get_layer(n).get_weights()
        weights[0] = centres[labels].reshape(w.shape).astype(w.dtype)
        model.get_layer(n).set_weights(weights)
    progress(f"compress: clustering {len(names)} kernels into {clusters} shared values each")
    tie = keep_structure(model, labels={model.get_layer(n).kernel.name: lab for n, lab in assign.items()})
    hist = fine_tune(model, ds, ft, "cluster", callbacks=[tie], restore_best=False, keep_existing=False)
    # Snap each shared value to the quantizer grid: the float kernel now holds exactly the
    # constants the hardware uses.
    for n, lab in assign.items():
        layer = model.get_layer(n)
        weights = layer.get_weights()
        weights[0] = quantize_weights(weights[0], specs[n]).astype(weights[0].dtype)
        layer.set_weights(weights)
    from ..train import accuracy

    distinct = {n: v for n, v in distinct_weights(model).items() if n in assign}
    acc = accuracy(model, ds.x_test, ds.y_test)
    info = {"technique": "cluster", "clusters": clusters, "distinct": distinct, **hist, "accuracy": acc}
    progress(f"compress: distinct weights per layer {distinct}, test accuracy {acc:.4f}")
    return model, info

