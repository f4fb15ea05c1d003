"""RTL generation (fpga_dnn.rtl): the da4ml trace of hls4ml's graph is bit-exact with C-sim.

Every model here is small and trained for at most two epochs, or given random weights:
bit-exactness needs varied values, not accuracy. Inputs are the sklearn digits (x/16, exactly on
the ufixed<5,1> grid) plus random points of that grid; each comparison asserts that 100% of the
output vectors are identical and says how many samples it used.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from fpga_dnn.errors import FpgaDnnError, UnsupportedLayerError

N_GRID = 2000  # random ufixed<5,1> grid samples per model, on top of the 1,797 digits


def _convert(model, out_dir, *, keras2: bool, input_precision: str | None = "ufixed<5,1>",
             precision: dict | None = None, strategy: str = "Latency", reuse: int = 1, trace: bool = False):
    """fpga_dnn's io_parallel / Vivado conversion + C-sim compile (``input_precision=None``: hls4ml's)."""
    from fpga_dnn.convert import ConvertOptions, convert
    from fpga_dnn.csim import compile_model

    opts = ConvertOptions(input_precision=input_precision or "auto", precision_overrides=precision or {},
                          strategy=strategy, reuse_factor=reuse, trace=trace)
    res = convert(model, None, opts, output_dir=out_dir, framework="qkeras" if keras2 else "hgq2")
    compile_model(res.hls_model)
    return res.hls_model


# ---------------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits64():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 16.0, d.target


def _grid(shape, n=N_GRID, seed=0):
    return np.random.default_rng(seed).integers(0, 32, size=(n,) + tuple(shape)) / 16.0


def _exact(a, b) -> tuple[int, int]:
    """(identical output vectors, samples)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    return int(np.all(a.reshape(n, -1) == b.reshape(n, -1), axis=1).sum()), n


def _check_csim(traced, hls_model, x):
    ours = traced.predict(x)
    csim = hls_model.predict(np.ascontiguousarray(x, dtype=np.float64))
    same, n = _exact(ours, csim)
    assert (same, n) == (n, n), f"{same}/{n} samples bit-exact"
    return n


def _qk():
    from fpga_dnn.kerasenv import qkeras, tf_keras

    return qkeras(), tf_keras()


def _q8():
    qk, _ = _qk()
    return dict(kernel_quantizer=qk.quantized_bits(8, 0, alpha=1), bias_quantizer=qk.quantized_bits(8, 0, alpha=1))


