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

from .csim_build import fast_build_script, parallel_build_script  # noqa: F401 (re-exported)
from .errors import ToolError
from .log import progress


@dataclass
class CsimOptions:
    """The ``[csim]`` table of a flow file."""

    probe_samples: int = 2000    # random on-grid inputs beside the test split (0: none)
    probe_seed: int = 20261201

    def check(self) -> "CsimOptions":
        from .errors import ConfigError

        if not isinstance(self.probe_samples, int) or self.probe_samples < 0:
            raise ConfigError(f"[csim] probe_samples must be an integer >= 0, got {self.probe_samples!r}")
        return self


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
    probe: "ProbeResult | None" = None  # the random on-grid probe set beside the test split
    compared: str = "outputs"            # or "logits (the softmax's input)" for a softmax-terminated model

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("outputs", "probe")}
        if self.probe is not None:
            d["probe_samples"], d["probe_exact_fraction"] = self.probe.n_samples, self.probe.exact_fraction
        return d

    @property
    def exact(self) -> bool:
        """The contract: every sample exact on the test split and on the probe set."""
        return self.exact_fraction == 1.0 and (self.probe is None or self.probe.exact_fraction == 1.0)


#: Default size of the probe set (``[csim] probe_samples``); its seed is fixed.
PROBE_SAMPLES = 2000
PROBE_SEED = 20261201


@dataclass
class ProbeResult:
    """C-sim against Keras on random inputs on the input grid (the whole range of the input type,
    extremes included): a test split of a few dozen samples rarely reaches the corners where a
    rounded type flips a step."""

    x: np.ndarray = field(repr=False)
    outputs: np.ndarray = field(repr=False)       # C-sim
    keras_out: np.ndarray = field(repr=False)
    exact_fraction: float = 1.0
    first_mismatch: dict | None = None
    max_abs_diff: float = 0.0

    @property
    def n_samples(self) -> int:
        return len(self.x)


def probe_inputs(fmt, shape, n: int = PROBE_SAMPLES, seed: int = PROBE_SEED) -> np.ndarray:
    """``n`` seeded random inputs of ``shape`` on the grid of ``fmt`` (a FixedFormat), uniform
    over its whole range; the first two samples are all-minimum and all-maximum."""
    rng = np.random.default_rng(seed)
    lo = int(round(fmt.min_value / fmt.step))
    hi = int(round(fmt.max_value / fmt.step))
    q = rng.integers(lo, hi + 1, size=(n,) + tuple(shape), dtype=np.int64)
    if n >= 2:
        q[0], q[1] = lo, hi
    return q.astype(np.float64) * fmt.step


def run_probes(hls_model, model, fmt, n: int = PROBE_SAMPLES, seed: int = PROBE_SEED,
               traced_twin=None) -> ProbeResult | None:
    """C-sim (already compiled) against Keras on :func:`probe_inputs`; None when ``n`` is 0 or
    there is no input format to draw from (``input_precision = "auto"``)."""
    from .train import predict_logits

    if not n or fmt is None:
        return None
    x = probe_inputs(fmt, tuple(model.input_shape[1:]), n, seed)
    out, got, want, what = compared_outputs(hls_model, model, x, predict_logits(model, x))
    exact = exact_rows(got, want)
    res = ProbeResult(x, out, want, float(exact.mean()),
                      max_abs_diff=float(np.abs(got - want).max()) if len(x) else 0.0)
    if not exact.all():
        res.first_mismatch = locate_mismatch(hls_model, model, x, int(np.flatnonzero(~exact)[0]), traced_twin)
    msg = (f"csim: probe set: {int(exact.sum())}/{len(x)} random on-grid inputs' ({fmt}) {what} bit-exact with Keras "
           f"({res.exact_fraction:.4f})")
    if res.first_mismatch:
        msg += f"; max abs diff {res.max_abs_diff:g}; first mismatch: {describe_mismatch(res.first_mismatch)}"
    progress(msg)
    return res


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
            hls_model.write()   # what hls_model.compile() does, with a faster build script
            out_dir = getattr(hls_model.config, "get_output_dir", lambda: None)()
            if out_dir:
                from .compat import fix_written_project

                fix_written_project(out_dir)   # hls4ml header defects (compat.py)
                fast_build_script(Path(out_dir))
            hls_model._compile()  # compiles and loads the library (compile() = write() + _compile())
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


def softmax_input(model, x: np.ndarray) -> np.ndarray:
    """Keras's logits: the input of the model's final softmax layer, for ``x``."""
    from . import kerasenv

    keras = kerasenv.tf_keras() if kerasenv.is_keras2_model(model) else kerasenv.keras3()
    last = model.layers[-1]
    sub = keras.Model(model.inputs, last.input)
    logits = sub.predict(x, verbose=0, batch_size=1024)
    iq = getattr(last, "iq", None)  # HGQ2's QSoftmax quantizes its input first: so do hls4ml and the RTL
    if iq is not None and getattr(last, "enable_iq", True):
        logits = iq(keras.ops.convert_to_tensor(logits), training=False)
        logits = keras.ops.convert_to_numpy(logits)
    return np.asarray(logits, dtype=np.float64).reshape(len(x), -1)


def softmax_logits_node(hls_model):
    """The node whose output feeds a Softmax at the end of the graph (None without one)."""
    layers = list(hls_model.get_layers())
    if not layers or layers[-1].class_name != "Softmax":
        return None
    src = layers[-1].inputs[0]
    return next((l for l in layers if src in l.outputs), None)


