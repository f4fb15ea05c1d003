"""Run a bundle on inputs from a file and report predictions, accuracy and speed.

The function behind ``fpga-dnn run BUNDLE --input x.npy [--sim]`` and, on a board (where the
full CLI's dependencies are absent), ``python -m fpga_dnn.runtime run BUNDLE --input x.npy``.

Input files: ``.npy`` (the inputs) or ``.npz`` with the inputs under ``x``, ``x_test`` or
``X`` and optionally labels under ``y``, ``y_test`` or ``labels``. Labels are class indices
(accuracy = argmax of the outputs) or arrays shaped like the outputs (then the fraction of
samples whose outputs equal them exactly is reported as agreement — e.g. C-sim outputs for a
bit-exactness check).

Imports numpy only (pynq when the backend needs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from fpga_dnn.errors import DataError
from fpga_dnn.runtime.accelerator import Accelerator

PathLike = Union[str, Path]
_X_KEYS = ("x", "x_test", "X")
_Y_KEYS = ("y", "y_test", "labels")


def load_inputs(path: PathLike) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(x, labels or None)`` from a ``.npy`` or ``.npz`` file (see the module docstring)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read inputs {path}: {err}") from None
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        xk = next((k for k in _X_KEYS if k in data.files), None)
        if xk is None:
            raise DataError(f"{path} holds {', '.join(data.files)}; expected inputs under one of {', '.join(_X_KEYS)}")
        yk = next((k for k in _Y_KEYS if k in data.files), None)
        return data[xk], (data[yk] if yk else None)


def score(outputs: np.ndarray, labels: np.ndarray) -> Dict[str, Any]:
    """Accuracy (class labels, argmax) or exact agreement (labels shaped like the outputs)."""
    labels = np.asarray(labels)
    if len(labels) != len(outputs):
        raise DataError(f"{len(labels)} labels for {len(outputs)} inputs")
    if labels.shape == outputs.shape:
        same = (outputs.reshape(len(outputs), -1) == labels.reshape(len(labels), -1)).all(axis=1)
        return {"agreement": float(same.mean()), "mismatched_samples": int((~same).sum())}
    if labels.ndim == 1 and labels.dtype.kind in "iu":
        pred = outputs.reshape(len(outputs), -1).argmax(axis=1)
        return {"accuracy": float((pred == labels).mean())}
    raise DataError(f"labels of shape {labels.shape} fit neither class indices nor outputs {outputs.shape}")


def run(bundle_dir: PathLike, input_path: PathLike, backend: str = "pynq", labels_path: Optional[PathLike] = None,
        batch: Optional[int] = None, bench_samples: int = 1000, output_path: Optional[PathLike] = None,
        print_fn: Optional[Callable[[str], None]] = print, **open_options) -> Dict[str, Any]:
    """Predict every input of ``input_path`` on ``bundle_dir``, score, benchmark, report.

    bundle_dir: the bundle folder. input_path: ``.npy``/``.npz`` inputs (module docstring).
    backend: ``'pynq'`` (board), ``'sim'`` or ``'emulate'`` (see :meth:`Accelerator.open`).
    labels_path: labels or expected outputs (``.npy``), overriding those inside an ``.npz``.
    batch: samples per ``predict`` call for the full run (default: all at once).
    bench_samples: samples for the latency/throughput measurement (batch 1 and the full batch);
        0 skips it.
    output_path: save the predictions (``.npy``).
    print_fn: where report lines go (``None``: silent).
    open_options: passed to :meth:`Accelerator.open` (``model=`` for sim/emulate, ``timeout_s``...).

    Returns a dict: ``design``, ``backend``, ``samples``, ``outputs`` (the predictions),
    ``score`` (accuracy/agreement, if labels), ``bench`` (per batch size: the
    :meth:`Accelerator.benchmark` result).
    """
    say = print_fn or (lambda line: None)
    x, labels = load_inputs(input_path)
    if labels_path is not None:
        labels = np.load(labels_path, allow_pickle=False)
    with Accelerator.open(bundle_dir, backend=backend, **open_options) as acc:
        info = acc.info()
        say(f"{info['design']} on {info['backend']}: input {tuple(info['input'])} {info['input_format']}, "
            f"output {tuple(info['output'])} {info['output_format']}, "
            f"{info['samples_per_transfer']} samples per DMA transfer")
        if info.get("accelerator") or info.get("model"):
            name = info.get("accelerator") or info.get("model")
            say(f"accelerator model: {name}" + (" (the reference function, not the network: driver check only)"
                                                 if name == "InstantModel" else ""))
        step = batch or max(1, len(x))
        outputs = np.concatenate([acc.predict(x[i: i + step]) for i in range(0, len(x), step)]) if len(x) else \
            acc.predict(x)
        result: Dict[str, Any] = {"design": info["design"], "backend": info["backend"], "samples": len(x),
                                  "outputs": outputs}
        flat = outputs.reshape(len(outputs), -1)
        if len(outputs):
            say(f"predictions (first {min(5, len(outputs))}): "
                + "; ".join(np.array2string(r, precision=4, max_line_width=120) for r in flat[:5]))
            if flat.shape[1] > 1:
                say(f"predicted classes (first 20): {flat.argmax(axis=1)[:20].tolist()}")
        if labels is not None:
            result["score"] = score(outputs, labels)
            say(", ".join(f"{k}: {v:.4%}" if isinstance(v, float) else f"{k}: {v}" for k, v in result["score"].items()))
        if output_path is not None:
            np.save(output_path, outputs)
            say(f"predictions saved to {output_path}")
        if bench_samples and len(x):
            result["bench"] = {}
            for b in sorted({1, min(step, max(1, bench_samples))}):
                r = acc.benchmark(n=max(b, bench_samples), batch=b, x=x[: max(b, min(len(x), 4096))])
                result["bench"][b] = r
                bd = r["breakdown_us_per_call"]
                say(f"batch {b}: {r['latency_us']['median']:.1f} us/call median (p99 {r['latency_us']['p99']:.1f}), "
                    f"{r['samples_per_s']:,.0f} samples/s; per call: pack {bd['pack']:.1f}, "
                    f"transfer {bd['transfer']:.1f}, wait {bd['wait']:.1f}, unpack {bd['unpack']:.1f} us"
                    + (f"; host {r['host_us_per_call']:.1f} us" if r["host_us_per_call"] is not None else ""))
    return result
