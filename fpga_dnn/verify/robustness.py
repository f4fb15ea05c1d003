"""Robustness of a deployed model: noisy and occluded inputs, and adversarial examples, for the
float model, the QAT model and the hardware side by side.

* **hardware** is the bit-exact fixed-point model — the hardware graph's integer reference
  (:mod:`fpga_dnn.hw.reference`), checked equal to C-sim (and so to the verified RTL) on the
  test set first (:func:`fpga_dnn.verify.model_faults.graph_of`); its inputs are converted to
  the input format as C-sim converts them (rounded, saturated), as a board's host would;
* **Gaussian noise**: ``x + N(0, (sigma * range)^2)`` per feature, clipped to the data's range
  (``range``: the test set's max - min), a sweep of ``sigma``;
* **occlusion**: a random fraction of the features of each sample set to the data's minimum;
* **adversarial** (adversarial-robustness-toolbox 1.20.1): FGSM and PGD (L-infinity,
  ``eps`` as a fraction of the range) crafted on the QAT Keras model (white box, through
  ``TensorFlowV2Classifier``: ART's ``KerasClassifier`` does not work on Keras 3), then
  transferred to the float model and the hardware; HopSkipJump, a decision-based attack, on
  the hardware as a black box (``BlackBoxClassifier``: class decisions only) on a subset: a
  sample counts as robust at ``eps`` when it is classified right and the attack's smallest
  adversarial example found lies farther than ``eps`` (L-infinity).

:func:`evaluate` returns a dict; :func:`write` makes ``robustness.json/.md/.png``;
:func:`run_robustness` does it for a zoo model or a model file (``fpga-dnn robustness MODEL``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from fpga_dnn.verify.report import table, wilson95, write_report

SIGMAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
OCCLUSIONS = (0.0, 0.1, 0.2, 0.3, 0.5)
EPSILONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)

ClassFn = Callable[[np.ndarray], np.ndarray]   # inputs (n, ...) -> predicted classes (n,)


def _accuracy(fn: ClassFn, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    k = int((fn(x) == y).sum())
    lo, hi = wilson95(k, len(y))
    return {"accuracy": k / len(y), "ci95": [lo, hi]}


def _curves(models: Dict[str, ClassFn], xs: Sequence[np.ndarray], y: np.ndarray, levels: Sequence[float]) -> Dict:
    return {name: [{"level": float(lv), **_accuracy(fn, x, y)} for lv, x in zip(levels, xs)]
            for name, fn in models.items()}


def _keras_classifier(keras_model, n_classes: int, input_shape, clip):
    """ART's TensorFlowV2Classifier around a tf.keras / Keras model (loss on its outputs:
    cross-entropy on probabilities when the last layer is a softmax, else on logits)."""
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    last = keras_model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "") or type(last).__name__.lower()
    probs = "softmax" in act.lower()
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    return TensorFlowV2Classifier(model=keras_model, nb_classes=n_classes,
                                  input_shape=tuple(input_shape), loss_object=loss, clip_values=clip)


def evaluate(models: Dict[str, ClassFn], x: np.ndarray, y: np.ndarray, *, attack_model=None,
             hardware: Optional[str] = "hardware", sigmas: Sequence[float] = SIGMAS,
             occlusions: Sequence[float] = OCCLUSIONS, epsilons: Sequence[float] = EPSILONS,
             pgd_iter: int = 10, hsj_samples: int = 20, hsj_iter: int = 8, seed: int = 0) -> Dict:
    """Accuracy of each of ``models`` (name -> class function) under noise, occlusion and (with
    ``attack_model``, the Keras model attacked) FGSM/PGD; HopSkipJump on ``models[hardware]``."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo or 1.0
    result: Dict = {"samples": len(x), "input_range": [lo, hi], "models": list(models), "seed": seed}
    noisy = [np.clip(x + rng.normal(0, s * span, size=x.shape), lo, hi).astype(np.float32) for s in sigmas]
    result["noise"] = {"sigmas_of_range": list(sigmas), "curves": _curves(models, noisy, y, sigmas)}
    flat = x.reshape(len(x), -1)
    occluded = []
    for f in occlusions:
        mask = rng.random(flat.shape) < f
        occluded.append(np.where(mask, lo, flat).reshape(x.shape).astype(np.float32))
    result["occlusion"] = {"fractions": list(occlusions), "curves": _curves(models, occluded, y, occlusions)}
    if attack_model is not None:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        n_classes = int(max(y.max() + 1, np.asarray(attack_model.output_shape)[-1]))
        clf = _keras_classifier(attack_model, n_classes, x.shape[1:], (lo, hi))
        adv = {}
        for name, make in (("fgsm", lambda e: FastGradientMethod(clf, norm=np.inf, eps=e, batch_size=256)),
                           ("pgd", lambda e: ProjectedGradientDescent(clf, norm=np.inf, eps=e, eps_step=e / 4,
                                                                      max_iter=pgd_iter, num_random_init=0,
                                                                      batch_size=256, verbose=False))):
            xs = [x if e == 0 else make(e * span).generate(x=x, y=y).astype(np.float32) for e in epsilons]
            adv[name] = {"crafted_on": "qat (white box)", "curves": _curves(models, xs, y, epsilons)}
        result["adversarial"] = {"eps_of_range": list(epsilons), "norm": "linf", **adv}
    if hardware is not None and hsj_samples:
        result.setdefault("adversarial", {"eps_of_range": list(epsilons), "norm": "linf"})
        result["adversarial"]["hopskipjump"] = _hopskipjump(models[hardware], x, y, epsilons, span, (lo, hi),
                                                            hsj_samples, hsj_iter, seed)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _hopskipjump(fn: ClassFn, x, y, epsilons, span, clip, n: int, max_iter: int, seed: int) -> Dict:
    """Decision-based attack on ``fn`` as a black box: robust accuracy at each eps from the
    smallest adversarial distance found per sample."""
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    n_classes = int(y.max() + 1)
    queries = [0]

    def predict(batch):
        batch = np.asarray(batch, dtype=np.float32)
        queries[0] += len(batch)
        return np.eye(n_classes, dtype=np.float32)[np.clip(fn(batch), 0, n_classes - 1)]

    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    xs, ys = x[idx], y[idx]
    bb = BlackBoxClassifier(predict, input_shape=x.shape[1:], nb_classes=n_classes, clip_values=clip)
    attack = HopSkipJump(bb, targeted=False, norm=np.inf, max_iter=max_iter, max_eval=200, init_eval=20,
                         init_size=50, batch_size=64, verbose=False)
    right = fn(xs) == ys
    adv = attack.generate(x=xs.astype(np.float32))
    fooled = fn(adv) != ys
    dist = np.abs(adv - xs).reshape(len(xs), -1).max(axis=1) / span
    dist = np.where(right & fooled, dist, np.where(right, np.inf, 0.0))   # not fooled: robust at every eps
    rows = []
    for e in epsilons:
        k = int((dist > e).sum()) if e > 0 else int(right.sum())
        lo, hi = wilson95(k, len(xs))
        rows.append({"level": float(e), "accuracy": k / len(xs), "ci95": [lo, hi]})
    finite = dist[np.isfinite(dist) & (dist > 0)]
    return {"attacked": "hardware (black box: class decisions only)", "samples": len(xs), "queries": queries[0],
            "median_distance_of_range": float(np.median(finite)) if len(finite) else None,
            "curves": {"hardware": rows}}