def _randomize(model, seed=1):
    """Random weights, random non-zero biases and batch-norm statistics: every path gets used."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for var, old in zip(layer.weights, layer.get_weights()):
            name = var.name
            if "moving_variance" in name:
                values.append(rng.uniform(0.3, 2.0, old.shape))
            elif "gamma" in name:
                values.append(rng.uniform(0.5, 1.5, old.shape))
            else:
                values.append(rng.normal(0.0, 0.5, old.shape))
        if values:
            layer.set_weights(values)


def _trace(hls_model, **kw):
    from fpga_dnn.rtl import trace_model_graph

    return trace_model_graph(hls_model, **kw)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, digits64):
    """64-32-32-10, quantized_bits(8,0,alpha=1) weights, quantized_relu(8); 2 training epochs."""
    qk, keras = _qk()
    x, y = digits64
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input((64,)),
        qk.QDense(32, **_q8()), qk.QActivation(qk.quantized_relu(8)),
        qk.QDense(32, **_q8()), qk.QActivation(qk.quantized_relu(8)),
        qk.QDense(10, **_q8()),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    hls_model = _convert(model, tmp_path_factory.mktemp("mlp"), keras2=True)
    t0 = time.perf_counter()
    traced = _trace(hls_model)
    return hls_model, traced, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# ap_fixed casts: the foundation everything else rests on
# ---------------------------------------------------------------------------------------------

_AP_TYPES = [(True, 5, 2), (False, 4, 1), (True, 3, 4), (True, 6, -1)]
_AP_MODES = [("TRN", "WRAP"), ("RND", "SAT"), ("RND_CONV", "SAT_SYM"), ("RND_ZERO", "WRAP"),
             ("RND_MIN_INF", "SAT"), ("RND_INF", "SAT_SYM"), ("TRN_ZERO", "SAT")]


def test_numpy_casts_match_ap_fixed(tmp_path):
    """quantize_np (weights, constants, C-sim's input conversion) equals real ap_fixed C++."""
    import hls4ml

    from fpga_dnn.rtl.precision import HlsType, quantize_np

    ap_types = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    casts = "\n".join(
        f"{{ ap_{'' if s else 'u'}fixed<{w},{i},AP_{q},AP_{o}> y = xs[n]; printf(\"%.17g \", y.to_double()); }}"
        for s, w, i in _AP_TYPES for q, o in _AP_MODES)
    src = tmp_path / "cast.cpp"
    src.write_text(f"""#include <cstdio>
#include <cstdlib>
#include "ap_fixed.h"
int main(int argc, char **argv) {{
    static double xs[4096];
    for (int n = 1; n < argc; n++) xs[n - 1] = atof(argv[n]);
    for (int n = 0; n < argc - 1; n++) {{ {casts} printf("\\n"); }}
}}
""")
    subprocess.run(["g++", "-O1", f"-I{ap_types}", str(src), "-o", str(tmp_path / "cast")], check=True)
    xs = np.concatenate([np.arange(-600, 600) / 64.0, np.random.default_rng(0).normal(0, 4, 300)])
    out = subprocess.run([str(tmp_path / "cast"), *map(repr, xs.tolist())], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    cpp = np.array([[float(v) for v in line.split()] for line in out if line.strip()])
    assert cpp.shape == (len(xs), len(_AP_TYPES) * len(_AP_MODES))
    col = 0
    for s, w, i in _AP_TYPES:
        for q, o in _AP_MODES:
            ours = quantize_np(xs, HlsType(s, w, i, q, o))
            assert np.array_equal(ours, cpp[:, col]), f"ap_{'' if s else 'u'}fixed<{w},{i},{q},{o}>"
            col += 1


def test_traced_casts_match_numpy_exhaustively():
    """The da4ml-built rounding (incl. half-to-even from primitives) and overflow, every input."""
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    from fpga_dnn.rtl.precision import OVERFLOW_MODES, ROUNDING_MODES, HlsType, cast, quantize_np

    checked = 0
    for signed in (True, False):
        src = HlsType(signed, 9, 3)
        codes = np.arange(2**9) - (2**8 if signed else 0)
        xs = codes * src.step
        for q in ROUNDING_MODES:
            for o in OVERFLOW_MODES:
                for s, w, i in [(True, 5, 2), (False, 4, 1), (True, 3, 4), (False, 6, 3)]:
                    dst = HlsType(s, w, i, q, o)
                    one = np.ones(1, dtype=np.int64)
                    inp = FixedVariableArray.from_kif(one * src.k, one * src.i, one * src.f, HWConfig(1, -1, -1))
                    comb = comb_trace(list(inp._vars), list(cast(inp, dst)._vars))
                    got = comb.predict(xs[:, None]).ravel()
                    assert np.array_equal(got, quantize_np(xs, dst)), f"{src} -> {dst}"
                    checked += 1
    assert checked == 2 * len(ROUNDING_MODES) * len(OVERFLOW_MODES) * 4


# ---------------------------------------------------------------------------------------------
# QKeras models against C-sim
# ---------------------------------------------------------------------------------------------

def test_mlp_bit_exact_with_csim(mlp, digits64):
    hls_model, traced, _ = mlp  # the trace's speed is a benchmark (fpga_dnn.bench), not asserted here
    x, _ = digits64
    n = _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, _grid((64,)))
    assert n == 1797 + N_GRID
    assert [li.class_name for li in traced.layers] == ["Input", "Dense", "Activation", "Dense", "Activation", "Dense"]
    # quantized_relu(8) casts with round-half-to-even and saturation: the mode that needs our
    # construction (da4ml's RND alone gave 56% exact outputs in the feasibility trial).
    assert traced.layers[2].result_type == "ufixed<8,0,RND_CONV,SAT>"
    assert str(traced.input_format) == "ufixed<5,1>" and traced.output_type.signed
    assert traced.input_shape == (64,) and traced.output_shape == (10,)


def test_cnn_bit_exact_with_csim(tmp_path, digits64):
    """8x8x1 -> QConv2D 3x3 -> quantized_relu -> MaxPooling2D -> Flatten -> QDense 10, with the
    Latency strategy and with the Resource strategy (reuse 2: hls4ml transposes the weights)."""
    qk, keras = _qk()
    x, y = digits64
    x = x.reshape(-1, 8, 8, 1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        qk.QConv2D(4, 3, **_q8()), qk.QActivation(qk.quantized_relu(8)),
        keras.layers.MaxPooling2D(2), keras.layers.Flatten(), qk.QDense(10, **_q8()),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    hls_model = _convert(model, tmp_path / "latency", keras2=True)
    traced = _trace(hls_model)
    assert [li.class_name for li in traced.layers] == ["Input", "Conv2D", "Activation", "Pooling2D", "Reshape", "Dense"]
    assert _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, _grid((8, 8, 1))) == 1797 + N_GRID

    resource = _convert(model, tmp_path / "resource", keras2=True, strategy="Resource", reuse=2)
    assert any(layer.get_attr("_weights_transposed") for layer in resource.get_layers())
    assert _check_csim(_trace(resource), resource, x) == 1797


def test_batchnorm_bit_exact_with_csim(tmp_path, digits64):
    """BatchNormalization after a 'same' conv and after a dense layer; hls4ml keeps it as a
    scale/bias layer (the first with the exact scale/bias types convert derives, the second, whose
    input is too wide to enumerate, with hls4ml's fixed<16,6>). ``x * scale + bias`` is 35 bits
    wide here: the trace is evaluated by fpga_dnn.rtl.interpret, not da4ml's C++ interpreter
    (which wraps signed values wider than 32 bits wrongly: 0.47 of the samples were exact)."""
    qk, keras = _qk()
    L = keras.layers
    keras.backend.clear_session()
    inp = L.Input((8, 8, 1))
    h = qk.QConv2D(4, 3, padding="same", **_q8())(inp)
    h = L.BatchNormalization()(h)
    h = qk.QActivation(qk.quantized_relu(8))(h)
    h = L.AveragePooling2D(2)(h)
    h = L.Flatten()(h)
    h = qk.QDense(16, **_q8())(h)
    h = L.BatchNormalization()(h)
    h = qk.QActivation(qk.quantized_relu(6, 2))(h)
    model = keras.Model(inp, qk.QDense(10, **_q8())(h))
    _randomize(model)
    hls_model = _convert(model, tmp_path, keras2=True)
    traced = _trace(hls_model)
    classes = [li.class_name for li in traced.layers]
    assert classes.count("BatchNormalization") == 2, classes
    x = digits64[0].reshape(-1, 8, 8, 1)
    assert _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, _grid((8, 8, 1))) == 1797 + N_GRID