def compared_outputs(hls_model, model, x: np.ndarray, keras_out, out=None) -> tuple:
    """``(csim_out, csim_compared, keras_compared, what)``. A model ending in a softmax is compared
    on its logits (the softmax's input: hls4ml traced there, Keras's layer input), because
    hls4ml's table softmax is an approximation no hardware-exact flow can match with Keras's
    float softmax, and the RTL implements no softmax at all (it outputs these logits or their
    argmax). Otherwise the outputs themselves. ``out``: C-sim's outputs for ``x`` if already run."""
    out = hls_predict(hls_model, x) if out is None else out
    node = softmax_logits_node(hls_model)
    if node is None or model.layers[-1].__class__.__name__ not in ("Activation", "Softmax", "QSoftmax",
                                                                   "QActivation"):
        keras_out = np.asarray(keras_out if keras_out is not None else _keras_predict(model, x))
        if xnor_output(hls_model):
            return out, np.where(out == 0, -1.0, 1.0), keras_out.reshape(len(x), -1), XNOR_COMPARED
        return out, out, keras_out.reshape(len(x), -1), "outputs"
    node.set_attr("trace", True)
    with contextlib.redirect_stdout(io.StringIO()):
        _, trace = hls_model.trace(np.ascontiguousarray(x, dtype=np.float64))
    logits = np.asarray(trace[node.name], dtype=np.float64).reshape(len(x), -1)
    return out, logits, softmax_input(model, x), "logits (the softmax's input)"


#: How a binary() output is compared: hls4ml's XNOR type holds 0/1 where Keras gives -1/+1.
XNOR_COMPARED = "outputs in Keras's -1/+1 encoding (hls4ml's uint<1> XNOR output: 0 read as -1, 1 as +1)"


def _is_xnor(variable) -> bool:
    from hls4ml.model.types import XnorPrecisionType

    return isinstance(variable.type.precision, XnorPrecisionType)


def _xnor_typed(layer) -> bool:
    return _is_xnor(layer.get_output_variable())


def xnor_output(hls_model) -> bool:
    """The model's output is hls4ml's 1-bit XNOR type (a QKeras ``binary()`` activation)."""
    return _is_xnor(hls_model.get_output_variables()[0])


#: Where hls4ml's own C++ differs from Keras, by the hls4ml layer a mismatch is located in
#: ((hls4ml class, activation) -> why): plain hls4ml computes the same, and the RTL follows C-sim
#: (bit-exact with hls4ml's C++), not Keras. Measured in tests/test_hls4ml_corpus.py.
KNOWN_HLS4ML_DIFFERENCES = {
    ("Activation", "binary_tanh"): (
        "hls4ml's nnet::binary_tanh gives +1 for an input of exactly 0 where QKeras binary_tanh gives -1 "
        "(round half to even); plain hls4ml differs the same way; the RTL follows C-sim"),
    ("ParametrizedActivation", "leakyrelu"): (
        "hls4ml's nnet::leaky_relu casts alpha*x into the result type, saturating at its minimum (-1.0 for "
        "quantized_relu(4, negative_slope=0.5)), while QKeras quantized_relu clips x at -2**integer first "
        "(minimum -negative_slope*2**integer, -0.5 there): inputs below about -2**integer differ; plain hls4ml "
        "differs the same way; the RTL follows C-sim"),
}


def known_hls4ml_difference(layer) -> str | None:
    act = str(layer.get_attr("activation", "")).lower().replace("leaky_relu", "leakyrelu")
    cls = "Activation" if layer.class_name == "TernaryTanh" else layer.class_name
    return KNOWN_HLS4ML_DIFFERENCES.get((cls, act))


def _keras_predict(model, x):
    from .train import predict_logits

    return predict_logits(model, x)


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
            if _xnor_typed(hls_model.graph[name]):
                h = np.where(h == 0, -1.0, 1.0)  # hls4ml's 0/1 in Keras's -1/+1 (see XNOR_COMPARED)
            k = np.asarray(ref[name], dtype=np.float64).ravel()
            if h.size == k.size and not np.array_equal(h, k):
                j = int(np.flatnonzero(h != k)[0])
                info.update(layer=name, element=j, hls=float(h[j]), keras=float(k[j]),
                            differing_elements=int((h != k).sum()))
                known = known_hls4ml_difference(hls_model.graph[name])
                if known:
                    info["known_hls4ml_difference"] = known
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
    _, got, want, what = compared_outputs(hls_model, model, x, keras_out, out)
    exact = exact_rows(got, want)
    acc = float((out.argmax(1) == y).mean()) if y is not None else None
    kacc = float((keras_out.argmax(1) == y).mean()) if y is not None else None
    mismatch = None
    if not exact.all():
        mismatch = locate_mismatch(hls_model, model, x, int(np.flatnonzero(~exact)[0]), traced_twin)
    rep = CsimReport(len(x), float(exact.mean()), acc, kacc, round(compile_s, 2), round(predict_s, 3),
                     round(len(x) / max(predict_s, 1e-9), 1), mismatch, out, compared=what)
    msg = f"csim: {int(exact.sum())}/{len(x)} samples' {what} bit-exact with Keras ({rep.exact_fraction:.4f})"
    if acc is not None:
        msg += f", accuracy {acc:.4f}"
    progress(msg)
    if mismatch:
        progress(f"csim: first mismatch: {describe_mismatch(mismatch)}")
    return rep


def describe_mismatch(m: dict) -> str:
    if m.get("layer"):
        text = (f"sample {m['sample']}, layer '{m['layer']}' element {m['element']}: "
                f"hls4ml {m['hls']!r} vs Keras {m['keras']!r} ({m['differing_elements']} elements differ)")
        return text + (f"; known in hls4ml: {m['known_hls4ml_difference']}" if m.get("known_hls4ml_difference") else "")
    return f"sample {m['sample']}" + (f" (trace failed: {m['trace_error']})" if "trace_error" in m else
                                     " (only the final outputs differ)")