def write(result: Dict, out_dir, name: str, stem: str = "robustness") -> Dict[str, Path]:
    md = [f"# Robustness: {name}", "",
          f"{result['samples']} test samples; inputs in [{result['input_range'][0]:.4g}, "
          f"{result['input_range'][1]:.4g}]; noise, occlusion and eps as fractions of that range. "
          f"'hardware' is the bit-exact fixed-point model (equal to C-sim and the RTL). {result['seconds']} s.", ""]
    panels = []

    def section(title, xlabel, curves):
        levels = [r["level"] for r in next(iter(curves.values()))]
        nonlocal md
        md += [f"## {title}", ""] + table([xlabel] + list(curves),
                                          [[lv] + [c[i]["accuracy"] for c in curves.values()]
                                           for i, lv in enumerate(levels)]) + [""]
        panels.append({"title": title, "xlabel": xlabel, "ylabel": "accuracy", "series": {
            m: {"x": [r["level"] for r in rows], "y": [r["accuracy"] for r in rows],
                "lo": [r["ci95"][0] for r in rows], "hi": [r["ci95"][1] for r in rows]} for m, rows in curves.items()}})

    section("Gaussian input noise", "sigma / range", result["noise"]["curves"])
    section("random occlusion", "fraction occluded", result["occlusion"]["curves"])
    adv = result.get("adversarial", {})
    for key, title in (("fgsm", "FGSM (crafted on QAT, transferred)"), ("pgd", "PGD (crafted on QAT, transferred)"),
                       ("hopskipjump", "HopSkipJump on the hardware (black box)")):
        if key in adv:
            section(title, "eps / range (L-inf)", adv[key]["curves"])
    if "hopskipjump" in adv:
        h = adv["hopskipjump"]
        md += [f"HopSkipJump: {h['samples']} samples, {h['queries']} queries, median adversarial distance "
               f"{h['median_distance_of_range']} of the range.", ""]
    return write_report(result, out_dir, stem, md, panels, f"robustness: {name}")


def run_robustness(config, build_dir, out_dir=None, **options) -> Dict[str, Path]:
    """The flow's train/convert/csim steps for ``config``, then :func:`evaluate` on the float
    model (when the training step made one), the QAT model and the hardware, and :func:`write`."""
    from fpga_dnn.convert import check_input
    from fpga_dnn.flow import execute_flow
    from fpga_dnn.hw.reference import quantize_inputs, run
    from fpga_dnn.modelio import load_model
    from fpga_dnn.train import predict_logits
    from fpga_dnn.verify.model_faults import graph_of

    config.steps = [s for s in config.steps if s in ("train", "convert", "csim")]
    st = execute_flow(config, build_dir)
    graph, _ = graph_of(st)
    x = check_input(st.model, st.x)

    def hardware(batch):
        out = run(graph, quantize_inputs(graph, batch)).reshape(len(batch), -1)
        return out[:, 0] if graph.softmax == "argmax" else out.argmax(axis=1)

    models: Dict[str, ClassFn] = {}
    float_path = st.train.model_path.parent / "float.h5" if st.train is not None else None
    if float_path is not None and float_path.is_file():
        fm, _ = load_model(float_path)
        models["float"] = lambda b, m=fm: predict_logits(m, b).argmax(axis=1)
    models["qat"] = lambda b: predict_logits(st.model, b).argmax(axis=1)
    models["hardware"] = hardware
    result = evaluate(models, x, st.y, attack_model=st.model, **options)
    result["model"] = config.model_name()
    return write(result, out_dir or Path(build_dir) / "robustness", config.model_name())