def test_padding_strides_pooling_concatenate(tmp_path, digits64):
    """'same' Conv2D with stride 2, a 1x1 (pointwise) Conv2D, AveragePooling2D 3x3/2 'same' (partial windows: the divisor
    counts only unpadded cells, C division truncates towards zero), MaxPooling2D 'same' on the
    unsigned input (hls4ml pads with +2**(I-1) there, copied as is), quantized_bits activation,
    Concatenate."""
    qk, keras = _qk()
    L = keras.layers
    keras.backend.clear_session()
    inp = L.Input((8, 8, 1))
    a = qk.QConv2D(3, 3, strides=2, padding="same", **_q8())(inp)
    a = qk.QActivation(qk.quantized_bits(6, 2, alpha=1))(a)
    a = qk.QConv2D(2, 1, **_q8())(a)  # 1x1: hls4ml makes it a PointwiseConv2D
    a = L.Flatten()(L.AveragePooling2D(3, strides=2, padding="same")(a))
    b = L.Flatten()(L.MaxPooling2D(3, strides=2, padding="same")(inp))
    model = keras.Model(inp, qk.QDense(10, **_q8())(L.Concatenate()([a, b])))
    _randomize(model)
    hls_model = _convert(model, tmp_path, keras2=True)
    traced = _trace(hls_model)
    classes = [li.class_name for li in traced.layers]
    assert classes.count("Pooling2D") == 2 and "Concatenate" in classes, classes
    assert any(type(layer).__name__.startswith("PointwiseConv2D") or layer.class_name == "PointwiseConv2D"
               for layer in hls_model.get_layers()), [layer.class_name for layer in hls_model.get_layers()]
    x = digits64[0].reshape(-1, 8, 8, 1)
    assert _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, _grid((8, 8, 1))) == 1797 + N_GRID


