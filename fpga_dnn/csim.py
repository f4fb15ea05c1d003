"""C-sim step: hls4ml's bit-accurate C++ emulation against the Keras model, sample for sample.

Bit-exactness is the contract: the report gives the *fraction of samples whose every output
equals Keras exactly*, and on a mismatch it names the first differing sample and the first layer
where hls4ml's trace departs from Keras's own per-layer outputs.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ToolError
from .log import progress


@dataclass
class CsimReport:
    n_samples: int
    exact_fraction: float
    accuracy: float | None
    keras_accuracy: float | None
    compile_seconds: float
    predict_seconds: float
    samples_per_second: float
    first_mismatch: dict | None = None
    outputs: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "outputs"}
        return d


COMPILE_LOG = "csim_compile.log"  # in the HLS project folder: the compiler's whole output


def compile_model(hls_model) -> float:
    """Build hls4ml's emulation library (g++). Returns seconds.

    On failure hls4ml prints the compiler's output and raises a bare "Failed to compile": the
    output is kept in ``<project>/csim_compile.log`` and its first error line is the message.
    """
    t0 = time.perf_counter()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            hls_model.compile()
    except Exception as err:
        text = out.getvalue()
        log_path = None
        out_dir = getattr(hls_model.config, "get_output_dir", lambda: None)()
        if out_dir and Path(out_dir).is_dir():
            log_path = Path(out_dir) / COMPILE_LOG
            log_path.write_text(text + f"\n{type(err).__name__}: {err}\n")
        cause = first_compiler_error(text) or str(err).strip()
        raise ToolError(f"hls4ml C-sim compile failed: {cause[:300]}", log_path=log_path) from err
    return time.perf_counter() - t0


def first_compiler_error(text: str) -> str | None:
    """The first ``file:line:col: error: ...`` of g++ output as ``file.h:line: message``."""
    for line in text.splitlines():
        m = re.match(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)?\s*(?:fatal )?error:\s*(?P<msg>.*)$", line.strip())
        if m:
            return f"{Path(m['file']).name}:{m['line']}: {m['msg'].strip()}"
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    return None


def hls_predict(hls_model, x: np.ndarray) -> np.ndarray:
    out = hls_model.predict(np.ascontiguousarray(x, dtype=np.float64))
    out = np.asarray(out, dtype=np.float64)
    return out.reshape(len(x), -1)


def exact_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample: every output element equal."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return (a == b).all(axis=1)


def keras_layer_outputs(model, x: np.ndarray) -> dict:
    """Every layer's output for ``x``, keyed by layer name (Keras 2 or Keras 3)."""
    from . import kerasenv

    keras = kerasenv.tf_keras() if kerasenv.is_keras2_model(model) else kerasenv.keras3()
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    outs = probe.predict(x, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return {l.name: np.asarray(o) for l, o in zip(layers, outs)}


def locate_mismatch(hls_model, model, x: np.ndarray, index: int, traced_twin=None) -> dict:
    """Trace one sample through both and return the first layer whose outputs differ.

    ``traced_twin``: a callable giving the same model converted with tracing on, used when
    ``hls_model`` was built without it.
    """
    sample = x[index:index + 1]
    info: dict = {"sample": int(index)}
    try:
        if traced_twin is not None and not any(
                l.get_attr("trace", False) for l in hls_model.get_layers()):
            hls_model = traced_twin()
        with contextlib.redirect_stdout(io.StringIO()):
            _, trace = hls_model.trace(np.ascontiguousarray(sample, dtype=np.float64))
        ref = keras_layer_outputs(model, sample)
    except Exception as err:  # the report still has the sample index
        info["trace_error"] = f"{type(err).__name__}: {err}"[:300]
        return info
    for name in [l.name for l in hls_model.get_layers()]:
        if name in trace and name in ref:
            h = np.asarray(trace[name], dtype=np.float64).ravel()
            k = np.asarray(ref[name], dtype=np.float64).ravel()
            if h.size == k.size and not np.array_equal(h, k):
                j = int(np.flatnonzero(h != k)[0])
                info.update(layer=name, element=j, hls=float(h[j]), keras=float(k[j]),
                            differing_elements=int((h != k).sum()))
                return info
    info["layer"] = None  # only the final outputs differ (or the layer names did not line up)
    return info


def run_csim(hls_model, model, x: np.ndarray, y: np.ndarray | None = None, keras_out=None,
             compiled: bool = False, traced_twin=None) -> CsimReport:
    """Compile (unless already), run ``x`` through the emulation and compare with Keras.

    ``traced_twin``: see :func:`locate_mismatch` (e.g. ``ConvertResult.traced_twin``).
    """
    from .train import predict_logits

    compile_s = 0.0 if compiled else compile_model(hls_model)
    if not compiled:
        progress(f"csim: compiled hls4ml emulation ({compile_s:.1f} s)")
    t0 = time.perf_counter()
    out = hls_predict(hls_model, x)
    predict_s = time.perf_counter() - t0
    if keras_out is None:
        keras_out = predict_logits(model, x)
    keras_out = np.asarray(keras_out).reshape(len(x), -1)
    exact = exact_rows(out, keras_out)
    acc = float((out.argmax(1) == y).mean()) if y is not None else None
    kacc = float((keras_out.argmax(1) == y).mean()) if y is not None else None
    mismatch = None
    if not exact.all():
        mismatch = locate_mismatch(hls_model, model, x, int(np.flatnonzero(~exact)[0]), traced_twin)
    rep = CsimReport(len(x), float(exact.mean()), acc, kacc, round(compile_s, 2), round(predict_s, 3),
                     round(len(x) / max(predict_s, 1e-9), 1), mismatch, out)
    msg = f"csim: {int(exact.sum())}/{len(x)} samples bit-exact with Keras ({rep.exact_fraction:.4f})"
    if acc is not None:
        msg += f", accuracy {acc:.4f}"
    progress(msg)
    if mismatch:
        progress(f"csim: first mismatch: {describe_mismatch(mismatch)}")
    return rep


def describe_mismatch(m: dict) -> str:
    if m.get("layer"):
        return (f"sample {m['sample']}, layer '{m['layer']}' element {m['element']}: "
                f"hls4ml {m['hls']!r} vs Keras {m['keras']!r} ({m['differing_elements']} elements differ)")
    return f"sample {m['sample']}" + (f" (trace failed: {m['trace_error']})" if "trace_error" in m else
                                     " (only the final outputs differ)")