def test_conv1d_merges_and_softmax_replacement(tmp_path, digits64, caplog):
    """Reshape, Conv1D ('same', stride 2), Average/MaxPooling1D, Add/Subtract/Maximum, and a
    Softmax at the output: replaced by the logits, or by their argmax (first index on ties)."""
    qk, keras = _qk()
    L = keras.layers
    keras.backend.clear_session()
    inp = L.Input((8, 8, 1))
    h = L.Reshape((16, 4))(inp)
    h = qk.QActivation(qk.quantized_relu(8))(qk.QConv1D(5, 3, strides=2, padding="same", **_q8())(h))
    h = L.MaxPooling1D(2)(L.AveragePooling1D(3, strides=1, padding="same")(h))
    h = L.Flatten()(h)
    a = qk.QActivation(qk.quantized_relu(8))(qk.QDense(12, **_q8())(h))
    b = qk.QActivation(qk.quantized_bits(8, 2, alpha=1))(qk.QDense(12, **_q8())(h))
    # hls4ml merges exactly two tensors per layer
    h = L.Concatenate()([L.Concatenate()([L.Add()([a, b]), L.Subtract()([a, b])]), L.Maximum()([a, b])])
    logits = qk.QDense(10, kernel_quantizer=qk.quantized_bits(4, 0, alpha=1),
                       bias_quantizer=qk.quantized_bits(4, 0, alpha=1), name="logits")(h)
    model = keras.Model(inp, L.Activation("softmax")(logits))
    _randomize(model)
    # coarse, saturating logits: many ties, so the first-index rule of argmax gets exercised
    hls_model = _convert(model, tmp_path, keras2=True, trace=True,
                         precision={"logits": {"result": "fixed<5,3,TRN,SAT>"}})
    x = np.concatenate([digits64[0], _grid((64,)).reshape(-1, 64)]).reshape(-1, 8, 8, 1)
    _, layer_outputs = hls_model.trace(np.ascontiguousarray(x))
    csim_logits = layer_outputs["logits"].reshape(len(x), -1)

    with caplog.at_level("WARNING", logger="fpga_dnn.rtl.trace"):
        by_logits = _trace(hls_model, softmax="logits")
    classes = [li.class_name for li in by_logits.layers]
    assert {"Conv1D", "Pooling1D", "Merge", "Concatenate", "Reshape", "Softmax"} <= set(classes), classes
    assert by_logits.softmax == "logits" and "logits" in by_logits.notes[0]
    assert any("softmax" in r.getMessage() for r in caplog.records)
    same, n = _exact(by_logits.predict(x), csim_logits)
    assert (same, n) == (len(x), len(x))

    by_argmax = _trace(hls_model, softmax="argmax")
    assert by_argmax.output_shape == () and str(by_argmax.output_format) == "ufixed<4,4>"
    idx = by_argmax.predict(x)
    assert np.array_equal(idx, np.argmax(csim_logits, axis=1))
    ties = sum(int((row == row.max()).sum() > 1) for row in csim_logits)
    assert ties > 100

    from fpga_dnn.rtl import write_verilog

    design = write_verilog(by_argmax, tmp_path / "rtl")
    assert (design.n_outputs, design.output_width) == (1, 4) and not design.output_format.signed


def test_saturating_accumulators_and_rounding_modes(tmp_path, digits64):
    """accum_t with RND_CONV/SAT (order-dependent: replayed sequentially, products rounded one
    by one), a narrow wrapping accum_t (products truncated to it), SAT_SYM and RND_ZERO results."""
    qk, keras = _qk()
    L = keras.layers
    keras.backend.clear_session()
    inp = L.Input((64,), name="inp")
    h = qk.QActivation(qk.quantized_relu(8))(qk.QDense(16, name="d1", **_q8())(inp))
    model = keras.Model(inp, qk.QDense(10, name="d2", **_q8())(h))
    _randomize(model)
    precision = {"d1": {"accum": "fixed<10,3,RND_CONV,SAT>", "result": "fixed<8,3,RND,SAT_SYM>"},
                 "d2": {"accum": "fixed<9,2,TRN,WRAP>", "result": "fixed<7,2,RND_ZERO,SAT>"}}
    hls_model = _convert(model, tmp_path, keras2=True, precision=precision)
    traced = _trace(hls_model)
    x = digits64[0]
    assert _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, _grid((64,))) == 1797 + N_GRID
    # the saturation must actually happen for this test to mean something
    csim = np.asarray(hls_model.predict(np.ascontiguousarray(x)))
    assert np.isin(csim, [-2.0, 2.0 - 2.0**-5]).any()


# ---------------------------------------------------------------------------------------------
# HGQ2: C-sim and the second, independent route through da4ml's own HGQ2 tracer
# ---------------------------------------------------------------------------------------------

def test_hgq2_mlp_bit_exact_and_routes_agree(tmp_path, digits64):
    from fpga_dnn.kerasenv import hgq, keras3

    hgq()
    keras = keras3()
    from hgq.config import QuantizerConfigScope
    from hgq.layers import QDense

    from fpga_dnn.rtl import compare_routes

    x, y = digits64
    keras.utils.set_random_seed(0)
    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"):
        inp = keras.Input((64,))
        h = QDense(32, activation="relu")(inp)
        h = QDense(16, activation="relu")(h)
        model = keras.Model(inp, QDense(10)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    hls_model = _convert(model, tmp_path, keras2=False, input_precision=None)
    traced = _trace(hls_model)
    # a heterogeneous (per-unit) HGQ2 quantizer stays in the graph as hls4ml's FixedPointQuantizer
    assert "FixedPointQuantizer" in [li.class_name for li in traced.layers], traced.layers
    # random floats off the grid and out of range: the input quantizer's rounding and wrap count
    floats = np.random.default_rng(0).uniform(-1.0, 3.0, size=(N_GRID, 64))
    assert _check_csim(traced, hls_model, x) + _check_csim(traced, hls_model, floats) == 1797 + N_GRID
    for data in (x, floats):
        agreement = compare_routes(traced, model, data)
        assert agreement.n_equal == agreement.n_samples == len(data), str(agreement)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_unsupported_layer_is_named(tmp_path):
    from fpga_dnn.rtl import supported_layers

    qk, keras = _qk()
    L = keras.layers
    keras.backend.clear_session()
    inp = L.Input((64,))
    h = L.Activation("softsign", name="squash")(qk.QDense(8, **_q8())(inp))
    model = keras.Model(inp, qk.QDense(4, **_q8())(h))
    hls_model = _convert(model, tmp_path, keras2=True)
    with pytest.raises(UnsupportedLayerError) as err:
        _trace(hls_model)
    msg = str(err.value)
    assert "'squash'" in msg and "softsign" in msg and "RTL generation" in msg and "Dense" in msg
    assert err.value.supported == sorted(supported_layers())


def test_too_wide_precision_is_refused(tmp_path):
    from fpga_dnn.rtl.precision import UnsupportedPrecisionError

    qk, keras = _qk()
    keras.backend.clear_session()
    inp = keras.layers.Input((8,), name="inp")
    model = keras.Model(inp, qk.QDense(4, name="d", **_q8())(inp))
    _randomize(model)
    hls_model = _convert(model, tmp_path, keras2=True, input_precision="fixed<60,30>",
                         precision={"d": {"accum": "fixed<80,40>", "result": "fixed<80,40>"}})
    with pytest.raises(UnsupportedPrecisionError, match=r"'d'.*bits") as err:
        _trace(hls_model)
    assert isinstance(err.value, FpgaDnnError)


def test_emulator_refuses_ports_wider_than_32_bits(mlp, tmp_path):
    from fpga_dnn.rtl import write_verilog
    from fpga_dnn.simulate.emulator import compile_emulator
    from fpga_dnn.rtl.precision import HlsType, UnsupportedPrecisionError

    _, traced, _ = mlp
    wide = type(traced)(**{**traced.__dict__, "output_type": HlsType(True, 40, 20)})
    design = write_verilog(wide, tmp_path / "rtl")
    with pytest.raises(UnsupportedPrecisionError, match="40 bits"):
        compile_emulator(design)


def test_io_stream_conversion_is_refused(tmp_path):
    import hls4ml

    from fpga_dnn.kerasenv import hls4ml_keras2
    from fpga_dnn.rtl import UnsupportedGraphError

    qk, keras = _qk()
    inp = keras.layers.Input((8,))
    model = keras.Model(inp, qk.QDense(4, **_q8())(inp))
    with hls4ml_keras2():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name")
        hls_model = hls4ml.converters.convert_from_keras_model(
            model, hls_config=cfg, io_type="io_stream", backend="Vivado", output_dir=str(tmp_path))
    with pytest.raises(UnsupportedGraphError, match="io_parallel"):
        _trace(hls_model)


# ---------------------------------------------------------------------------------------------
# Verilog
# ---------------------------------------------------------------------------------------------

def test_verilog_design_and_spec(mlp, tmp_path):
    from fpga_dnn.rtl import RtlDesign, write_verilog

    _, traced, _ = mlp
    design = write_verilog(traced, tmp_path / "rtl", name="mlp_core", latency_cutoff=5, clock_period=10)
    meta = __import__("json").loads((design.out_dir / "metadata.json").read_text())
    assert design.top == "mlp_core_wrapper" and design.latency_cycles == meta["latency"] >= 2
    assert design.input_width == 64 * 5 and design.output_width == 10 * traced.output_type.width
    assert all(p.is_file() for p in design.sources) and design.sources[-1].name == "mlp_core_wrapper.v"
    wrapper = design.sources[-1].read_text()
    assert f"input [{64 * 5 - 1}:0] model_inp" in wrapper and f"output [{design.output_width - 1}:0] model_out" in wrapper
    again = RtlDesign.load(design.out_dir)
    assert again == design
    with pytest.raises(FpgaDnnError):
        write_verilog(traced, tmp_path / "bad", latency_cutoff=0)
